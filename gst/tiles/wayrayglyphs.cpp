/* Glyph coding: see wayrayglyphs.h and docs/protocol.md (GLYPHS).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayrayglyphs.h"

#include <algorithm>

namespace wayray {
namespace tiles {

/* The flags byte of a GLYPHS operation. */
constexpr uint8_t kGlyphsStore = 0x01;

static inline size_t
mask_bytes (int w, int h)
{
  return ((size_t) w * h + 7) / 8;
}

/* Bound on the decompressed record stream: see docs/protocol.md. */
static inline uint64_t
max_stream (int w, int h)
{
  return 16ull * w * h;
}

/* ---------------------------------------------------------------------- */
/* Decoder                                                                 */

static void
draw_glyph (const Glyph &g, const Surface &fb, int x, int y)
{
  for (int gy = 0; gy < g.h; gy++) {
    uint8_t *row = fb.data + (size_t) (y + gy) * fb.stride + (size_t) x * 4;
    const uint8_t *m = g.mask.data () + (size_t) gy * g.w;
    const uint8_t *p = g.px.data () + (size_t) gy * g.w * 4;
    for (int gx = 0; gx < g.w; gx++)
      if (m[gx])
        memcpy (row + 4 * gx, p + 4 * gx, 4);
  }
}

/* Reads a glyph definition at @s[*pos ..]; false with @error. */
static bool
read_glyph (const uint8_t *s, size_t len, size_t *pos, Glyph &g, std::string &error)
{
  if (len - *pos < 2) {
    error = "glyph definition truncated";
    return false;
  }
  int w = s[*pos], h = s[*pos + 1];
  *pos += 2;
  if (w < 1 || w > (int) kMaxGlyphSide || h < 1 || h > (int) kMaxGlyphSide) {
    error = "glyph size " + std::to_string (w) + "x" + std::to_string (h) +
        " out of range (1..64)";
    return false;
  }
  size_t mb = mask_bytes (w, h);
  if (len - *pos < mb) {
    error = "glyph mask truncated";
    return false;
  }
  const uint8_t *bits = s + *pos;
  *pos += mb;
  size_t n = (size_t) w * h;
  if (n % 8 && (bits[mb - 1] >> (n % 8))) {
    error = "glyph mask has padding bits set";
    return false;
  }
  g.w = w;
  g.h = h;
  g.mask.assign (n, 0);
  g.px.assign (n * 4, 0);
  size_t set = 0;
  for (size_t i = 0; i < n; i++)
    if (bits[i / 8] & (1u << (i % 8))) {
      g.mask[i] = 1;
      set++;
    }
  if (set == 0) {
    error = "glyph mask is empty";
    return false;
  }
  if ((len - *pos) / 4 < set) {
    error = "glyph pixels truncated";
    return false;
  }
  for (size_t i = 0; i < n; i++)
    if (g.mask[i]) {
      memcpy (g.px.data () + 4 * i, s + *pos, 4);
      *pos += 4;
    }
  return true;
}

bool
decode_glyphs (Reader &rd, const Surface &fb, GlyphCache &cache, ZSTD_DCtx *zstd,
    std::vector<uint8_t> &scratch, uint64_t max_area, Rect &written, bool &store, std::string &error)
{
  const uint8_t *b;
  if (!rd.take (1 + 8 + 4 + 4 + 4, &b)) {
    error = "glyphs header truncated";
    return false;
  }
  uint8_t flags = b[0];
  if (flags & ~kGlyphsStore) {
    error = "glyphs: unknown flags " + std::to_string (flags);
    return false;
  }
  store = flags & kGlyphsStore;
  Rect r = { rd_u16 (b + 1), rd_u16 (b + 3), rd_u16 (b + 5), rd_u16 (b + 7) };
  if (r.w == 0 || r.h == 0 || r.x + r.w > fb.width || r.y + r.h > fb.height) {
    error = "glyphs rectangle outside the frame";
    return false;
  }
  if ((uint64_t) r.w * r.h > max_area) {
    error = "glyphs rectangle of " + std::to_string ((uint64_t) r.w * r.h) +
        " pixels exceeds the message's work budget";
    return false;
  }
  uint8_t bg[4];
  memcpy (bg, b + 9, 4);
  uint32_t raw_len = rd_u32 (b + 13), len = rd_u32 (b + 17);
  if (raw_len == 0 || raw_len > max_stream (r.w, r.h)) {
    error = "glyphs stream length " + std::to_string (raw_len) + " out of range (1.." +
        std::to_string (max_stream (r.w, r.h)) + ")";
    return false;
  }
  if (len > raw_len) {
    error = "glyphs compressed length " + std::to_string (len) + " exceeds the stream length";
    return false;
  }
  const uint8_t *src;
  if (!rd.take (len ? len : raw_len, &src)) {
    error = "glyphs stream truncated";
    return false;
  }
  const uint8_t *s = src;
  if (len) {
    scratch.resize (raw_len);
    std::string why;
    if (!decompress_payload (zstd, false, src, len, nullptr, 0, scratch.data (), raw_len, why)) {
      error = "glyphs " + why;
      return false;
    }
    s = scratch.data ();
  }

  for (int y = 0; y < r.h; y++) {
    uint8_t *row = fb.data + (size_t) (r.y + y) * fb.stride + (size_t) r.x * 4;
    for (int x = 0; x < r.w; x++)
      memcpy (row + 4 * x, bg, 4);
  }

  const uint64_t budget = 2ull * r.w * r.h;
  uint64_t drawn = 0;
  int64_t px = r.x, pb = r.y;
  size_t pos = 0, index = 0;
  Glyph fresh;
  while (pos < raw_len) {
    std::string at = "glyph " + std::to_string (index++) + ": ";
    uint32_t ref;
    if (!get_varint (s, raw_len, &pos, 3, &ref)) {
      error = at + "reference truncated or too long";
      return false;
    }
    const Glyph *g;
    if (ref == 0) {
      if (!read_glyph (s, raw_len, &pos, fresh, error)) {
        error = at + error;
        return false;
      }
      g = &fresh;
    } else {
      uint32_t slot = ref - 1;
      if (slot >= cache.lru.capacity () || !cache.lru.used (slot)) {
        error = at + "reference to empty or missing glyph slot " + std::to_string (slot);
        return false;
      }
      cache.lru.touch (slot);
      g = &cache.slots[slot];
    }
    uint32_t zx, zy;
    if (!get_varint (s, raw_len, &pos, 3, &zx) || !get_varint (s, raw_len, &pos, 3, &zy)) {
      error = at + "position truncated or too long";
      return false;
    }
    int64_t x = px + unzigzag (zx), bottom = pb + unzigzag (zy), y = bottom - g->h;
    if (x < r.x || y < r.y || x + g->w > r.x + r.w || bottom > r.y + r.h) {
      error = at + std::to_string (g->w) + "x" + std::to_string (g->h) + " glyph at (" +
          std::to_string (x) + "," + std::to_string (y) + ") outside the rectangle";
      return false;
    }
    drawn += (uint64_t) g->w * g->h;
    if (drawn > budget) {
      error = at + "glyphs cover more than twice the rectangle";
      return false;
    }
    draw_glyph (*g, fb, (int) x, (int) y);
    px = x;
    pb = bottom;
    if (ref == 0 && cache.lru.capacity () > 0) {
      uint32_t slot = cache.lru.insert ();
      std::swap (cache.slots[slot], fresh);
    }
  }
  written = r;
  return true;
}

/* ---------------------------------------------------------------------- */
/* Encoder                                                                 */

namespace {

/* A horizontal run of non-background pixels [x0, x1) in row y (relative
 * to the region); runs of one shape are joined in a union-find. */
struct Run {
  int y, x0, x1;
  uint32_t parent;
};

struct Shape {
  int x0, y0, x1, y1;           /* box, exclusive ends, region coordinates */
  uint32_t pixels;
  uint32_t first;               /* its runs: order[first .. first + n_runs) */
  uint32_t n_runs;
  bool glyph;                   /* small enough to be a glyph */
};

}                               /* namespace */

struct GlyphCoder::Impl {
  GlyphCache cache;
  std::unordered_map<uint64_t, uint32_t> by_hash;
  ZSTD_CCtx *zstd = nullptr;
  std::vector<Run> runs;
  std::vector<uint32_t> row_start, shape_of, order;
  std::vector<Shape> shapes;
  std::vector<uint8_t> stream, packed;
  Glyph g;

  uint32_t find (uint32_t i)
  {
    uint32_t r = i;
    while (runs[r].parent != r)
      r = runs[r].parent;
    while (runs[i].parent != r) {
      uint32_t n = runs[i].parent;
      runs[i].parent = r;
      i = n;
    }
    return r;
  }
  void unite (uint32_t a, uint32_t b)
  {
    a = find (a);
    b = find (b);
    if (a != b)                 /* the older run stays the root */
      runs[std::max (a, b)].parent = std::min (a, b);
  }
  uint32_t background (const ConstSurface &f, const Rect &r);
  void segment (const ConstSurface &f, const Rect &r, uint32_t bg);
  int lookup (const Glyph &g);
};

GlyphCoder::GlyphCoder () : impl_ (new Impl)
{
  impl_->zstd = ZSTD_createCCtx ();
}

GlyphCoder::~GlyphCoder ()
{
  ZSTD_freeCCtx (impl_->zstd);
  delete impl_;
}

void
GlyphCoder::reset (uint32_t slots)
{
  impl_->cache.reset (slots);
  impl_->by_hash.clear ();
}

/* The most frequent colour, counted on a sample of the region. */
uint32_t
GlyphCoder::Impl::background (const ConstSurface &f, const Rect &r)
{
  constexpr int kSlots = 1024;
  uint32_t keys[kSlots];
  uint32_t counts[kSlots] = { };
  int step = (r.w * r.h > 64 * 64) ? 3 : 1;
  uint32_t best = load_px (f.data + (size_t) r.y * f.stride + (size_t) r.x * 4), best_n = 0;
  for (int y = 0; y < r.h; y += step) {
    const uint8_t *row = f.data + (size_t) (r.y + y) * f.stride + (size_t) r.x * 4;
    for (int x = (y / step) % step; x < r.w; x += step) {
      uint32_t c = load_px (row + 4 * x);
      uint32_t h = (c * 2654435761u) >> 22;
      for (int probe = 0; probe < 8; probe++, h = (h + 1) % kSlots) {
        if (counts[h] == 0)
          keys[h] = c;
        else if (keys[h] != c)
          continue;
        if (++counts[h] > best_n) {
          best_n = counts[h];
          best = c;
        }
        break;
      }
    }
  }
  return best;
}

/* Splits the non-background pixels of @r into 8-connected shapes. */
void
GlyphCoder::Impl::segment (const ConstSurface &f, const Rect &r, uint32_t bg)
{
  runs.clear ();
  row_start.assign ((size_t) r.h + 1, 0);
  for (int y = 0; y < r.h; y++) {
    row_start[y] = (uint32_t) runs.size ();
    const uint8_t *row = f.data + (size_t) (r.y + y) * f.stride + (size_t) r.x * 4;
    int x = 0;
    while (x < r.w) {
      while (x < r.w && load_px (row + 4 * x) == bg)
        x++;
      if (x == r.w)
        break;
      int x0 = x;
      while (x < r.w && load_px (row + 4 * x) != bg)
        x++;
      uint32_t id = (uint32_t) runs.size ();
      runs.push_back ({ y, x0, x, id });
    }
  }
  row_start[r.h] = (uint32_t) runs.size ();

  /* Join runs that touch a run of the row above, diagonals included. */
  for (int y = 1; y < r.h; y++) {
    uint32_t i = row_start[y - 1], ie = row_start[y], j = row_start[y], je = row_start[y + 1];
    while (i < ie && j < je) {
      const Run &a = runs[i], &b = runs[j];
      if (a.x0 <= b.x1 && b.x0 <= a.x1)
        unite (i, j);
      if (a.x1 < b.x1)
        i++;
      else
        j++;
    }
  }

  /* One shape per root, numbered in the order of their first run. */
  shapes.clear ();
  shape_of.resize (runs.size ());
  for (uint32_t i = 0; i < runs.size (); i++) {
    uint32_t root = find (i);
    const Run &run = runs[i];
    if (root == i) {
      shape_of[i] = (uint32_t) shapes.size ();
      shapes.push_back ({ run.x0, run.y, run.x1, run.y + 1, 0, 0, 0, false });
    } else {
      shape_of[i] = shape_of[root];
    }
    Shape &s = shapes[shape_of[i]];
    s.x0 = std::min (s.x0, run.x0);
    s.x1 = std::max (s.x1, run.x1);
    s.y1 = run.y + 1;
    s.pixels += (uint32_t) (run.x1 - run.x0);
    s.n_runs++;
  }
  uint32_t at = 0;
  for (Shape &s : shapes) {
    s.first = at;
    at += s.n_runs;
    s.n_runs = 0;
    s.glyph = s.x1 - s.x0 <= (int) kMaxGlyphSide && s.y1 - s.y0 <= (int) kMaxGlyphSide;
  }
  order.resize (runs.size ());
  for (uint32_t i = 0; i < runs.size (); i++) {
    Shape &s = shapes[shape_of[i]];
    order[s.first + s.n_runs++] = i;
  }
}

int
GlyphCoder::Impl::lookup (const Glyph &q)
{
  auto it = by_hash.find (q.hash);
  if (it == by_hash.end ())
    return -1;
  const Glyph &e = cache.slots[it->second];
  if (e.hash != q.hash || e.w != q.w || e.h != q.h || e.mask != q.mask || e.px != q.px)
    return -1;
  return (int) it->second;
}

static inline bool
overlaps (const Rect &a, int x0, int y0, int x1, int y1)
{
  return x0 < a.x + a.w && a.x < x1 && y0 < a.y + a.h && a.y < y1;
}

static inline bool
contains (const Rect &a, int x0, int y0, int x1, int y1)
{
  return x0 >= a.x && y0 >= a.y && x1 <= a.x + a.w && y1 <= a.y + a.h;
}

bool
GlyphCoder::encode (const ConstSurface &f, const Surface &model, const Rect &region,
    const Rect &changed, int level, bool store, std::vector<uint8_t> &out, Rect &written)
{
  Impl &d = *impl_;
  const Rect &R = region;
  const uint32_t bg = d.background (f, R);
  d.segment (f, R, bg);
  /* Shapes on a background: the background covers at least a third. */
  uint64_t fg = 0;
  for (const Run &run : d.runs)
    fg += (uint64_t) (run.x1 - run.x0);
  if (3 * fg > 2ull * R.w * R.h)
    return false;

  /* The rectangle: the changed part, grown (in region coordinates) until
   * it cuts no glyph. */
  Rect t = { changed.x - R.x, changed.y - R.y, changed.w, changed.h };
  for (bool grew = true; grew;) {
    grew = false;
    for (const Shape &s : d.shapes) {
      if (!s.glyph || !overlaps (t, s.x0, s.y0, s.x1, s.y1) ||
          contains (t, s.x0, s.y0, s.x1, s.y1))
        continue;
      int x0 = std::min (t.x, s.x0), y0 = std::min (t.y, s.y0);
      int x1 = std::max (t.x + t.w, s.x1), y1 = std::max (t.y + t.h, s.y1);
      t = { x0, y0, x1 - x0, y1 - y0 };
      grew = true;
    }
  }

  /* The glyphs inside @t; false when glyphs are not most of what is not
   * background there. */
  std::vector<uint32_t> placed;
  auto plan = [&] (const Rect &t) {
    uint64_t other = 0, glyph_px = 0, area = 0;
    const uint64_t budget = 2ull * t.w * t.h;
    placed.clear ();
    for (uint32_t k = 0; k < d.shapes.size (); k++) {
      Shape &s = d.shapes[k];
      if (!overlaps (t, s.x0, s.y0, s.x1, s.y1))
        continue;
      uint64_t box = (uint64_t) (s.x1 - s.x0) * (s.y1 - s.y0);
      if (s.glyph && area + box <= budget) {
        area += box;
        glyph_px += s.pixels;
        placed.push_back (k);
      } else {
        other += s.pixels;      /* an upper bound for the part inside t */
      }
    }
    return !placed.empty () && glyph_px >= 3 * other;
  };

  /* When storing, rewriting the whole region lets every tile of it be
   * stored: worth it when little else (an eighth more shapes at most)
   * lies outside the rectangle, as in a new screen's margins. */
  bool ok = false;
  if (store) {
    size_t inside = 0, outside = 0;
    for (const Shape &s : d.shapes)
      (overlaps (t, s.x0, s.y0, s.x1, s.y1) ? inside : outside)++;
    if (outside * 8 <= inside && plan ({ 0, 0, R.w, R.h })) {
      t = { 0, 0, R.w, R.h };
      ok = true;
    }
  }
  if (!ok && !plan (t))
    return false;

  /* Reading order: lines (shapes whose rows overlap), left to right. */
  std::sort (placed.begin (), placed.end (), [&] (uint32_t a, uint32_t b) {
    return d.shapes[a].y0 < d.shapes[b].y0;
  });
  for (size_t i = 0; i < placed.size ();) {
    size_t j = i + 1;
    int bottom = d.shapes[placed[i]].y1;
    while (j < placed.size () && d.shapes[placed[j]].y0 < bottom) {
      bottom = std::max (bottom, d.shapes[placed[j]].y1);
      j++;
    }
    std::sort (placed.begin () + i, placed.begin () + j, [&] (uint32_t a, uint32_t b) {
      const Shape &sa = d.shapes[a], &sb = d.shapes[b];
      return sa.x0 != sb.x0 ? sa.x0 < sb.x0 : sa.y0 < sb.y0;
    });
    i = j;
  }

  /* The record stream. */
  std::vector<uint8_t> &st = d.stream;
  st.clear ();
  int64_t px = R.x + t.x, pb = R.y + t.y;
  for (uint32_t k : placed) {
    const Shape &s = d.shapes[k];
    Glyph &g = d.g;
    g.w = s.x1 - s.x0;
    g.h = s.y1 - s.y0;
    g.mask.assign ((size_t) g.w * g.h, 0);
    g.px.assign ((size_t) g.w * g.h * 4, 0);
    for (uint32_t n = 0; n < s.n_runs; n++) {
      const Run &run = d.runs[d.order[s.first + n]];
      size_t at = (size_t) (run.y - s.y0) * g.w + (run.x0 - s.x0);
      memset (g.mask.data () + at, 1, (size_t) (run.x1 - run.x0));
      memcpy (g.px.data () + at * 4, f.data + (size_t) (R.y + run.y) * f.stride +
          (size_t) (R.x + run.x0) * 4, (size_t) (run.x1 - run.x0) * 4);
    }
    g.hash = hash_rows (g.px.data (), 0, (int) g.px.size (), 1) ^
        (hash_rows (g.mask.data (), 0, (int) g.mask.size (), 1) * 31) ^ ((uint64_t) g.w << 8 |
        (uint64_t) g.h);
    int slot = d.lookup (g);
    if (slot >= 0) {
      put_varint (st, (uint32_t) slot + 1);
      d.cache.lru.touch ((uint32_t) slot);
    } else {
      put_varint (st, 0);
      put_u8 (st, (uint8_t) g.w);
      put_u8 (st, (uint8_t) g.h);
      size_t n = (size_t) g.w * g.h, at = st.size ();
      st.resize (at + mask_bytes (g.w, g.h), 0);
      for (size_t i = 0; i < n; i++)
        if (g.mask[i])
          st[at + i / 8] |= (uint8_t) (1u << (i % 8));
      for (size_t i = 0; i < n; i++)
        if (g.mask[i])
          st.insert (st.end (), g.px.begin () + 4 * i, g.px.begin () + 4 * i + 4);
      if (d.cache.lru.capacity () > 0) {
        uint32_t to = d.cache.lru.insert ();
        Glyph &old = d.cache.slots[to];
        if (old.w) {
          auto it = d.by_hash.find (old.hash);
          if (it != d.by_hash.end () && it->second == to)
            d.by_hash.erase (it);
        }
        old = g;
        d.by_hash[g.hash] = to;
      }
    }
    int64_t x = R.x + s.x0, bottom = R.y + s.y1;
    put_varint (st, zigzag ((int32_t) (x - px)));
    put_varint (st, zigzag ((int32_t) (bottom - pb)));
    px = x;
    pb = bottom;
  }

  written = { R.x + t.x, R.y + t.y, t.w, t.h };
  size_t cap = ZSTD_compressBound (st.size ());
  d.packed.resize (cap);
  size_t len = ZSTD_compressCCtx (d.zstd, d.packed.data (), cap, st.data (), st.size (),
      std::max (level, 3));
  if (ZSTD_isError (len) || len >= st.size ())
    len = 0;                    /* stored */

  put_u8 (out, OP_GLYPHS);
  put_u8 (out, store ? kGlyphsStore : 0);
  put_u16 (out, (uint16_t) written.x);
  put_u16 (out, (uint16_t) written.y);
  put_u16 (out, (uint16_t) written.w);
  put_u16 (out, (uint16_t) written.h);
  out.insert (out.end (), (const uint8_t *) &bg, (const uint8_t *) &bg + 4);
  put_u32 (out, (uint32_t) st.size ());
  put_u32 (out, (uint32_t) len);
  if (len)
    out.insert (out.end (), d.packed.begin (), d.packed.begin () + len);
  else
    out.insert (out.end (), st.begin (), st.end ());

  /* The client's picture after the operation. */
  for (int y = 0; y < written.h; y++) {
    uint8_t *row = model.data + (size_t) (written.y + y) * model.stride + (size_t) written.x * 4;
    for (int x = 0; x < written.w; x++)
      memcpy (row + 4 * x, &bg, 4);
  }
  for (uint32_t k : placed) {
    const Shape &s = d.shapes[k];
    for (uint32_t n = 0; n < s.n_runs; n++) {
      const Run &run = d.runs[d.order[s.first + n]];
      memcpy (model.data + (size_t) (R.y + run.y) * model.stride + (size_t) (R.x + run.x0) * 4,
          f.data + (size_t) (R.y + run.y) * f.stride + (size_t) (R.x + run.x0) * 4,
          (size_t) (run.x1 - run.x0) * 4);
    }
  }
  return true;
}

}                               /* namespace tiles */
}                               /* namespace wayray */
