/* damagetiler: unchanged tiles dropped, tile-aligned damage, the video
 * pad for transient regions and the lossless refinement once they settle.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "tiletest.h"

#include <atomic>
#include <thread>

using namespace screengen;

static GstVideoRectangle
roi_of (GstBuffer * buf, const char *type)
{
  GstVideoRectangle r = {-1, -1, 0, 0};
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    auto *roi = (GstVideoRegionOfInterestMeta *) meta;
    if (roi->roi_type == g_quark_from_string (type)) {
      r = {(gint) roi->x, (gint) roi->y, (gint) roi->w, (gint) roi->h};
      break;
    }
  }
  return r;
}

GST_START_TEST (test_tiler_drops_unchanged)
{
  GstHarness *h = gst_harness_new_with_padnames ("damagetiler", "sink", "tiles");
  gst_harness_set_src_caps_str (h, bgrx_caps (300, 200).c_str ());
  Screen s (300, 200);
  s.fill ({0, 0, 300, 200}, bgrx (1, 2, 3));

  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  GstBuffer *out = gst_harness_pull (h);
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless (dm);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 300 * 200);
  fail_unless (buffer_equals (out, s));
  gst_buffer_unref (out);

  /* over-reported damage, nothing changed: no output at all */
  gst_harness_push (h, frame_buffer (s, {{0, 0, 300, 200}}, false, GST_SECOND));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);

  /* a 3-pixel change inside a large damage rectangle: one 64x64 tile */
  s.fill ({130, 70, 3, 1}, bgrx (200, 0, 0));
  gst_harness_push (h, frame_buffer (s, {{0, 0, 300, 200}}, false, 2 * GST_SECOND));
  out = gst_harness_pull (h);
  dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_int (dm->n_rects, 1);
  fail_unless_equals_int (dm->rects[0].x, 128);
  fail_unless_equals_int (dm->rects[0].y, 64);
  fail_unless_equals_int (dm->rects[0].w, 64);
  fail_unless_equals_int (dm->rects[0].h, 64);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 2 * GST_SECOND);
  gst_buffer_unref (out);

  /* edge tiles are clipped to the frame */
  s.fill ({299, 199, 1, 1}, bgrx (0, 0, 9));
  gst_harness_push (h, frame_buffer (s, {{299, 199, 1, 1}}, false, 3 * GST_SECOND));
  out = gst_harness_pull (h);
  dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_int (dm->rects[0].x, 256);
  fail_unless_equals_int (dm->rects[0].w, 44);
  fail_unless_equals_int (dm->rects[0].h, 8);
  gst_buffer_unref (out);

  GstStructure *stats;
  g_object_get (h->element, "stats", &stats, NULL);
  guint64 dropped = 0;
  gst_structure_get_uint64 (stats, "tiles-dropped", &dropped);
  fail_unless (dropped >= 20);
  gst_structure_free (stats);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_tiler_video_region)
{
  GstHarness *h = gst_harness_new_with_padnames ("damagetiler", "sink", "tiles");
  /* long enough that the wall-clock settle timer never fires during the
   * test, even on a loaded machine: settling is driven by timestamps */
  g_object_set (h->element, "settle-time", 2000, NULL);
  GstHarness *v = gst_harness_new_with_element (h->element, NULL, "video");
  gst_harness_set_src_caps_str (h, bgrx_caps (640, 480).c_str ());
  Screen s (640, 480);
  Rng rng (1);
  s.fill ({0, 0, 640, 480}, bgrx (20, 20, 20));
  GstClockTime t = 0;
  gst_harness_push (h, frame_buffer (s, {}, true, t));
  gst_buffer_unref (gst_harness_pull (h));

  /* a 200x150 animation at 100..300 x 100..250, 30 fps */
  Rect anim = {100, 100, 200, 150};
  int video_frames = 0;
  for (int i = 0; i < 30; i++) {
    t += GST_SECOND / 30;
    s.noise (anim, rng);
    gst_harness_push (h, frame_buffer (s, {anim}, false, t));
    while (GstBuffer * b = gst_harness_try_pull (v)) {
      video_frames++;
      GstVideoRectangle r = roi_of (b, "wayray-video");
      /* tile-aligned box of the animated tiles: 64..320 x 64..256 */
      fail_unless_equals_int (r.x, 64);
      fail_unless_equals_int (r.y, 64);
      fail_unless_equals_int (r.w, 256);
      fail_unless_equals_int (r.h, 192);
      fail_unless_equals_int (gst_buffer_get_size (b), 256 * 192 * 4);
      GstMapInfo map;
      gst_buffer_map (b, &map, GST_MAP_READ);
      fail_unless (memcmp (map.data + ((size_t) (100 - 64) * 256 + (100 - 64)) * 4,
              s.at (100, 100), 200 * 4) == 0);
      gst_buffer_unmap (b, &map);
      gst_buffer_unref (b);
    }
    /* while the video runs, tile buffers carry the lossy region */
    while (GstBuffer * b = gst_harness_try_pull (h)) {
      if (video_frames > 0) {
        GstVideoRectangle l = roi_of (b, "wayray-lossy");
        fail_unless (l.w > 0);
      }
      gst_buffer_unref (b);
    }
  }
  fail_unless (video_frames >= 20, "only %d video frames", video_frames);
  GstCaps *caps = gst_pad_get_current_caps (v->sinkpad);
  GstVideoInfo info;
  gst_video_info_from_caps (&info, caps);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), 256);
  gst_caps_unref (caps);
  /* the video pad's fixed caps (the atlas) do not pin the screen's size:
   * a client with another screen can still be negotiated */
  GstPad *sink = gst_element_get_static_pad (h->element, "sink");
  GstCaps *other = gst_caps_from_string (bgrx_caps (800, 600).c_str ());
  fail_unless (gst_pad_query_accept_caps (sink, other));
  GstCaps *allowed = gst_pad_query_caps (sink, other);
  fail_unless (!gst_caps_is_empty (allowed));
  gst_caps_unref (allowed);
  gst_caps_unref (other);
  gst_object_unref (sink);

  /* a typed character elsewhere stays lossless */
  s.fill ({500, 400, 8, 16}, bgrx (255, 255, 255));
  t += GST_SECOND / 30;
  gst_harness_push (h, frame_buffer (s, {{500, 400, 8, 16}}, false, t));
  GstBuffer *b = gst_harness_pull (h);
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (b);
  fail_unless_equals_int (dm->n_rects, 1);
  fail_unless_equals_int (dm->rects[0].x, 448);
  gst_buffer_unref (b);
  fail_unless_equals_int (gst_harness_buffers_in_queue (v), 0);

  /* the animation stopped: after settle-time its tiles come losslessly */
  t += 2100 * GST_MSECOND;
  s.fill ({600, 0, 8, 16}, bgrx (255, 255, 255));
  gst_harness_push (h, frame_buffer (s, {{600, 0, 8, 16}}, false, t));
  gst_buffer_unref (gst_harness_pull (h));      /* the change at 600,0 */
  b = gst_harness_pull (h);                     /* the refinement */
  dm = gst_buffer_get_wayray_damage_meta (b);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 256 * 192);
  GstVideoRectangle l = roi_of (b, "wayray-lossy");
  fail_unless_equals_int (l.x, 64);
  fail_unless (buffer_equals (b, s));
  gst_buffer_unref (b);

  GstStructure *stats;
  g_object_get (h->element, "stats", &stats, NULL);
  guint64 refinements = 0;
  gst_structure_get_uint64 (stats, "refinements", &refinements);
  fail_unless_equals_uint64 (refinements, 1);
  gst_structure_free (stats);

  gst_harness_teardown (v);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_tiler_refines_when_idle)
{
  /* the source goes quiet after an animation (nothing changes, so no
   * frames come): the timer still sends the region losslessly */
  GstHarness *h = gst_harness_new_with_padnames ("damagetiler", "sink", "tiles");
  g_object_set (h->element, "settle-time", 100, NULL);
  GstHarness *v = gst_harness_new_with_element (h->element, NULL, "video");
  gst_harness_set_src_caps_str (h, bgrx_caps (320, 240).c_str ());
  Screen s (320, 240);
  Rng rng (3);
  GstClockTime t = 0;
  gst_harness_push (h, frame_buffer (s, {}, true, t));
  Rect anim = {0, 0, 256, 192};
  for (int i = 0; i < 10; i++) {
    t += GST_SECOND / 30;
    s.noise (anim, rng);
    gst_harness_push (h, frame_buffer (s, {anim}, false, t));
  }
  fail_unless (gst_harness_buffers_in_queue (v) > 0);
  while (GstBuffer * b = gst_harness_try_pull (h))
    gst_buffer_unref (b);
  /* wait (real time) for the refinement */
  GstBuffer *b = NULL;
  for (int i = 0; i < 100 && !b; i++) {
    g_usleep (20 * 1000);
    b = gst_harness_try_pull (h);
  }
  fail_unless (b != NULL, "no refinement while idle");
  fail_unless (buffer_equals (b, s));
  fail_unless (roi_of (b, "wayray-lossy").w > 0);
  fail_unless (GST_BUFFER_PTS (b) >= t);
  gst_buffer_unref (b);
  /* and only once */
  g_usleep (300 * 1000);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_harness_teardown (v);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_tiler_scroll_is_not_video)
{
  GstHarness *h = gst_harness_new_with_padnames ("damagetiler", "sink", "tiles");
  GstHarness *v = gst_harness_new_with_element (h->element, NULL, "video");
  gst_harness_set_src_caps_str (h, bgrx_caps (640, 480).c_str ());
  Screen s (640, 480);
  Rng rng (2);
  s.fill ({0, 0, 640, 480}, bgrx (0, 0, 0));
  Terminal term;
  term.area = {0, 0, 640, 480};
  term.fill_text (s, rng);
  GstClockTime t = 0;
  gst_harness_push (h, frame_buffer (s, {}, true, t));
  for (int i = 0; i < 40; i++) {
    Rect d = term.scroll (s, 1, rng);
    t += GST_SECOND / 60;
    gst_harness_push (h, frame_buffer (s, {d}, false, t));
  }
  /* fast scrolling is a copy for the tile encoder, never video */
  fail_unless_equals_int (gst_harness_buffers_in_queue (v), 0);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 41);
  /* and each scrolled frame tells the encoder the move the classifier
   * found: one line up (what was one line lower is here now) */
  gst_buffer_unref (gst_harness_pull (h));
  for (int i = 0; i < 40; i++) {
    GstBuffer *b = gst_harness_pull (h);
    GstVideoRectangle dst = roi_of (b, "wayray-move");
    fail_unless (dst.w > 0, "frame %d has no move", i);
    GstVideoRegionOfInterestMeta *m = NULL;
    gpointer state = NULL;
    while (GstMeta * meta = gst_buffer_iterate_meta_filtered (b, &state,
            GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
      if (((GstVideoRegionOfInterestMeta *) meta)->roi_type == g_quark_from_string ("wayray-move"))
        m = (GstVideoRegionOfInterestMeta *) meta;
    GstStructure *from = gst_video_region_of_interest_meta_get_param (m, "wayray-move-from");
    int x = -1, y = -1;
    fail_unless (from && gst_structure_get_int (from, "x", &x) && gst_structure_get_int (from, "y", &y));
    fail_unless_equals_int (x, dst.x);
    fail_unless_equals_int (y - dst.y, kCellH);
    gst_buffer_unref (b);
  }
  gst_harness_teardown (v);
  gst_harness_teardown (h);
}
GST_END_TEST;

/* A push that blocks (a congested link downstream) holds no lock the
 * statistics or the settings need: the worker reads them every 2 s and the
 * daemon sets video-enabled when a client attaches. */
GST_START_TEST (test_tiler_blocked_push_leaves_properties_free)
{
  GstHarness *h = gst_harness_new_with_padnames ("damagetiler", "sink", "tiles");
  gst_harness_set_src_caps_str (h, bgrx_caps (320, 240).c_str ());
  gst_harness_set_blocking_push_mode (h);
  Screen s (320, 240);
  s.fill ({0, 0, 320, 240}, bgrx (9, 9, 9));
  GstBuffer *frame = frame_buffer (s, {}, true, 0);
  /* The push blocks in the harness until the frame is pulled. */
  std::thread pusher ([h, frame] { gst_harness_push (h, frame); });
  g_usleep (200 * 1000);
  std::atomic<bool> done { false };
  std::thread reader ([h, &done] {
    GstStructure *st = nullptr;
    g_object_get (h->element, "stats", &st, NULL);
    gst_structure_free (st);
    g_object_set (h->element, "video-enabled", FALSE, NULL);
    done = true;
  });
  for (int i = 0; i < 100 && !done; i++)
    g_usleep (20 * 1000);
  bool free_while_blocked = done;
  GstBuffer *out = gst_harness_pull (h);      /* unblocks the push */
  gst_buffer_unref (out);
  reader.join ();
  pusher.join ();
  fail_unless (free_while_blocked, "the statistics waited for a blocked push");
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_tiler_force_key_unit)
{
  GstHarness *h = gst_harness_new_with_padnames ("damagetiler", "sink", "tiles");
  gst_harness_set_src_caps_str (h, bgrx_caps (128, 128).c_str ());
  Screen s (128, 128);
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless (gst_harness_push_upstream_event (h,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1)));
  /* the next frame is sent whole even though its damage is empty */
  gst_harness_push (h, frame_buffer (s, {}, false, GST_SECOND));
  GstBuffer *b = gst_harness_pull (h);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (gst_buffer_get_wayray_damage_meta
          (b)), 128 * 128);
  gst_buffer_unref (b);
  gst_harness_teardown (h);
}
GST_END_TEST;

static Suite *
damagetiler_suite (void)
{
  Suite *s = suite_create ("damagetiler");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_tiler_drops_unchanged);
  tcase_add_test (tc, test_tiler_video_region);
  tcase_add_test (tc, test_tiler_refines_when_idle);
  tcase_add_test (tc, test_tiler_scroll_is_not_video);
  tcase_add_test (tc, test_tiler_force_key_unit);
  tcase_add_test (tc, test_tiler_blocked_push_leaves_properties_free);
  return s;
}

GST_CHECK_MAIN (damagetiler);
