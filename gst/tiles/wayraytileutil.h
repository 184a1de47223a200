/* Internal helpers shared by the tile codec's parts (wayraytilecodec.cpp,
 * wayraytileencoder.cpp, wayraytiledecoder.cpp, wayraymotion.cpp,
 * wayrayglyphs.cpp): little-endian access, varints, the bounds-checked
 * reader and the least-recently-used slot order both caches use.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace wayray {
namespace tiles {

/* ---------------------------------------------------------------------- */
/* Little-endian helpers                                                   */

static inline void
put_u8 (std::vector<uint8_t> &out, uint8_t v)
{
  out.push_back (v);
}

static inline void
put_u16 (std::vector<uint8_t> &out, uint16_t v)
{
  out.push_back (v & 0xff);
  out.push_back (v >> 8);
}

static inline void
put_u32 (std::vector<uint8_t> &out, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    out.push_back ((v >> (8 * i)) & 0xff);
}

static inline uint16_t
rd_u16 (const uint8_t *p)
{
  return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t
rd_u32 (const uint8_t *p)
{
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
      ((uint32_t) p[3] << 24);
}

static inline uint32_t
load_px (const uint8_t *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return v;
}

/* Pixels are compared and stored as host u32 but serialized as their four
 * bytes (B, G, R, x), which is the little-endian u32 the spec describes. */
static inline uint32_t
px_to_le (uint32_t host_px)
{
  const uint8_t *b = (const uint8_t *) &host_px;
  return rd_u32 (b);
}

static inline uint32_t
le_to_px (uint32_t le)
{
  uint8_t b[4] = { (uint8_t) le, (uint8_t) (le >> 8), (uint8_t) (le >> 16),
    (uint8_t) (le >> 24) };
  return load_px (b);
}


static inline void
put_varint (std::vector<uint8_t> &out, uint32_t v)
{
  while (v >= 0x80) {
    out.push_back ((uint8_t) (v | 0x80));
    v >>= 7;
  }
  out.push_back ((uint8_t) v);
}

/* Reads an unsigned LEB128 varint of at most @max_bytes bytes from
 * @p[*pos .. len); false when it is truncated or longer. */
static inline bool
get_varint (const uint8_t *p, size_t len, size_t *pos, int max_bytes, uint32_t *v)
{
  uint32_t r = 0;
  for (int i = 0; i < max_bytes; i++) {
    if (*pos >= len)
      return false;
    uint8_t b = p[(*pos)++];
    r |= (uint32_t) (b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

/* Signed values as varints: 0, -1, 1, -2, ... become 0, 1, 2, 3, ... */
static inline uint32_t
zigzag (int32_t v)
{
  return ((uint32_t) v << 1) ^ (uint32_t) (v >> 31);
}

static inline int32_t
unzigzag (uint32_t v)
{
  return (int32_t) (v >> 1) ^ -(int32_t) (v & 1);
}

/* Bounds-checked reader over one message. */
struct Reader {
  const uint8_t *p;
  size_t left;
  bool take (size_t n, const uint8_t **out)
  {
    if (n > left)
      return false;
    *out = p;
    p += n;
    left -= n;
    return true;
  }
};

/* ---------------------------------------------------------------------- */
/* The least-recently-used order both sides keep over the cache slots. A
 * slot is filled in index order while free ones remain; afterwards the
 * slot unused for longest is replaced. */

class Lru {
public:
  void reset (uint32_t capacity)
  {
    capacity_ = capacity;
    filled_ = 0;
    prev_.assign (capacity, kNone);
    next_.assign (capacity, kNone);
    head_ = tail_ = kNone;
  }
  uint32_t capacity () const
  {
    return capacity_;
  }
  bool used (uint32_t slot) const
  {
    return slot < filled_;
  }
  /* Returns the slot a new entry goes to and makes it most recent. */
  uint32_t insert ()
  {
    uint32_t slot;
    if (filled_ < capacity_) {
      slot = filled_++;
    } else {
      slot = head_;
      unlink (slot);
    }
    append (slot);
    return slot;
  }
  void touch (uint32_t slot)
  {
    unlink (slot);
    append (slot);
  }

private:
  static constexpr uint32_t kNone = UINT32_MAX;
  void unlink (uint32_t s)
  {
    uint32_t p = prev_[s], n = next_[s];
    if (p != kNone)
      next_[p] = n;
    else
      head_ = n;
    if (n != kNone)
      prev_[n] = p;
    else
      tail_ = p;
    prev_[s] = next_[s] = kNone;
  }
  void append (uint32_t s)
  {
    prev_[s] = tail_;
    next_[s] = kNone;
    if (tail_ != kNone)
      next_[tail_] = s;
    else
      head_ = s;
    tail_ = s;
  }
  uint32_t capacity_ = 0, filled_ = 0;
  uint32_t head_ = kNone, tail_ = kNone;
  std::vector<uint32_t> prev_, next_;
};

}                               /* namespace tiles */
}                               /* namespace wayray */
