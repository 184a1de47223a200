/* WayRay tile codec: the decoder. Everything it reads comes from the
 * network: every field is checked before use and the work one message may
 * cause is bounded (work_budget). See wayraytilecodec.h and docs/protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayraytilecodec.h"
#include "wayraytilepixels.h"
#include "wayrayglyphs.h"

#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace wayray {
namespace tiles {

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
    if (h.short_form && h.version == d.params.version) {
      /* The parameters of the last RESET. */
      h.tile_size = d.params.tile_size;
      h.width = d.params.width;
      h.height = d.params.height;
      h.cache_slots = d.params.cache_slots;
      h.glyph_slots = d.params.glyph_slots;
    } else if (h.short_form || h.tile_size != d.params.tile_size || h.width != d.params.width ||
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
