/* WayRay tile codec: see wayraytilecodec.h and docs/protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayraytilecodec.h"
#include "wayraytileutil.h"
#include "wayrayglyphs.h"

#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <thread>
#include <unordered_map>

namespace wayray {
namespace tiles {


const char *
op_name (int type)
{
  switch (type) {
    case OP_SOLID:
      return "solid";
    case OP_CACHE_REF:
      return "cache-ref";
    case OP_PALETTE:
      return "palette";
    case OP_ZSTD:
      return "zstd";
    case OP_LZ4:
      return "lz4";
    case OP_DELTA_ZSTD:
      return "delta-zstd";
    case OP_DELTA_LZ4:
      return "delta-lz4";
    case OP_RAW:
      return "raw";
    case OP_COPY:
      return "copy";
    case OP_ZSTD_ABOVE:
      return "zstd-above";
    case OP_LZ4_ABOVE:
      return "lz4-above";
    case OP_ZSTD_PREV:
      return "zstd-prev";
    case OP_LZ4_PREV:
      return "lz4-prev";
    case OP_GLYPHS:
      return "glyphs";
    default:
      return "unknown";
  }
}

uint64_t
hash_rows (const uint8_t *data, size_t stride, int row_bytes, int rows)
{
  /* Four independent lanes: the multiply chain of one lane would make this
   * latency-bound. */
  uint64_t h[4] = { 0x243f6a8885a308d3ull ^ ((uint64_t) row_bytes << 32) ^ (uint64_t) rows,
    0x13198a2e03707344ull, 0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull
  };
  for (int y = 0; y < rows; y++) {
    const uint8_t *p = data + y * stride;
    int i = 0;
    for (; i + 32 <= row_bytes; i += 32) {
      for (int k = 0; k < 4; k++) {
        uint64_t v;
        memcpy (&v, p + i + 8 * k, 8);
        h[k] = (h[k] ^ v) * 0x9e3779b97f4a7c15ull;
        h[k] ^= h[k] >> 31;
      }
    }
    for (; i < row_bytes; i++)
      h[0] = (h[0] ^ p[i]) * 0x100000001b3ull;
    h[1] = (h[1] ^ (uint64_t) y) * 0xff51afd7ed558ccdull;
  }
  uint64_t r = h[0];
  for (int k = 1; k < 4; k++)
    r = (r ^ (h[k] + 0x9e3779b97f4a7c15ull + (r << 6) + (r >> 2))) * 0xff51afd7ed558ccdull;
  r ^= r >> 33;
  return r;
}

Rect
tile_rect (int tx, int ty, int tile_size, int width, int height)
{
  Rect r;
  r.x = tx * tile_size;
  r.y = ty * tile_size;
  r.w = std::min (tile_size, width - r.x);
  r.h = std::min (tile_size, height - r.y);
  return r;
}

bool
parse_header (const uint8_t *data, size_t size, Header &h, std::string &error)
{
  if (size < kHeaderSizeV1) {
    error = "message shorter than the " + std::to_string (kHeaderSizeV1) +
        "-byte header (" + std::to_string (size) + " bytes)";
    return false;
  }
  if (memcmp (data, kMagic, 4) != 0) {
    error = "bad magic (not a WayRay tile message)";
    return false;
  }
  h.version = data[4];
  h.flags = data[5];
  h.tile_size = rd_u16 (data + 6);
  h.width = rd_u16 (data + 8);
  h.height = rd_u16 (data + 10);
  h.cache_slots = rd_u32 (data + 12);
  h.seq = rd_u32 (data + 16);
  h.n_ops = rd_u32 (data + 20);
  h.glyph_slots = 0;
  h.size = kHeaderSizeV1;
  if (h.version != 1 && h.version != kVersion) {
    error = "unsupported version " + std::to_string (h.version);
    return false;
  }
  if (h.version >= 2) {
    if (size < kHeaderSize) {
      error = "message shorter than the " + std::to_string (kHeaderSize) +
          "-byte version 2 header (" + std::to_string (size) + " bytes)";
      return false;
    }
    h.glyph_slots = rd_u32 (data + 24);
    h.size = kHeaderSize;
    if (h.glyph_slots > kMaxGlyphSlots) {
      error = "glyph cache of " + std::to_string (h.glyph_slots) +
          " slots exceeds the limit of " + std::to_string (kMaxGlyphSlots);
      return false;
    }
  }
  if (h.flags & ~kFlagReset) {
    error = "unknown flags 0x" + std::to_string (h.flags);
    return false;
  }
  if (h.tile_size < kMinTileSize || h.tile_size > kMaxTileSize || h.tile_size % 16) {
    error = "tile size " + std::to_string (h.tile_size) +
        " out of range (16..256, multiple of 16)";
    return false;
  }
  if (h.width < 1 || h.width > kMaxDimension || h.height < 1 || h.height > kMaxDimension) {
    error = "frame size " + std::to_string (h.width) + "x" + std::to_string (h.height) +
        " out of range (1..16384)";
    return false;
  }
  if ((uint64_t) h.width * h.height > kMaxPixels) {
    error = "frame of " + std::to_string (h.width) + "x" + std::to_string (h.height) +
        " exceeds the limit of " + std::to_string (kMaxPixels) + " pixels";
    return false;
  }
  if (h.cache_slots > kMaxCacheSlots ||
      (uint64_t) h.cache_slots * h.tile_size * h.tile_size * 4 > kMaxCacheBytes) {
    error = "cache of " + std::to_string (h.cache_slots) + " slots exceeds the limit";
    return false;
  }
  if (h.n_ops > kMaxOps) {
    error = "operation count " + std::to_string (h.n_ops) + " exceeds the limit";
    return false;
  }
  return true;
}

bool
validate_settings (const EncoderSettings &s, std::string &error)
{
  if (s.tile_size < kMinTileSize || s.tile_size > kMaxTileSize || s.tile_size % 16) {
    error = "tile size must be a multiple of 16 in 16..256";
    return false;
  }
  if (s.cache_slots > kMaxCacheSlots ||
      (uint64_t) s.cache_slots * s.tile_size * s.tile_size * 4 > kMaxCacheBytes) {
    error = "cache larger than 256 MiB";
    return false;
  }
  if (s.glyph_slots > kMaxGlyphSlots) {
    error = "glyph cache larger than " + std::to_string (kMaxGlyphSlots) + " slots";
    return false;
  }
  return true;
}


struct CacheEntry {
  int w = 0, h = 0;
  uint64_t hash = 0;
  std::vector<uint8_t> px;      /* w * h * 4, contiguous */
};

/* ---------------------------------------------------------------------- */
/* Tile pixel helpers                                                      */

static void
gather (const uint8_t *src, size_t stride, int w, int h, uint8_t *dst)
{
  for (int y = 0; y < h; y++)
    memcpy (dst + (size_t) y * w * 4, src + y * stride, (size_t) w * 4);
}

static void
scatter (const uint8_t *src, int w, int h, uint8_t *dst, size_t stride)
{
  for (int y = 0; y < h; y++)
    memcpy (dst + y * stride, src + (size_t) y * w * 4, (size_t) w * 4);
}

/* dst = a ^ b; rows are whole pixels, so a multiple of 4 bytes. */
static void
xor_bytes (uint8_t *dst, const uint8_t *a, const uint8_t *b, size_t n)
{
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    memcpy (&x, a + i, 8);
    memcpy (&y, b + i, 8);
    x ^= y;
    memcpy (dst + i, &x, 8);
  }
  for (; i < n; i++)
    dst[i] = a[i] ^ b[i];
}

/* Copies @src to @dst inside one picture as if through a temporary. */
static void
copy_rect (uint8_t *data, size_t stride, const Rect &src, const Rect &dst)
{
  if (dst.y <= src.y) {
    for (int y = 0; y < src.h; y++)
      memmove (data + (size_t) (dst.y + y) * stride + (size_t) dst.x * 4,
          data + (size_t) (src.y + y) * stride + (size_t) src.x * 4, (size_t) src.w * 4);
  } else {
    for (int y = src.h - 1; y >= 0; y--)
      memmove (data + (size_t) (dst.y + y) * stride + (size_t) dst.x * 4,
          data + (size_t) (src.y + y) * stride + (size_t) src.x * 4, (size_t) src.w * 4);
  }
}

static bool
rows_equal (const uint8_t *a, size_t a_stride, const uint8_t *b, size_t b_stride, int w, int h)
{
  for (int y = 0; y < h; y++)
    if (memcmp (a + y * a_stride, b + y * b_stride, (size_t) w * 4) != 0)
      return false;
  return true;
}

/* Number of pixels that differ (stops counting at @limit). */
static int
count_diff (const uint8_t *a, size_t a_stride, const uint8_t *b, size_t b_stride, int w,
    int h, int limit)
{
  int n = 0;
  for (int y = 0; y < h; y++) {
    const uint8_t *ra = a + y * a_stride, *rb = b + y * b_stride;
    if (memcmp (ra, rb, (size_t) w * 4) == 0)
      continue;
    int x = 0;
    for (; x + 2 <= w; x += 2) {        /* two pixels per word */
      uint64_t va, vb;
      memcpy (&va, ra + 4 * x, 8);
      memcpy (&vb, rb + 4 * x, 8);
      uint64_t d = va ^ vb;
      n += ((uint32_t) d != 0) + ((d >> 32) != 0);
    }
    for (; x < w; x++)
      n += load_px (ra + 4 * x) != load_px (rb + 4 * x);
    if (n >= limit)
      return n;
  }
  return n;
}

static bool
is_solid (const uint8_t *p, size_t stride, int w, int h, uint32_t *color)
{
  uint32_t c = load_px (p);
  for (int y = 0; y < h; y++) {
    const uint8_t *r = p + y * stride;
    for (int x = 0; x < w; x++)
      if (load_px (r + 4 * x) != c)
        return false;
  }
  *color = c;
  return true;
}

/* Palette + run-length payload for a contiguous tile; false when the tile
 * has more than 256 colours or the result would exceed @limit bytes. */
static bool
encode_palette (const uint8_t *px, int n_px, size_t limit, std::vector<uint8_t> &out)
{
  constexpr int kTable = 1024;
  uint32_t keys[kTable];
  int16_t vals[kTable];
  std::fill (vals, vals + kTable, (int16_t) - 1);
  uint32_t palette[256];
  int n_colors = 0;
  /* Runs first (index, length) so colours are counted in the same pass. */
  std::vector<std::pair<uint8_t, uint32_t>> runs;
  runs.reserve (256);
  uint32_t prev = 0;
  int prev_idx = -1;
  size_t est = 0;
  for (int i = 0; i < n_px; i++) {
    uint32_t c = load_px (px + 4 * i);
    if (prev_idx >= 0 && c == prev) {
      runs.back ().second++;
      continue;
    }
    uint32_t hslot = (c * 2654435761u) >> 22;
    int idx;
    for (;;) {
      if (vals[hslot] < 0) {
        if (n_colors == 256)
          return false;
        keys[hslot] = c;
        vals[hslot] = (int16_t) n_colors;
        palette[n_colors] = c;
        idx = n_colors++;
        break;
      }
      if (keys[hslot] == c) {
        idx = vals[hslot];
        break;
      }
      hslot = (hslot + 1) & (kTable - 1);
    }
    if (!runs.empty ())
      est += 1 + (runs.back ().second >= 128 ? 3 : 1);
    if (est > limit)
      return false;
    runs.emplace_back ((uint8_t) idx, 1);
    prev = c;
    prev_idx = idx;
  }
  if (n_colors < 2)
    return false;
  out.clear ();
  put_u8 (out, (uint8_t) (n_colors - 1));
  for (int i = 0; i < n_colors; i++)
    put_u32 (out, px_to_le (palette[i]));
  size_t len_pos = out.size ();
  put_u32 (out, 0);
  for (auto &r : runs) {
    put_u8 (out, r.first);
    put_varint (out, r.second - 1);
  }
  uint32_t len = (uint32_t) (out.size () - len_pos - 4);
  for (int i = 0; i < 4; i++)
    out[len_pos + i] = (len >> (8 * i)) & 0xff;
  return out.size () <= limit;
}

/* ---------------------------------------------------------------------- */
/* Scroll detection                                                        */

static bool
row_uniform (const uint8_t *p, int w)
{
  uint32_t c = load_px (p);
  for (int x = 1; x < w; x++)
    if (load_px (p + 4 * x) != c)
      return false;
  return true;
}

bool
changed_box (const ConstSurface &a, const ConstSurface &b, Rect &r)
{
  int x0 = r.x + r.w, x1 = r.x - 1, y0 = -1, y1 = -1;
  for (int y = r.y; y < r.y + r.h; y++) {
    const uint8_t *pa = a.data + (size_t) y * a.stride + (size_t) r.x * 4;
    const uint8_t *pb = b.data + (size_t) y * b.stride + (size_t) r.x * 4;
    if (memcmp (pa, pb, (size_t) r.w * 4) == 0)
      continue;
    if (y0 < 0)
      y0 = y;
    y1 = y;
    int l = 0, h = r.w - 1;
    while (load_px (pa + 4 * l) == load_px (pb + 4 * l))
      l++;
    while (load_px (pa + 4 * h) == load_px (pb + 4 * h))
      h--;
    x0 = std::min (x0, r.x + l);
    x1 = std::max (x1, r.x + h);
  }
  if (y0 < 0)
    return false;
  r = { x0, y0, x1 - x0 + 1, y1 - y0 + 1 };
  return true;
}

void
merge_touching (std::vector<Rect> &rects)
{
  bool merged = true;
  while (merged) {
    merged = false;
    for (size_t i = 0; i < rects.size () && !merged; i++) {
      for (size_t j = i + 1; j < rects.size (); j++) {
        Rect &a = rects[i], &b = rects[j];
        if (a.x > b.x + b.w || b.x > a.x + a.w || a.y > b.y + b.h || b.y > a.y + a.h)
          continue;
        int x0 = std::min (a.x, b.x), y0 = std::min (a.y, b.y);
        int x1 = std::max (a.x + a.w, b.x + b.w), y1 = std::max (a.y + a.h, b.y + b.h);
        a = { x0, y0, x1 - x0, y1 - y0 };
        rects.erase (rects.begin () + j);
        merged = true;
        break;
      }
    }
  }
}

/* A cheap signature of a row: a sample of its pixels. Equal rows have
 * equal signatures; a false match only costs a useless copy, which the
 * residue then corrects. */
static uint64_t
row_signature (const uint8_t *p, int w)
{
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t) w;
  int step = w > 256 ? 8 : w > 64 ? 3 : 1;
  for (int x = 0; x < w; x += step) {
    h = (h ^ load_px (p + 4 * x)) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  return h;
}

int
detect_vertical_shift (const ConstSurface &prev, const ConstSurface &cur, const Rect &r)
{
  if (r.h < 32 || r.w < 16)
    return 0;
  const int n = r.h;
  std::vector<uint64_t> hp (n), hc (n);
  std::vector<uint8_t> uni (n);
  for (int i = 0; i < n; i++) {
    const uint8_t *pp = prev.data + (size_t) (r.y + i) * prev.stride + (size_t) r.x * 4;
    const uint8_t *pc = cur.data + (size_t) (r.y + i) * cur.stride + (size_t) r.x * 4;
    hp[i] = row_signature (pp, r.w);
    hc[i] = row_signature (pc, r.w);
    uni[i] = row_uniform (pc, r.w);
  }
  /* Candidate shifts from distinctive (non-uniform) rows; a row signature
   * that occurs several times in the previous frame votes for each
   * occurrence (at most 4) so repeated lines do not hide the real shift. */
  std::vector<std::pair<uint64_t, int>> where (n);
  for (int i = 0; i < n; i++)
    where[i] = { hp[i], i };
  std::sort (where.begin (), where.end ());
  std::vector<int> votes (2 * n + 1, 0);
  int distinctive = 0;
  for (int i = 0; i < n; i++) {
    if (uni[i] || hc[i] == hp[i])
      continue;
    distinctive++;
    auto it = std::lower_bound (where.begin (), where.end (), std::make_pair (hc[i], INT_MIN));
    for (int k = 0; k < 4 && it != where.end () && it->first == hc[i]; k++, ++it)
      votes[it->second - i + n]++;
  }
  int best = 0, best_votes = 0;
  for (int d = -n + 1; d < n; d++) {
    if (d != 0 && votes[d + n] > best_votes) {
      best_votes = votes[d + n];
      best = d;
    }
  }
  if (best == 0 || best_votes < 8 || best_votes * 4 < distinctive)
    return 0;
  /* Worth it only if the shift explains clearly more distinctive rows than
   * no shift does (uniform rows match anywhere and prove nothing). */
  int shifted = 0, in_place = 0;
  for (int i = 0; i < n; i++) {
    if (uni[i])
      continue;
    int j = i + best;
    if (j >= 0 && j < n && hc[i] == hp[j])
      shifted++;
    if (hc[i] == hp[i])
      in_place++;
  }
  if (shifted < 8 || shifted <= in_place + in_place / 2)
    return 0;
  return best;
}

/* Where did a moved block (a dragged window) come from? Probes: small
 * distinctive blocks of @cur inside @r; each is searched in @prev inside
 * @r with a rolling hash of its first row and verified in full. The offset
 * most probes agree on wins. cur (x, y) == prev (x + ox, y + oy). */
static bool
find_2d_offset (const ConstSurface &prev, const ConstSurface &cur, const Rect &r, int &ox,
    int &oy)
{
  constexpr int PW = 16, PH = 8;
  if (r.w < 4 * PW || r.h < 4 * PH)
    return false;
  struct Probe {
    int x, y;
    uint64_t h;
  };
  std::vector<Probe> probes;
  constexpr uint64_t B = 0x100000001b3ull;
  uint64_t b_pow = 1;           /* B^(PW-1) */
  for (int i = 1; i < PW; i++)
    b_pow *= B;
  auto row_hash = [&] (const uint8_t *p) {
    uint64_t h = 0;
    for (int i = 0; i < PW; i++)
      h = h * B + load_px (p + 4 * i);
    return h;
  };
  for (int j = 1; j <= 3 && probes.size () < 6; j++) {
    for (int i = 1; i <= 4 && probes.size () < 6; i++) {
      int x = r.x + (r.w - PW) * i / 5, y = r.y + (r.h - PH) * j / 4;
      const uint8_t *pc = cur.data + (size_t) y * cur.stride + (size_t) x * 4;
      const uint8_t *pp = prev.data + (size_t) y * prev.stride + (size_t) x * 4;
      /* distinctive (at least 3 colours in its first row) and changed */
      int colours = 1;
      for (int k = 1; k < PW && colours < 3; k++)
        if (load_px (pc + 4 * k) != load_px (pc) && load_px (pc + 4 * k) != load_px (pc + 4 * (k - 1)))
          colours++;
      if (colours < 3 || rows_equal (pc, cur.stride, pp, prev.stride, PW, PH))
        continue;
      probes.push_back ({ x, y, row_hash (pc) });
    }
  }
  if (probes.size () < 2)
    return false;
  /* Each probe is looked for within kMoveRange pixels of its place (a
   * window moves that little between two frames); longer vertical moves
   * are scrolls, found by their rows. */
  constexpr int kMoveRange = 128;
  std::vector<std::pair<std::pair<int, int>, int>> votes;
  for (const Probe &pr : probes) {
    int sx0 = std::max (r.x, pr.x - kMoveRange), sx1 = std::min (r.x + r.w - PW, pr.x + kMoveRange);
    int sy0 = std::max (r.y, pr.y - kMoveRange), sy1 = std::min (r.y + r.h - PH, pr.y + kMoveRange);
    for (int y = sy0; y <= sy1; y++) {
      const uint8_t *row = prev.data + (size_t) y * prev.stride;
      uint64_t h = row_hash (row + (size_t) sx0 * 4);
      for (int x = sx0; x <= sx1; x++) {
        if (x > sx0)
          h = (h - load_px (row + 4 * (size_t) (x - 1)) * b_pow) * B +
              load_px (row + 4 * (size_t) (x + PW - 1));
        if (pr.h != h || (x == pr.x && y == pr.y))
          continue;
        if (!rows_equal (cur.data + (size_t) pr.y * cur.stride + (size_t) pr.x * 4, cur.stride,
                row + (size_t) x * 4, prev.stride, PW, PH))
          continue;
        std::pair<int, int> o (x - pr.x, y - pr.y);
        auto it = std::find_if (votes.begin (), votes.end (),[&](const auto &v) {
              return v.first == o;
            });
        if (it == votes.end ()) {
          if (votes.size () < 256)
            votes.push_back ({ o, 1 });
        } else {
          it->second++;
        }
      }
    }
  }
  int best = 0;
  for (const auto &v : votes)
    if (v.second > best) {
      best = v.second;
      ox = v.first.first;
      oy = v.first.second;
    }
  return best >= 2;
}

bool
detect_move (const ConstSurface &prev, const ConstSurface &cur, const Rect &r, Rect &src,
    Rect &dst)
{
  int ox = 0, oy = detect_vertical_shift (prev, cur, r);
  /* Windows that move are smaller than the screen; a change of most of
   * the screen is not searched for one (it would cost a full-frame update
   * a millisecond or two for nothing). */
  bool may_move = (int64_t) r.w * r.h * 2 <= (int64_t) cur.width * cur.height;
  if (oy == 0 && (!may_move || !find_2d_offset (prev, cur, r, ox, oy)))
    return false;
  /* copy what stays inside r: dst = r ∩ (r - o) */
  int x0 = std::max (r.x, r.x - ox), y0 = std::max (r.y, r.y - oy);
  int x1 = std::min (r.x + r.w, r.x + r.w - ox), y1 = std::min (r.y + r.h, r.y + r.h - oy);
  if (x1 - x0 < 8 || y1 - y0 < 8)
    return false;
  dst = { x0, y0, x1 - x0, y1 - y0 };
  src = { x0 + ox, y0 + oy, dst.w, dst.h };
  if (ox == 0)
    return true;                /* a vertical scroll: checked by its votes */
  /* A 2D move must explain most of the pixels that changed (sampled). */
  int changed = 0, explained = 0;
  for (int y = 0; y < dst.h; y += 3) {
    const uint8_t *c = cur.data + (size_t) (dst.y + y) * cur.stride + (size_t) dst.x * 4;
    const uint8_t *s = prev.data + (size_t) (src.y + y) * prev.stride + (size_t) src.x * 4;
    const uint8_t *p = prev.data + (size_t) (dst.y + y) * prev.stride + (size_t) dst.x * 4;
    for (int x = 0; x < dst.w; x += 3) {
      uint32_t v = load_px (c + 4 * x);
      if (v == load_px (p + 4 * x))
        continue;
      changed++;
      explained += v == load_px (s + 4 * x);
    }
  }
  return explained >= 32 && explained * 2 > changed;
}

/* ---------------------------------------------------------------------- */
/* Encoder                                                                 */

namespace {

constexpr size_t kSmallUpdateTiles = 4;
/* ABOVE codings use up to this many tiles above as dictionary, in
 * messages with at most kAboveMaxTiles tiles to compress. */
constexpr int kAboveTiles = 2;
constexpr size_t kAboveMaxTiles = 128;
constexpr int kSmallUpdateLevel = 6;

enum class JobKind { SOLID, REF, CONTENT, DUP };

struct Job {
  int tx, ty;
  Rect r;
  JobKind kind;
  uint32_t color = 0;           /* SOLID */
  uint32_t slot = 0;            /* REF */
  size_t dup_of = 0;            /* DUP: index of the CONTENT job it repeats */
  uint64_t hash = 0;
  int changed = 0;              /* pixels that differ from the client's tile (at most a quarter counted) */
  bool delta_ok = false;
  /* The tile above as the client will hold it when this tile is decoded:
   * none, the model's (unchanged) or the frame's (sent earlier in this
   * message). */
  enum Source { ABOVE_NONE, ABOVE_MODEL, ABOVE_FRAME };
  Source above = ABOVE_NONE;    /* tile (tx, ty - 1) */
  Source above2 = ABOVE_NONE;   /* tile (tx, ty - 2), when ty >= 2 */
  uint8_t type = 0;             /* CONTENT: the coding chosen */
  std::vector<uint8_t> payload;
  std::vector<uint8_t> pixels;  /* CONTENT: the tile, contiguous; moves into the cache */
};

struct Compressors {
  ZSTD_CCtx *zstd = nullptr;
  LZ4_stream_t *lz4 = nullptr;
  std::vector<uint8_t> xored, tmp, best, prefix;
  Compressors ()
  {
    zstd = ZSTD_createCCtx ();
    lz4 = LZ4_createStream ();
  }
  ~Compressors ()
  {
    ZSTD_freeCCtx (zstd);
    LZ4_freeStream (lz4);
  }
};

}                               /* namespace */

struct Encoder::Impl {
  int width = 0, height = 0;
  EncoderSettings s;
  int tiles_x = 0, tiles_y = 0;
  std::vector<uint8_t> model;   /* what the client shows, as far as known */
  size_t model_stride = 0;
  std::vector<uint8_t> exact;   /* per tile: client tile == model tile */
  bool need_reset = true;
  uint32_t seq = 0;
  Lru lru;
  std::vector<CacheEntry> cache;
  std::unordered_map<uint64_t, uint32_t> by_hash;
  std::vector<std::unique_ptr<Compressors>> comp;
  bool configured = false;
  int level = 1;                /* zstd level for the current message */
  bool small = false;           /* the current message is keystroke-sized */
  GlyphCoder glyphs;

  uint8_t *model_at (int x, int y)
  {
    return model.data () + (size_t) y * model_stride + (size_t) x * 4;
  }

  void encode_content (Job &job, const ConstSurface &f, Compressors &c);
  int lookup (uint64_t hash, const uint8_t *p, size_t stride, int w, int h);
  CacheEntry &new_entry (uint32_t &slot);
  void insert (Job &job, const ConstSurface &f);
  void insert_model_tile (const Rect &r);
  void encode_glyphs (const ConstSurface &f, std::vector<Job> &jobs,
      std::vector<uint8_t> &msg, uint32_t &n_ops, EncodeStats &stats);
};

/* Picks the smallest exact coding for a tile that is neither solid nor in
 * the cache. */
void
Encoder::Impl::encode_content (Job &job, const ConstSurface &f, Compressors &c)
{
  const Rect &r = job.r;
  const size_t n_bytes = (size_t) r.w * r.h * 4;
  job.pixels.resize (n_bytes);
  gather (f.data + (size_t) r.y * f.stride + (size_t) r.x * 4, f.stride, r.w, r.h,
      job.pixels.data ());

  job.type = OP_RAW;
  size_t best_size = n_bytes;

  auto try_compress = [&] (const uint8_t *src, uint8_t type) {
    size_t cap = (s.compressor == Compressor::ZSTD) ? ZSTD_compressBound (n_bytes)
        : (size_t) LZ4_compressBound ((int) n_bytes);
    c.tmp.resize (cap);
    size_t len;
    if (s.compressor == Compressor::ZSTD) {
      len = ZSTD_compressCCtx (c.zstd, c.tmp.data (), cap, src, n_bytes, level);
      if (ZSTD_isError (len))
        return;
    } else {
      int l = LZ4_compress_default ((const char *) src, (char *) c.tmp.data (),
          (int) n_bytes, (int) cap);
      if (l <= 0)
        return;
      len = (size_t) l;
    }
    if (len + 4 < best_size) {
      c.tmp.resize (len);
      best_size = len + 4;
      job.type = type;
      std::swap (c.best, c.tmp);
    }
  };

  if (job.delta_ok) {
    c.xored.resize (n_bytes);
    const uint8_t *m = model_at (r.x, r.y);
    for (int y = 0; y < r.h; y++)
      xor_bytes (c.xored.data () + (size_t) y * r.w * 4, job.pixels.data () + (size_t) y * r.w * 4,
          m + y * model_stride, (size_t) r.w * 4);
    try_compress (c.xored.data (),
        s.compressor == Compressor::ZSTD ? OP_DELTA_ZSTD : OP_DELTA_LZ4);
  }
  /* Compression with a dictionary both sides hold: a tile of the client's
   * framebuffer, as a raw prefix. */
  auto try_with_dict = [&] (const std::vector<uint8_t> &dict, uint8_t type) {
    size_t cap = (s.compressor == Compressor::ZSTD) ? ZSTD_compressBound (n_bytes)
        : (size_t) LZ4_compressBound ((int) n_bytes);
    c.tmp.resize (cap);
    size_t len = 0;
    if (s.compressor == Compressor::ZSTD) {
      ZSTD_CCtx_reset (c.zstd, ZSTD_reset_session_and_parameters);
      ZSTD_CCtx_setParameter (c.zstd, ZSTD_c_compressionLevel, level);
      ZSTD_CCtx_refPrefix (c.zstd, dict.data (), dict.size ());
      len = ZSTD_compress2 (c.zstd, c.tmp.data (), cap, job.pixels.data (), n_bytes);
      if (ZSTD_isError (len))
        len = 0;
    } else {
      LZ4_resetStream_fast (c.lz4);
      LZ4_loadDict (c.lz4, (const char *) dict.data (), (int) dict.size ());
      int l = LZ4_compress_fast_continue (c.lz4, (const char *) job.pixels.data (),
          (char *) c.tmp.data (), (int) n_bytes, (int) cap, 1);
      len = l > 0 ? (size_t) l : 0;
    }
    if (len > 0 && len + 4 < best_size) {
      c.tmp.resize (len);
      best_size = len + 4;
      job.type = type;
      std::swap (c.best, c.tmp);
    }
  };

  if (job.delta_ok && small) {
    /* The client's own tile as dictionary: what did not change matches in
     * one piece, and a typed letter often matches one typed before. */
    c.prefix.resize (n_bytes);
    gather (model_at (r.x, r.y), model_stride, r.w, r.h, c.prefix.data ());
    try_with_dict (c.prefix, s.compressor == Compressor::ZSTD ? OP_ZSTD_PREV : OP_LZ4_PREV);
  }
  if (job.above == Job::ABOVE_NONE) {
    try_compress (job.pixels.data (), s.compressor == Compressor::ZSTD ? OP_ZSTD : OP_LZ4);
  } else {
    /* Text continues from the tile above (lines of a terminal, rows of a
     * list): with it as dictionary the compressor finds the repeats. A
     * dictionary only adds matches, so the plain form is not tried. */
    c.prefix.clear ();
    for (int k = std::min (job.ty, kAboveTiles); k >= 1; k--) {
      Rect a = tile_rect (job.tx, job.ty - k, (int) s.tile_size, width, height);
      size_t at = c.prefix.size ();
      c.prefix.resize (at + (size_t) a.w * a.h * 4);
      if ((k == 1 ? job.above : job.above2) == Job::ABOVE_FRAME)
        gather (f.data + (size_t) a.y * f.stride + (size_t) a.x * 4, f.stride, a.w, a.h,
            c.prefix.data () + at);
      else
        gather (model_at (a.x, a.y), model_stride, a.w, a.h, c.prefix.data () + at);
    }
    try_with_dict (c.prefix, s.compressor == Compressor::ZSTD ? OP_ZSTD_ABOVE : OP_LZ4_ABOVE);
  }
  /* Last, so that the size to beat is already small and the run scan
   * stops early on tiles it cannot win (most anti-aliased text). */
  if (encode_palette (job.pixels.data (), r.w * r.h, best_size - 1, c.tmp)) {
    job.type = OP_PALETTE;
    best_size = c.tmp.size ();
    std::swap (c.best, c.tmp);
  }

  job.payload.clear ();
  switch (job.type) {
    case OP_RAW:
      job.payload.assign (job.pixels.begin (), job.pixels.end ());
      break;
    case OP_PALETTE:
      job.payload.assign (c.best.begin (), c.best.end ());
      break;
    default:
      put_u32 (job.payload, (uint32_t) c.best.size ());
      job.payload.insert (job.payload.end (), c.best.begin (), c.best.end ());
      break;
  }
}

int
Encoder::Impl::lookup (uint64_t hash, const uint8_t *p, size_t stride, int w, int h)
{
  auto it = by_hash.find (hash);
  if (it == by_hash.end ())
    return -1;
  const CacheEntry &e = cache[it->second];
  if (e.hash != hash || e.w != w || e.h != h ||
      !rows_equal (p, stride, e.px.data (), (size_t) w * 4, w, h))
    return -1;
  return (int) it->second;
}

/* The slot the next cache entry goes to (as the decoder picks it), its old
 * entry forgotten by the hash index. */
CacheEntry &
Encoder::Impl::new_entry (uint32_t &slot)
{
  slot = lru.insert ();
  CacheEntry &e = cache[slot];
  if (!e.px.empty ()) {
    auto it = by_hash.find (e.hash);
    if (it != by_hash.end () && it->second == slot)
      by_hash.erase (it);
  }
  return e;
}

void
Encoder::Impl::insert (Job &job, const ConstSurface &f)
{
  if (lru.capacity () == 0)
    return;
  uint32_t slot;
  CacheEntry &e = new_entry (slot);
  e.w = job.r.w;
  e.h = job.r.h;
  e.hash = job.hash;
  /* the encoder gathered the tile already: take its buffer (and give the
   * old one back for reuse) */
  std::swap (e.px, job.pixels);
  by_hash[job.hash] = slot;
}

/* A tile of the model enters the cache (GLYPHS with the STORE flag). */
void
Encoder::Impl::insert_model_tile (const Rect &r)
{
  uint32_t slot;
  CacheEntry &e = new_entry (slot);
  e.w = r.w;
  e.h = r.h;
  e.hash = hash_rows (model_at (r.x, r.y), model_stride, r.w * 4, r.h);
  e.px.resize ((size_t) r.w * r.h * 4);
  gather (model_at (r.x, r.y), model_stride, r.w, r.h, e.px.data ());
  by_hash[e.hash] = slot;
}

void
Encoder::Impl::encode_glyphs (const ConstSurface &f, std::vector<Job> &jobs,
    std::vector<uint8_t> &msg, uint32_t &n_ops, EncodeStats &stats)
{
  const int ts = (int) s.tile_size;
  const size_t n_tiles = (size_t) tiles_x * tiles_y;
  std::vector<uint8_t> want (n_tiles, 0);
  for (const Job &job : jobs)
    if (job.kind == JobKind::CONTENT || job.kind == JobKind::DUP)
      want[(size_t) job.ty * tiles_x + job.tx] = 1;

  /* Regions: runs of such tiles in a tile row, joined with the runs of
   * the same extent below. */
  struct Region {
    int tx0, tx1, ty0, ty1;     /* exclusive ends */
  };
  std::vector<Region> regions;
  std::vector<size_t> open, now;
  for (int ty = 0; ty < tiles_y; ty++) {
    now.clear ();
    for (int tx = 0; tx < tiles_x;) {
      if (!want[(size_t) ty * tiles_x + tx]) {
        tx++;
        continue;
      }
      int tx0 = tx;
      while (tx < tiles_x && want[(size_t) ty * tiles_x + tx])
        tx++;
      size_t k = SIZE_MAX;
      for (size_t o : open)
        if (regions[o].tx0 == tx0 && regions[o].tx1 == tx)
          k = o;
      if (k == SIZE_MAX) {
        k = regions.size ();
        regions.push_back ({ tx0, tx, ty, ty + 1 });
      } else {
        regions[k].ty1 = ty + 1;
      }
      now.push_back (k);
    }
    std::swap (open, now);
  }

  Surface m = { model.data (), model_stride, width, height };
  ConstSurface cm = { model.data (), model_stride, width, height };
  std::vector<uint8_t> touched (n_tiles, 0);
  bool any = false;
  for (const Region &g : regions) {
    Rect R = { g.tx0 * ts, g.ty0 * ts, std::min (g.tx1 * ts, width) - g.tx0 * ts,
      std::min (g.ty1 * ts, height) - g.ty0 * ts
    };
    /* the part that differs from what the client shows */
    int x0 = INT_MAX, y0 = INT_MAX, x1 = INT_MIN, y1 = INT_MIN;
    for (int ty = g.ty0; ty < g.ty1; ty++)
      for (int tx = g.tx0; tx < g.tx1; tx++) {
        Rect t = tile_rect (tx, ty, ts, width, height);
        if (exact[(size_t) ty * tiles_x + tx] && !changed_box (cm, f, t))
          continue;
        x0 = std::min (x0, t.x);
        y0 = std::min (y0, t.y);
        x1 = std::max (x1, t.x + t.w);
        y1 = std::max (y1, t.y + t.h);
      }
    if (x0 >= x1)
      continue;
    /* The whole tiles it writes go to the tile cache, as tile operations'
     * tiles do: screens come back (window switching, paging). */
    bool store = lru.capacity () > 0;
    Rect w;
    if (!glyphs.encode (f, m, R, { x0, y0, x1 - x0, y1 - y0 }, s.zstd_level, store, msg, w))
      continue;
    n_ops++;
    stats.ops[OP_GLYPHS]++;
    any = true;
    /* Tiles inside the rectangle are now known exactly (and stored, as
     * the decoder stores them). */
    for (int ty = w.y / ts; ty <= (w.y + w.h - 1) / ts; ty++)
      for (int tx = w.x / ts; tx <= (w.x + w.w - 1) / ts; tx++) {
        Rect t = tile_rect (tx, ty, ts, width, height);
        touched[(size_t) ty * tiles_x + tx] = 1;
        if (t.x < w.x || t.y < w.y || t.x + t.w > w.x + w.w || t.y + t.h > w.y + w.h)
          continue;
        exact[(size_t) ty * tiles_x + tx] = 1;
        if (store)
          insert_model_tile (t);
      }
  }
  if (!any)
    return;

  /* Tiles the glyphs completed need nothing more; the others send their
   * residue against the new picture. */
  std::vector<size_t> index (jobs.size (), SIZE_MAX);
  size_t kept = 0;
  for (size_t i = 0; i < jobs.size (); i++) {
    Job &job = jobs[i];
    size_t t = (size_t) job.ty * tiles_x + job.tx;
    if ((job.kind == JobKind::CONTENT || job.kind == JobKind::DUP) && touched[t]) {
      const Rect &r = job.r;
      job.changed = r.w * r.h;
      if (exact[t]) {
        job.changed = count_diff (f.data + (size_t) r.y * f.stride + (size_t) r.x * 4, f.stride,
            model_at (r.x, r.y), model_stride, r.w, r.h, r.w * r.h / 4);
        if (job.changed == 0) {
          stats.tiles_by_glyphs++;
          continue;
        }
      }
    }
    index[i] = kept;
    if (kept != i)
      jobs[kept] = std::move (job);
    kept++;
  }
  jobs.resize (kept);
  for (Job &job : jobs)
    if (job.kind == JobKind::DUP) {
      if (index[job.dup_of] == SIZE_MAX)
        job.kind = JobKind::CONTENT;
      else
        job.dup_of = index[job.dup_of];
    }
}

Encoder::Encoder () : impl_ (new Impl)
{
}

Encoder::~Encoder () = default;

bool
Encoder::configured () const
{
  return impl_->configured;
}

void
Encoder::configure (int width, int height, const EncoderSettings &settings)
{
  Impl &d = *impl_;
  d.width = width;
  d.height = height;
  d.s = settings;
  d.tiles_x = (width + settings.tile_size - 1) / settings.tile_size;
  d.tiles_y = (height + settings.tile_size - 1) / settings.tile_size;
  d.model_stride = (size_t) width * 4;
  d.model.assign (d.model_stride * height, 0);
  d.exact.assign ((size_t) d.tiles_x * d.tiles_y, 0);
  unsigned threads = settings.threads;
  if (threads == 0)
    threads = std::max (1u, std::min (4u, std::thread::hardware_concurrency ()));
  d.comp.clear ();
  for (unsigned i = 0; i < threads; i++)
    d.comp.emplace_back (new Compressors);
  d.need_reset = true;
  d.seq = 0;
  d.configured = true;
}

void
Encoder::request_reset ()
{
  impl_->need_reset = true;
}

static bool
clip_rect (Rect &r, int width, int height)
{
  int x0 = std::max (r.x, 0), y0 = std::max (r.y, 0);
  int x1 = std::min (r.x + r.w, width), y1 = std::min (r.y + r.h, height);
  if (x1 <= x0 || y1 <= y0)
    return false;
  r = { x0, y0, x1 - x0, y1 - y0 };
  return true;
}

bool
Encoder::encode (const ConstSurface &f, const Rect *damage, size_t n_damage,
    const Rect *lossy, size_t n_lossy, std::vector<uint8_t> &out, EncodeStats *stats)
{
  Impl &d = *impl_;
  const int ts = (int) d.s.tile_size;
  const bool reset = d.need_reset;
  const size_t n_tiles = (size_t) d.tiles_x * d.tiles_y;

  if (reset) {
    d.lru.reset (d.s.cache_slots);
    d.cache.assign (d.s.cache_slots, CacheEntry ());
    d.by_hash.clear ();
    d.glyphs.reset (d.s.glyph_slots);
    std::fill (d.exact.begin (), d.exact.end (), 0);
    d.seq = 0;
  }

  /* Regions shown lossily on the client hold unknown pixels: never a
   * reference, and resent in full when damaged. */
  for (size_t i = 0; i < n_lossy; i++) {
    Rect r = lossy[i];
    if (!clip_rect (r, d.width, d.height))
      continue;
    for (int ty = r.y / ts; ty <= (r.y + r.h - 1) / ts; ty++)
      for (int tx = r.x / ts; tx <= (r.x + r.w - 1) / ts; tx++)
        d.exact[(size_t) ty * d.tiles_x + tx] = 0;
  }

  /* Which tiles the damage touches. */
  std::vector<uint8_t> dirty (n_tiles, 0);
  std::vector<Rect> rects;
  if (reset || damage == nullptr) {
    std::fill (dirty.begin (), dirty.end (), 1);
    rects.push_back ({ 0, 0, d.width, d.height });
  } else {
    for (size_t i = 0; i < n_damage; i++) {
      Rect r = damage[i];
      if (!clip_rect (r, d.width, d.height))
        continue;
      rects.push_back (r);
      for (int ty = r.y / ts; ty <= (r.y + r.h - 1) / ts; ty++)
        for (int tx = r.x / ts; tx <= (r.x + r.w - 1) / ts; tx++)
          dirty[(size_t) ty * d.tiles_x + tx] = 1;
    }
  }

  std::vector<uint8_t> msg;
  msg.reserve (4096);
  msg.insert (msg.end (), kMagic, kMagic + 4);
  put_u8 (msg, kVersion);
  put_u8 (msg, reset ? kFlagReset : 0);
  put_u16 (msg, (uint16_t) ts);
  put_u16 (msg, (uint16_t) d.width);
  put_u16 (msg, (uint16_t) d.height);
  put_u32 (msg, d.s.cache_slots);
  put_u32 (msg, d.seq);
  put_u32 (msg, 0);             /* n_ops, patched below */
  put_u32 (msg, d.s.glyph_slots);
  uint32_t n_ops = 0;
  EncodeStats local;

  /* Scrolls and moves: one copy inside the client's framebuffer, then only
   * the residue. The source must be exact on the client. */
  if (!reset && d.s.scroll_detection) {
    ConstSurface model = { d.model.data (), d.model_stride, d.width, d.height };
    /* A scrolled window often arrives as several rectangles (the tiles
     * that changed); look at each connected group as a whole. */
    std::vector<Rect> groups = rects;
    merge_touching (groups);
    for (Rect r : groups) {
      /* Only the part that really changed: static columns or rows inside
       * the group (a side bar, a status line) would hide the shift. */
      if (!changed_box (model, f, r))
        continue;
      if (r.w * r.h < ts * ts)
        continue;
      Rect src, dst;
      if (!detect_move (model, f, r, src, dst))
        continue;
      /* Source and destination must be known exactly on the client (the
       * union of both is r, which holds them). */
      bool exact = true;
      for (int ty = r.y / ts; exact && ty <= (r.y + r.h - 1) / ts; ty++)
        for (int tx = r.x / ts; tx <= (r.x + r.w - 1) / ts; tx++)
          if (!d.exact[(size_t) ty * d.tiles_x + tx]) {
            exact = false;
            break;
          }
      if (!exact)
        continue;
      /* The group's box may cover tiles outside the damage: everything the
       * copy wrote is checked again below. */
      for (int ty = dst.y / ts; ty <= (dst.y + dst.h - 1) / ts; ty++)
        for (int tx = dst.x / ts; tx <= (dst.x + dst.w - 1) / ts; tx++)
          dirty[(size_t) ty * d.tiles_x + tx] = 1;
      put_u8 (msg, OP_COPY);
      put_u16 (msg, (uint16_t) src.x);
      put_u16 (msg, (uint16_t) src.y);
      put_u16 (msg, (uint16_t) dst.x);
      put_u16 (msg, (uint16_t) dst.y);
      put_u16 (msg, (uint16_t) src.w);
      put_u16 (msg, (uint16_t) src.h);
      n_ops++;
      local.ops[OP_COPY]++;
      /* Apply to the model with memmove semantics. */
      copy_rect (d.model.data (), d.model_stride, src, dst);
    }
  }

  /* Phase 1, in tile order: drop unchanged tiles, find solids and cache
   * hits. */
  std::vector<Job> jobs;
  std::unordered_map<uint64_t, size_t> frame_content;
  for (int ty = 0; ty < d.tiles_y; ty++) {
    for (int tx = 0; tx < d.tiles_x; tx++) {
      size_t t = (size_t) ty * d.tiles_x + tx;
      if (!dirty[t])
        continue;
      Job job;
      job.tx = tx;
      job.ty = ty;
      job.r = tile_rect (tx, ty, ts, d.width, d.height);
      const Rect &r = job.r;
      const uint8_t *p = f.data + (size_t) r.y * f.stride + (size_t) r.x * 4;
      job.changed = r.w * r.h;
      if (d.exact[t]) {
        job.changed = count_diff (p, f.stride, d.model_at (r.x, r.y), d.model_stride, r.w, r.h,
            r.w * r.h / 4);
        if (job.changed == 0) {
          local.tiles_unchanged++;
          continue;
        }
      }
      if (is_solid (p, f.stride, r.w, r.h, &job.color)) {
        job.kind = JobKind::SOLID;
      } else {
        job.hash = hash_rows (p, f.stride, r.w * 4, r.h);
        int slot = d.lookup (job.hash, p, f.stride, r.w, r.h);
        auto dup = frame_content.find (job.hash);
        if (slot >= 0) {
          job.kind = JobKind::REF;
          job.slot = (uint32_t) slot;
        } else if (dup != frame_content.end () && jobs[dup->second].r.w == r.w &&
            jobs[dup->second].r.h == r.h &&
            rows_equal (p, f.stride, f.data + (size_t) jobs[dup->second].r.y * f.stride +
                (size_t) jobs[dup->second].r.x * 4, f.stride, r.w, r.h)) {
          job.kind = JobKind::DUP;
          job.dup_of = dup->second;
        } else {
          job.kind = JobKind::CONTENT;
          frame_content.emplace (job.hash, jobs.size ());
        }
      }
      jobs.push_back (std::move (job));
    }
  }

  /* Phase 1b: text (and other small shapes on a plain background) in the
   * tiles to compress as glyphs; what they do not cover stays with tile
   * operations. */
  if (d.s.glyph_slots > 0 && !jobs.empty ())
    d.encode_glyphs (f, jobs, msg, n_ops, local);

  /* Phase 1c: how each tile to compress may refer to what the client
   * holds. */
  std::vector<uint8_t> sent_now (n_tiles, 0);
  for (Job &job : jobs) {
    size_t t = (size_t) job.ty * d.tiles_x + job.tx;
    if (job.kind == JobKind::CONTENT) {
      /* A delta against the client's tile pays when few pixels changed. */
      job.delta_ok = d.exact[t] && job.changed < job.r.w * job.r.h / 4;
      auto known = [&] (size_t tt) {
        return sent_now[tt] ? Job::ABOVE_FRAME : d.exact[tt] ? Job::ABOVE_MODEL :
            Job::ABOVE_NONE;
      };
      if (job.ty > 0) {
        Job::Source a1 = known (t - d.tiles_x);
        Job::Source a2 = job.ty > 1 ? known (t - 2 * d.tiles_x) : Job::ABOVE_MODEL;
        if (a1 != Job::ABOVE_NONE && a2 != Job::ABOVE_NONE) {
          job.above = a1;
          job.above2 = a2;
        }
      }
    }
    sent_now[t] = 1;
  }

  /* Phase 2: compress, on several threads when the update is large. */
  std::vector<size_t> content;
  for (size_t i = 0; i < jobs.size (); i++)
    if (jobs[i].kind == JobKind::CONTENT)
      content.push_back (i);
  /* A few tiles (a keystroke) are worth a stronger level: it costs tens of
   * microseconds and saves a third of the bytes. */
  /* A dictionary triples what the compressor reads; in very large updates
   * (a new screen) it buys a few percent, in a scroll's new lines far more. */
  if (content.size () > kAboveMaxTiles)
    for (size_t i : content) {
      jobs[i].above = jobs[i].above2 = Job::ABOVE_NONE;
      jobs[i].delta_ok = false;
    }
  d.level = d.s.zstd_level;
  d.small = content.size () <= kSmallUpdateTiles;
  if (d.small)
    d.level = std::max (d.level, kSmallUpdateLevel);
  size_t n_threads = d.comp.size ();
  if (content.size () < d.s.parallel_threshold || n_threads < 2) {
    for (size_t i : content)
      d.encode_content (jobs[i], f, *d.comp[0]);
  } else {
    auto work = [&] (size_t k) {
      for (size_t j = k; j < content.size (); j += n_threads)
        d.encode_content (jobs[content[j]], f, *d.comp[k]);
    };
    std::vector<std::thread> workers;
    for (size_t k = 1; k < n_threads; k++)
      workers.emplace_back (work, k);
    work (0);
    for (auto &w : workers)
      w.join ();
  }

  /* Phase 3, in order: write the operations and keep the cache in step
   * with the decoder's. */
  std::vector<uint32_t> slot_of (jobs.size (), UINT32_MAX);
  for (size_t i = 0; i < jobs.size (); i++) {
    Job &job = jobs[i];
    const Rect &r = job.r;
    const uint8_t *p = f.data + (size_t) r.y * f.stride + (size_t) r.x * 4;
    if (job.kind == JobKind::DUP) {
      uint32_t s = slot_of[job.dup_of];
      if (s != UINT32_MAX && d.cache[s].hash == job.hash &&
          rows_equal (p, f.stride, d.cache[s].px.data (), (size_t) r.w * 4, r.w, r.h)) {
        job.kind = JobKind::REF;
        job.slot = s;
      } else {
        job.kind = JobKind::CONTENT;
        job.delta_ok = false;
        job.above = job.above2 = Job::ABOVE_NONE;
        d.encode_content (job, f, *d.comp[0]);
      }
    } else if (job.kind == JobKind::REF) {
      /* An insert earlier in this message may have evicted the entry. */
      const CacheEntry &e = d.cache[job.slot];
      if (e.hash != job.hash || e.w != r.w || e.h != r.h ||
          !rows_equal (p, f.stride, e.px.data (), (size_t) r.w * 4, r.w, r.h)) {
        job.kind = JobKind::CONTENT;
        job.delta_ok = false;
        job.above = job.above2 = Job::ABOVE_NONE;
        d.encode_content (job, f, *d.comp[0]);
      }
    }

    switch (job.kind) {
      case JobKind::SOLID:
        put_u8 (msg, OP_SOLID);
        put_u16 (msg, (uint16_t) job.tx);
        put_u16 (msg, (uint16_t) job.ty);
        put_u32 (msg, px_to_le (job.color));
        local.ops[OP_SOLID]++;
        break;
      case JobKind::REF:
        put_u8 (msg, OP_CACHE_REF);
        put_u16 (msg, (uint16_t) job.tx);
        put_u16 (msg, (uint16_t) job.ty);
        put_u32 (msg, job.slot);
        d.lru.touch (job.slot);
        local.ops[OP_CACHE_REF]++;
        break;
      case JobKind::CONTENT:
        put_u8 (msg, job.type);
        put_u16 (msg, (uint16_t) job.tx);
        put_u16 (msg, (uint16_t) job.ty);
        msg.insert (msg.end (), job.payload.begin (), job.payload.end ());
        if (d.lru.capacity () > 0) {
          d.insert (job, f);
          slot_of[i] = (uint32_t) (d.by_hash.find (job.hash)->second);
        }
        local.ops[job.type]++;
        break;
      case JobKind::DUP:
        break;
    }
    n_ops++;
    for (int y = 0; y < r.h; y++)
      memcpy (d.model_at (r.x, r.y + y), p + y * f.stride, (size_t) r.w * 4);
    d.exact[(size_t) job.ty * d.tiles_x + job.tx] = 1;
  }

  if (n_ops == 0 && !reset) {
    if (stats) {
      stats->tiles_unchanged += local.tiles_unchanged;
    }
    return false;
  }
  msg[20] = n_ops & 0xff;
  msg[21] = (n_ops >> 8) & 0xff;
  msg[22] = (n_ops >> 16) & 0xff;
  msg[23] = (n_ops >> 24) & 0xff;
  d.need_reset = false;
  d.seq++;
  local.bytes = msg.size ();
  if (stats) {
    for (int i = 0; i < kNumOpTypes; i++)
      stats->ops[i] += local.ops[i];
    stats->tiles_unchanged += local.tiles_unchanged;
    stats->tiles_by_glyphs += local.tiles_by_glyphs;
    stats->bytes += local.bytes;
  }
  out.insert (out.end (), msg.begin (), msg.end ());
  return true;
}

/* ---------------------------------------------------------------------- */
/* Decoder                                                                 */

struct Decoder::Impl {
  bool started = false;
  Header params = {};
  uint32_t next_seq = 0;
  Lru lru;
  std::vector<CacheEntry> cache;
  ZSTD_DCtx *zstd = nullptr;
  std::vector<uint8_t> tile, prefix, glyph_stream;
  GlyphCache glyphs;

  Impl ()
  {
    zstd = ZSTD_createDCtx ();
  }
  ~Impl ()
  {
    ZSTD_freeDCtx (zstd);
  }
};

Decoder::Decoder () : impl_ (new Impl)
{
}

Decoder::~Decoder () = default;

void
Decoder::reset ()
{
  impl_->started = false;
  impl_->cache.clear ();
  impl_->lru.reset (0);
  impl_->glyphs.reset (0);
}

bool
decompress_payload (ZSTD_DCtx *zstd, bool lz4, const uint8_t *src, size_t len, const uint8_t *dict,
    size_t dict_size, uint8_t *dst, size_t n, std::string &error)
{
  if (lz4) {
    int got = dict ? LZ4_decompress_safe_usingDict ((const char *) src, (char *) dst, (int) len,
        (int) n, (const char *) dict, (int) dict_size) :
        LZ4_decompress_safe ((const char *) src, (char *) dst, (int) len, (int) n);
    if (got < 0 || (size_t) got != n) {
      error = "lz4 payload does not decode to exactly " + std::to_string (n) + " bytes";
      return false;
    }
    return true;
  }
  size_t frame = ZSTD_findFrameCompressedSize (src, len);
  if (ZSTD_isError (frame) || frame != len) {
    error = "zstd payload is not exactly one complete frame";
    return false;
  }
  unsigned long long content = ZSTD_getFrameContentSize (src, len);
  if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != n) {
    error = "zstd payload declares " + std::to_string (content) + " bytes instead of " +
        std::to_string (n);
    return false;
  }
  if (dict)
    ZSTD_DCtx_refPrefix (zstd, dict, dict_size);
  size_t got = ZSTD_decompressDCtx (zstd, dst, n, src, len);
  if (dict)                     /* never let the prefix outlive this tile */
    ZSTD_DCtx_reset (zstd, ZSTD_reset_session_and_parameters);
  if (ZSTD_isError (got)) {
    error = std::string ("zstd payload is corrupt: ") + ZSTD_getErrorName (got);
    return false;
  }
  if (got != n) {
    error = "zstd payload decodes to " + std::to_string (got) + " bytes instead of " +
        std::to_string (n);
    return false;
  }
  return true;
}

static bool
decode_palette (Reader &rd, uint8_t *dst, int n_px, std::string &error)
{
  const uint8_t *b;
  if (!rd.take (1, &b)) {
    error = "palette truncated";
    return false;
  }
  int n_colors = b[0] + 1;
  if (n_colors < 2) {
    error = "palette with fewer than 2 colours";
    return false;
  }
  const uint8_t *pal;
  if (!rd.take ((size_t) n_colors * 4, &pal)) {
    error = "palette colours truncated";
    return false;
  }
  if (!rd.take (4, &b)) {
    error = "palette run length field truncated";
    return false;
  }
  uint32_t len = rd_u32 (b);
  if (len > (uint32_t) n_px * 4) {
    error = "palette run data of " + std::to_string (len) + " bytes exceeds the bound";
    return false;
  }
  const uint8_t *runs;
  if (!rd.take (len, &runs)) {
    error = "palette run data truncated";
    return false;
  }
  uint32_t colors[256];
  for (int i = 0; i < n_colors; i++)
    colors[i] = le_to_px (rd_u32 (pal + 4 * i));
  size_t pos = 0;
  int filled = 0;
  while (pos < len) {
    uint8_t idx = runs[pos++];
    if (idx >= n_colors) {
      error = "palette index " + std::to_string (idx) + " out of range (" +
          std::to_string (n_colors) + " colours)";
      return false;
    }
    uint32_t v = 0;
    int shift = 0;
    for (;;) {
      if (pos >= len) {
        error = "palette run length truncated";
        return false;
      }
      uint8_t byte = runs[pos++];
      if (shift == 21 || (shift == 14 && byte > 3)) {
        error = "palette run length too large";
        return false;
      }
      v |= (uint32_t) (byte & 0x7f) << shift;
      shift += 7;
      if (!(byte & 0x80))
        break;
    }
    uint32_t run = v + 1;
    if (run > (uint32_t) (n_px - filled)) {
      error = "palette runs cover more pixels than the tile";
      return false;
    }
    uint32_t c = colors[idx];
    for (uint32_t i = 0; i < run; i++)
      memcpy (dst + 4 * (size_t) (filled + i), &c, 4);
    filled += run;
  }
  if (filled != n_px) {
    error = "palette runs cover " + std::to_string (filled) + " of " + std::to_string (n_px) +
        " pixels";
    return false;
  }
  return true;
}

bool
Decoder::decode (const uint8_t *data, size_t size, const Surface &fb, std::vector<Rect> &damage,
    std::string &error)
{
  Impl &d = *impl_;
  Header h;
  if (!parse_header (data, size, h, error))
    return false;
  if (h.flags & kFlagReset) {
    d.params = h;
    d.lru.reset (h.cache_slots);
    d.glyphs.reset (h.glyph_slots);
    d.cache.assign (h.cache_slots, CacheEntry ());
    d.started = true;
  } else {
    if (!d.started) {
      error = "stream does not start with a reset message";
      return false;
    }
    if (h.tile_size != d.params.tile_size || h.width != d.params.width ||
        h.height != d.params.height || h.cache_slots != d.params.cache_slots ||
        h.version != d.params.version || h.glyph_slots != d.params.glyph_slots) {
      error = "stream parameters changed without a reset message";
      return false;
    }
    if (h.seq != d.next_seq) {
      error = "message " + std::to_string (h.seq) + " out of sequence (expected " +
          std::to_string (d.next_seq) + ")";
      return false;
    }
  }
  if (fb.width != h.width || fb.height != h.height) {
    error = "framebuffer size does not match the message";
    return false;
  }
  const int ts = h.tile_size;
  const int tiles_x = (h.width + ts - 1) / ts, tiles_y = (h.height + ts - 1) / ts;
  Reader rd = { data + h.size, size - h.size };
  /* Checked before each operation writes: a few bytes must not make the
   * client write terabytes. */
  uint64_t budget = work_budget (h.width, h.height);
  auto spend = [&budget, &error] (uint64_t area, const std::string &where) {
    if (area > budget) {
      error = where + "the message exceeds its work budget (" + std::to_string (kWorkFrames) +
          " frames of pixels)";
      return false;
    }
    budget -= area;
    return true;
  };

  for (uint32_t i = 0; i < h.n_ops; i++) {
    const uint8_t *b;
    std::string where = "operation " + std::to_string (i) + ": ";
    if (!rd.take (1, &b)) {
      error = where + "message truncated (" + std::to_string (h.n_ops) + " operations announced)";
      return false;
    }
    uint8_t type = b[0];
    if (type == OP_COPY) {
      if (!rd.take (12, &b)) {
        error = where + "copy truncated";
        return false;
      }
      int sx = rd_u16 (b), sy = rd_u16 (b + 2), dx = rd_u16 (b + 4), dy = rd_u16 (b + 6);
      int w = rd_u16 (b + 8), hh = rd_u16 (b + 10);
      if (w == 0 || hh == 0 || sx + w > h.width || dx + w > h.width || sy + hh > h.height ||
          dy + hh > h.height) {
        error = where + "copy rectangle outside the frame";
        return false;
      }
      if (!spend ((uint64_t) w * hh, where))
        return false;
      if (dy <= sy) {
        for (int y = 0; y < hh; y++)
          memmove (fb.data + (size_t) (dy + y) * fb.stride + (size_t) dx * 4,
              fb.data + (size_t) (sy + y) * fb.stride + (size_t) sx * 4, (size_t) w * 4);
      } else {
        for (int y = hh - 1; y >= 0; y--)
          memmove (fb.data + (size_t) (dy + y) * fb.stride + (size_t) dx * 4,
              fb.data + (size_t) (sy + y) * fb.stride + (size_t) sx * 4, (size_t) w * 4);
      }
      damage.push_back ({ dx, dy, w, hh });
      continue;
    }
    if (type == OP_GLYPHS && h.version >= 2) {
      Rect r;
      bool store = false;
      if (!decode_glyphs (rd, fb, d.glyphs, d.zstd, d.glyph_stream, budget, r, store, error)) {
        error = where + error;
        return false;
      }
      budget -= (uint64_t) r.w * r.h;
      if (store && d.lru.capacity () > 0) {
        /* the tiles inside the rectangle enter the tile cache */
        for (int ty = (r.y + ts - 1) / ts; ty < tiles_y && ty * ts < r.y + r.h; ty++) {
          for (int tx = (r.x + ts - 1) / ts; tx < tiles_x && tx * ts < r.x + r.w; tx++) {
            Rect t = tile_rect (tx, ty, ts, h.width, h.height);
            if (t.x + t.w > r.x + r.w || t.y + t.h > r.y + r.h)
              continue;
            uint32_t slot = d.lru.insert ();
            CacheEntry &e = d.cache[slot];
            e.w = t.w;
            e.h = t.h;
            e.px.resize ((size_t) t.w * t.h * 4);
            gather (fb.data + (size_t) t.y * fb.stride + (size_t) t.x * 4, fb.stride, t.w, t.h,
                e.px.data ());
          }
        }
      }
      damage.push_back (r);
      continue;
    }
    if (type < OP_SOLID || type > OP_LZ4_PREV) {
      error = where + "unknown operation type " + std::to_string (type);
      return false;
    }
    if (!rd.take (4, &b)) {
      error = where + std::string (op_name (type)) + " tile position truncated";
      return false;
    }
    int tx = rd_u16 (b), ty = rd_u16 (b + 2);
    if (tx >= tiles_x || ty >= tiles_y) {
      error = where + "tile (" + std::to_string (tx) + "," + std::to_string (ty) +
          ") outside the " + std::to_string (tiles_x) + "x" + std::to_string (tiles_y) +
          " grid";
      return false;
    }
    Rect r = tile_rect (tx, ty, ts, h.width, h.height);
    if (!spend ((uint64_t) r.w * r.h, where))
      return false;
    const size_t n_bytes = (size_t) r.w * r.h * 4;
    uint8_t *dst = fb.data + (size_t) r.y * fb.stride + (size_t) r.x * 4;
    d.tile.resize (n_bytes);
    bool cacheable = true;
    switch (type) {
      case OP_SOLID:{
        if (!rd.take (4, &b)) {
          error = where + "solid colour truncated";
          return false;
        }
        uint32_t c = le_to_px (rd_u32 (b));
        for (int y = 0; y < r.h; y++) {
          uint8_t *row = dst + y * fb.stride;
          for (int x = 0; x < r.w; x++)
            memcpy (row + 4 * x, &c, 4);
        }
        cacheable = false;
        break;
      }
      case OP_CACHE_REF:{
        if (!rd.take (4, &b)) {
          error = where + "cache slot truncated";
          return false;
        }
        uint32_t slot = rd_u32 (b);
        if (slot >= d.lru.capacity () || !d.lru.used (slot)) {
          error = where + "reference to empty or missing cache slot " + std::to_string (slot);
          return false;
        }
        const CacheEntry &e = d.cache[slot];
        if (e.w != r.w || e.h != r.h) {
          error = where + "cache slot " + std::to_string (slot) + " holds a " +
              std::to_string (e.w) + "x" + std::to_string (e.h) + " tile, not " +
              std::to_string (r.w) + "x" + std::to_string (r.h);
          return false;
        }
        scatter (e.px.data (), r.w, r.h, dst, fb.stride);
        d.lru.touch (slot);
        cacheable = false;
        break;
      }
      case OP_PALETTE:
        if (!decode_palette (rd, d.tile.data (), r.w * r.h, error)) {
          error = where + error;
          return false;
        }
        scatter (d.tile.data (), r.w, r.h, dst, fb.stride);
        break;
      case OP_RAW:{
        const uint8_t *px;
        if (!rd.take (n_bytes, &px)) {
          error = where + "raw tile truncated";
          return false;
        }
        memcpy (d.tile.data (), px, n_bytes);
        scatter (d.tile.data (), r.w, r.h, dst, fb.stride);
        break;
      }
      default:{                /* ZSTD, LZ4, DELTA_*, *_ABOVE */
        if (!rd.take (4, &b)) {
          error = where + std::string (op_name (type)) + " length truncated";
          return false;
        }
        uint32_t len = rd_u32 (b);
        if (len == 0 || len > n_bytes) {
          error = where + std::string (op_name (type)) + " payload length " +
              std::to_string (len) + " out of range (1.." + std::to_string (n_bytes) + ")";
          return false;
        }
        const uint8_t *src;
        if (!rd.take (len, &src)) {
          error = where + std::string (op_name (type)) + " payload truncated";
          return false;
        }
        bool lz4 = type == OP_LZ4 || type == OP_DELTA_LZ4 || type == OP_LZ4_ABOVE ||
            type == OP_LZ4_PREV;
        const uint8_t *dict = nullptr;
        size_t dict_size = 0;
        if (type == OP_ZSTD_ABOVE || type == OP_LZ4_ABOVE) {
          if (ty == 0) {
            error = where + std::string (op_name (type)) + " in the top tile row";
            return false;
          }
          d.prefix.clear ();
          for (int k = std::min (ty, kAboveTiles); k >= 1; k--) {
            Rect a = tile_rect (tx, ty - k, ts, h.width, h.height);
            size_t at = d.prefix.size ();
            d.prefix.resize (at + (size_t) a.w * a.h * 4);
            gather (fb.data + (size_t) a.y * fb.stride + (size_t) a.x * 4, fb.stride, a.w, a.h,
                d.prefix.data () + at);
          }
          dict = d.prefix.data ();
          dict_size = d.prefix.size ();
        } else if (type == OP_ZSTD_PREV || type == OP_LZ4_PREV) {
          d.prefix.resize (n_bytes);
          gather (dst, fb.stride, r.w, r.h, d.prefix.data ());
          dict = d.prefix.data ();
          dict_size = n_bytes;
        }
        std::string why;
        if (!decompress_payload (d.zstd, lz4, src, len, dict, dict_size, d.tile.data (), n_bytes, why)) {
          error = where + why;
          return false;
        }
        if (type == OP_DELTA_ZSTD || type == OP_DELTA_LZ4) {
          for (int y = 0; y < r.h; y++) {
            uint8_t *t = d.tile.data () + (size_t) y * r.w * 4;
            xor_bytes (t, t, dst + y * fb.stride, (size_t) r.w * 4);
          }
        }
        scatter (d.tile.data (), r.w, r.h, dst, fb.stride);
        break;
      }
    }
    if (cacheable && d.lru.capacity () > 0) {
      uint32_t slot = d.lru.insert ();
      CacheEntry &e = d.cache[slot];
      e.w = r.w;
      e.h = r.h;
      /* the decoded tile moves into the cache; the evicted buffer becomes
       * the next scratch tile */
      std::swap (e.px, d.tile);
      e.px.resize (n_bytes);
    }
    damage.push_back (r);
  }
  if (rd.left != 0) {
    error = std::to_string (rd.left) + " bytes of trailing data after the last operation";
    return false;
  }
  d.next_seq = h.seq + 1;
  return true;
}

}                               /* namespace tiles */
}                               /* namespace wayray */
