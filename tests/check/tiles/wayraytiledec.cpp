/* wayraytiledec: output frames and damage, and decode errors that name
 * what is wrong.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "tiletest.h"
#include "wayraytilecodec.h"

using namespace screengen;

static GstBuffer *
encode (wayray::tiles::Encoder & enc, const Screen & s, const std::vector<Rect> &damage,
    bool full)
{
  std::vector<wayray::tiles::Rect> d;
  for (auto &r : damage)
    d.push_back ({r.x, r.y, r.w, r.h});
  std::vector<uint8_t> out;
  wayray::tiles::ConstSurface cs = {s.px.data (), s.stride (), s.w, s.h};
  fail_unless (enc.encode (cs, full ? nullptr : d.data (), d.size (), nullptr, 0, out,
          nullptr));
  return gst_buffer_new_memdup (out.data (), out.size ());
}

GST_START_TEST (test_dec_frames)
{
  GstHarness *h = gst_harness_new ("wayraytiledec");
  gst_harness_set_src_caps_str (h, "application/x-wayray-tiles,width=130,height=70");
  wayray::tiles::Encoder enc;
  enc.configure (130, 70, wayray::tiles::EncoderSettings ());
  Screen s (130, 70);
  Rng rng (4);
  s.noise ({0, 0, 130, 70}, rng);
  gst_harness_push (h, encode (enc, s, {}, true));
  GstBuffer *out = gst_harness_pull (h);
  fail_unless (buffer_equals (out, s));
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (out);
  fail_unless (dm != NULL);
  fail_unless_equals_uint64 (gst_wayray_damage_meta_area (dm), 130 * 70);

  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstVideoInfo info;
  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info), GST_VIDEO_FORMAT_BGRx);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), 130);
  gst_caps_unref (caps);

  /* a small change while downstream still holds the previous frame: the
   * held frame must not change under it */
  Screen before = s;
  s.fill ({70, 10, 5, 5}, bgrx (0, 0, 255));
  gst_harness_push (h, encode (enc, s, {{70, 10, 5, 5}}, false));
  GstBuffer *out2 = gst_harness_pull (h);
  fail_unless (buffer_equals (out2, s));
  fail_unless (buffer_equals (out, before));
  dm = gst_buffer_get_wayray_damage_meta (out2);
  fail_unless_equals_int (dm->n_rects, 1);
  fail_unless_equals_int (dm->rects[0].x, 64);
  fail_unless_equals_int (dm->rects[0].w, 64);
  gst_buffer_unref (out);
  gst_buffer_unref (out2);

  /* a queue holding several frames: each keeps its picture, every new one
   * is right (the decoder switches between two framebuffers and fills in
   * what the other one missed) */
  std::vector<GstBuffer *> held;
  std::vector<Screen> expect;
  for (int i = 0; i < 6; i++) {
    Rect r = {rng.range (0, 120), rng.range (0, 60), 10, 10};
    s.fill (r, bgrx (40 * i, 255 - 40 * i, 7));
    gst_harness_push (h, encode (enc, s, {r}, false));
    held.push_back (gst_harness_pull (h));
    expect.push_back (s);
    if (i % 3 == 2) {           /* now and then downstream lets go */
      for (size_t k = 0; k < held.size (); k++) {
        fail_unless (buffer_equals (held[k], expect[k]), "frame %d/%u changed", i, (guint) k);
        gst_buffer_unref (held[k]);
      }
      held.clear ();
      expect.clear ();
    }
  }
  gst_harness_teardown (h);
}
GST_END_TEST;

static void
expect_decode_error (const std::vector<std::vector<uint8_t>> &prior, const std::vector<uint8_t> &bad,
    const char *word)
{
  GstHarness *h = gst_harness_new ("wayraytiledec");
  GstBus *bus = attach_bus (h->element);
  gst_harness_set_src_caps_str (h, "application/x-wayray-tiles");
  for (size_t i = 0; i < prior.size (); i++)
    fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_memdup (prior[i].data (),
                prior[i].size ())), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_memdup (bad.data (),
              bad.size ())), GST_FLOW_ERROR);
  std::string dbg = pop_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE);
  fail_unless (dbg.find (word) != std::string::npos, "error '%s' lacks '%s'", dbg.c_str (),
      word);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_START_TEST (test_dec_errors)
{
  wayray::tiles::Encoder enc;
  enc.configure (64, 64, wayray::tiles::EncoderSettings ());
  Screen s (64, 64);
  Rng rng (8);
  s.noise ({0, 0, 64, 64}, rng);
  GstBuffer *b = encode (enc, s, {}, true);
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_READ);
  std::vector<uint8_t> good (map.data, map.data + map.size);
  gst_buffer_unmap (b, &map);
  gst_buffer_unref (b);

  expect_decode_error ({}, std::vector<uint8_t> (good.begin (), good.begin () + 10),
      "shorter than");
  expect_decode_error ({}, std::vector<uint8_t> (good.begin (), good.end () - 1),
      "truncated");
  std::vector<uint8_t> magic = good;
  magic[1] = 'X';
  expect_decode_error ({}, magic, "magic");
  std::vector<uint8_t> grid = good;
  grid[wayray::tiles::kHeaderSize + 1] = 9;             /* first tile at x index 9 */
  expect_decode_error ({}, grid, "outside");
  /* the same delta message twice: the second is out of sequence */
  s.fill ({0, 0, 8, 8}, bgrx (1, 2, 3));
  b = encode (enc, s, {{0, 0, 8, 8}}, false);
  gst_buffer_map (b, &map, GST_MAP_READ);
  std::vector<uint8_t> next (map.data, map.data + map.size);
  gst_buffer_unmap (b, &map);
  gst_buffer_unref (b);
  /* a stream that starts with a message other than a reset */
  expect_decode_error ({}, next, "reset");
  expect_decode_error ({good, next}, next, "sequence");
  /* a corrupt zstd payload in a delta message */
  std::vector<uint8_t> corrupt = next;
  corrupt[corrupt.size () - 3] ^= 0x55;
  corrupt[corrupt.size () - 6] ^= 0x55;
  expect_decode_error ({good}, corrupt, "operation 0");
}
GST_END_TEST;

static Suite *
wayraytiledec_suite (void)
{
  Suite *s = suite_create ("wayraytiledec");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_dec_frames);
  tcase_add_test (tc, test_dec_errors);
  return s;
}

GST_CHECK_MAIN (wayraytiledec);
