/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "wayrayclassifier.h"

#include <algorithm>
#include <cstring>

namespace wayray {
namespace tiles {

static constexpr uint64_t kNone = UINT64_MAX;
static constexpr uint64_t kMs = 1000000;

Rect
align16 (Rect r, int width, int height)
{
  int x0 = r.x & ~15, y0 = r.y & ~15;
  int x1 = std::min ((r.x + r.w + 15) & ~15, width);
  int y1 = std::min ((r.y + r.h + 15) & ~15, height);
  /* keep the size a multiple of 16 where the frame allows it */
  int w = (x1 - x0 + 15) & ~15, h = (y1 - y0 + 15) & ~15;
  x0 = std::max (0, std::min (x0, width - w));
  y0 = std::max (0, std::min (y0, height - h));
  return {x0, y0, std::min (w, width - x0), std::min (h, height - y0)};
}

static bool
overlap (const Rect & a, const Rect & b)
{
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

static Rect
unite (const Rect & a, const Rect & b)
{
  int x0 = std::min (a.x, b.x), y0 = std::min (a.y, b.y);
  int x1 = std::max (a.x + a.w, b.x + b.w), y1 = std::max (a.y + a.h, b.y + b.h);
  return {x0, y0, x1 - x0, y1 - y0};
}

void
Classifier::reset (int width, int height, const ClassifierSettings & settings)
{
  s_ = settings;
  s_.tile_size = std::max (16, s_.tile_size);
  s_.transient_changes = std::max (1u, std::min<unsigned> (s_.transient_changes, kHistory));
  width_ = width;
  height_ = height;
  tiles_x_ = (width + s_.tile_size - 1) / s_.tile_size;
  tiles_y_ = (height + s_.tile_size - 1) / s_.tile_size;
  size_t n = (size_t) tiles_x_ * tiles_y_;
  prev_.assign ((size_t) width * height * 4, 0);
  history_.assign (n * kHistory, kNone);
  lossy_.assign (n, 0);
  last_change_.assign (n, kNone);
  regions_.clear ();
  last_frame_ns_ = kNone;
  gaps_n_ = 0;
  pending_.ns = kNone;
  gap_ns_ = busy_ns_ = 0;
}

uint64_t
Classifier::window_ns () const
{
  uint64_t base = s_.transient_window_ms * kMs;
  return std::min (4 * base, std::max (base, gap_ns_ * s_.transient_changes));
}

uint64_t
Classifier::region_settle_ns () const
{
  return std::max (settle_ns (), (uint64_t) s_.region_settle_ms * kMs);
}

uint64_t
Classifier::settle_ns () const
{
  uint64_t base = s_.settle_ms * kMs;
  return std::min (4 * base, std::max (base, gap_ns_ * 3));
}

/* The tiles lying wholly inside @box (a box's 16-alignment at the screen's
 * edge may reach into a neighbour tile, which stays outside). */
std::vector<size_t>
Classifier::tiles_in (const Rect & box) const
{
  const int ts = s_.tile_size;
  std::vector<size_t> out;
  for (int ty = box.y / ts; ty <= (box.y + box.h - 1) / ts; ty++)
    for (int tx = box.x / ts; tx <= (box.x + box.w - 1) / ts; tx++) {
      Rect tr = tile_rect (tx, ty, ts, width_, height_);
      if (tr.x >= box.x && tr.y >= box.y && tr.x + tr.w <= box.x + box.w && tr.y + tr.h <= box.y + box.h)
        out.push_back (index (tx, ty));
    }
  return out;
}

bool
Classifier::transient (size_t t, uint64_t now_ns) const
{
  uint64_t kth = history_[t * kHistory + s_.transient_changes - 1];
  return kth != kNone && now_ns >= kth && now_ns - kth <= window_ns ();
}

void
Classifier::record (size_t t, uint64_t now_ns)
{
  uint64_t *h = &history_[t * kHistory];
  memmove (h + 1, h, (kHistory - 1) * sizeof (uint64_t));
  h[0] = now_ns;
}

void
Classifier::tune (const ClassifierSettings & settings)
{
  int ts = s_.tile_size;
  s_ = settings;
  s_.tile_size = ts;
  s_.transient_changes = std::max (1u, std::min<unsigned> (s_.transient_changes, kHistory));
}

bool
Classifier::has_lossy () const
{
  return std::find (lossy_.begin (), lossy_.end (), 1) != lossy_.end ();
}

void
Classifier::process (const ConstSurface & cur, const std::vector<Rect> & damage, bool full,
    uint64_t now_ns, bool video, Result & out)
{
  const int ts = s_.tile_size;
  const size_t n = (size_t) tiles_x_ * tiles_y_;
  out.lossless.assign (n, 0);
  out.unknown = lossy_;
  out.video = out.layout_changed = out.paste_changed = false;
  out.unchanged = 0;
  out.moves.clear ();
  /* The gaps between frames, and whether the pipeline imposed them (the
   * last frame kept it busy for most of the gap); a pause longer than a
   * second says nothing about the rate of what changes after it. This
   * frame is judged by the gaps before it; its own (maybe the pause that
   * lets a region settle now) counts from the next frame on. */
  if (pending_.ns != kNone) {
    gaps_[gaps_n_++ % kHistory] = pending_;
    unsigned n = std::min<unsigned> (gaps_n_, kHistory);
    uint64_t sorted[kHistory];
    for (unsigned i = 0; i < n; i++)
      sorted[i] = gaps_[i].busy ? gaps_[i].ns : 0;
    std::nth_element (sorted, sorted + n / 2, sorted + n);
    gap_ns_ = sorted[n / 2];
    pending_.ns = kNone;
  }
  if (last_frame_ns_ != kNone && now_ns >= last_frame_ns_ && now_ns - last_frame_ns_ <= 1000 * kMs) {
    uint64_t gap = now_ns - last_frame_ns_;
    pending_ = {gap, busy_ns_ * 4 >= gap * 3};
  }
  last_frame_ns_ = now_ns;
  busy_ns_ = 0;
  if (full) {
    /* Everything is sent losslessly: what the client showed from video is
     * replaced too. The evidence stays. */
    bool had = !regions_.empty ();
    std::fill (lossy_.begin (), lossy_.end (), 0);
    regions_.clear ();
    out.layout_changed = had;
  }

  /* Scrolls and window moves are copies for the encoder, not animation. */
  std::vector<uint8_t> moved (n, 0);
  if (video && !full) {
    ConstSurface prev = {prev_.data (), (size_t) width_ * 4, width_, height_};
    std::vector<Rect> groups = damage;
    merge_touching (groups);
    for (Rect r : groups) {
      if (!changed_box (prev, cur, r) || r.w * r.h < ts * ts)
        continue;
      Rect src, dst;
      if (!detect_move (prev, cur, r, src, dst))
        continue;
      out.moves.push_back ({src, dst});
      for (int ty = r.y / ts; ty <= (r.y + r.h - 1) / ts; ty++)
        for (int tx = r.x / ts; tx <= (r.x + r.w - 1) / ts; tx++)
          moved[index (tx, ty)] = 1;
    }
  }

  /* Tiles whose pixels changed, and how many of their pixels did. */
  std::vector<uint8_t> changed (n, 0), visited (n, 0);
  /* Small changes (below evidence_percent) that touch the tile's edges:
   * bit 0 top, 1 bottom, 2 left, 3 right. */
  std::vector<uint8_t> small_edges (n, 0);
  for (const Rect & r : damage) {
    for (int ty = r.y / ts; ty <= (r.y + r.h - 1) / ts; ty++) {
      for (int tx = r.x / ts; tx <= (r.x + r.w - 1) / ts; tx++) {
        size_t t = index (tx, ty);
        if (visited[t])
          continue;
        visited[t] = 1;
        Rect tr = tile_rect (tx, ty, ts, width_, height_);
        /* Whether it changed, and (only where it can count as evidence)
         * whether enough of its pixels did: counting stops there. */
        const long need = ((long) s_.evidence_percent * tr.w * tr.h + 99) / 100;
        const bool count = video && !full && !moved[t];
        bool differs = false;
        long pixels = 0;
        uint8_t edges = 0;
        for (int y = 0; y < tr.h; y++) {
          const uint8_t *a = cur.data + (size_t) (tr.y + y) * cur.stride + (size_t) tr.x * 4;
          uint8_t *b = prev_.data () + ((size_t) (tr.y + y) * width_ + tr.x) * 4;
          if (memcmp (a, b, (size_t) tr.w * 4) == 0)
            continue;
          differs = true;
          if (count) {
            edges |= (y == 0 ? 1 : 0) | (y == tr.h - 1 ? 2 : 0);
            edges |= memcmp (a, b, 3) != 0 ? 4 : 0;
            edges |= memcmp (a + (tr.w - 1) * 4, b + (tr.w - 1) * 4, 3) != 0 ? 8 : 0;
          }
          for (int x = 0; count && pixels < need && x < tr.w; x++) {
            uint32_t pa, pb;
            memcpy (&pa, a + x * 4, 4);
            memcpy (&pb, b + x * 4, 4);
            pixels += ((pa ^ pb) & 0x00ffffffu) != 0;       /* not the padding byte */
          }
          memcpy (b, a, (size_t) tr.w * 4);
        }
        if (!differs && !full) {
          out.unchanged++;
          continue;
        }
        changed[t] = 1;
        last_change_[t] = now_ns;
        if (count && pixels >= need)
          record (t, now_ns);
        else if (count)
          small_edges[t] = edges;
      }
    }
  }

  /* A video whose edge runs through a row or column of tiles changes only
   * a strip of them, too little to count; left out, that strip would go
   * losslessly with every frame. A small change is evidence when it
   * reaches the tile's edge towards a transient tile: the video goes on
   * across it. (A glyph typed next to a video rarely reaches that edge,
   * and must do so five times in half a second.) */
  for (size_t t = 0; t < n; t++) {
    uint8_t e = small_edges[t];
    if (!e)
      continue;
    int tx = (int) (t % tiles_x_), ty = (int) (t / tiles_x_);
    if (((e & 1) && ty > 0 && transient (index (tx, ty - 1), now_ns))
        || ((e & 2) && ty + 1 < tiles_y_ && transient (index (tx, ty + 1), now_ns))
        || ((e & 4) && tx > 0 && transient (index (tx - 1, ty), now_ns))
        || ((e & 8) && tx + 1 < tiles_x_ && transient (index (tx + 1, ty), now_ns)))
      record (t, now_ns);
  }

  if (video && !full)
    out.layout_changed |= update_regions (now_ns);

  /* Changes inside a region go to the video path, the rest losslessly
   * (all of them without video: the regions wait for settle ()). */
  std::vector<uint8_t> in_region (n, 0);
  for (VideoRegion & reg : regions_) {
    if (!video)
      break;
    bool region_changed = false;
    for (size_t t : tiles_in (reg.box)) {
      in_region[t] = 1;
      if (changed[t]) {
        region_changed = true;
        if (!lossy_[t])
          out.paste_changed = true;
        lossy_[t] = 1;
      }
    }
    if (region_changed) {
      reg.last_change_ns = now_ns;
      out.video = true;
    }
  }
  for (size_t t = 0; t < n; t++)
    if (changed[t] && !in_region[t]) {
      out.lossless[t] = 1;
      if (lossy_[t]) {
        /* sent exactly now: the client no longer shows it from video */
        lossy_[t] = 0;
        out.paste_changed = true;
      }
    }
  for (size_t t = 0; t < n; t++)
    out.unknown[t] |= lossy_[t];
  if (out.layout_changed)
    out.paste_changed = true;
}

/* Groups transient tiles into regions and updates the region list;
 * returns whether it changed. */
bool
Classifier::update_regions (uint64_t now_ns)
{
  const int ts = s_.tile_size;
  const size_t n = (size_t) tiles_x_ * tiles_y_;
  std::vector<uint8_t> mark (n, 0);
  for (size_t t = 0; t < n; t++)
    mark[t] = transient (t, now_ns);

  /* Connected groups (a gap of one tile still connects), by flood fill. */
  std::vector<Rect> found;
  std::vector<uint8_t> seen (n, 0);
  std::vector<size_t> stack;
  for (size_t start = 0; start < n; start++) {
    if (!mark[start] || seen[start])
      continue;
    unsigned count = 0;
    int x0 = tiles_x_, y0 = tiles_y_, x1 = -1, y1 = -1;
    stack.assign (1, start);
    seen[start] = 1;
    while (!stack.empty ()) {
      size_t t = stack.back ();
      stack.pop_back ();
      int tx = (int) (t % tiles_x_), ty = (int) (t / tiles_x_);
      count++;
      x0 = std::min (x0, tx);
      y0 = std::min (y0, ty);
      x1 = std::max (x1, tx);
      y1 = std::max (y1, ty);
      for (int dy = -2; dy <= 2; dy++)
        for (int dx = -2; dx <= 2; dx++) {
          int nx = tx + dx, ny = ty + dy;
          if (nx < 0 || ny < 0 || nx >= tiles_x_ || ny >= tiles_y_)
            continue;
          size_t u = index (nx, ny);
          if (mark[u] && !seen[u]) {
            seen[u] = 1;
            stack.push_back (u);
          }
        }
    }
    if (count < s_.min_video_tiles)
      continue;
    Rect a = tile_rect (x0, y0, ts, width_, height_), b = tile_rect (x1, y1, ts, width_, height_);
    found.push_back (align16 ({a.x, a.y, b.x + b.w - a.x, b.y + b.h - a.y}, width_, height_));
  }
  if (found.empty ())
    return false;

  std::vector<Rect> before;
  for (const VideoRegion & r : regions_)
    before.push_back (r.box);
  /* A group joins the regions it overlaps; boxes only grow. */
  for (const Rect & f : found) {
    bool joined = false;
    for (VideoRegion & r : regions_)
      if (overlap (r.box, f)) {
        r.box = unite (r.box, f);
        r.last_change_ns = now_ns;
        joined = true;
      }
    if (!joined) {
      VideoRegion r;
      r.box = f;
      r.last_change_ns = now_ns;
      regions_.push_back (r);
    }
  }
  /* Merge regions that now overlap, and the closest ones beyond the limit. */
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < regions_.size () && !again; i++)
      for (size_t j = i + 1; j < regions_.size () && !again; j++)
        if (overlap (regions_[i].box, regions_[j].box)) {
          regions_[i].box = unite (regions_[i].box, regions_[j].box);
          regions_[i].last_change_ns = std::max (regions_[i].last_change_ns, regions_[j].last_change_ns);
          regions_.erase (regions_.begin () + j);
          again = true;
        }
    if (!again && regions_.size () > kMaxRegions) {
      size_t bi = 0, bj = 1;
      long best = -1;
      for (size_t i = 0; i < regions_.size (); i++)
        for (size_t j = i + 1; j < regions_.size (); j++) {
          Rect u = unite (regions_[i].box, regions_[j].box);
          long cost = (long) u.w * u.h - (long) regions_[i].box.w * regions_[i].box.h -
              (long) regions_[j].box.w * regions_[j].box.h;
          if (best < 0 || cost < best) {
            best = cost;
            bi = i;
            bj = j;
          }
        }
      regions_[bi].box = unite (regions_[bi].box, regions_[bj].box);
      regions_.erase (regions_.begin () + bj);
      again = true;
    }
  }
  layout ();
  if (before.size () != regions_.size ())
    return true;
  for (size_t i = 0; i < before.size (); i++) {
    const Rect & a = before[i], &b = regions_[i].box;
    if (a.x != b.x || a.y != b.y || a.w != b.w || a.h != b.h)
      return true;
  }
  return false;
}

void
Classifier::layout ()
{
  int y = 0;
  for (VideoRegion & r : regions_) {
    r.atlas_y = y;
    y += r.box.h;
  }
}

bool
Classifier::settle (uint64_t now_ns, bool all, std::vector<uint8_t> & refine, bool & layout_changed)
{
  const size_t n = (size_t) tiles_x_ * tiles_y_;
  refine.assign (n, 0);
  layout_changed = false;
  bool any = false;
  const uint64_t settle = settle_ns (), region_settle = region_settle_ns ();
  auto still = [now_ns] (uint64_t since, uint64_t d) {
    return now_ns >= since && now_ns - since >= d;
  };
  /* Tiles of regions that still change (the others wait for their
   * region's end, below). */
  std::vector<uint8_t> alive (n, 0);
  for (const VideoRegion & r : regions_) {
    if (still (r.last_change_ns, settle))
      continue;
    /* Only while most of the region plays on: when most of its lossy
     * tiles are still, the video stalls (a busy host drawing a small
     * overlay on time and the video behind it late) and waits for the
     * region's end like a whole pause. */
    std::vector<size_t> in = tiles_in (r.box);
    size_t lossy = 0, quiet = 0;
    for (size_t t : in)
      if (lossy_[t]) {
        lossy++;
        quiet += last_change_[t] == kNone || still (last_change_[t], settle);
      }
    if (quiet * 2 > lossy)
      continue;
    for (size_t t : in)
      alive[t] = 1;
  }
  for (size_t t = 0; t < n; t++) {
    if (!lossy_[t])
      continue;
    uint64_t lc = last_change_[t];
    if (all || lc == kNone || (alive[t] && still (lc, settle))) {
      lossy_[t] = 0;
      refine[t] = 1;
      any = true;
    }
  }
  size_t before = regions_.size ();
  regions_.erase (std::remove_if (regions_.begin (), regions_.end (), [&] (const VideoRegion & r) {
            return all || still (r.last_change_ns, region_settle);
          }), regions_.end ());
  if (regions_.size () != before) {
    layout_changed = true;
    layout ();
    /* Tiles of an ended region still lossy (changed less than settle_ms
     * ago, while a neighbour kept the region alive) are refined too. */
    std::vector<uint8_t> in_region (n, 0);
    for (const VideoRegion & r : regions_)
      for (size_t t : tiles_in (r.box))
        in_region[t] = 1;
    for (size_t t = 0; t < n; t++)
      if (lossy_[t] && !in_region[t]) {
        lossy_[t] = 0;
        refine[t] = 1;
        any = true;
      }
  }
  return any;
}

int
Classifier::atlas_width () const
{
  int w = 0;
  for (const VideoRegion & r : regions_)
    w = std::max (w, r.box.w);
  return w;
}

int
Classifier::atlas_height () const
{
  return regions_.empty () ? 0 : regions_.back ().atlas_y + regions_.back ().box.h;
}

void
Classifier::crop_atlas (const ConstSurface & cur, uint8_t * dst, size_t stride) const
{
  int aw = atlas_width ();
  for (const VideoRegion & r : regions_)
    for (int y = 0; y < r.box.h; y++) {
      uint8_t *row = dst + (size_t) (r.atlas_y + y) * stride;
      memcpy (row, cur.data + (size_t) (r.box.y + y) * cur.stride + (size_t) r.box.x * 4,
          (size_t) r.box.w * 4);
      if (r.box.w < aw)
        memset (row + (size_t) r.box.w * 4, 0, (size_t) (aw - r.box.w) * 4);
    }
}

std::vector<Rect>
Classifier::rects_of (const std::vector<uint8_t> & mask) const
{
  /* Runs of tiles along each row, merged with the run above when they
   * line up. */
  const int ts = s_.tile_size;
  std::vector<Rect> rects;
  std::vector<int> open_run;
  for (int ty = 0; ty < tiles_y_; ty++) {
    std::vector<int> now_open;
    for (int tx = 0; tx < tiles_x_;) {
      if (!mask[index (tx, ty)]) {
        tx++;
        continue;
      }
      int start = tx;
      while (tx < tiles_x_ && mask[index (tx, ty)])
        tx++;
      Rect r = {start * ts, ty * ts, std::min (tx * ts, width_) - start * ts,
        std::min ((ty + 1) * ts, height_) - ty * ts
      };
      bool merged = false;
      for (int idx : open_run) {
        Rect & a = rects[idx];
        if (a.x == r.x && a.w == r.w && a.y + a.h == r.y) {
          a.h += r.h;
          now_open.push_back (idx);
          merged = true;
          break;
        }
      }
      if (!merged) {
        rects.push_back (r);
        now_open.push_back ((int) rects.size () - 1);
      }
    }
    open_run.swap (now_open);
  }
  return rects;
}

std::vector<PasteRect>
Classifier::paste_rects () const
{
  std::vector<PasteRect> out;
  for (const VideoRegion & reg : regions_) {
    for (const Rect & r : rects_of (lossy_)) {
      /* the part of the lossy rectangle inside this region */
      int x0 = std::max (r.x, reg.box.x), y0 = std::max (r.y, reg.box.y);
      int x1 = std::min (r.x + r.w, reg.box.x + reg.box.w), y1 = std::min (r.y + r.h, reg.box.y + reg.box.h);
      if (x1 <= x0 || y1 <= y0)
        continue;
      out.push_back ({{x0, y0, x1 - x0, y1 - y0}, x0 - reg.box.x, reg.atlas_y + y0 - reg.box.y});
    }
  }
  return out;
}

}                               /* namespace tiles */
}                               /* namespace wayray */
