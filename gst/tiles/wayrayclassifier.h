/* The damage classifier behind damagetiler, without GStreamer: which tiles
 * of a screen really changed, which of them are video or animation, and
 * when a tile shown from the video path has settled and is sent losslessly
 * again.
 *
 * Evidence. A tile is transient when it changed #transient_changes times
 * within #transient_window_ms, counting only changes that are evidence of
 * video: a change explained by a move (a scroll, a dragged window) is not,
 * and neither is a change that touches less than #evidence_percent of the
 * tile's pixels (a typed glyph, a blinking cursor, a menu highlight: cheap
 * for the lossless path and text that must stay sharp), unless it reaches
 * the tile's border with a transient tile (a video's edge running through
 * the tile).
 *
 * Regions. Transient tiles are grouped into connected regions (tiles at most
 * one tile apart belong together); a group of at least #min_video_tiles
 * tiles becomes a video region: its 16-aligned bounding box, which only
 * grows while the region lasts, so that the encoder keeps its frame size.
 * Regions that come to overlap are merged; at most kMaxRegions exist (the
 * two whose union is smallest are merged beyond that). The video path
 * encodes one frame, the atlas: the regions' boxes stacked from top to
 * bottom at x = 0.
 *
 * Refinement per tile. A tile that changed inside a region is shown from
 * the video path (lossy) until it has not changed for #settle_ms while
 * most of its region still changes; then it is sent losslessly once more
 * and the client stops taking it from the video (paste_rects). A region in
 * which nothing changed for #region_settle_ms (at least #settle_ms) ends,
 * and all its tiles are sent losslessly: a paused video is sharp a second
 * later, and a busy host's pause of a few hundred milliseconds does not
 * send a whole playing video losslessly (on a slow link, seconds of it
 * before the video may go on).
 *
 * A busy pipeline. When the pipeline itself holds the frames back (the
 * previous frame took most of the gap to this one to go through: a busy
 * server, a congested link, or the lossless path slowed by the very frames
 * it should not be sending), both times are judged against the rate frames
 * really come at (the median of the last 8 gaps, so that one pause does
 * not count): the evidence window stretches to #transient_changes gaps (at
 * most 4 x #transient_window_ms) and the settle time to 3 gaps (at most
 * 4 x #settle_ms). Judged at the nominal rate, an animation delivered at
 * a few frames a second would never become video, and every one of its
 * frames would go losslessly, slowing the pipeline further. An application
 * that is merely slow (Alt+Tab four times a second) keeps the nominal
 * times: its frames come when it makes them.
 *
 * A full frame (a new client, a key unit) sends everything losslessly and
 * ends the regions, but keeps the evidence: an animation that goes on is
 * video again with its next frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wayraytilecodec.h"

#include <cstdint>
#include <vector>

namespace wayray {
namespace tiles {

struct ClassifierSettings {
  int tile_size = 64;
  unsigned transient_changes = 5;
  unsigned transient_window_ms = 500;
  unsigned min_video_tiles = 4;
  unsigned settle_ms = 300;
  unsigned region_settle_ms = 1000;
  unsigned evidence_percent = 25;
};

struct VideoRegion {
  Rect box;                     /* on the screen, 16-aligned */
  int atlas_y = 0;              /* its rows in the atlas (x = 0 there) */
  uint64_t last_change_ns = 0;
};

/* A rectangle the client takes from the decoded atlas: @screen is where it
 * goes, (@atlas_x, @atlas_y) where its top-left pixel is in the atlas. */
struct PasteRect {
  Rect screen;
  int atlas_x, atlas_y;
};

class Classifier {
public:
  static constexpr int kHistory = 8;
  static constexpr size_t kMaxRegions = 4;

  /* Starts over for a @width x @height screen: every tile unknown. */
  void reset (int width, int height, const ClassifierSettings & settings);

  struct Result {
    std::vector<uint8_t> lossless;      /* per tile: send it losslessly now */
    /* per tile: the client's pixels may differ from what was last sent
     * losslessly (shown from video before or after this frame): the
     * lossless encoder must not use them as a reference */
    std::vector<uint8_t> unknown;
    bool video = false;         /* an atlas frame goes to the video path now */
    bool layout_changed = false;        /* the atlas' regions (and maybe size) changed */
    bool paste_changed = false; /* paste_rects () changed */
    unsigned unchanged = 0;     /* damaged tiles whose pixels did not change */
    std::vector<Move> moves;    /* blocks that moved since the last frame */
  };

  /* New settings, all but the tile size (which takes a reset). */
  void tune (const ClassifierSettings & settings);

  /* How long the previous frame took to go through the pipeline (the
   * caller's measure), for the next process (): see "A busy pipeline". */
  void pace (uint64_t busy_ns) { busy_ns_ = busy_ns; }

  /* Takes the next frame. @damage: where the source says pixels may have
   * changed (clipped to the screen); @full: everything counts as changed
   * (a new client, a key unit). With @video false nothing is classified
   * and every change is lossless. */
  void process (const ConstSurface & cur, const std::vector<Rect> & damage, bool full,
      uint64_t now_ns, bool video, Result & out);

  /* Tiles shown from the video path that have not changed for settle_ms
   * (all of them with @all): they leave the lossy set and are marked in
   * @refine (per tile) to be sent losslessly. Regions without a change
   * for settle_ms (all with @all) end. Returns whether anything was marked;
   * @layout_changed tells whether regions ended. */
  bool settle (uint64_t now_ns, bool all, std::vector<uint8_t> & refine, bool & layout_changed);

  /* How long a tile must not change to settle (while its region changes),
   * how long a region must not change to end, and the evidence window,
   * at the rate frames come now (see "A busy pipeline" above). */
  uint64_t settle_ns () const;
  uint64_t region_settle_ns () const;
  uint64_t window_ns () const;

  const std::vector<VideoRegion> & regions () const { return regions_; }
  const std::vector<uint8_t> & lossy () const { return lossy_; }
  bool has_lossy () const;
  int atlas_width () const;
  int atlas_height () const;
  /* Copies the regions from @cur into the atlas at @dst. */
  void crop_atlas (const ConstSurface & cur, uint8_t * dst, size_t stride) const;
  /* The lossy tiles of every region, as rectangles with their atlas place. */
  std::vector<PasteRect> paste_rects () const;
  /* Rectangles covering the tiles set in @mask. */
  std::vector<Rect> rects_of (const std::vector<uint8_t> & mask) const;

  int tiles_x () const { return tiles_x_; }
  int tiles_y () const { return tiles_y_; }
  /* The last frame taken (W*H*4, tightly packed). */
  const std::vector<uint8_t> & previous () const { return prev_; }

private:
  size_t index (int tx, int ty) const { return (size_t) ty * tiles_x_ + tx; }
  std::vector<size_t> tiles_in (const Rect & box) const;
  bool transient (size_t t, uint64_t now_ns) const;
  void record (size_t t, uint64_t now_ns);
  bool update_regions (uint64_t now_ns);
  void layout ();

  ClassifierSettings s_;
  int width_ = 0, height_ = 0, tiles_x_ = 0, tiles_y_ = 0;
  std::vector<uint8_t> prev_;
  std::vector<uint64_t> history_;       /* kHistory change times per tile, newest first; 0 = none */
  std::vector<uint8_t> lossy_;
  std::vector<uint64_t> last_change_;   /* per tile */
  std::vector<VideoRegion> regions_;
  uint64_t last_frame_ns_ = UINT64_MAX;
  struct Gap {
    uint64_t ns;                /* between two frames, a second at most (longer ones are not kept) */
    bool busy;                  /* the pipeline imposed it */
  };
  Gap gaps_[kHistory] = { };    /* the last gaps, a ring */
  unsigned gaps_n_ = 0;         /* how many were recorded */
  uint64_t gap_ns_ = 0;         /* the median of the imposed ones; 0: frames come as fast as they are made */
  Gap pending_ = {UINT64_MAX, false};   /* the last frame's, counted from the next */
  uint64_t busy_ns_ = 0;                /* pace () */
};

/* @r grown to 16-pixel boundaries, within @width x @height. */
Rect align16 (Rect r, int width, int height);

}                               /* namespace tiles */
}                               /* namespace wayray */
