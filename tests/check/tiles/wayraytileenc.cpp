/* wayraytileenc: caps, reset messages, idle frames, force-key-unit,
 * damage handling and statistics.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "tiletest.h"
#include "wayraytilecodec.h"

using namespace screengen;

static wayray::tiles::Header
header_of (GstBuffer * buf)
{
  GstMapInfo map;
  wayray::tiles::Header h = {};
  std::string err;
  gst_buffer_map (buf, &map, GST_MAP_READ);
  fail_unless (wayray::tiles::parse_header (map.data, map.size, h, err), "%s", err.c_str ());
  gst_buffer_unmap (buf, &map);
  return h;
}

GST_START_TEST (test_enc_basic)
{
  GstHarness *h = gst_harness_new ("wayraytileenc");
  gst_harness_set_src_caps_str (h, bgrx_caps (200, 100).c_str ());
  Screen s (200, 100);
  s.fill ({0, 0, 200, 100}, bgrx (10, 20, 30));

  fail_unless_equals_int (gst_harness_push (h, frame_buffer (s, {}, true, 0)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull (h);
  wayray::tiles::Header hd = header_of (out);
  fail_unless (hd.flags & wayray::tiles::kFlagReset);
  fail_unless_equals_int (hd.width, 200);
  fail_unless_equals_int (hd.height, 100);
  fail_unless_equals_int (hd.tile_size, 64);
  fail_unless_equals_int (hd.n_ops, 4 * 2);     /* every tile, solid */
  fail_if (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DELTA_UNIT));
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 0);
  gst_buffer_unref (out);

  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstStructure *st = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_has_name (st, "application/x-wayray-tiles"));
  gint w;
  fail_unless (gst_structure_get_int (st, "width", &w) && w == 200);
  gst_caps_unref (caps);

  /* damaged but unchanged: nothing goes out */
  fail_unless_equals_int (gst_harness_push (h, frame_buffer (s, {{0, 0, 200, 100}}, false,
              GST_SECOND)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);

  /* a change outside the damage is not looked at (the damage is trusted) */
  s.fill ({150, 0, 10, 10}, bgrx (255, 0, 0));
  s.fill ({0, 0, 10, 10}, bgrx (0, 255, 0));
  gst_harness_push (h, frame_buffer (s, {{0, 0, 10, 10}}, false, 2 * GST_SECOND));
  out = gst_harness_pull (h);
  hd = header_of (out);
  fail_if (hd.flags & wayray::tiles::kFlagReset);
  fail_unless_equals_int (hd.n_ops, 1);
  fail_unless_equals_int (hd.seq, 1);
  fail_unless (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DELTA_UNIT));
  gst_buffer_unref (out);

  GstStructure *stats = NULL;
  g_object_get (h->element, "stats", &stats, NULL);
  guint64 messages = 0, solid = 0;
  fail_unless (gst_structure_get_uint64 (stats, "messages", &messages));
  fail_unless (gst_structure_get_uint64 (stats, "solid", &solid));
  fail_unless_equals_uint64 (messages, 2);
  fail_unless (solid >= 8);
  gst_structure_free (stats);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_enc_force_key_unit)
{
  GstHarness *h = gst_harness_new ("wayraytileenc");
  gst_harness_set_src_caps_str (h, bgrx_caps (64, 64).c_str ());
  Screen s (64, 64);
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  gst_buffer_unref (gst_harness_pull (h));

  /* the client asks for everything again (e.g. it reconnected) */
  fail_unless (gst_harness_push_upstream_event (h,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1)));
  s.fill ({0, 0, 8, 8}, bgrx (1, 1, 1));
  gst_harness_push (h, frame_buffer (s, {{0, 0, 8, 8}}, false, GST_SECOND));
  GstBuffer *out = gst_harness_pull (h);
  fail_unless (header_of (out).flags & wayray::tiles::kFlagReset);
  fail_unless_equals_int (header_of (out).seq, 0);
  gst_buffer_unref (out);

  /* the upstream request went on towards the source */
  GstEvent *ev;
  bool seen = false;
  while ((ev = gst_harness_try_pull_upstream_event (h))) {
    seen |= gst_video_event_is_force_key_unit (ev);
    gst_event_unref (ev);
  }
  fail_unless (seen);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_enc_properties)
{
  GstHarness *h = gst_harness_new_parse ("wayraytileenc tile-size=32 cache-size=16 "
      "compression=lz4 zstd-level=3 threads=1 scroll-detection=false glyph-cache-size=100");
  gst_harness_set_src_caps_str (h, bgrx_caps (100, 40).c_str ());
  Screen s (100, 40);
  Rng rng (3);
  for (int y = 0; y < 40; y++)
    for (int x = 0; x < 100; x++) {
      uint32_t c = bgrx (x * 2, x, 7);
      memcpy (s.at (x, y), &c, 4);
    }
  gst_harness_push (h, frame_buffer (s, {}, true, 0));
  GstBuffer *out = gst_harness_pull (h);
  fail_unless_equals_int (header_of (out).tile_size, 32);
  fail_unless_equals_int (header_of (out).cache_slots, 16);
  fail_unless_equals_int (header_of (out).glyph_slots, 100);
  gst_buffer_unref (out);
  GstStructure *stats = NULL;
  GstElement *enc = gst_harness_find_element (h, "wayraytileenc");
  g_object_get (enc, "stats", &stats, NULL);
  gst_object_unref (enc);
  guint64 lz4 = 0;
  gst_structure_get_uint64 (stats, "lz4", &lz4);
  fail_unless (lz4 > 0);
  gst_structure_free (stats);
  gst_harness_teardown (h);
}
GST_END_TEST;

static Suite *
wayraytileenc_suite (void)
{
  Suite *s = suite_create ("wayraytileenc");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_enc_basic);
  tcase_add_test (tc, test_enc_force_key_unit);
  tcase_add_test (tc, test_enc_properties);
  return s;
}

GST_CHECK_MAIN (wayraytileenc);
