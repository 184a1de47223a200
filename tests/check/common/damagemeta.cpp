/* The damage meta: clipping, coalescing, crop, scale, and survival through
 * buffer copies and videoscale.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <vector>

#include "gstwayraydamagemeta.h"

static bool
covers (GstWayrayDamageMeta * m, int x, int y)
{
  for (guint i = 0; i < m->n_rects; i++) {
    const GstVideoRectangle & r = m->rects[i];
    if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h)
      return true;
  }
  return false;
}

GST_START_TEST (test_clip_and_drop_empty)
{
  GstBuffer *b = gst_buffer_new ();
  GstVideoRectangle rects[] = {
    {-10, -10, 20, 20},         /* clipped to 0,0 10x10 */
    {630, 470, 50, 50},         /* clipped to 630,470 10x10 */
    {100, 100, 0, 5},           /* empty: dropped */
    {700, 10, 5, 5},            /* outside: dropped */
  };
  GstWayrayDamageMeta *m = gst_buffer_add_wayray_damage_meta (b, rects, 4, 640, 480);
  fail_unless_equals_int (m->n_rects, 2);
  fail_unless_equals_int (gst_wayray_damage_meta_area (m), 200);
  fail_unless (gst_buffer_get_wayray_damage_meta (b) == m);
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_coalesce_bounded_and_covering)
{
  GstBuffer *b = gst_buffer_new ();
  /* 200 separate glyph-sized rectangles: at most 32 remain, and every
   * damaged pixel is still covered. */
  std::vector<GstVideoRectangle> rects;
  for (int i = 0; i < 200; i++)
    rects.push_back ({ (i % 20) * 50, (i / 20) * 40, 8, 16 });
  GstWayrayDamageMeta *m = gst_buffer_add_wayray_damage_meta (b, rects.data (), rects.size (), 1920, 1080);
  fail_unless (m->n_rects <= GST_WAYRAY_DAMAGE_META_MAX_RECTS);
  for (auto &r : rects)
    for (int y = r.y; y < r.y + r.h; y += 3)
      for (int x = r.x; x < r.x + r.w; x += 3)
        fail_unless (covers (m, x, y), "pixel %d,%d lost", x, y);
  /* No two rectangles overlap. */
  for (guint i = 0; i < m->n_rects; i++)
    for (guint j = i + 1; j < m->n_rects; j++) {
      const GstVideoRectangle & a = m->rects[i], &c = m->rects[j];
      fail_if (a.x < c.x + c.w && c.x < a.x + a.w && a.y < c.y + c.h && c.y < a.y + a.h);
    }
  /* Coalescing costs little area here: glyph rows merge, not the screen. */
  fail_unless (gst_wayray_damage_meta_area (m) < 1920 * 1080 / 4);
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_contained_and_overlapping)
{
  GstBuffer *b = gst_buffer_new ();
  GstVideoRectangle rects[] = { {0, 0, 100, 100}, {10, 10, 5, 5}, {90, 90, 20, 20} };
  GstWayrayDamageMeta *m = gst_buffer_add_wayray_damage_meta (b, rects, 3, 640, 480);
  /* The contained one vanishes; the overlapping pair merges. */
  fail_unless_equals_int (m->n_rects, 1);
  fail_unless_equals_int (m->rects[0].w, 110);
  fail_unless_equals_int (m->rects[0].h, 110);
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_crop_and_scale)
{
  GstBuffer *b = gst_buffer_new ();
  GstVideoRectangle rects[] = { {10, 10, 20, 20}, {300, 300, 10, 10} };
  GstWayrayDamageMeta *m = gst_buffer_add_wayray_damage_meta (b, rects, 2, 640, 480);
  GstVideoRectangle crop = { 20, 0, 100, 100 };
  gst_wayray_damage_meta_crop (m, &crop);
  fail_unless_equals_int (m->n_rects, 1);
  fail_unless_equals_int (m->rects[0].x, 0);
  fail_unless_equals_int (m->rects[0].y, 10);
  fail_unless_equals_int (m->rects[0].w, 10);
  fail_unless_equals_int (m->rects[0].h, 20);

  /* Halving rounds outwards: 0..10 x 10..30 -> 0..5 x 5..15; 1..2 -> 0..1. */
  gst_wayray_damage_meta_scale (m, 100, 100, 50, 50);
  fail_unless_equals_int (m->rects[0].x, 0);
  fail_unless_equals_int (m->rects[0].y, 5);
  fail_unless_equals_int (m->rects[0].w, 5);
  fail_unless_equals_int (m->rects[0].h, 10);
  GstVideoRectangle odd = { 1, 1, 1, 1 };
  gst_wayray_damage_meta_add_rect (m, &odd);
  gst_wayray_damage_meta_scale (m, 50, 50, 25, 25);
  fail_unless (covers (m, 0, 0));
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_survives_copy_and_videoscale)
{
  GstBuffer *b = gst_buffer_new_allocate (nullptr, 64 * 32 * 4, nullptr);
  gst_buffer_memset (b, 0, 0x40, 64 * 32 * 4);
  GstVideoRectangle r = { 32, 16, 8, 8 };
  gst_buffer_add_wayray_damage_meta (b, &r, 1, 64, 32);

  GstBuffer *copy = gst_buffer_copy (b);
  GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (copy);
  fail_unless (m != nullptr);
  fail_unless_equals_int (m->rects[0].x, 32);
  gst_buffer_unref (copy);

  /* videoscale to double size carries the damage along, scaled. */
  GstHarness *h = gst_harness_new_parse ("videoscale");
  gst_harness_set_src_caps_str (h, "video/x-raw,format=BGRx,width=64,height=32,framerate=30/1");
  gst_harness_set_sink_caps_str (h, "video/x-raw,format=BGRx,width=128,height=64,framerate=30/1");
  GstBuffer *out = gst_harness_push_and_pull (h, b);
  fail_unless (out != nullptr);
  m = gst_buffer_get_wayray_damage_meta (out);
  fail_unless (m != nullptr, "videoscale dropped the damage meta");
  fail_unless_equals_int (m->n_rects, 1);
  fail_unless_equals_int (m->rects[0].x, 64);
  fail_unless_equals_int (m->rects[0].y, 32);
  fail_unless_equals_int (m->rects[0].w, 16);
  fail_unless_equals_int (m->rects[0].h, 16);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}
GST_END_TEST;

static Suite *
damagemeta_suite (void)
{
  Suite *s = suite_create ("damagemeta");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_clip_and_drop_empty);
  tcase_add_test (tc, test_coalesce_bounded_and_covering);
  tcase_add_test (tc, test_contained_and_overlapping);
  tcase_add_test (tc, test_crop_and_scale);
  tcase_add_test (tc, test_survives_copy_and_videoscale);
  return s;
}

GST_CHECK_MAIN (damagemeta);
