/* Unit tests of the tile format: each coding decoded from hand-built
 * messages (as docs/protocol.md specifies them), the encoder's choices,
 * the cache in step on both sides, malformed input, and a randomized
 * encoder/decoder round trip.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "screengen.h"
#include "wayraytilecodec.h"
#include "wayrayworkers.h"

#include <lz4.h>
#include <zstd.h>

#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <string>
#include <vector>

using namespace wayray::tiles;
using screengen::Rng;
using screengen::Screen;
using screengen::bgrx;

/* ---- message builder, written from the specification ---- */
struct Msg {
  std::vector<uint8_t> b;
  size_t n_ops_pos = 20;
  uint32_t n = 0;
  /* version 1 unless @glyph_slots is given (version 2) */
  Msg (int w, int h, int ts, uint32_t slots, bool reset, uint32_t seq = 0,
      int64_t glyph_slots = -1)
  {
    b = {'W', 'R', 'T', 'S', (uint8_t) (glyph_slots < 0 ? 1 : 2), (uint8_t) (reset ? 1 : 0)};
    header (w, h, ts, slots, seq, glyph_slots);
  }
  /* version 3: a RESET with the whole header, any other message with the
   * short one (magic, version, flags, seq, n_ops) */
  static Msg v3 (int w, int h, int ts, uint32_t slots, bool reset, uint32_t seq, uint32_t glyph_slots)
  {
    Msg m;
    m.b = {'W', 'R', 'T', 'S', 3, (uint8_t) (reset ? 1 : 0)};
    if (reset) {
      m.header (w, h, ts, slots, seq, glyph_slots);
    } else {
      m.u32 (seq);
      m.n_ops_pos = m.b.size ();
      m.u32 (0);
    }
    return m;
  }
  Msg () {}
  void header (int w, int h, int ts, uint32_t slots, uint32_t seq, int64_t glyph_slots)
  {
    u16 (ts);
    u16 (w);
    u16 (h);
    u32 (slots);
    u32 (seq);
    u32 (0);
    if (glyph_slots >= 0)
      u32 ((uint32_t) glyph_slots);
  }
  void varint (uint32_t v)
  {
    while (v >= 0x80) {
      u8 ((uint8_t) (v | 0x80));
      v >>= 7;
    }
    u8 ((uint8_t) v);
  }
  void u8 (uint8_t v)
  {
    b.push_back (v);
  }
  void u16 (uint16_t v)
  {
    u8 (v & 0xff);
    u8 (v >> 8);
  }
  void u32 (uint32_t v)
  {
    for (int i = 0; i < 4; i++)
      u8 ((v >> (8 * i)) & 0xff);
  }
  void bytes (const std::vector<uint8_t> &v)
  {
    b.insert (b.end (), v.begin (), v.end ());
  }
  void op (uint8_t type, int tx, int ty)
  {
    u8 (type);
    u16 (tx);
    u16 (ty);
    n++;
  }
  std::vector<uint8_t> done ()
  {
    std::vector<uint8_t> r = b;
    for (int i = 0; i < 4; i++)
      r[n_ops_pos + i] = (n >> (8 * i)) & 0xff;
    return r;
  }
};

static std::vector<uint8_t>
tile_bytes (const Screen &s, int x, int y, int w, int h)
{
  std::vector<uint8_t> v;
  for (int yy = 0; yy < h; yy++)
    v.insert (v.end (), s.px.begin () + ((size_t) (y + yy) * s.w + x) * 4,
        s.px.begin () + ((size_t) (y + yy) * s.w + x + w) * 4);
  return v;
}

static std::vector<uint8_t>
zstd (const std::vector<uint8_t> &in)
{
  std::vector<uint8_t> out (ZSTD_compressBound (in.size ()));
  out.resize (ZSTD_compress (out.data (), out.size (), in.data (), in.size (), 3));
  return out;
}

static std::vector<uint8_t>
lz4 (const std::vector<uint8_t> &in)
{
  std::vector<uint8_t> out (LZ4_compressBound ((int) in.size ()));
  out.resize (LZ4_compress_default ((const char *) in.data (), (char *) out.data (),
          (int) in.size (), (int) out.size ()));
  return out;
}

struct Client {
  Decoder dec;
  Screen fb;
  std::vector<Rect> damage;
  std::string error;
  Client (int w, int h) : fb (w, h) {}
  bool apply (const std::vector<uint8_t> &m)
  {
    damage.clear ();
    error.clear ();
    Surface s = {fb.px.data (), fb.stride (), fb.w, fb.h};
    return dec.decode (m.data (), m.size (), s, damage, error);
  }
};

static uint32_t
pixel (Screen &s, int x, int y)
{
  uint32_t v;
  memcpy (&v, s.at (x, y), 4);
  return v;
}

/* 40x20 frame with 16-pixel tiles: a 3x2 grid whose right column is 8
 * wide and bottom row 4 high. */
GST_START_TEST (test_decode_solid_and_edges)
{
  Client c (40, 20);
  Msg m (40, 20, 16, 0, true);
  for (int ty = 0; ty < 2; ty++)
    for (int tx = 0; tx < 3; tx++) {
      m.op (OP_SOLID, tx, ty);
      m.u8 (0x10 * tx);         /* B */
      m.u8 (0x20 * ty);         /* G */
      m.u8 (0x30);              /* R */
      m.u8 (0xff);              /* x */
    }
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  fail_unless_equals_int (c.damage.size (), 6);
  fail_unless_equals_int (c.damage[5].w, 8);
  fail_unless_equals_int (c.damage[5].h, 4);
  for (int y = 0; y < 20; y++)
    for (int x = 0; x < 40; x++) {
      const uint8_t *p = c.fb.at (x, y);
      fail_unless_equals_int (p[0], 0x10 * (x / 16));
      fail_unless_equals_int (p[1], 0x20 * (y / 16));
      fail_unless_equals_int (p[2], 0x30);
      fail_unless_equals_int (p[3], 0xff);
    }
}
GST_END_TEST;

GST_START_TEST (test_decode_palette_rle)
{
  Client c (16, 16);
  Msg m (16, 16, 16, 0, true);
  m.op (OP_PALETTE, 0, 0);
  m.u8 (2);                     /* 3 colours */
  m.u32 (0xff000000);
  m.u32 (0xffffffff);
  m.u32 (0xff0000ff);
  std::vector<uint8_t> runs;
  /* 200 black (varint 199 = 0xc7 0x01), 1 white, 55 red */
  runs = {0, 0xc7, 0x01, 1, 0, 2, 54};
  m.u32 (runs.size ());
  m.bytes (runs);
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  fail_unless_equals_int (pixel (c.fb, 7, 12), 0xff000000);     /* pixel 199 */
  fail_unless_equals_int (pixel (c.fb, 8, 12), 0xffffffff);     /* pixel 200 */
  fail_unless_equals_int (pixel (c.fb, 9, 12), 0xff0000ff);
  fail_unless_equals_int (pixel (c.fb, 15, 15), 0xff0000ff);
}
GST_END_TEST;

static void
check_compressed (uint8_t type, bool delta)
{
  Rng rng (7);
  Screen src (32, 16);
  src.noise ({0, 0, 32, 16}, rng);
  src.fill ({4, 4, 24, 8}, bgrx (1, 2, 3));
  Client c (32, 16);
  Msg m (32, 16, 16, 0, true);
  /* tile 0 as raw, then tile 1 compressed (as delta against tile 0's
   * content copied there by a raw op first when testing deltas) */
  std::vector<uint8_t> t0 = tile_bytes (src, 0, 0, 16, 16);
  std::vector<uint8_t> t1 = tile_bytes (src, 16, 0, 16, 16);
  m.op (OP_RAW, 0, 0);
  m.bytes (t0);
  std::vector<uint8_t> payload = t1;
  if (delta) {
    m.op (OP_RAW, 1, 0);
    m.bytes (t0);
    for (size_t i = 0; i < payload.size (); i++)
      payload[i] ^= t0[i];
  }
  std::vector<uint8_t> comp = (type == OP_LZ4 || type == OP_DELTA_LZ4) ? lz4 (payload) :
      zstd (payload);
  fail_unless (comp.size () <= payload.size ());
  m.op (type, 1, 0);
  m.u32 (comp.size ());
  m.bytes (comp);
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  fail_unless (c.fb.px == src.px, "%s tile differs", op_name (type));
}

GST_START_TEST (test_decode_compressed)
{
  /* noise does not compress: use a mostly flat tile */
  check_compressed (OP_ZSTD, false);
  check_compressed (OP_LZ4, false);
  check_compressed (OP_DELTA_ZSTD, true);
  check_compressed (OP_DELTA_LZ4, true);
}
GST_END_TEST;

/* tile (0,1) compressed with tile (0,0) as dictionary */
static void
check_above (uint8_t type)
{
  Rng rng (17);
  Screen src (16, 32);
  src.noise ({0, 0, 16, 16}, rng);
  /* the lower tile repeats the upper one with a few changes */
  for (int y = 0; y < 16; y++)
    memcpy (src.at (0, 16 + y), src.at (0, (y + 3) % 16), 16 * 4);
  src.fill ({2, 20, 3, 3}, bgrx (1, 1, 1));
  std::vector<uint8_t> above = tile_bytes (src, 0, 0, 16, 16);
  std::vector<uint8_t> below = tile_bytes (src, 0, 16, 16, 16);
  std::vector<uint8_t> comp (ZSTD_compressBound (below.size ()));
  if (type == OP_ZSTD_ABOVE) {
    ZSTD_CCtx *c = ZSTD_createCCtx ();
    ZSTD_CCtx_refPrefix (c, above.data (), above.size ());
    comp.resize (ZSTD_compress2 (c, comp.data (), comp.size (), below.data (), below.size ()));
    ZSTD_freeCCtx (c);
  } else {
    LZ4_stream_t *st = LZ4_createStream ();
    LZ4_loadDict (st, (const char *) above.data (), (int) above.size ());
    comp.resize (LZ4_compress_fast_continue (st, (const char *) below.data (),
            (char *) comp.data (), (int) below.size (), (int) comp.size (), 1));
    LZ4_freeStream (st);
  }
  /* with the dictionary the noise compresses; without it, it would not */
  fail_unless (comp.size () < below.size () / 2, "%s: %u bytes", op_name (type),
      (guint) comp.size ());
  Client c (16, 32);
  Msg m (16, 32, 16, 0, true);
  m.op (OP_RAW, 0, 0);
  m.bytes (above);
  m.op (type, 0, 1);
  m.u32 (comp.size ());
  m.bytes (comp);
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  fail_unless (c.fb.px == src.px, "%s tile differs", op_name (type));

  /* the top row has nothing above it */
  Msg top (16, 32, 16, 0, true);
  top.op (type, 0, 0);
  top.u32 (comp.size ());
  top.bytes (comp);
  Client c2 (16, 32);
  fail_if (c2.apply (top.done ()));
  fail_unless (c2.error.find ("top tile row") != std::string::npos, "%s", c2.error.c_str ());
}

/* from the third tile row on, the dictionary is the two tiles above */
static void
check_above_two (uint8_t type)
{
  Rng rng (19);
  Screen src (16, 48);
  src.noise ({0, 0, 16, 32}, rng);
  /* the third tile: the first one's rows, which only the two-tile
   * dictionary contains */
  for (int y = 0; y < 16; y++)
    memcpy (src.at (0, 32 + y), src.at (0, y), 16 * 4);
  std::vector<uint8_t> dict = tile_bytes (src, 0, 0, 16, 32);
  std::vector<uint8_t> third = tile_bytes (src, 0, 32, 16, 16);
  std::vector<uint8_t> comp (ZSTD_compressBound (third.size ()));
  if (type == OP_ZSTD_ABOVE) {
    ZSTD_CCtx *c = ZSTD_createCCtx ();
    ZSTD_CCtx_refPrefix (c, dict.data (), dict.size ());
    comp.resize (ZSTD_compress2 (c, comp.data (), comp.size (), third.data (), third.size ()));
    ZSTD_freeCCtx (c);
  } else {
    LZ4_stream_t *st = LZ4_createStream ();
    LZ4_loadDict (st, (const char *) dict.data (), (int) dict.size ());
    comp.resize (LZ4_compress_fast_continue (st, (const char *) third.data (),
            (char *) comp.data (), (int) third.size (), (int) comp.size (), 1));
    LZ4_freeStream (st);
  }
  fail_unless (comp.size () < third.size () / 4);
  Client c (16, 48);
  Msg m (16, 48, 16, 0, true);
  m.op (OP_RAW, 0, 0);
  m.bytes (tile_bytes (src, 0, 0, 16, 16));
  m.op (OP_RAW, 0, 1);
  m.bytes (tile_bytes (src, 0, 16, 16, 16));
  m.op (type, 0, 2);
  m.u32 (comp.size ());
  m.bytes (comp);
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  fail_unless (c.fb.px == src.px, "%s tile differs", op_name (type));
}

GST_START_TEST (test_decode_above)
{
  check_above (OP_ZSTD_ABOVE);
  check_above (OP_LZ4_ABOVE);
  check_above_two (OP_ZSTD_ABOVE);
  check_above_two (OP_LZ4_ABOVE);
}
GST_END_TEST;

/* a tile compressed with its own previous content as dictionary */
static void
check_prev (uint8_t type)
{
  Rng rng (23);
  Screen before (32, 16), after (32, 16);
  before.noise ({0, 0, 32, 16}, rng);
  after = before;
  after.fill ({18, 3, 5, 6}, bgrx (9, 8, 7));
  std::vector<uint8_t> old_tile = tile_bytes (before, 16, 0, 16, 16);
  std::vector<uint8_t> new_tile = tile_bytes (after, 16, 0, 16, 16);
  std::vector<uint8_t> comp (ZSTD_compressBound (new_tile.size ()));
  if (type == OP_ZSTD_PREV) {
    ZSTD_CCtx *c = ZSTD_createCCtx ();
    ZSTD_CCtx_refPrefix (c, old_tile.data (), old_tile.size ());
    comp.resize (ZSTD_compress2 (c, comp.data (), comp.size (), new_tile.data (),
            new_tile.size ()));
    ZSTD_freeCCtx (c);
  } else {
    LZ4_stream_t *st = LZ4_createStream ();
    LZ4_loadDict (st, (const char *) old_tile.data (), (int) old_tile.size ());
    comp.resize (LZ4_compress_fast_continue (st, (const char *) new_tile.data (),
            (char *) comp.data (), (int) new_tile.size (), (int) comp.size (), 1));
    LZ4_freeStream (st);
  }
  fail_unless (comp.size () < new_tile.size () / 4, "%s: %u bytes", op_name (type),
      (guint) comp.size ());
  Client c (32, 16);
  Msg m (32, 16, 16, 0, true);
  m.op (OP_RAW, 0, 0);
  m.bytes (tile_bytes (before, 0, 0, 16, 16));
  m.op (OP_RAW, 1, 0);
  m.bytes (old_tile);
  m.op (type, 1, 0);
  m.u32 (comp.size ());
  m.bytes (comp);
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  fail_unless (c.fb.px == after.px, "%s tile differs", op_name (type));
}

GST_START_TEST (test_decode_prev)
{
  check_prev (OP_ZSTD_PREV);
  check_prev (OP_LZ4_PREV);
}
GST_END_TEST;

GST_START_TEST (test_decode_cache_lru)
{
  /* 2 slots. Tiles A, B inserted (slots 0, 1); ref A makes B least
   * recent; C replaces B (slot 1); a ref to slot 1 now yields C. */
  Client c (48, 16);
  Msg m (48, 16, 16, 2, true);
  uint32_t colours[3] = {0xff112233, 0xff445566, 0xff778899};
  for (int i = 0; i < 2; i++) {
    m.op (OP_PALETTE, i, 0);
    m.u8 (1);
    m.u32 (colours[i]);
    m.u32 (0xff000000);
    m.u32 (4);
    m.bytes ({0, 127, 1, 127});      /* 128 + 128 pixels */
  }
  m.op (OP_CACHE_REF, 2, 0);
  m.u32 (0);
  m.op (OP_PALETTE, 0, 0);
  m.u8 (1);
  m.u32 (colours[2]);
  m.u32 (0xff000000);
  m.u32 (4);
  m.bytes ({0, 127, 1, 127});
  m.op (OP_CACHE_REF, 1, 0);
  m.u32 (1);
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  fail_unless_equals_int (pixel (c.fb, 32, 0), 0xff112233);     /* A via ref */
  fail_unless_equals_int (pixel (c.fb, 0, 0), 0xff778899);      /* C */
  fail_unless_equals_int (pixel (c.fb, 16, 0), 0xff778899);     /* slot 1 = C */
  /* solid tiles never enter the cache: slot 2 does not exist */
  Msg n (48, 16, 16, 2, false, 1);
  n.op (OP_CACHE_REF, 0, 0);
  n.u32 (2);
  fail_if (c.apply (n.done ()));
}
GST_END_TEST;

GST_START_TEST (test_decode_copy)
{
  Client c (32, 32);
  Rng rng (3);
  Screen src (32, 32);
  src.noise ({0, 0, 32, 32}, rng);
  Msg m (32, 32, 16, 0, true);
  for (int t = 0; t < 4; t++) {
    m.op (OP_RAW, t % 2, t / 2);
    m.bytes (tile_bytes (src, 16 * (t % 2), 16 * (t / 2), 16, 16));
  }
  /* overlapping copy down by 5 rows: memmove semantics */
  m.u8 (OP_COPY);
  m.u16 (3);
  m.u16 (0);
  m.u16 (3);
  m.u16 (5);
  m.u16 (20);
  m.u16 (27);
  m.n++;
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  Screen want = src;
  want.shift_rows ({3, 0, 20, 32}, 5);
  fail_unless (c.fb.px == want.px);
  fail_unless_equals_int (c.damage.back ().y, 5);
  fail_unless_equals_int (c.damage.back ().h, 27);
}
GST_END_TEST;

/* A few bytes must not make the client write terabytes: 13-byte copies of
 * the whole frame, or 9-byte solid tiles, are refused once a message's
 * rectangles add up to more than kWorkFrames frames, before the write. */
GST_START_TEST (test_decode_work_budget)
{
  const int W = 256, H = 128;
  auto copies = [&] (uint32_t n) {
    Msg m (W, H, 64, 0, true);
    for (uint32_t k = 0; k < n; k++) {
      m.u8 (OP_COPY);
      for (int v : { 0, 0, 0, 0, W, H })
        m.u16 (v);
      m.n++;
    }
    return m.done ();
  };
  Client ok (W, H);
  fail_unless (ok.apply (copies (kWorkFrames)), "%s", ok.error.c_str ());
  Client over (W, H);
  fail_if (over.apply (copies (1 << 20)));
  fail_unless (over.error == "operation " + std::to_string (kWorkFrames) +
      ": the message exceeds its work budget (" + std::to_string (kWorkFrames) + " frames of pixels)",
      "%s", over.error.c_str ());
  fail_unless_equals_int (over.damage.size (), kWorkFrames);

  Msg m (W, H, 64, 0, true);
  uint32_t tiles = (W / 64) * (H / 64);
  for (uint32_t k = 0; k <= kWorkFrames * tiles; k++) {
    m.op (OP_SOLID, k % (W / 64), (k / (W / 64)) % (H / 64));
    m.u32 (0xff00ff);
  }
  Client solid (W, H);
  fail_if (solid.apply (m.done ()));
  fail_unless (solid.error.find ("exceeds its work budget") != std::string::npos, "%s", solid.error.c_str ());
  uint64_t area = 0;
  for (const Rect &r : solid.damage)
    area += (uint64_t) r.w * r.h;
  fail_unless (area <= work_budget (W, H));
}
GST_END_TEST;

/* ---- glyphs (version 2) ---- */

/* A glyph record stream, written from the specification. */
struct GlyphStream {
  std::vector<uint8_t> b;
  void varint (uint32_t v)
  {
    while (v >= 0x80) {
      b.push_back ((uint8_t) (v | 0x80));
      v >>= 7;
    }
    b.push_back ((uint8_t) v);
  }
  static uint32_t zz (int v)
  {
    return v >= 0 ? 2u * v : 2u * (uint32_t) (-v) - 1;
  }
  /* a new glyph: @rows as strings, '#' = pixel @c, '.' = not covered */
  void define (const std::vector<std::string> &rows, uint32_t c)
  {
    int w = (int) rows[0].size (), h = (int) rows.size ();
    varint (0);
    b.push_back ((uint8_t) w);
    b.push_back ((uint8_t) h);
    std::vector<uint8_t> mask ((w * h + 7) / 8, 0);
    int n = 0;
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        if (rows[y][x] == '#') {
          mask[(y * w + x) / 8] |= 1 << ((y * w + x) % 8);
          n++;
        }
    b.insert (b.end (), mask.begin (), mask.end ());
    for (int i = 0; i < n; i++)
      for (int k = 0; k < 4; k++)
        b.push_back ((uint8_t) (c >> (8 * k)));
  }
  void ref (uint32_t slot)
  {
    varint (slot + 1);
  }
  void at (int dx, int dy)
  {
    varint (zz (dx));
    varint (zz (dy));
  }
};

static void
glyphs_op (Msg &m, int x, int y, int w, int h, uint32_t bg, const std::vector<uint8_t> &stream,
    bool compress, uint8_t flags = 0)
{
  /* compressed only when that is smaller: the format says so */
  m.u8 (OP_GLYPHS);
  m.u8 (flags);
  m.u16 (x);
  m.u16 (y);
  m.u16 (w);
  m.u16 (h);
  m.u32 (bg);
  m.u32 ((uint32_t) stream.size ());
  std::vector<uint8_t> z = zstd (stream);
  if (compress && z.size () <= stream.size ()) {
    m.u32 ((uint32_t) z.size ());
    m.bytes (z);
  } else {
    m.u32 (0);
    m.bytes (stream);
  }
  m.n++;
}

GST_START_TEST (test_decode_glyphs)
{
  const uint32_t bg = bgrx (10, 20, 30), ink = bgrx (200, 210, 220);
  for (int compress = 0; compress < 2; compress++) {
    Client c (48, 32);
    Msg m (48, 32, 16, 4, true, 0, 8);
    m.op (OP_SOLID, 0, 0);
    m.u32 (bgrx (1, 1, 1));
    GlyphStream g;
    /* an "L" (3x4, bottom edge at y 9) at x 5, then the same glyph from
     * the cache 4 pixels right with its bottom 2 rows lower, then a dot */
    g.define ({"#..", "#..", "#..", "###"}, ink);
    g.at (5 - 2, 9 - 1);        /* relative to the rectangle's corner (2, 1) */
    g.ref (0);
    g.at (4, 2);
    g.define ({"#"}, bgrx (9, 9, 9));
    g.at (10, -5);
    /* a 12x3 block, so that there is something to compress */
    g.define (std::vector<std::string> (3, "############"), ink);
    g.at (-2, 9);
    glyphs_op (m, 2, 1, 30, 14, bg, g.b, compress);
    fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
    Screen want (48, 32);
    want.fill ({0, 0, 16, 16}, bgrx (1, 1, 1));
    want.fill ({2, 1, 30, 14}, bg);
    for (int k = 0; k < 2; k++) {
      int x = 5 + 4 * k, bottom = 9 + 2 * k;
      want.fill ({x, bottom - 4, 1, 4}, ink);
      want.fill ({x, bottom - 1, 3, 1}, ink);
    }
    want.fill ({19, 5, 1, 1}, bgrx (9, 9, 9));
    want.fill ({17, 12, 12, 3}, ink);
    fail_unless (c.fb.px == want.px, "compress=%d: picture differs", compress);
    fail_unless_equals_int (c.damage.back ().x, 2);
    fail_unless_equals_int (c.damage.back ().w, 30);

    /* the next message refers to both cached glyphs */
    Msg n (48, 32, 16, 4, false, 1, 8);
    GlyphStream g2;
    g2.ref (1);
    g2.at (1, 1);
    g2.ref (0);
    g2.at (5, 5);
    glyphs_op (n, 32, 16, 16, 16, bg, g2.b, compress);
    fail_unless (c.apply (n.done ()), "%s", c.error.c_str ());
    want.fill ({32, 16, 16, 16}, bg);
    want.fill ({33, 16, 1, 1}, bgrx (9, 9, 9));
    want.fill ({38, 18, 1, 4}, ink);
    want.fill ({38, 21, 3, 1}, ink);
    fail_unless (c.fb.px == want.px, "compress=%d: second picture differs", compress);
  }
}
GST_END_TEST;

GST_START_TEST (test_decode_glyphs_store_and_version1)
{
  /* STORE: the whole tiles inside the rectangle enter the tile cache, in
   * row-major order, after the glyphs are drawn */
  Client c (48, 32);
  Msg m (48, 32, 16, 4, true, 0, 8);
  m.op (OP_SOLID, 2, 1);
  m.u32 (bgrx (5, 5, 5));
  GlyphStream g;
  g.define ({"##", "##"}, bgrx (250, 0, 0));
  g.at (3, 5);
  glyphs_op (m, 0, 0, 40, 20, bgrx (7, 7, 7), g.b, false, 1);
  /* tiles (0,0) and (1,0) lie inside; (2,0) and the second row do not */
  m.op (OP_CACHE_REF, 0, 1);
  m.u32 (1);
  m.op (OP_CACHE_REF, 2, 1);
  m.u32 (0);
  fail_unless (c.apply (m.done ()), "%s", c.error.c_str ());
  Screen want (48, 32);
  want.fill ({0, 0, 40, 20}, bgrx (7, 7, 7));
  want.fill ({3, 3, 2, 2}, bgrx (250, 0, 0));
  want.fill ({0, 16, 16, 16}, bgrx (7, 7, 7));  /* slot 1: tile (1,0) */
  for (int y = 0; y < 16; y++)  /* slot 0: tile (0,0), with the glyph */
    memcpy (want.at (32, 16 + y), want.at (0, y), 16 * 4);
  fail_unless (c.fb.px == want.px);
  {
    /* a third slot would not exist: the store filled 0 and 1 only */
    Msg n (48, 32, 16, 4, false, 1, 8);
    n.op (OP_CACHE_REF, 0, 0);
    n.u32 (2);
    std::string err = (c.apply (n.done ()), c.error);
    fail_unless (err.find ("cache slot 2") != std::string::npos, "%s", err.c_str ());
  }
  {
    /* version 1 knows no glyphs */
    Client c1 (48, 32);
    Msg n (48, 32, 16, 4, true);
    GlyphStream g1;
    g1.define ({"#"}, 1);
    g1.at (0, 1);
    glyphs_op (n, 0, 0, 8, 8, 0, g1.b, false);
    fail_if (c1.apply (n.done ()));
    fail_unless (c1.error.find ("unknown operation type 14") != std::string::npos, "%s",
        c1.error.c_str ());
  }
}
GST_END_TEST;

/* A GLYPHS message with one bad detail; the decoder names it. */
static std::string
glyph_reject (const std::function<void (Msg &)> &build)
{
  Msg m (64, 64, 16, 0, true, 0, 2);
  build (m);
  Client c (64, 64);
  fail_if (c.apply (m.done ()), "malformed glyphs accepted");
  return c.error;
}

GST_START_TEST (test_malformed_glyphs)
{
  GlyphStream dot;
  dot.define ({"#"}, 1);
  dot.at (0, 1);
  auto err = glyph_reject ([&] (Msg &m) {
    glyphs_op (m, 60, 0, 8, 8, 0, dot.b, false);
  });
  fail_unless (err.find ("rectangle outside the frame") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    glyphs_op (m, 0, 0, 8, 8, 0, dot.b, false, 2);
  });
  fail_unless (err.find ("unknown flags") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g;
    g.ref (0);
    g.at (0, 1);
    glyphs_op (m, 0, 0, 8, 8, 0, g.b, false);
  });
  fail_unless (err.find ("empty or missing glyph slot 0") != std::string::npos, "%s",
      err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g;
    g.define ({"#"}, 1);
    g.at (8, 1);                /* one pixel right of the 8x8 rectangle */
    glyphs_op (m, 0, 0, 8, 8, 0, g.b, false);
  });
  fail_unless (err.find ("outside the rectangle") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g;
    g.define ({"#"}, 1);
    g.at (0, 0);                /* its bottom edge at the top: y = -1 */
    glyphs_op (m, 0, 0, 8, 8, 0, g.b, false);
  });
  fail_unless (err.find ("outside the rectangle") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g;
    g.define ({"...", "..."}, 1);
    g.at (0, 2);
    glyphs_op (m, 0, 0, 8, 8, 0, g.b, false);
  });
  fail_unless (err.find ("mask is empty") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g;
    g.define ({"#"}, 1);
    g.b[3] |= 0x80;             /* a padding bit of the 1-pixel mask */
    g.at (0, 1);
    glyphs_op (m, 0, 0, 8, 8, 0, g.b, false);
  });
  fail_unless (err.find ("padding bits") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g;
    g.varint (0);
    g.b.push_back (65);
    g.b.push_back (1);
    glyphs_op (m, 0, 0, 64, 8, 0, g.b, false);
  });
  fail_unless (err.find ("glyph size 65x1 out of range") != std::string::npos, "%s",
      err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g = dot;
    g.b.pop_back ();            /* the last position byte */
    glyphs_op (m, 0, 0, 8, 8, 0, g.b, false);
  });
  fail_unless (err.find ("position truncated") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream g;
    g.define ({"##", "##"}, 1);
    g.b.resize (g.b.size () - 2);       /* pixels cut short */
    glyphs_op (m, 0, 0, 8, 8, 0, g.b, false);
  });
  fail_unless (err.find ("pixels truncated") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    /* a 4x4 glyph drawn 9 times over a 4x4 rectangle: 9 > twice the area */
    GlyphStream g;
    g.define ({"####", "####", "####", "####"}, 1);
    g.at (0, 4);
    for (int i = 0; i < 8; i++) {
      g.ref (0);
      g.at (0, 0);
    }
    glyphs_op (m, 0, 0, 4, 4, 0, g.b, false);
  });
  fail_unless (err.find ("more than twice") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    m.u8 (OP_GLYPHS);
    m.u8 (0);
    m.u16 (0);
    m.u16 (0);
    m.u16 (2);
    m.u16 (2);
    m.u32 (0);
    m.u32 (65);                 /* over 16 bytes per pixel of a 2x2 rectangle */
    m.u32 (0);
    m.n++;
  });
  fail_unless (err.find ("stream length 65 out of range") != std::string::npos, "%s",
      err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    glyphs_op (m, 0, 0, 8, 8, 0, dot.b, false);
    m.b.pop_back ();
  });
  fail_unless (err.find ("stream truncated") != std::string::npos, "%s", err.c_str ());
  err = glyph_reject ([&] (Msg &m) {
    GlyphStream big;
    big.define (std::vector<std::string> (8, "########"), 1);
    big.at (0, 8);
    std::vector<uint8_t> z = zstd (big.b);
    fail_unless (z.size () < big.b.size ());
    m.u8 (OP_GLYPHS);
    m.u8 (0);
    m.u16 (0);
    m.u16 (0);
    m.u16 (8);
    m.u16 (8);
    m.u32 (0);
    m.u32 ((uint32_t) big.b.size () + 1);       /* not what the frame holds */
    m.u32 ((uint32_t) z.size ());
    m.bytes (z);
    m.n++;
  });
  fail_unless (err.find ("glyphs zstd payload declares") != std::string::npos, "%s",
      err.c_str ());
  {
    Msg m (64, 64, 16, 0, true, 0, 4097);
    Client c (64, 64);
    fail_if (c.apply (m.done ()));
    fail_unless (c.error.find ("glyph cache of 4097 slots") != std::string::npos, "%s",
        c.error.c_str ());
  }
}
GST_END_TEST;

/* ---- encoder choices ---- */

struct Server {
  Encoder enc;
  EncodeStats stats;
  std::vector<uint8_t> out;
  Server (int w, int h, EncoderSettings s = EncoderSettings ())
  {
    enc.configure (w, h, s);
  }
  bool send (const Screen &f, std::vector<Rect> damage, bool full = false)
  {
    out.clear ();
    stats = EncodeStats ();
    ConstSurface s = {f.px.data (), f.stride (), f.w, f.h};
    return enc.encode (s, full ? nullptr : damage.data (), damage.size (), nullptr, 0, out,
        &stats);
  }
};

GST_START_TEST (test_encode_choices)
{
  const int W = 256, H = 128;
  Screen f (W, H);
  Rng rng (11);
  f.fill ({0, 0, W, H}, bgrx (40, 40, 40));
  screengen::Terminal term;
  term.area = {64, 0, 128, 64};
  term.fill_text (f, rng);
  f.noise ({0, 64, 64, 64}, rng);
  Server s (W, H);
  Client c (W, H);
  fail_unless (s.send (f, {}, true));
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == f.px);
  /* 4x2 tiles: up to two of text, one of noise, the rest solid */
  fail_unless (s.stats.ops[OP_SOLID] >= 5);
  /* the text as glyphs (the tiles they complete need nothing more) */
  fail_unless_equals_int (s.stats.ops[OP_GLYPHS], 1);
  fail_unless_equals_int (s.stats.ops[OP_SOLID] + s.stats.ops[OP_PALETTE] +
      s.stats.ops[OP_ZSTD] + s.stats.ops[OP_ZSTD_ABOVE] + s.stats.ops[OP_RAW] +
      s.stats.ops[OP_DELTA_ZSTD] + s.stats.tiles_by_glyphs, 8);

  /* unchanged but damaged: nothing to send */
  fail_if (s.send (f, {{0, 0, W, H}}));

  /* the noise tile repeated elsewhere: a cache reference */
  f.copy_from (f, {0, 64, 64, 64});
  for (int y = 0; y < 64; y++)
    memcpy (f.at (192, 64 + y), f.at (0, 64 + y), 64 * 4);
  fail_unless (s.send (f, {{192, 64, 64, 64}}));
  fail_unless_equals_int (s.stats.ops[OP_CACHE_REF], 1);
  fail_unless (s.out.size () < 40);
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == f.px);

  /* one typed character: a small delta */
  screengen::Rect d = term.type (f, 'x');
  fail_unless (s.send (f, {{d.x, d.y, d.w, d.h}}));
  fail_unless (s.stats.ops[OP_DELTA_ZSTD] + s.stats.ops[OP_ZSTD_PREV] +
      s.stats.ops[OP_PALETTE] + s.stats.ops[OP_GLYPHS] >= 1);
  fail_unless (s.out.size () < 200, "keystroke took %u bytes", (guint) s.out.size ());
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == f.px);

  /* scroll the terminal by two lines: a copy plus the new lines */
  screengen::Rect sr = term.scroll (f, 2, rng);
  fail_unless (s.send (f, {{sr.x, sr.y, sr.w, sr.h}}));
  fail_unless_equals_int (s.stats.ops[OP_COPY], 1);
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == f.px);
}
GST_END_TEST;

/* Moves found by the classifier: the encoder takes them instead of
 * searching; a wrong or impossible one never makes the client's picture
 * wrong. */
GST_START_TEST (test_encode_move_hints)
{
  const int W = 320, H = 192;
  auto scene = [&] (Screen &f, screengen::Terminal &term, Rng &rng) {
    f.fill ({0, 0, W, H}, bgrx (40, 40, 40));
    term.area = {32, 16, 256, 160};
    term.fill_text (f, rng);
  };
  /* The same scroll, encoded with: no hint, the right one, a wrong one,
   * impossible ones. */
  std::vector<size_t> bytes;
  for (int variant = 0; variant < 4; variant++) {
    Screen f (W, H);
    Rng rng (77);
    screengen::Terminal term;
    scene (f, term, rng);
    Server s (W, H);
    Client c (W, H);
    fail_unless (s.send (f, {}, true));
    fail_unless (c.apply (s.out), "%s", c.error.c_str ());
    Screen before = f;
    screengen::Rect sr = term.scroll (f, 3, rng);
    Rect r = {sr.x, sr.y, sr.w, sr.h};
    ConstSurface prev = {before.px.data (), before.stride (), W, H}, cur = {f.px.data (), f.stride (), W, H};
    Rect src, dst;
    fail_unless (changed_box (prev, cur, r) && detect_move (prev, cur, r, src, dst));
    if (variant == 1)
      s.enc.hint_moves ({{src, dst}});
    else if (variant == 2)      /* wrong by five rows */
      s.enc.hint_moves ({{{src.x, src.y - 5, src.w, src.h - 5}, {dst.x, dst.y, dst.w, dst.h - 5}}});
    else if (variant == 3)      /* outside the frame, sizes that differ, no move, too small */
      s.enc.hint_moves ({{{0, H - 10, 64, 64}, {0, 0, 64, 64}}, {{0, 0, 64, 64}, {0, 16, 64, 60}},
            {{32, 16, 64, 64}, {32, 16, 64, 64}}, {{32, 16, 4, 4}, {32, 40, 4, 4}}});
    fail_unless (s.send (f, {{sr.x, sr.y, sr.w, sr.h}}));
    fail_unless_equals_int (s.stats.ops[OP_COPY], 1);
    fail_unless (c.apply (s.out), "variant %d: %s", variant, c.error.c_str ());
    fail_unless (c.fb.px == f.px, "variant %d: the client's picture differs", variant);
    bytes.push_back (s.out.size ());
    /* A hint is for one frame: the next scroll is searched again. */
    term.scroll (f, 1, rng);
    fail_unless (s.send (f, {{sr.x, sr.y, sr.w, sr.h}}));
    fail_unless_equals_int (s.stats.ops[OP_COPY], 1);
    fail_unless (c.apply (s.out), "%s", c.error.c_str ());
    fail_unless (c.fb.px == f.px);
  }
  /* The right hint gives what the search finds; the wrong one was taken
   * (not searched past) and cost its residue; impossible ones were
   * ignored. */
  fail_unless_equals_int ((int) bytes[1], (int) bytes[0]);
  fail_unless (bytes[2] > bytes[0], "wrong hint %u bytes, searched %u", (guint) bytes[2], (guint) bytes[0]);
  fail_unless_equals_int ((int) bytes[3], (int) bytes[0]);
}
GST_END_TEST;

GST_START_TEST (test_encode_window_move)
{
  /* a window with text dragged by (13, 7) over a plain background: one
   * copy, then only the uncovered background and the edges */
  const int W = 640, H = 400;
  Screen f (W, H);
  Rng rng (31);
  f.fill ({0, 0, W, H}, bgrx (50, 60, 70));
  screengen::Terminal t;
  t.area = {100, 80, 300, 200};
  t.bg = bgrx (240, 240, 230);
  t.fg = bgrx (10, 10, 80);
  t.fill_text (f, rng);
  Server s (W, H);
  Client c (W, H);
  fail_unless (s.send (f, {}, true));
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  size_t full = s.out.size ();

  Screen moved (W, H);
  moved.fill ({0, 0, W, H}, bgrx (50, 60, 70));
  for (int y = 0; y < 200; y++)
    memcpy (moved.at (113, 87 + y), f.at (100, 80 + y), 300 * 4);
  fail_unless (s.send (moved, {{100, 80, 313, 207}}));
  fail_unless_equals_int (s.stats.ops[OP_COPY], 1);
  fail_unless (s.out.size () < full / 4, "move took %u bytes (full frame %u)",
      (guint) s.out.size (), (guint) full);
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == moved.px);
}
GST_END_TEST;

GST_START_TEST (test_encode_lz4)
{
  EncoderSettings set;
  set.compressor = Compressor::LZ4;
  const int W = 128, H = 64;
  Screen f (W, H);
  Rng rng (5);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      /* vertical stripes: repeated rows compress, too many runs for a palette */
      uint32_t c = bgrx (x * 2, x, 255 - x);
      memcpy (f.at (x, y), &c, 4);
    }
  Server s (W, H, set);
  Client c (W, H);
  fail_unless (s.send (f, {}, true));
  fail_unless (s.stats.ops[OP_LZ4] > 0);
  fail_unless_equals_int (s.stats.ops[OP_ZSTD], 0);
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == f.px);
}
GST_END_TEST;

GST_START_TEST (test_cache_eviction_in_step)
{
  /* A 4-slot cache with 8 tile patterns cycling: entries are evicted and
   * re-sent constantly; both sides must agree every time. */
  EncoderSettings set;
  set.cache_slots = 4;
  set.tile_size = 16;
  const int W = 64, H = 16;
  Rng rng (9);
  std::vector<Screen> patterns;
  for (int i = 0; i < 8; i++) {
    Screen p (16, 16);
    p.noise ({0, 0, 16, 16}, rng);
    patterns.push_back (p);
  }
  Server s (W, H, set);
  Client c (W, H);
  Screen f (W, H);
  uint64_t refs = 0;
  for (int i = 0; i < 400; i++) {
    int tx = rng.range (0, 3);
    const Screen &p = patterns[rng.range (0, (i % 50 < 25) ? 3 : 7)];
    for (int y = 0; y < 16; y++)
      memcpy (f.at (tx * 16, y), p.px.data () + y * 64, 64);
    if (s.send (f, {{tx * 16, 0, 16, 16}}, i == 0)) {
      fail_unless (c.apply (s.out), "frame %d: %s", i, c.error.c_str ());
      refs += s.stats.ops[OP_CACHE_REF];
    }
    fail_unless (c.fb.px == f.px, "frame %d differs", i);
  }
  fail_unless (refs > 50);
}
GST_END_TEST;

GST_START_TEST (test_encode_glyphs)
{
  /* a terminal full of text: the glyphs go once, then lines of them cost
   * a few bytes a letter; the second time the same letters appear they
   * come from the glyph cache */
  const int W = 640, H = 384;
  Screen f (W, H);
  Rng rng (5);
  f.fill ({0, 0, W, H}, bgrx (0x1e, 0x1e, 0x2e));
  screengen::Terminal term;
  term.area = {0, 0, W, H};
  term.fill_text (f, rng);
  Server s (W, H);
  Client c (W, H);
  EncoderSettings off;
  off.glyph_slots = 0;
  Server s0 (W, H, off);
  Client c0 (W, H);
  fail_unless (s.send (f, {}, true));
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == f.px);
  fail_unless (s.stats.ops[OP_GLYPHS] >= 1);
  size_t first = s.out.size ();
  /* without glyphs: a version 2 stream without GLYPHS operations */
  fail_unless (s0.send (f, {}, true));
  fail_unless_equals_int (s0.stats.ops[OP_GLYPHS], 0);
  fail_unless (c0.apply (s0.out), "%s", c0.error.c_str ());
  fail_unless (c0.fb.px == f.px);
  fail_unless (first * 2 < s0.out.size (), "a screen of text: %u bytes with glyphs, %u without",
      (guint) first, (guint) s0.out.size ());
  /* the same again after a reset: the glyph cache starts empty on both
   * sides, so the message is the same size */
  s.enc.request_reset ();
  fail_unless (s.send (f, {}, true));
  fail_unless_equals_int (s.out.size (), first);
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  /* new lines of the same alphabet, scrolled in: the letters come from
   * the glyph cache */
  screengen::Rect sr = term.scroll (f, term.rows () - 1, rng);
  fail_unless (s.send (f, {{sr.x, sr.y, sr.w, sr.h}}));
  fail_unless (c.apply (s.out), "%s", c.error.c_str ());
  fail_unless (c.fb.px == f.px);
  fail_unless (s.stats.ops[OP_GLYPHS] >= 1);
  fail_unless (s0.send (f, {{sr.x, sr.y, sr.w, sr.h}}));
  fail_unless (c0.apply (s0.out), "%s", c0.error.c_str ());
  fail_unless (c0.fb.px == f.px);
  fail_unless (s.out.size () * 4 < s0.out.size (),
      "new lines: %u bytes with glyphs, %u without", (guint) s.out.size (),
      (guint) s0.out.size ());
}
GST_END_TEST;

GST_START_TEST (test_glyph_cache_eviction_in_step)
{
  /* 4 glyph slots and text of many letters: glyphs are evicted and
   * defined again all the time; both sides must agree on every slot */
  const int W = 256, H = 128;
  EncoderSettings set;
  set.glyph_slots = 4;
  set.cache_slots = 0;
  Server s (W, H, set);
  Client c (W, H);
  Screen f (W, H);
  Rng rng (12);
  f.fill ({0, 0, W, H}, bgrx (0x1e, 0x1e, 0x2e));
  screengen::Terminal term;
  term.area = {0, 0, W, H};
  uint64_t glyph_ops = 0;
  for (int i = 0; i < 200; i++) {
    screengen::Rect d = (i % 40 == 39) ? term.scroll (f, 3, rng) :
        term.type (f, "abcdefghijklmnopqrstuvwxyz0123456789"[rng.range (0, 35)]);
    if (s.send (f, {{d.x, d.y, d.w, d.h}}, i == 0)) {
      fail_unless (c.apply (s.out), "frame %d: %s", i, c.error.c_str ());
      glyph_ops += s.stats.ops[OP_GLYPHS];
    }
    fail_unless (c.fb.px == f.px, "frame %d differs", i);
  }
  fail_unless (glyph_ops > 100, "%u glyph operations", (guint) glyph_ops);
}
GST_END_TEST;

/* ---- malformed input ---- */

static std::vector<uint8_t>
valid_message (int W, int H)
{
  Screen f (W, H);
  Rng rng (1);
  f.fill ({0, 0, W, H}, bgrx (9, 9, 9));
  screengen::Terminal t;
  t.area = {0, 0, W, H / 2};
  t.fill_text (f, rng);
  f.noise ({0, H / 2, 20, 20}, rng);
  Server s (W, H);
  s.send (f, {}, true);
  return s.out;
}

GST_START_TEST (test_malformed_truncated)
{
  std::vector<uint8_t> m = valid_message (96, 80);
  for (size_t len = 0; len < m.size (); len++) {
    Client c (96, 80);
    std::vector<uint8_t> cut (m.begin (), m.begin () + len);
    fail_if (c.apply (cut), "prefix of %u bytes accepted", (guint) len);
    fail_if (c.error.empty ());
  }
  Client c (96, 80);
  std::vector<uint8_t> longer = m;
  longer.push_back (0);
  fail_if (c.apply (longer));
  fail_unless (c.error.find ("trailing") != std::string::npos, "%s", c.error.c_str ());
}
GST_END_TEST;

GST_START_TEST (test_malformed_mutations)
{
  /* every single-byte corruption is either decoded or rejected; ASan and
   * the framebuffer guard catch anything worse */
  std::vector<uint8_t> m = valid_message (64, 48);
  Rng rng (77);
  for (int i = 0; i < 3000; i++) {
    std::vector<uint8_t> bad = m;
    size_t pos = rng.range (0, (int) bad.size () - 1);
    bad[pos] ^= (uint8_t) rng.range (1, 255);
    Client c (64, 48);
    if (!c.apply (bad))
      fail_if (c.error.empty ());
  }
}
GST_END_TEST;

static std::string
reject (std::vector<uint8_t> m, int w = 32, int h = 32, const std::vector<uint8_t> *first =
    nullptr)
{
  Client c (w, h);
  if (first)
    fail_unless (c.apply (*first), "%s", c.error.c_str ());
  fail_if (c.apply (m), "malformed message accepted");
  return c.error;
}

#define assert_error(err, word) \
  fail_unless ((err).find (word) != std::string::npos, "error '%s' lacks '%s'", \
      (err).c_str (), word)

/* Version 3: RESET states the parameters, the other messages carry a
 * 14-byte header and take the last RESET's; a short message cannot start
 * a stream, nor follow a version 2 RESET; a message shorter than 14 bytes
 * is refused. */
GST_START_TEST (test_decode_version3_short_header)
{
  Client c (40, 20);
  Msg r = Msg::v3 (40, 20, 16, 4, true, 0, 8);
  r.op (OP_SOLID, 0, 0);
  r.bytes ({ 1, 2, 3, 0xff });
  Msg m = Msg::v3 (0, 0, 0, 0, false, 1, 0);
  m.op (OP_SOLID, 2, 1);
  m.bytes ({ 9, 8, 7, 0xff });
  std::vector<uint8_t> short_msg = m.done ();
  fail_unless_equals_int (short_msg.size (), 14 + 5 + 4);

  assert_error (reject (short_msg), "reset");

  fail_unless (c.apply (r.done ()), "%s", c.error.c_str ());
  fail_unless (c.apply (short_msg), "%s", c.error.c_str ());
  fail_unless_equals_int (c.damage.size (), 1);
  fail_unless_equals_int (c.damage[0].x, 32);
  fail_unless_equals_int (c.damage[0].w, 8);
  fail_unless_equals_int (c.fb.at (35, 17)[0], 9);
  fail_unless_equals_int (c.fb.at (5, 5)[0], 1);

  /* After a version 2 RESET, a short header is a change of parameters. */
  Client c2 (40, 20);
  Msg r2 (40, 20, 16, 4, true, 0, 8);
  fail_unless (c2.apply (r2.done ()), "%s", c2.error.c_str ());
  fail_if (c2.apply (Msg::v3 (0, 0, 0, 0, false, 1, 0).done ()));
  assert_error (c2.error, "parameters changed");

  std::vector<uint8_t> cut (short_msg.begin (), short_msg.begin () + 13);
  fail_unless (c.apply (r.done ()), "%s", c.error.c_str ());
  fail_if (c.apply (cut));
  assert_error (c.error, "14-byte header");
}
GST_END_TEST;

/* What the encoder writes: RESET with the 28-byte header, then 14-byte ones. */
GST_START_TEST (test_encoder_writes_short_headers)
{
  Screen s (64, 64);
  s.fill ({0, 0, 64, 64}, bgrx (1, 2, 3));
  Encoder enc;
  enc.configure (64, 64, EncoderSettings ());
  std::vector<uint8_t> out;
  ConstSurface cs = {s.px.data (), s.stride (), s.w, s.h};
  fail_unless (enc.encode (cs, nullptr, 0, nullptr, 0, out, nullptr));
  Header h;
  std::string err;
  fail_unless (parse_header (out.data (), out.size (), h, err), "%s", err.c_str ());
  fail_unless_equals_int (h.version, 3);
  fail_unless_equals_int (h.size, 28);
  fail_unless_equals_int (h.width, 64);
  s.fill ({0, 0, 16, 16}, bgrx (9, 9, 9));
  cs = {s.px.data (), s.stride (), s.w, s.h};
  Rect dmg = {0, 0, 16, 16};
  out.clear ();
  fail_unless (enc.encode (cs, &dmg, 1, nullptr, 0, out, nullptr));
  fail_unless (parse_header (out.data (), out.size (), h, err), "%s", err.c_str ());
  fail_unless (h.short_form);
  fail_unless_equals_int (h.size, 14);
  fail_unless_equals_int (h.seq, 1);
}
GST_END_TEST;

GST_START_TEST (test_malformed_specific)
{
  {
    Msg m (32, 32, 16, 0, true);
    std::vector<uint8_t> b = m.done ();
    b[0] = 'X';
    assert_error (reject (b), "magic");
  }
  {
    Msg m (32, 32, 16, 0, true);
    std::vector<uint8_t> b = m.done ();
    b[4] = 4;
    assert_error (reject (b), "version");
  }
  {
    Msg m (32, 32, 24, 0, true);
    assert_error (reject (m.done ()), "tile size");
  }
  {
    Msg m (32, 32, 256, 65536, true);
    assert_error (reject (m.done ()), "cache");
  }
  {
    /* 16384x16384 would be a 1 GiB framebuffer */
    Msg m (16384, 16384, 64, 0, true);
    assert_error (reject (m.done ()), "exceeds the limit");
  }
  {
    Msg m (32, 32, 16, 0, false);
    assert_error (reject (m.done ()), "reset");
  }
  {
    Msg m (32, 32, 16, 0, true);
    m.op (OP_SOLID, 2, 0);
    m.u32 (0);
    assert_error (reject (m.done ()), "outside");
  }
  {
    Msg m (32, 32, 16, 0, true);
    m.op (42, 0, 0);
    assert_error (reject (m.done ()), "unknown operation");
  }
  {
    Msg m (32, 32, 16, 4, true);
    m.op (OP_CACHE_REF, 0, 0);
    m.u32 (0);
    assert_error (reject (m.done ()), "cache slot");
  }
  {
    Msg m (32, 32, 16, 0, true);
    m.op (OP_PALETTE, 0, 0);
    m.u8 (1);
    m.u32 (0);
    m.u32 (1);
    m.u32 (2);
    m.bytes ({5, 0});
    assert_error (reject (m.done ()), "index");
  }
  {
    Msg m (32, 32, 16, 0, true);
    m.op (OP_PALETTE, 0, 0);
    m.u8 (1);
    m.u32 (0);
    m.u32 (1);
    m.u32 (4);
    m.bytes ({0, 0xff, 0x01, 1});       /* 256 + a second run: too many */
    std::string e = reject (m.done ());
    fail_if (e.empty ());
  }
  {
    Msg m (32, 32, 16, 0, true);
    m.op (OP_PALETTE, 0, 0);
    m.u8 (1);
    m.u32 (0);
    m.u32 (1);
    m.u32 (2);
    m.bytes ({0, 10});          /* 11 of 256 pixels */
    assert_error (reject (m.done ()), "cover");
  }
  {
    Msg m (32, 32, 16, 0, true);
    m.op (OP_ZSTD, 0, 0);
    m.u32 (16 * 16 * 4 + 1);
    assert_error (reject (m.done ()), "out of range");
  }
  {
    /* a valid zstd frame of the wrong size */
    Msg m (32, 32, 16, 0, true);
    std::vector<uint8_t> z = zstd (std::vector<uint8_t> (100, 7));
    m.op (OP_ZSTD, 0, 0);
    m.u32 (z.size ());
    m.bytes (z);
    assert_error (reject (m.done ()), "instead of");
  }
  {
    /* two zstd frames that together make the tile: not allowed */
    Msg m (32, 32, 16, 0, true);
    std::vector<uint8_t> a = zstd (std::vector<uint8_t> (512, 1));
    std::vector<uint8_t> b = zstd (std::vector<uint8_t> (512, 2));
    m.op (OP_ZSTD, 0, 0);
    m.u32 (a.size () + b.size ());
    m.bytes (a);
    m.bytes (b);
    assert_error (reject (m.done ()), "exactly one");
  }
  {
    Msg m (32, 32, 16, 0, true);
    std::vector<uint8_t> junk (50, 0xab);
    m.op (OP_LZ4, 0, 0);
    m.u32 (junk.size ());
    m.bytes (junk);
    assert_error (reject (m.done ()), "lz4");
  }
  {
    Msg m (32, 32, 16, 0, true);
    m.u8 (OP_COPY);
    m.u16 (0);
    m.u16 (0);
    m.u16 (10);
    m.u16 (10);
    m.u16 (23);
    m.u16 (5);
    m.n++;
    assert_error (reject (m.done ()), "copy rectangle");
  }
  {
    Msg first (32, 32, 16, 0, true);
    std::vector<uint8_t> f = first.done ();
    Msg gap (32, 32, 16, 0, false, 5);
    assert_error (reject (gap.done (), 32, 32, &f), "sequence");
    Msg other (32, 48, 16, 0, false, 1);
    assert_error (reject (other.done (), 32, 32, &f), "parameters");
  }
  {
    Msg m (32, 32, 16, 0, true);
    std::vector<uint8_t> b = m.done ();
    b[20] = 3;                  /* three operations announced, none there */
    assert_error (reject (b), "truncated");
  }
}
GST_END_TEST;

/* ---- randomized round trip at the codec level ---- */

static void
random_round_trip (uint64_t seed, int frames, EncoderSettings set, int W, int H)
{
  screengen::RandomDesktop desk (W, H, seed);
  Server s (W, H, set);
  Client c (W, H);
  size_t bytes = 0;
  uint64_t glyph_ops = 0;
  for (int i = 0; i < frames; i++) {
    std::vector<Rect> damage;
    for (const auto &r : desk.step ())
      damage.push_back ({r.x, r.y, r.w, r.h});
    if (desk.rng.chance (1))
      s.enc.request_reset ();
    if (s.send (desk.screen, damage, i == 0)) {
      bytes += s.out.size ();
      glyph_ops += s.stats.ops[OP_GLYPHS];
      fail_unless (c.apply (s.out), "seed %" G_GUINT64_FORMAT " frame %d: %s", seed, i,
          c.error.c_str ());
    }
    if (c.fb.px != desk.screen.px) {
      fail ("seed %" G_GUINT64_FORMAT " frame %d (change %d): client differs", seed, i,
          desk.what);
    }
  }
  GST_INFO ("seed %" G_GUINT64_FORMAT ": %d frames, %u bytes, %u glyph operations", seed,
      frames, (guint) bytes, (guint) glyph_ops);
  /* the text of the random desktop goes as glyphs too */
  if (set.glyph_slots > 0)
    fail_unless (glyph_ops > 0, "seed %" G_GUINT64_FORMAT ": no glyph operations", seed);
}

GST_START_TEST (test_round_trip_random)
{
  EncoderSettings set;
  set.cache_slots = 64;
  random_round_trip (1, 1500, set, 320, 200);
  set.tile_size = 16;
  set.cache_slots = 8;          /* constant eviction */
  set.glyph_slots = 6;          /* of glyphs too */
  random_round_trip (2, 1500, set, 200, 120);
  set.glyph_slots = 2048;
  set.tile_size = 32;
  set.compressor = Compressor::LZ4;
  set.threads = 2;
  set.parallel_threshold = 2;   /* the threaded path on most frames */
  random_round_trip (3, 1500, set, 333, 199);
  set.cache_slots = 0;
  set.scroll_detection = false;
  random_round_trip (4, 500, set, 100, 77);
  set.glyph_slots = 0;
  random_round_trip (5, 300, set, 100, 77);
}
GST_END_TEST;

/* The encoder's pool: every lane runs once per call, its work is done when
 * the call returns, and the same threads serve every call (none started
 * per frame). */
GST_START_TEST (test_worker_pool)
{
  WorkerPool pool (3);
  std::mutex lock;
  std::set<std::thread::id> threads;
  std::vector<int> ran (3, 0);
  for (int round = 1; round <= 2000; round++) {
    pool.run ([&] (unsigned k) {
      fail_unless (k < 3);
      ran[k]++;
      std::lock_guard<std::mutex> g (lock);
      threads.insert (std::this_thread::get_id ());
    });
    for (unsigned k = 0; k < 3; k++)
      fail_unless_equals_int (ran[k], round);
  }
  fail_unless_equals_int ((int) threads.size (), 3);
  fail_unless (threads.count (std::this_thread::get_id ()) == 1, "lane 0 runs on the caller");

  WorkerPool one (1);             /* no threads: everything on the caller */
  std::thread::id who;
  one.run ([&] (unsigned) { who = std::this_thread::get_id (); });
  fail_unless (who == std::this_thread::get_id ());
  WorkerPool unused (4);          /* destroyed before any thread started */
}
GST_END_TEST;

static Suite *
tilecodec_suite (void)
{
  Suite *s = suite_create ("tilecodec");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_decode_solid_and_edges);
  tcase_add_test (tc, test_decode_work_budget);
  tcase_add_test (tc, test_decode_palette_rle);
  tcase_add_test (tc, test_decode_compressed);
  tcase_add_test (tc, test_decode_above);
  tcase_add_test (tc, test_decode_prev);
  tcase_add_test (tc, test_decode_cache_lru);
  tcase_add_test (tc, test_decode_copy);
  tcase_add_test (tc, test_decode_glyphs);
  tcase_add_test (tc, test_decode_glyphs_store_and_version1);
  tcase_add_test (tc, test_decode_version3_short_header);
  tcase_add_test (tc, test_encoder_writes_short_headers);
  tcase_add_test (tc, test_malformed_glyphs);
  tcase_add_test (tc, test_encode_choices);
  tcase_add_test (tc, test_encode_window_move);
  tcase_add_test (tc, test_encode_lz4);
  tcase_add_test (tc, test_cache_eviction_in_step);
  tcase_add_test (tc, test_encode_glyphs);
  tcase_add_test (tc, test_glyph_cache_eviction_in_step);
  tcase_add_test (tc, test_malformed_truncated);
  tcase_add_test (tc, test_malformed_mutations);
  tcase_add_test (tc, test_malformed_specific);
  tcase_add_test (tc, test_round_trip_random);
  tcase_add_test (tc, test_worker_pool);
  tcase_add_test (tc, test_encode_move_hints);
  return s;
}

GST_CHECK_MAIN (tilecodec);
