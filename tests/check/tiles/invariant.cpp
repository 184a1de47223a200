/* The invariant of the lossless path: after every frame the client's
 * picture (wayraycompositor's output) equals the server's frame, pixel for
 * pixel, over thousands of random frames: typing, scrolls, repeated
 * content, solid areas, noise, picture switches, cache eviction, resets,
 * and the video path for animated regions with its refinement.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "tiletest.h"

#include <cmath>

using namespace screengen;

static guint64
stat_of (GstHarness * h, const char *factory, const char *field)
{
  GstElement *e = gst_harness_find_element (h, factory);
  GstStructure *st = NULL;
  g_object_get (e, "stats", &st, NULL);
  guint64 v = 0;
  fail_unless (gst_structure_get_uint64 (st, field, &v), "no %s in %s", field, factory);
  gst_structure_free (st);
  gst_object_unref (e);
  return v;
}

static void
run_invariant (const char *launch, int W, int H, uint64_t seed, int frames, bool with_fku,
    bool expect_video = false)
{
  GstHarness *h = gst_harness_new_parse (launch);
  gst_harness_set_src_caps_str (h, bgrx_caps (W, H).c_str ());
  RandomDesktop desk (W, H, seed);
  desk.bursts = expect_video;
  GstBuffer *last = NULL;
  GstClockTime t = 0;
  int outputs = 0;
  for (int i = 0; i < frames; i++) {
    std::vector<Rect> damage = desk.step ();
    if (with_fku && desk.rng.chance (1))
      gst_harness_push_upstream_event (h,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1));
    t += GST_SECOND / 30;
    fail_unless_equals_int (gst_harness_push (h, frame_buffer (desk.screen, damage, i == 0, t)),
        GST_FLOW_OK);
    while (GstBuffer * b = gst_harness_try_pull (h)) {
      if (last)
        gst_buffer_unref (last);
      last = b;
      outputs++;
    }
    fail_unless (last != NULL);
    if (!buffer_equals (last, desk.screen))
      fail ("%s: seed %" G_GUINT64_FORMAT ", frame %d (change %d): client differs", launch,
          seed, i, desk.what);
  }
  /* idle frames produce nothing, so there are fewer outputs than frames */
  fail_unless (outputs > frames / 2);
  gst_buffer_unref (last);
  /* the runs exercise what they claim to */
  for (const char *name : {"damagetiler", "wayraytileenc", "wayraycompositor"}) {
    GstElement *e = gst_harness_find_element (h, name);
    GstStructure *st = NULL;
    g_object_get (e, "stats", &st, NULL);
    gchar *str = gst_structure_to_string (st);
    GST_INFO ("%s", str);
    g_free (str);
    gst_structure_free (st);
    gst_object_unref (e);
  }
  fail_unless (stat_of (h, "wayraytileenc", "cache-ref") > 5);
  fail_unless (stat_of (h, "wayraytileenc", "copy") > 20);
  fail_unless (stat_of (h, "wayraytileenc", "palette") + stat_of (h, "wayraytileenc",
          "delta-zstd") + stat_of (h, "wayraytileenc", "delta-lz4") > 20);
  fail_unless (stat_of (h, "damagetiler", "tiles-dropped") > 100);
  if (expect_video) {
    GST_INFO ("video frames %" G_GUINT64_FORMAT ", refinements %" G_GUINT64_FORMAT,
        stat_of (h, "damagetiler", "frames-video"), stat_of (h, "damagetiler", "refinements"));
    fail_unless (stat_of (h, "damagetiler", "frames-video") > 50);
    fail_unless (stat_of (h, "damagetiler", "refinements") > 5);
    fail_unless (stat_of (h, "wayraycompositor", "video-updates") > 50);
  }
  while (GstEvent * ev = gst_harness_try_pull_upstream_event (h))
    gst_event_unref (ev);
  gst_harness_teardown (h);
}

GST_START_TEST (test_invariant_lossless)
{
  run_invariant ("damagetiler ! wayraytileenc cache-size=48 ! wayraytiledec ! wayraycompositor",
      320, 240, 11, 2500, true);
}
GST_END_TEST;

GST_START_TEST (test_invariant_small_tiles_lz4)
{
  run_invariant ("damagetiler tile-size=32 ! wayraytileenc tile-size=32 cache-size=8 "
      "compression=lz4 threads=2 ! wayraytiledec ! wayraycompositor", 250, 170, 12, 1500, true);
}
GST_END_TEST;

GST_START_TEST (test_invariant_with_video_path)
{
  /* The video pad linked straight to the compositor (raw crops are exact):
   * the split into tiles and video regions, the lossy marking and the
   * refinement must still give the exact picture after every frame. */
  run_invariant ("damagetiler name=t settle-time=200 region-settle-time=200 ! "
      "wayraytileenc cache-size=64 ! wayraytiledec ! wayraycompositor name=c "
      "t.video ! c.video", 320, 240, 13, 2500, false, true);
}
GST_END_TEST;

static double
mean_abs_error (GstBuffer * buf, const Screen & s, const Rect & r)
{
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_READ);
  double sum = 0;
  for (int y = r.y; y < r.y + r.h; y++)
    for (int x = r.x; x < r.x + r.w; x++)
      for (int c = 0; c < 3; c++)
        sum += std::abs ((int) map.data[((size_t) y * s.w + x) * 4 + c] -
            (int) s.px[((size_t) y * s.w + x) * 4 + c]);
  gst_buffer_unmap (buf, &map);
  return sum / (r.w * r.h * 3.0);
}

GST_START_TEST (test_video_path_with_h264)
{
  /* The transient region through a real H.264 encoder and decoder (which
   * drop the position meta): placed right while it animates, and exact
   * again once it settled. */
  GstElement *probe_enc = gst_element_factory_make ("x264enc", NULL);
  GstElement *probe_dec = gst_element_factory_make ("avdec_h264", NULL);
  bool have = probe_enc && probe_dec;
  if (probe_enc)
    gst_object_unref (probe_enc);
  if (probe_dec)
    gst_object_unref (probe_dec);
  if (!have) {
    GST_WARNING ("x264enc or avdec_h264 missing: skipped");
    return;
  }
  const int W = 640, H = 480;
  GstHarness *h = gst_harness_new_parse ("damagetiler name=t settle-time=200 ! "
      "wayraytileenc ! wayraytiledec ! wayraycompositor name=c "
      "t.video ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast "
      "key-int-max=30 ! avdec_h264 max-threads=1 ! videoconvert ! "
      "video/x-raw,format=BGRx ! c.video");
  gst_harness_set_src_caps_str (h, bgrx_caps (W, H).c_str ());
  Screen s (W, H);
  Rng rng (5);
  s.fill ({0, 0, W, H}, bgrx (30, 30, 60));
  Terminal term;
  term.area = {0, 0, 320, 480};
  term.fill_text (s, rng);
  GstClockTime t = 0;
  gst_harness_push (h, frame_buffer (s, {}, true, t));
  GstBuffer *last = NULL;
  auto drain = [&] () {
    while (GstBuffer * b = gst_harness_try_pull (h)) {
      if (last)
        gst_buffer_unref (last);
      last = b;
    }
  };
  drain ();
  /* an animation at 400..592 x 160..352 */
  Rect anim = {400, 160, 192, 192};
  double worst = 0;
  for (int i = 0; i < 40; i++) {
    t += GST_SECOND / 30;
    for (int y = 0; y < anim.h; y++)
      for (int x = 0; x < anim.w; x++) {
        /* 32-pixel squares whose colours change: not a move */
        bool odd = ((x / 32) + (y / 32)) & 1;
        uint32_t c = odd ? bgrx (200, 50 + 4 * i, 60) : bgrx (40, 60, 220 - 4 * i);
        memcpy (s.at (anim.x + x, anim.y + y), &c, 4);
      }
    gst_harness_push (h, frame_buffer (s, {anim}, false, t));
    drain ();
    if (i >= 10)
      worst = std::max (worst, mean_abs_error (last, s, anim));
  }
  fail_unless (stat_of (h, "damagetiler", "frames-video") >= 30);
  fail_unless (stat_of (h, "wayraycompositor", "video-updates") >= 25);
  /* lossy but in the right place: a misplaced region would be far off */
  fail_unless (worst < 12.0, "video region error %.1f", worst);
  /* it settles: a typed character a second later (region-settle-time),
   * the region comes back exact */
  t += 1100 * GST_MSECOND;
  Rect d = term.type (s, 'x');
  gst_harness_push (h, frame_buffer (s, {d}, false, t));
  drain ();
  fail_unless (buffer_equals (last, s), "not exact after the region settled");
  gst_buffer_unref (last);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_invariant_resize)
{
  /* the session is resized (hot-desking to another screen): new caps
   * mid-stream, and the picture must follow exactly */
  GstHarness *h = gst_harness_new_parse ("damagetiler ! wayraytileenc ! wayraytiledec ! "
      "wayraycompositor");
  GstClockTime t = 0;
  GstBuffer *last = NULL;
  const int sizes[][2] = { {320, 240}, {200, 150}, {333, 177} };
  for (int k = 0; k < 3; k++) {
    const int W = sizes[k][0], H = sizes[k][1];
    gst_harness_set_src_caps_str (h, bgrx_caps (W, H).c_str ());
    RandomDesktop desk (W, H, 40 + k);
    for (int i = 0; i < 200; i++) {
      std::vector<Rect> damage = desk.step ();
      t += GST_SECOND / 30;
      fail_unless_equals_int (gst_harness_push (h, frame_buffer (desk.screen, damage, i == 0,
                  t)), GST_FLOW_OK);
      while (GstBuffer * b = gst_harness_try_pull (h)) {
        if (last)
          gst_buffer_unref (last);
        last = b;
      }
      if (!buffer_equals (last, desk.screen))
        fail ("size %dx%d, frame %d (change %d): client differs", W, H, i, desk.what);
    }
  }
  gst_buffer_unref (last);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_invariant_through_queues)
{
  /* As a client runs it: queues (threads) between the elements, so
   * buffers are still held downstream while the next ones are made. Every
   * output must show the server frame of its timestamp. */
  const int W = 160, H = 120, N = 400;
  GstHarness *h = gst_harness_new_parse ("damagetiler ! queue ! wayraytileenc cache-size=32 ! "
      "queue ! wayraytiledec ! queue max-size-buffers=3 ! wayraycompositor");
  gst_harness_set_src_caps_str (h, bgrx_caps (W, H).c_str ());
  RandomDesktop desk (W, H, 77);
  std::vector<Screen> sent;
  GstClockTime t = 0;
  for (int i = 0; i < N; i++) {
    std::vector<Rect> damage = desk.step ();
    t += GST_SECOND / 30;
    fail_unless_equals_int (gst_harness_push (h, frame_buffer (desk.screen, damage, i == 0, t)),
        GST_FLOW_OK);
    sent.push_back (desk.screen);
  }
  int outputs = 0;
  gint64 quiet_since = g_get_monotonic_time ();
  for (;;) {
    GstBuffer *b = gst_harness_try_pull (h);
    if (!b) {
      if (g_get_monotonic_time () - quiet_since > 3 * G_USEC_PER_SEC)
        break;                  /* everything is through */
      g_usleep (1000);
      continue;
    }
    quiet_since = g_get_monotonic_time ();
    int i = (int) (GST_BUFFER_PTS (b) / (GST_SECOND / 30)) - 1;
    fail_unless (i >= 0 && i < N);
    /* the output of frame i shows frame i */
    fail_unless (buffer_equals (b, sent[i]), "output for frame %d differs", i);
    gst_buffer_unref (b);
    outputs++;
  }
  fail_unless (outputs > N / 2, "only %d outputs", outputs);
  gst_harness_teardown (h);
}
GST_END_TEST;

static Suite *
invariant_suite (void)
{
  Suite *s = suite_create ("tiles-invariant");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_invariant_lossless);
  tcase_add_test (tc, test_invariant_small_tiles_lz4);
  tcase_add_test (tc, test_invariant_with_video_path);
  tcase_add_test (tc, test_video_path_with_h264);
  tcase_add_test (tc, test_invariant_resize);
  tcase_add_test (tc, test_invariant_through_queues);
  return s;
}

GST_CHECK_MAIN (invariant);
