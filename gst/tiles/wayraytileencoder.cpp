/* WayRay tile codec: the encoder. See wayraytilecodec.h and docs/protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayraytilecodec.h"
#include "wayraytilepixels.h"
#include "wayrayglyphs.h"
#include "wayrayworkers.h"

#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <thread>
#include <unordered_map>

namespace wayray {
namespace tiles {

/* ---------------------------------------------------------------------- */
/* Tile pixel helpers of the encoder                                       */

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
/* Encoder                                                                 */

namespace {

constexpr size_t kSmallUpdateTiles = 4;
/* ABOVE codings (kAboveTiles tiles above as dictionary) only in messages
 * with at most this many tiles to compress. */
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
  std::vector<std::unique_ptr<Compressors>> comp;   /* one per lane of the pool */
  std::unique_ptr<WorkerPool> pool;
  std::vector<Move> hints;      /* for the next encode () */
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
  if (!d.pool || d.pool->lanes () != threads)
    d.pool.reset (new WorkerPool (threads));
  d.need_reset = true;
  d.seq = 0;
  d.configured = true;
}

void
Encoder::hint_moves (std::vector<Move> moves)
{
  impl_->hints = std::move (moves);
}

/* A move that fits a @width x @height frame and is worth a copy. */
static bool
move_fits (const Move &m, int width, int height)
{
  auto inside = [&] (const Rect &r) {
    return r.x >= 0 && r.y >= 0 && r.w >= 8 && r.h >= 8 && r.x <= width - r.w && r.y <= height - r.h;
  };
  return m.src.w == m.dst.w && m.src.h == m.dst.h && inside (m.src) && inside (m.dst) &&
      (m.src.x != m.dst.x || m.src.y != m.dst.y);
}

static bool
overlaps (const Rect &a, const Rect &b)
{
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
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
  /* Only a RESET states the stream's parameters (version 3). */
  size_t n_ops_at;
  if (reset) {
    put_u16 (msg, (uint16_t) ts);
    put_u16 (msg, (uint16_t) d.width);
    put_u16 (msg, (uint16_t) d.height);
    put_u32 (msg, d.s.cache_slots);
    put_u32 (msg, d.seq);
    n_ops_at = msg.size ();
    put_u32 (msg, 0);           /* n_ops, patched below */
    put_u32 (msg, d.s.glyph_slots);
  } else {
    put_u32 (msg, d.seq);
    n_ops_at = msg.size ();
    put_u32 (msg, 0);           /* n_ops, patched below */
  }
  uint32_t n_ops = 0;
  EncodeStats local;

  /* Scrolls and moves: one copy inside the client's framebuffer, then only
   * the residue. The source must be exact on the client. */
  std::vector<Move> hints;
  hints.swap (d.hints);
  if (!reset && d.s.scroll_detection) {
    ConstSurface model = { d.model.data (), d.model_stride, d.width, d.height };
    std::vector<uint8_t> hint_used (hints.size (), 0);
    /* A scrolled window often arrives as several rectangles (the tiles
     * that changed); look at each connected group as a whole. */
    std::vector<Rect> groups = rects;
    merge_touching (groups);
    for (Rect r : groups) {
      Rect src, dst;
      /* A move found already (by the classifier) where this group is:
       * no search. */
      size_t h = 0;
      while (h < hints.size () && (hint_used[h] || !overlaps (hints[h].dst, r) ||
              !move_fits (hints[h], d.width, d.height)))
        h++;
      if (h < hints.size ()) {
        hint_used[h] = 1;
        src = hints[h].src;
        dst = hints[h].dst;
        int x0 = std::min (src.x, dst.x), y0 = std::min (src.y, dst.y);
        int x1 = std::max (src.x + src.w, dst.x + dst.w), y1 = std::max (src.y + src.h, dst.y + dst.h);
        r = { x0, y0, x1 - x0, y1 - y0 };
      } else {
        /* Only the part that really changed: static columns or rows inside
         * the group (a side bar, a status line) would hide the shift. */
        if (!changed_box (model, f, r))
          continue;
        if (r.w * r.h < ts * ts)
          continue;
        if (!detect_move (model, f, r, src, dst))
          continue;
      }
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
    d.pool->run ([&] (unsigned k) {
      for (size_t j = k; j < content.size (); j += n_threads)
        d.encode_content (jobs[content[j]], f, *d.comp[k]);
    });
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
  for (int i = 0; i < 4; i++)
    msg[n_ops_at + i] = (n_ops >> (8 * i)) & 0xff;
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

}                               /* namespace tiles */
}                               /* namespace wayray */
