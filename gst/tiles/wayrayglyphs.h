/* Glyph coding for the tile format (docs/protocol.md, operation GLYPHS):
 * a rectangle described as one background colour plus small shapes
 * ("glyphs": the letters of text, icons, a cursor block), each sent once
 * and afterwards referred to from a glyph cache that both sides keep in
 * step, like the tile cache. New lines of text then cost a few bytes per
 * letter instead of their pixels.
 *
 * Internal to the codec: wayraytileencoder.cpp decides where to use it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wayraytilecodec.h"
#include "wayraytileutil.h"

#include <zstd.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace wayray {
namespace tiles {

/* A glyph: its mask (which pixels of its w x h box it covers) and those
 * pixels. */
struct Glyph {
  int w = 0, h = 0;
  uint64_t hash = 0;
  std::vector<uint8_t> mask;    /* w * h, 1 where the glyph has a pixel */
  std::vector<uint8_t> px;      /* w * h * 4, zero where the mask is 0 */
};

/* The glyph cache as both sides keep it: slots filled and evicted by the
 * same least-recently-used rules as the tile cache. */
struct GlyphCache {
  Lru lru;
  std::vector<Glyph> slots;
  void reset (uint32_t n)
  {
    lru.reset (n);
    slots.assign (n, Glyph ());
  }
};

/* Decoder: reads the fields of one GLYPHS operation (after its type byte)
 * from @rd, validates them and draws into @fb. @written receives the
 * rectangle and @store the STORE flag. A rectangle larger than @max_area
 * pixels (what is left of the message's work budget) is refused before
 * anything is drawn. False with @error naming the fault on malformed
 * input; @fb may then be partly drawn. */
bool decode_glyphs (Reader & rd, const Surface & fb, GlyphCache & cache, ZSTD_DCtx * zstd,
    std::vector<uint8_t> & scratch, uint64_t max_area, Rect & written, bool &store, std::string & error);

/* Encoder side: finds the glyphs of a region and writes GLYPHS
 * operations, keeping its copy of the client's glyph cache. */
class GlyphCoder {
public:
  GlyphCoder ();
  ~GlyphCoder ();
  GlyphCoder (const GlyphCoder &) = delete;
  GlyphCoder & operator= (const GlyphCoder &) = delete;

  void reset (uint32_t slots);

  /* Looks at @region of @frame (the tiles to send), of which @changed is
   * the part that differs from the client's picture. When that part is
   * mostly small shapes on one background colour, appends a GLYPHS
   * operation to @out that rewrites a rectangle (@written: @changed grown
   * to hold the shapes it cuts) and applies it to @model, the encoder's
   * copy of the client's framebuffer. Pixels it cannot describe (large
   * shapes) are left for tile operations. Returns false, writing nothing,
   * when glyphs do not suit the content. */
  bool encode (const ConstSurface & frame, const Surface & model, const Rect & region,
      const Rect & changed, int level, bool store, std::vector<uint8_t> & out, Rect & written);

private:
  struct Impl;
  Impl *impl_;
};

/* Decompresses one zstd frame of exactly @n bytes (shared with the tile
 * operations). */
bool decompress_payload (ZSTD_DCtx * zstd, bool lz4, const uint8_t * src, size_t len,
    const uint8_t * dict, size_t dict_size, uint8_t * dst, size_t n, std::string & error);

}                               /* namespace tiles */
}                               /* namespace wayray */
