/* What the tile encoder, its decoder and the move detection share
 * (private to gst/tiles): the cache entry, pixel copies between a picture
 * and a contiguous tile, and row comparisons.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wayraytilecodec.h"
#include "wayraytileutil.h"

#include <cstdint>
#include <cstring>
#include <vector>

namespace wayray {
namespace tiles {

/* ABOVE codings use up to this many tiles above as dictionary (both ends
 * must agree: it is part of the format). */
constexpr int kAboveTiles = 2;

struct CacheEntry {
  int w = 0, h = 0;
  uint64_t hash = 0;
  std::vector<uint8_t> px;      /* w * h * 4, contiguous */
};

static inline void
gather (const uint8_t *src, size_t stride, int w, int h, uint8_t *dst)
{
  for (int y = 0; y < h; y++)
    memcpy (dst + (size_t) y * w * 4, src + y * stride, (size_t) w * 4);
}

static inline void
scatter (const uint8_t *src, int w, int h, uint8_t *dst, size_t stride)
{
  for (int y = 0; y < h; y++)
    memcpy (dst + y * stride, src + (size_t) y * w * 4, (size_t) w * 4);
}

static inline void
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

static inline bool
rows_equal (const uint8_t *a, size_t a_stride, const uint8_t *b, size_t b_stride, int w, int h)
{
  for (int y = 0; y < h; y++)
    if (memcmp (a + y * a_stride, b + y * b_stride, (size_t) w * 4) != 0)
      return false;
  return true;
}

}                               /* namespace tiles */
}                               /* namespace wayray */
