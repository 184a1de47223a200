/* The damage classifier on its own (no GStreamer in the code under test):
 * recorded sessions of real applications (bench/tiles/recordings) and
 * synthetic desktops. Typing, scrolling and window switching never go to
 * video; a video beside text gives a region around the video only; two
 * videos give two regions; tiles refine one by one; after settling the
 * client's picture equals the screen exactly.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "recording.h"
#include "screengen.h"
#include "wayrayclassifier.h"

#include <string>

namespace wt = wayray::tiles;
using namespace screengen;

static const uint64_t kMs = 1000000;

/* What a client does with the classifier's output: lossless tiles are
 * copied exactly, tiles taken from the video get the video's pixels
 * disturbed (lossy coding), refinements are exact again. */
struct Client {
  int w, h, ts;
  std::vector<uint8_t> px;
  Client (int width, int height, int tile) : w (width), h (height), ts (tile), px ((size_t) width * height * 4, 0) {}

  void copy_tiles (const Screen & s, const wt::Classifier & c, const std::vector<uint8_t> &mask)
  {
    for (const wt::Rect & r : c.rects_of (mask))
      for (int y = r.y; y < r.y + r.h; y++)
        memcpy (&px[((size_t) y * w + r.x) * 4], s.px.data () + ((size_t) y * s.w + r.x) * 4, (size_t) r.w * 4);
  }
  void paste_video (const Screen & s, const wt::Classifier & c)
  {
    int aw = c.atlas_width (), ah = c.atlas_height ();
    std::vector<uint8_t> atlas ((size_t) aw * ah * 4);
    wt::ConstSurface cur = {s.px.data (), s.stride (), s.w, s.h};
    c.crop_atlas (cur, atlas.data (), (size_t) aw * 4);
    for (size_t i = 0; i < atlas.size (); i += 4)
      atlas[i] ^= 3;            /* the loss of a video codec */
    for (const wt::PasteRect & p : c.paste_rects ()) {
      fail_unless (p.atlas_x + p.screen.w <= aw && p.atlas_y + p.screen.h <= ah);
      for (int y = 0; y < p.screen.h; y++)
        memcpy (&px[((size_t) (p.screen.y + y) * w + p.screen.x) * 4],
            &atlas[((size_t) (p.atlas_y + y) * aw + p.atlas_x) * 4], (size_t) p.screen.w * 4);
    }
  }
  bool equals (const Screen & s) const
  {
    return memcmp (px.data (), s.px.data (), px.size ()) == 0;
  }
};

/* One step: the frame @s with @damage at @t_ms, through the classifier to
 * the client. Returns whether a video frame went out. */
static bool
step (wt::Classifier & c, Client & cl, const Screen & s, const std::vector<Rect> &damage, bool full,
    uint64_t t_ms, bool video = true)
{
  std::vector<wt::Rect> d;
  for (const Rect & r : damage)
    d.push_back ({r.x, r.y, r.w, r.h});
  if (full)
    d = { {0, 0, s.w, s.h} };
  wt::ConstSurface cur = {s.px.data (), s.stride (), s.w, s.h};
  wt::Classifier::Result res;
  c.process (cur, d, full, t_ms * kMs, video, res);
  cl.copy_tiles (s, c, res.lossless);
  if (res.video)
    cl.paste_video (s, c);
  std::vector<uint8_t> refine;
  bool layout = false;
  if (c.settle (t_ms * kMs, !video, refine, layout))
    cl.copy_tiles (s, c, refine);
  return res.video;
}

/* A 1280x720 screen with a terminal on @text_area (none when empty), a
 * classifier and its client, which has seen the first frame. */
struct Desk {
  Screen s {1280, 720};
  Rng rng;
  Terminal term;
  wt::Classifier c;
  Client cl {1280, 720, 64};
  Desk (uint64_t seed, Rect text_area, const wt::ClassifierSettings & set = wt::ClassifierSettings ())
    : rng (seed)
  {
    if (text_area.w > 0) {
      term.area = text_area;
      term.fill_text (s, rng);
    }
    c.reset (1280, 720, set);
    step (c, cl, s, {}, true, 0);
  }
  bool frame (const std::vector<Rect> &damage, uint64_t t_ms)
  {
    return step (c, cl, s, damage, false, t_ms);
  }
};

static bool
inside (const wt::Rect & a, const Rect & b)
{
  return b.x >= a.x && b.y >= a.y && b.x + b.w <= a.x + a.w && b.y + b.h <= a.y + a.h;
}

static bool
meets (const wt::Rect & a, const Rect & b)
{
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/* Replays a recording of a real session through the classifier; returns
 * the number of frames that went to video, and checks the client's
 * picture against every frame's once settled. */
static int
replay (const char *name, int *max_regions)
{
  recording::Recording rec;
  std::string error;
  std::string path = std::string (WAYRAY_RECORDINGS_DIR) + "/" + name + ".wrrec";
  fail_unless (recording::read_file (path, rec, error), "%s", error.c_str ());
  fail_unless (rec.frames.size () > 10, "%s: %u frames", name, (unsigned) rec.frames.size ());
  Screen s (rec.width, rec.height);
  wt::Decoder dec;
  wt::Classifier c;
  c.reset (rec.width, rec.height, wt::ClassifierSettings ());
  Client cl (rec.width, rec.height, 64);
  int video = 0;
  *max_regions = 0;
  uint64_t t0 = rec.frames[0].pts, t = 0;
  for (size_t i = 0; i < rec.frames.size (); i++) {
    std::vector<wt::Rect> d;
    wt::Surface fb = {s.px.data (), s.stride (), s.w, s.h};
    fail_unless (dec.decode (rec.frames[i].message.data (), rec.frames[i].message.size (), fb, d, error),
        "%s frame %u: %s", name, (unsigned) i, error.c_str ());
    std::vector<Rect> damage;
    for (const auto &r : rec.frames[i].damage)
      damage.push_back ({r.x, r.y, r.w, r.h});
    t = (rec.frames[i].pts - t0) / kMs;
    video += step (c, cl, s, damage, i == 0, t);
    *max_regions = std::max (*max_regions, (int) c.regions ().size ());
  }
  /* a second after the last frame everything has settled */
  step (c, cl, s, {}, false, t + 1000);
  fail_unless (c.regions ().empty () && !c.has_lossy (), "%s: still video after settling", name);
  fail_unless (cl.equals (s), "%s: the client's picture differs after settling", name);
  return video;
}

GST_START_TEST (test_recorded_text_never_video)
{
  /* foot typing, scrolling at three speeds, two screens alternating, Alt+Tab
   * between two windows: all lossless, always */
  for (const char *name : { "typing", "scrolling", "fast-scrolling", "text-1000", "switching", "windows" }) {
    int regions = 0;
    int video = replay (name, &regions);
    GST_INFO ("%s: %d video frames, at most %d regions", name, video, regions);
    fail_unless (video == 0 && regions == 0, "%s: %d frames went to video, %d regions", name, video, regions);
  }
}
GST_END_TEST;

GST_START_TEST (test_recorded_animation_is_video)
{
  /* weston-simple-shm: an animated square, redrawn at 60 fps */
  int regions = 0;
  int video = replay ("animation", &regions);
  fail_unless (video > 30, "only %d video frames", video);
  fail_unless_equals_int (regions, 1);
}
GST_END_TEST;

GST_START_TEST (test_fast_typing_is_not_video)
{
  /* 25 characters a second with the cursor moving, for four seconds */
  Desk d (5, {0, 0, 1280, 720});
  int video = 0;
  for (int i = 1; i <= 100; i++)
    video += d.frame ({d.term.type (d.s, 'a' + i % 26)}, i * 40);
  fail_unless_equals_int (video, 0);
  fail_unless (d.cl.equals (d.s));
}
GST_END_TEST;

GST_START_TEST (test_video_beside_text)
{
  /* a 320x240 video at 128,128 and a terminal line being typed below it:
   * one region, around the video only; the text stays lossless and exact */
  Desk d (7, {0, 448, 1280, 272});
  Rect video = {128, 128, 320, 240};
  int frames = 0;
  for (int i = 1; i <= 90; i++) {
    d.s.noise (video, d.rng);
    std::vector<Rect> damage = {video};
    if (i % 2 == 0)
      damage.push_back (d.term.type (d.s, 'a' + i % 26));
    frames += d.frame (damage, i * 33);
    for (const wt::VideoRegion & r : d.c.regions ())
      fail_if (meets (r.box, d.term.area), "the region %d,%d %dx%d reaches the text", r.box.x, r.box.y,
          r.box.w, r.box.h);
  }
  fail_unless (frames > 60, "only %d video frames", frames);
  fail_unless_equals_int (d.c.regions ().size (), 1);
  const wt::Rect & box = d.c.regions ()[0].box;
  fail_unless (inside (box, {192, 192, 192, 128}), "the region misses the video");
  fail_unless (box.w * box.h <= 384 * 320, "region %dx%d is larger than the video's tiles", box.w, box.h);
  fail_unless_equals_int (box.x % 16, 0);
  fail_unless_equals_int (box.w % 16, 0);
  /* the typed text is exact on the client while the video plays */
  for (int y = d.term.area.y; y < 720; y++)
    fail_unless (memcmp (&d.cl.px[(size_t) y * 1280 * 4], d.s.at (0, y), 1280 * 4) == 0, "text row %d differs", y);
  /* the video stops: everything settles, exactly */
  d.frame ({}, 91 * 33 + 1100);
  fail_unless (d.c.regions ().empty ());
  fail_unless (d.cl.equals (d.s));
}
GST_END_TEST;

GST_START_TEST (test_video_edge_through_tiles)
{
  /* a video whose bottom edge runs 2 pixels into a row of tiles (a
   * terminal's padding puts it there): that strip changes with every
   * frame but is too small to count on its own. The region covers the
   * whole video, so no part of it goes losslessly with every frame; the
   * text typed just below, in the next row of tiles, stays exact. */
  Desk d (11, {0, 392, 1280, 328});
  Rect video = {128, 130, 320, 192};          /* rows 130..321; tiles of 64 */
  for (int i = 1; i <= 60; i++) {
    d.s.noise (video, d.rng);
    std::vector<Rect> damage = {video};
    if (i % 3 == 0)
      damage.push_back (d.term.type (d.s, 'a' + i % 26));
    d.frame (damage, i * 33);
  }
  fail_unless_equals_int (d.c.regions ().size (), 1);
  const wt::Rect & box = d.c.regions ()[0].box;
  fail_unless (inside (box, video), "the region %d,%d %dx%d leaves part of the video out", box.x, box.y, box.w,
      box.h);
  fail_if (meets (box, {0, 384, 1280, 336}), "the region %d,%d %dx%d reaches the text's tiles", box.x, box.y,
      box.w, box.h);
  for (int y = d.term.area.y; y < 720; y++)
    fail_unless (memcmp (&d.cl.px[(size_t) y * 1280 * 4], d.s.at (0, y), 1280 * 4) == 0, "text row %d differs", y);
  d.frame ({}, 61 * 33 + 1100);
  fail_unless (d.cl.equals (d.s));
}
GST_END_TEST;

GST_START_TEST (test_two_videos_two_regions)
{
  /* two videos in opposite corners and text between them */
  Desk d (9, {0, 0, 1280, 720});
  Rect a = {64, 64, 256, 192}, b = {896, 448, 320, 192};
  for (int i = 1; i <= 60; i++) {
    d.s.noise (a, d.rng);
    d.s.noise (b, d.rng);
    d.frame ({a, b}, i * 33);
  }
  fail_unless_equals_int (d.c.regions ().size (), 2);
  int covered = 0;
  for (const wt::VideoRegion & r : d.c.regions ()) {
    covered += inside (r.box, a) + inside (r.box, b);
    fail_if (meets (r.box, {448, 320, 384, 64}), "a region covers the text between the videos");
  }
  fail_unless_equals_int (covered, 2);
  /* the atlas holds both, stacked */
  fail_unless_equals_int (d.c.atlas_width (), 320);
  fail_unless_equals_int (d.c.atlas_height (), 192 + 192);
  d.frame ({}, 61 * 33 + 1100);
  fail_unless (d.cl.equals (d.s));
}
GST_END_TEST;

/* A 512x256 animation at 3 frames a second; @busy: the pipeline held
 * every frame back (each took the whole gap to go through). Returns the
 * frames that went to video; @regions_after: the regions right after the
 * last frame. */
static int
slow_animation (Desk & d, bool busy, size_t *regions_after)
{
  Rect area = {128, 128, 512, 256};
  int video = 0;
  for (int i = 1; i <= 12; i++) {
    d.s.noise (area, d.rng);
    if (busy)
      d.c.pace (333 * kMs);
    video += d.frame ({area}, i * 333);
  }
  *regions_after = d.c.regions ().size ();
  return video;
}

GST_START_TEST (test_busy_pipeline_animation_is_video)
{
  /* a busy server delivers an animation at 3 frames a second: it is still
   * video, and stays so between its frames (no refinement, no region
   * ending 300 ms after each frame); once it stops, it settles */
  Desk d (13, {0, 0, 0, 0});
  size_t regions = 0;
  int video = slow_animation (d, true, &regions);
  fail_unless (video >= 6, "only %d of 12 frames went to video", video);
  fail_unless_equals_int (regions, 1);
  /* a frame of something else, 500 ms later: the animation's tiles are
   * not refined yet */
  std::vector<uint8_t> refine;
  bool layout = false;
  fail_if (d.c.settle (12 * 333 * kMs + 500 * kMs, false, refine, layout), "refined 500 ms after a frame");
  fail_unless_equals_int (d.c.regions ().size (), 1);
  /* it stopped: 4 x 300 ms later everything is exact again */
  d.frame ({}, 12 * 333 + 1300);
  fail_unless (d.c.regions ().empty () && !d.c.has_lossy ());
  fail_unless (d.cl.equals (d.s));
}
GST_END_TEST;

GST_START_TEST (test_slow_application_is_not_video)
{
  /* the same 3 frames a second from an application that draws no faster
   * (the pipeline idle between its frames): lossless, as Alt+Tab four
   * times a second is */
  Desk d (13, {0, 0, 0, 0});
  size_t regions = 0;
  fail_unless_equals_int (slow_animation (d, false, &regions), 0);
  fail_unless_equals_int (regions, 0);
  fail_unless (d.cl.equals (d.s));
}
GST_END_TEST;

/* @frames of noise over @area at 30 fps, from @t (ms, advanced). */
static void
animate (Desk & d, Rect area, int frames, uint64_t & t)
{
  for (int i = 0; i < frames; i++) {
    t += 33;
    d.s.noise (area, d.rng);
    d.frame ({area}, t);
  }
}

GST_START_TEST (test_paused_region_waits_for_region_settle)
{
  /* an animation at 30 fps that stalls for 600 ms (a busy host): its
   * region is not refined in the pause; a real stop refines all of it a
   * second later */
  Desk d (19, {0, 0, 0, 0});
  uint64_t t = 0;
  animate (d, {128, 128, 512, 256}, 24, t);
  fail_unless_equals_int (d.c.regions ().size (), 1);
  std::vector<uint8_t> refine;
  bool layout = false;
  fail_if (d.c.settle ((t + 600) * kMs, false, refine, layout), "refined in a pause of 600 ms");
  fail_unless_equals_int (d.c.regions ().size (), 1);
  fail_unless (d.c.settle ((t + 1000) * kMs, false, refine, layout), "not refined a second after it stopped");
  fail_unless (d.c.regions ().empty () && layout);
}
GST_END_TEST;

GST_START_TEST (test_stalled_video_beside_overlay_waits)
{
  /* a 512x256 video with a small overlay (128x64) that keeps changing
   * while the video behind it stalls for 600 ms (a busy host): the
   * video's tiles are not refined in the stall */
  Desk d (23, {0, 0, 0, 0});
  Rect area = {128, 128, 512, 256}, overlay = {320, 192, 128, 64};
  uint64_t t = 0;
  animate (d, area, 24, t);
  fail_unless_equals_int (d.c.regions ().size (), 1);
  size_t lossy = 0;
  for (uint8_t l : d.c.lossy ())
    lossy += l;
  for (int i = 0; i < 18; i++) {
    t += 33;
    d.s.noise (overlay, d.rng);
    d.frame ({overlay}, t);
  }
  size_t still_lossy = 0;
  for (uint8_t l : d.c.lossy ())
    still_lossy += l;
  fail_unless_equals_int (still_lossy, lossy);
  fail_unless_equals_int (d.c.regions ().size (), 1);
}
GST_END_TEST;

GST_START_TEST (test_key_unit_keeps_evidence)
{
  /* a new client (a full frame) in the middle of a video: everything goes
   * losslessly once, and the next frame is video again */
  Desk d (17, {0, 0, 0, 0});
  Rect area = {128, 128, 512, 256};
  uint64_t t = 0;
  animate (d, area, 20, t);
  fail_unless_equals_int (d.c.regions ().size (), 1);
  d.s.noise (area, d.rng);
  fail_if (step (d.c, d.cl, d.s, {}, true, t + 33), "a full frame went to video");
  fail_unless (d.c.regions ().empty ());
  fail_unless (d.cl.equals (d.s));
  d.s.noise (area, d.rng);
  fail_unless (d.frame ({area}, t + 66), "the video did not resume after the full frame");
}
GST_END_TEST;

GST_START_TEST (test_refinement_per_tile)
{
  /* a 512x256 animation whose right half stops while the left half plays
   * on: the right half's tiles come losslessly and leave the video */
  Desk d (11, {0, 0, 0, 0});
  Rect all = {128, 128, 512, 256}, left = {128, 128, 256, 256}, right = {384, 128, 256, 256};
  for (int i = 1; i <= 30; i++) {
    d.s.noise (all, d.rng);
    d.frame ({all}, i * 33);
  }
  fail_unless_equals_int (d.c.regions ().size (), 1);
  for (int i = 31; i <= 60; i++) {
    d.s.noise (left, d.rng);
    d.frame ({left}, i * 33);
  }
  /* still one region (the box keeps its size), the right half refined */
  fail_unless_equals_int (d.c.regions ().size (), 1);
  for (const wt::PasteRect & p : d.c.paste_rects ())
    fail_if (meets (p.screen, right), "the client still takes %d,%d from the video", p.screen.x, p.screen.y);
  for (int y = right.y; y < right.y + right.h; y++)
    fail_unless (memcmp (&d.cl.px[((size_t) y * 1280 + right.x) * 4], d.s.at (right.x, y), right.w * 4) == 0,
        "the settled half is not exact at row %d", y);
}
GST_END_TEST;

GST_START_TEST (test_without_video_all_lossless)
{
  Screen s (640, 480);
  Rng rng (13);
  wt::Classifier c;
  c.reset (640, 480, wt::ClassifierSettings ());
  Client cl (640, 480, 64);
  step (c, cl, s, {}, true, 0, false);
  for (int i = 1; i <= 30; i++) {
    s.noise ({0, 0, 320, 240}, rng);
    fail_if (step (c, cl, s, { {0, 0, 320, 240} }, false, i * 33, false));
    fail_unless (cl.equals (s));
  }
  fail_unless (c.regions ().empty ());
}
GST_END_TEST;

static Suite *
classifier_suite (void)
{
  Suite *s = suite_create ("classifier");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_recorded_text_never_video);
  tcase_add_test (tc, test_recorded_animation_is_video);
  tcase_add_test (tc, test_fast_typing_is_not_video);
  tcase_add_test (tc, test_video_beside_text);
  tcase_add_test (tc, test_two_videos_two_regions);
  tcase_add_test (tc, test_video_edge_through_tiles);
  tcase_add_test (tc, test_refinement_per_tile);
  tcase_add_test (tc, test_busy_pipeline_animation_is_video);
  tcase_add_test (tc, test_slow_application_is_not_video);
  tcase_add_test (tc, test_key_unit_keeps_evidence);
  tcase_add_test (tc, test_stalled_video_beside_overlay_waits);
  tcase_add_test (tc, test_paused_region_waits_for_region_settle);
  tcase_add_test (tc, test_without_video_all_lossless);
  return s;
}

GST_CHECK_MAIN (classifier);
