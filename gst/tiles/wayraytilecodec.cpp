/* WayRay tile codec, the format: operation names, header parsing, the
 * tile grid, settings. The encoder is in wayraytileencoder.cpp, the decoder
 * (the attack surface, to be read alone) in wayraytiledecoder.cpp, the move
 * detection both the encoder and the classifier use in wayraymotion.cpp;
 * see wayraytilecodec.h and docs/protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayraytilecodec.h"
#include "wayraytileutil.h"

#include <algorithm>
#include <climits>
#include <cstring>

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
  h = Header ();
  if (size < kHeaderSizeShort) {
    error = "message shorter than the " + std::to_string (kHeaderSizeShort) +
        "-byte header (" + std::to_string (size) + " bytes)";
    return false;
  }
  if (memcmp (data, kMagic, 4) != 0) {
    error = "bad magic (not a WayRay tile message)";
    return false;
  }
  h.version = data[4];
  h.flags = data[5];
  if (h.version < 1 || h.version > kVersion) {
    error = "unsupported version " + std::to_string (h.version);
    return false;
  }
  if (h.flags & ~kFlagReset) {
    error = "unknown flags 0x" + std::to_string (h.flags);
    return false;
  }
  if (h.version >= 3 && !(h.flags & kFlagReset)) {
    h.seq = rd_u32 (data + 6);
    h.n_ops = rd_u32 (data + 10);
    h.size = kHeaderSizeShort;
    h.short_form = true;
    if (h.n_ops > kMaxOps) {
      error = "operation count " + std::to_string (h.n_ops) + " exceeds the limit";
      return false;
    }
    return true;
  }
  if (size < kHeaderSizeV1) {
    error = "message shorter than the " + std::to_string (kHeaderSizeV1) +
        "-byte header (" + std::to_string (size) + " bytes)";
    return false;
  }
  h.tile_size = rd_u16 (data + 6);
  h.width = rd_u16 (data + 8);
  h.height = rd_u16 (data + 10);
  h.cache_slots = rd_u32 (data + 12);
  h.seq = rd_u32 (data + 16);
  h.n_ops = rd_u32 (data + 20);
  h.glyph_slots = 0;
  h.size = kHeaderSizeV1;
  if (h.version >= 2) {
    if (size < kHeaderSize) {
      error = "message shorter than the " + std::to_string (kHeaderSize) +
          "-byte version " + std::to_string (h.version) + " header (" + std::to_string (size) + " bytes)";
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

}                               /* namespace tiles */
}                               /* namespace wayray */
