/* wayraycompositor: tile updates, output only on change, the cursor,
 * video regions and their order against lossless updates, navigation.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "tiletest.h"

#include "gstwayraycursor.h"

#include <gst/video/navigation.h>

using namespace screengen;

static GstHarness *
new_compositor (int w, int h)
{
  GstHarness *hh = gst_harness_new_with_padnames ("wayraycompositor", "tiles", "src");
  gst_harness_set_src_caps_str (hh, bgrx_caps (w, h).c_str ());
  return hh;
}

static uint32_t
px (GstBuffer * buf, int w, int x, int y)
{
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_READ);
  uint32_t v;
  memcpy (&v, map.data + ((size_t) y * w + x) * 4, 4);
  gst_buffer_unmap (buf, &map);
  return v;
}

GST_START_TEST (test_comp_tiles)
{
  GstHarness *h = new_compositor (100, 50);
  Screen s (100, 50);
  s.fill ({0, 0, 100, 50}, bgrx (5, 5, 5));
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  GstBuffer *out = gst_harness_pull (h);
  fail_unless (buffer_equals (out, s));
  gst_buffer_unref (out);

  /* only the damaged rectangle is taken from the input */
  Screen in = s;
  in.fill ({0, 0, 100, 50}, bgrx (9, 9, 9));
  s.fill ({10, 10, 20, 5}, bgrx (9, 9, 9));
  gst_harness_push (h, frame_buffer (in, {{10, 10, 20, 5}}, false, GST_SECOND));
  out = gst_harness_pull (h);
  fail_unless (buffer_equals (out, s));
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_int (dm->n_rects, 1);
  fail_unless_equals_int (dm->rects[0].w, 20);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), GST_SECOND);
  Screen shown = s;

  /* outputs the sink still holds never change, however many follow */
  std::vector<GstBuffer *> held;
  std::vector<Screen> expect;
  for (int i = 0; i < 5; i++) {
    in.fill ({i * 10, 20, 10, 10}, bgrx (50 * i, 0, 0));
    s.fill ({i * 10, 20, 10, 10}, bgrx (50 * i, 0, 0));
    gst_harness_push (h, frame_buffer (in, {{i * 10, 20, 10, 10}}, false,
            (10 + i) * GST_SECOND));
    held.push_back (gst_harness_pull (h));
    expect.push_back (s);
  }
  for (size_t i = 0; i < held.size (); i++) {
    fail_unless (buffer_equals (held[i], expect[i]), "held output %u changed", (guint) i);
    gst_buffer_unref (held[i]);
  }

  /* nothing damaged: nothing out */
  gst_harness_push (h, frame_buffer (in, {}, false, 2 * GST_SECOND));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  /* the held output frame never changes */
  gst_harness_push (h, frame_buffer (in, {{0, 0, 5, 5}}, false, 3 * GST_SECOND));
  GstBuffer *out2 = gst_harness_pull (h);
  s.fill ({0, 0, 5, 5}, bgrx (9, 9, 9));
  fail_unless (buffer_equals (out, shown));
  fail_unless (buffer_equals (out2, s));
  gst_buffer_unref (out);
  gst_buffer_unref (out2);
  gst_harness_teardown (h);
}
GST_END_TEST;

static GstEvent *
cursor_event (int x, int y, guint serial, bool with_image)
{
  GstWayrayCursor c = {};
  c.visible = TRUE;
  c.x = x;
  c.y = y;
  c.serial = serial;
  c.hotspot_x = 1;
  c.hotspot_y = 1;
  c.width = 4;
  c.height = 4;
  if (with_image) {
    /* premultiplied: opaque red top half, 50% white bottom half */
    std::vector<uint8_t> img (4 * 4 * 4);
    for (int i = 0; i < 16; i++) {
      uint8_t *p = &img[i * 4];
      if (i < 8) {
        p[0] = 0;
        p[1] = 0;
        p[2] = 255;
        p[3] = 255;
      } else {
        p[0] = p[1] = p[2] = 128;
        p[3] = 128;
      }
    }
    c.image = gst_buffer_new_memdup (img.data (), img.size ());
  }
  GstEvent *ev = gst_wayray_cursor_event_new (&c);
  if (c.image)
    gst_buffer_unref (c.image);
  return ev;
}

GST_START_TEST (test_comp_cursor)
{
  GstHarness *h = new_compositor (64, 64);
  Screen s (64, 64);
  s.fill ({0, 0, 64, 64}, bgrx (0, 0, 0));
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  gst_buffer_unref (gst_harness_pull (h));

  fail_unless (gst_harness_push_event (h, cursor_event (10, 10, 1, true)));
  GstBuffer *out = gst_harness_pull (h);
  /* image origin = position - hotspot = (9, 9) */
  fail_unless_equals_int (px (out, 64, 9, 9) & 0xffffff, 0xff0000);
  fail_unless_equals_int (px (out, 64, 12, 10) & 0xffffff, 0xff0000);
  fail_unless_equals_int (px (out, 64, 9, 11) & 0xffffff, 0x808080);
  fail_unless_equals_int (px (out, 64, 8, 8) & 0xffffff, 0);
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_int (dm->n_rects, 1);
  fail_unless_equals_int (dm->rects[0].x, 9);
  fail_unless_equals_int (dm->rects[0].w, 4);
  gst_buffer_unref (out);

  /* position update, same image: old place restored, new place drawn */
  fail_unless (gst_harness_push_event (h, cursor_event (30, 40, 1, false)));
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 64, 9, 9) & 0xffffff, 0);
  fail_unless_equals_int (px (out, 64, 29, 39) & 0xffffff, 0xff0000);
  dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 32);
  gst_buffer_unref (out);

  /* a one-pixel move: old and new rectangles overlap, and the cursor is
   * still blended exactly once */
  fail_unless (gst_harness_push_event (h, cursor_event (30, 41, 1, false)));
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 64, 29, 42) & 0xffffff, 0x808080);   /* 50% white row */
  fail_unless_equals_int (px (out, 64, 29, 41) & 0xffffff, 0xff0000);
  fail_unless_equals_int (px (out, 64, 29, 39) & 0xffffff, 0);  /* uncovered */
  gst_buffer_unref (out);
  fail_unless (gst_harness_push_event (h, cursor_event (30, 40, 1, false)));
  gst_buffer_unref (gst_harness_pull (h));

  /* the cursor is drawn over tile updates beneath it */
  s.fill ({0, 0, 64, 64}, bgrx (0, 0, 255));
  gst_harness_push (h, frame_buffer (s, {{0, 0, 64, 64}}, false, GST_SECOND));
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 64, 29, 39) & 0xffffff, 0xff0000);
  fail_unless_equals_int (px (out, 64, 29, 41) & 0xffffff, 0x8080ff);   /* 50% white over blue */
  gst_buffer_unref (out);

  /* draw-cursor=false: the frame shows the session only */
  g_object_set (h->element, "draw-cursor", FALSE, NULL);
  gst_harness_push (h, frame_buffer (s, {{0, 0, 64, 64}}, false, 2 * GST_SECOND));
  out = gst_harness_pull (h);
  fail_unless (buffer_equals (out, s));
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_comp_navigation_upstream)
{
  GstHarness *h = new_compositor (64, 64);
  Screen s (64, 64);
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  gst_buffer_unref (gst_harness_pull (h));
  GstEvent *nav = gst_navigation_event_new_mouse_button_press (1, 12.0, 34.0,
      GST_NAVIGATION_MODIFIER_NONE);
  fail_unless (gst_harness_push_upstream_event (h, nav));
  GstEvent *got = NULL, *ev;
  while ((ev = gst_harness_try_pull_upstream_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_NAVIGATION && !got)
      got = ev;
    else
      gst_event_unref (ev);
  }
  fail_unless (got != NULL);
  gdouble x, y;
  gint button;
  fail_unless (gst_navigation_event_parse_mouse_button_event (got, &button, &x, &y));
  fail_unless_equals_int (button, 1);
  fail_unless_equals_float (x, 12.0);
  gst_event_unref (got);
  gst_harness_teardown (h);
}
GST_END_TEST;

static GstBuffer *
video_buffer (int x, int y, int w, int h, uint32_t colour, GstClockTime pts)
{
  Screen v (w, h);
  v.fill ({0, 0, w, h}, colour);
  GstBuffer *b = gst_buffer_new_memdup (v.px.data (), v.px.size ());
  gst_buffer_add_video_region_of_interest_meta (b, "wayray-video", x, y, w, h);
  GST_BUFFER_PTS (b) = pts;
  return b;
}

GST_START_TEST (test_comp_video)
{
  GstHarness *h = new_compositor (128, 64);
  GstHarness *v = gst_harness_new_with_element (h->element, "video", NULL);
  gst_harness_set_src_caps_str (v, bgrx_caps (32, 32).c_str ());
  Screen s (128, 64);
  s.fill ({0, 0, 128, 64}, bgrx (0, 0, 0));
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  gst_buffer_unref (gst_harness_pull (h));

  /* a video region at 32,16 */
  fail_unless_equals_int (gst_harness_push (v, video_buffer (32, 16, 32, 32, bgrx (0, 255, 0),
              GST_SECOND)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 32, 16) & 0xffffff, 0x00ff00);
  fail_unless_equals_int (px (out, 128, 63, 47) & 0xffffff, 0x00ff00);
  fail_unless_equals_int (px (out, 128, 64, 47) & 0xffffff, 0);
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 32 * 32);
  gst_buffer_unref (out);

  /* the lossless refinement at 2 s covers the left half of the region */
  s.fill ({32, 16, 16, 32}, bgrx (255, 255, 255));
  gst_harness_push (h, frame_buffer (s, {{32, 16, 16, 32}}, false, 2 * GST_SECOND));
  gst_buffer_unref (gst_harness_pull (h));
  /* a late video frame (1.5 s) must not undo it, only fill the rest */
  gst_harness_push (v, video_buffer (32, 16, 32, 32, bgrx (0, 0, 255), 1500 * GST_MSECOND));
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 32, 16) & 0xffffff, 0xffffff);
  fail_unless_equals_int (px (out, 128, 50, 16) & 0xffffff, 0x0000ff);
  gst_buffer_unref (out);
  /* a newer one paints everything again */
  gst_harness_push (v, video_buffer (32, 16, 32, 32, bgrx (255, 0, 0), 3 * GST_SECOND));
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 32, 16) & 0xffffff, 0xff0000);
  gst_buffer_unref (out);

  /* without the meta (an encoder dropped it) the region event places it */
  fail_unless (gst_harness_push_event (v, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
              gst_structure_new ("wayray-video-region", "x", G_TYPE_INT, 96, "y", G_TYPE_INT,
                  32, "width", G_TYPE_INT, 32, "height", G_TYPE_INT, 32, NULL))));
  Screen plain (32, 32);
  plain.fill ({0, 0, 32, 32}, bgrx (1, 2, 3));
  GstBuffer *vb = gst_buffer_new_memdup (plain.px.data (), plain.px.size ());
  GST_BUFFER_PTS (vb) = 4 * GST_SECOND;
  gst_harness_push (v, vb);
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 96, 32) & 0xffffff, 0x010203);
  fail_unless_equals_int (px (out, 128, 127, 63) & 0xffffff, 0x010203);
  fail_unless_equals_int (px (out, 128, 95, 32) & 0xffffff, 0);
  gst_buffer_unref (out);

  gst_harness_teardown (v);
  gst_harness_teardown (h);
}
GST_END_TEST;

static GstEvent *
rects_event (std::initializer_list<int> v)
{
  GValue arr = G_VALUE_INIT, e = G_VALUE_INIT;
  gst_value_array_init (&arr, v.size ());
  g_value_init (&e, G_TYPE_INT);
  for (int n : v) {
    g_value_set_int (&e, n);
    gst_value_array_append_value (&arr, &e);
  }
  g_value_unset (&e);
  GstStructure *st = gst_structure_new_empty ("wayray-video-region");
  gst_structure_take_value (st, "rects", &arr);
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM, st);
}

GST_START_TEST (test_comp_video_atlas)
{
  /* an atlas of two regions (32x16 over 16x16): the top goes to 0,0, the
   * bottom to 96,48; and only the rectangles named, as the event and
   * as metas say */
  GstHarness *h = new_compositor (128, 64);
  GstHarness *v = gst_harness_new_with_element (h->element, "video", NULL);
  gst_harness_set_src_caps_str (v, bgrx_caps (32, 32).c_str ());
  Screen s (128, 64);
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  gst_buffer_unref (gst_harness_pull (h));
  Screen atlas (32, 32);
  atlas.fill ({0, 0, 32, 16}, bgrx (0, 255, 0));
  atlas.fill ({0, 16, 16, 16}, bgrx (0, 0, 255));
  atlas.fill ({16, 16, 16, 16}, bgrx (255, 0, 0));    /* padding: never shown */

  fail_unless (gst_harness_push_event (v, rects_event ({0, 0, 32, 16, 0, 0, 96, 48, 16, 16, 0, 16})));
  GstBuffer *vb = gst_buffer_new_memdup (atlas.px.data (), atlas.px.size ());
  GST_BUFFER_PTS (vb) = GST_SECOND;
  gst_harness_push (v, vb);
  GstBuffer *out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 0, 0) & 0xffffff, 0x00ff00);
  fail_unless_equals_int (px (out, 128, 31, 15) & 0xffffff, 0x00ff00);
  fail_unless_equals_int (px (out, 128, 0, 16) & 0xffffff, 0);
  fail_unless_equals_int (px (out, 128, 96, 48) & 0xffffff, 0x0000ff);
  fail_unless_equals_int (px (out, 128, 111, 63) & 0xffffff, 0x0000ff);
  fail_unless_equals_int (px (out, 128, 112, 48) & 0xffffff, 0);
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 32 * 16 + 16 * 16);
  gst_buffer_unref (out);

  /* metas win over the event: only the bottom part, now at 64,0 */
  vb = gst_buffer_new_memdup (atlas.px.data (), atlas.px.size ());
  GST_BUFFER_PTS (vb) = 2 * GST_SECOND;
  GstVideoRegionOfInterestMeta *m = gst_buffer_add_video_region_of_interest_meta (vb, "wayray-video",
      64, 0, 16, 16);
  gst_video_region_of_interest_meta_add_param (m, gst_structure_new ("wayray-atlas", "x", G_TYPE_INT, 0,
          "y", G_TYPE_INT, 16, NULL));
  gst_harness_push (v, vb);
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 64, 0) & 0xffffff, 0x0000ff);
  dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 16 * 16);
  gst_buffer_unref (out);

  /* malformed lists (from the network) are ignored: the last good one stays */
  fail_unless (gst_harness_push_event (v, rects_event ({0, 0, 32})));
  fail_unless (gst_harness_push_event (v, rects_event ({0, 0, -5, 16, 0, 0})));
  fail_unless (gst_harness_push_event (v, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
              gst_structure_new ("wayray-video-region", "rects", G_TYPE_STRING, "x", NULL))));
  /* a rectangle reaching past the frame is clipped to it */
  fail_unless (gst_harness_push_event (v, rects_event ({100, 40, 64, 64, 16, 16})));
  vb = gst_buffer_new_memdup (atlas.px.data (), atlas.px.size ());
  GST_BUFFER_PTS (vb) = 3 * GST_SECOND;
  gst_harness_push (v, vb);
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 100, 40) & 0xffffff, 0xff0000);
  fail_unless_equals_int (px (out, 128, 115, 55) & 0xffffff, 0xff0000);
  fail_unless_equals_int (px (out, 128, 111, 58) & 0xffffff, 0x0000ff);       /* untouched */
  fail_unless_equals_int (px (out, 128, 116, 50) & 0xffffff, 0);
  dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 16 * 16);
  gst_buffer_unref (out);

  /* an encoder that shifts timestamps and segment (x264enc: +1000 h):
   * running times decide. A lossless write at 4 s; a video frame of
   * running time 3.5 s must not undo it, one of 5 s does. */
  s.fill ({0, 0, 32, 16}, bgrx (9, 9, 9));
  gst_harness_push (h, frame_buffer (s, {{0, 0, 32, 16}}, false, 4 * GST_SECOND));
  gst_buffer_unref (gst_harness_pull (h));
  GstSegment seg;
  gst_segment_init (&seg, GST_FORMAT_TIME);
  seg.start = seg.time = 1000 * 3600 * GST_SECOND;
  fail_unless (gst_harness_push_event (v, gst_event_new_segment (&seg)));
  fail_unless (gst_harness_push_event (v, rects_event ({0, 0, 32, 16, 0, 0})));
  vb = gst_buffer_new_memdup (atlas.px.data (), atlas.px.size ());
  GST_BUFFER_PTS (vb) = seg.start + 3500 * GST_MSECOND;
  gst_harness_push (v, vb);
  /* nothing changed, so nothing comes out */
  fail_unless (gst_harness_try_pull (h) == NULL);
  vb = gst_buffer_new_memdup (atlas.px.data (), atlas.px.size ());
  GST_BUFFER_PTS (vb) = seg.start + 5 * GST_SECOND;
  gst_harness_push (v, vb);
  out = gst_harness_pull (h);
  fail_unless_equals_int (px (out, 128, 0, 0) & 0xffffff, 0x00ff00);
  gst_buffer_unref (out);

  gst_harness_teardown (v);
  gst_harness_teardown (h);
}
GST_END_TEST;

static Suite *
wayraycompositor_suite (void)
{
  Suite *s = suite_create ("wayraycompositor");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_comp_tiles);
  tcase_add_test (tc, test_comp_cursor);
  tcase_add_test (tc, test_comp_navigation_upstream);
  tcase_add_test (tc, test_comp_video);
  tcase_add_test (tc, test_comp_video_atlas);
  return s;
}

GST_CHECK_MAIN (wayraycompositor);
