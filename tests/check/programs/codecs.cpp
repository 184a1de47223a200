/* H.264 encoder/decoder choice: hardware first, software fallback, and the
 * chosen pair really encodes and decodes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstcheck.h>

#include "wrcodecs.h"

#include <cstdlib>
#include <vector>

using namespace wayray;

static bool
usable (const std::string &name)
{
  GstElement *e = gst_element_factory_make (name.c_str (), nullptr);
  if (!e)
    return false;
  bool ok = gst_element_set_state (e, GST_STATE_READY) != GST_STATE_CHANGE_FAILURE;
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
  return ok;
}

GST_START_TEST (test_fallback_past_missing_encoders)
{
  CodecChoice c = pick_h264_encoder ({ "wayray-no-such-encoder", "vah264enc-missing", "x264enc" });
  fail_unless_equals_string (c.factory.c_str (), "x264enc");
  fail_if (c.hardware);
  fail_unless (c.launch.find ("tune=zerolatency") != std::string::npos, "%s", c.launch.c_str ());

  c = pick_h264_encoder ({ "wayray-no-such-encoder" });
  fail_unless (c.factory.empty ());
}
GST_END_TEST;

GST_START_TEST (test_default_order_prefers_hardware)
{
  /* Whatever this machine has: every element ranked before the choice is
   * unusable here, and the choice itself is usable. */
  for (auto pick : { &pick_h264_encoder, &pick_h264_decoder }) {
    const auto &order = pick == &pick_h264_encoder ? default_h264_encoders () : default_h264_decoders ();
    CodecChoice c = pick ({});
    fail_if (c.factory.empty (), "no H.264 codec usable at all");
    fail_unless (usable (c.factory));
    for (const std::string &name : order) {
      if (name == c.factory)
        break;
      fail_if (usable (name), "%s is usable but %s was chosen", name.c_str (), c.factory.c_str ());
    }
  }
  /* On a machine without VA-API or NVENC devices that is the software
   * fallback. */
  if (!usable ("vah264enc") && !usable ("vaapih264enc") && !usable ("nvh264enc"))
    fail_if (pick_h264_encoder ().hardware);
}
GST_END_TEST;

GST_START_TEST (test_chosen_pair_round_trips)
{
  CodecChoice enc = pick_h264_encoder ();
  CodecChoice dec = pick_h264_decoder ();
  std::string desc = "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,format=I420,width=320,height=240 ! "
      + enc.launch + " ! h264parse ! " + dec.launch + " ! videoconvert ! fakesink sync=false";
  GError *err = nullptr;
  GstElement *p = gst_parse_launch (desc.c_str (), &err);
  fail_unless (p != nullptr, "%s: %s", desc.c_str (), err ? err->message : "");
  gst_element_set_state (p, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *m = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
      (GstMessageType) (GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  fail_unless (m != nullptr && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS, "%s did not round-trip", desc.c_str ());
  gst_message_unref (m);
  gst_object_unref (bus);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
}
GST_END_TEST;

GST_START_TEST (test_preference_lists)
{
  fail_unless (codec_preference ("auto").empty ());
  fail_unless (codec_preference ("").empty ());
  auto v = codec_preference ("vah264enc, x264enc,,openh264enc");
  fail_unless_equals_int (v.size (), 3);
  fail_unless_equals_string (v[1].c_str (), "x264enc");
}
GST_END_TEST;

/* (A returned std::string lives long enough only as an argument.) */
static void
expect_string (const std::string &got, const char *want)
{
  fail_unless (got == want, "'%s', not '%s'", got.c_str (), want);
}

static bool
has_factory (const char *name)
{
  GstElementFactory *f = gst_element_factory_find (name);
  if (f)
    gst_object_unref (f);
  return f != nullptr;
}

/* Which profile a session encodes, and in what chroma, for which client. */
GST_START_TEST (test_session_profile)
{
  /* Any decoder ("h264" with no list), an encoder that makes any. */
  expect_string (session_h264_profile ("", "h264"), "high");
  expect_string (session_h264_profile ("", "h264", "4:4:4"), "high-4:4:4");
  /* A decoder that names its profiles and not 4:4:4: 4:2:0 high. */
  expect_string (session_h264_profile ("", "h264:main,high", "4:4:4"), "high");
  expect_string (session_h264_profile ("", "h264:constrained-baseline", "4:4:4"), "constrained-baseline");
  expect_string (session_h264_profile ("", "h264:high-4:4:4,high", "4:4:4"), "high-4:4:4");
  /* openh264enc makes no high-4:4:4 (its template lists up to high). */
  if (has_factory ("openh264enc")) {
    expect_string (session_h264_profile ("openh264enc", "h264", "4:4:4"), "high");
  }
  if (has_factory ("x264enc")) {
    expect_string (session_h264_profile ("x264enc", "h264", "4:4:4"), "high-4:4:4");
    expect_string (session_h264_profile ("x264enc", "h264", "4:2:0"), "high");
  }
  expect_string (video_format_for_profile ("high-4:4:4"), "Y444");
  expect_string (video_format_for_profile ("high"), "I420");
  expect_string (video_format_for_profile ("constrained-baseline"), "I420");
  /* A session encoding 4:4:4 is not for a decoder that takes only high. */
  fail_if (h264_profile_decodable ("high-4:4:4", { "high", "main" }));
  fail_unless (h264_profile_decodable ("high-4:4:4", {}));
}
GST_END_TEST;

/* Through the chosen encoder and decoder, in the session's raw format for
 * @profile: the mean difference per colour channel of the last frame of
 * one-pixel red and blue columns (what 4:2:0 turns purple). */
static double
column_error (const std::string &profile)
{
  const int W = 64, H = 48;
  CodecChoice enc = pick_h264_encoder ();
  CodecChoice dec = pick_h264_decoder ();
  std::string desc = "appsrc name=in format=time caps=video/x-raw,format=BGRx,width=64,height=48,framerate=10/1 "
      "! videoconvert ! video/x-raw,format=" + video_format_for_profile (profile) + " ! " + enc.launch +
      " ! video/x-h264,profile=" + profile + " ! h264parse ! " + dec.launch +
      " ! videoconvert ! video/x-raw,format=BGRx ! appsink name=out sync=false";
  GError *err = nullptr;
  GstElement *p = gst_parse_launch (desc.c_str (), &err);
  fail_unless (p != nullptr, "%s: %s", desc.c_str (), err ? err->message : "");
  GstElement *in = gst_bin_get_by_name (GST_BIN (p), "in"), *out = gst_bin_get_by_name (GST_BIN (p), "out");
  gst_element_set_state (p, GST_STATE_PLAYING);
  std::vector<guint8> px (W * H * 4);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      guint8 *q = &px[(y * W + x) * 4];
      q[0] = x % 2 ? 255 : 0;     /* B */
      q[1] = 0;
      q[2] = x % 2 ? 0 : 255;     /* R */
      q[3] = 255;
    }
  for (int i = 0; i < 10; i++) {
    GstBuffer *b = gst_buffer_new_memdup (px.data (), px.size ());
    GST_BUFFER_PTS (b) = i * GST_SECOND / 10;
    GST_BUFFER_DURATION (b) = GST_SECOND / 10;
    fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (in), b), GST_FLOW_OK);
  }
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  GstSample *last = nullptr;
  while (GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 30 * GST_SECOND)) {
    if (last)
      gst_sample_unref (last);
    last = smp;
  }
  fail_unless (last != nullptr, "%s: nothing decoded", desc.c_str ());
  /* What the encoder really made. */
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_if (m != nullptr, "%s failed", desc.c_str ());
  gst_object_unref (bus);
  GstMapInfo map;
  GstBuffer *b = gst_sample_get_buffer (last);
  fail_unless (gst_buffer_map (b, &map, GST_MAP_READ));
  fail_unless (map.size >= px.size ());
  double sum = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++)
        sum += std::abs ((int) map.data[(y * W + x) * 4 + c] - (int) px[(y * W + x) * 4 + c]);
  gst_buffer_unmap (b, &map);
  gst_sample_unref (last);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (in);
  gst_object_unref (out);
  gst_object_unref (p);
  return sum / (W * H * 3);
}

/* video-chroma=4:4:4: the session's Y444 and high-4:4:4 encode with the
 * chosen encoder and decode with the chosen decoder, and keep colour that
 * 4:2:0 loses. */
GST_START_TEST (test_full_chroma_keeps_colour)
{
  std::string profile = session_h264_profile (pick_h264_encoder ().factory, "h264", "4:4:4");
  if (profile != "high-4:4:4") {
    /* An encoder without 4:4:4 falls back to 4:2:0 high. */
    fail_unless_equals_string (profile.c_str (), "high");
    return;
  }
  double full = column_error ("high-4:4:4"), sub = column_error ("high");
  /* 4:2:0 averages each red and blue pair into purple: about 85 per
   * channel; 4:4:4 keeps them within the encoder's quantisation. */
  fail_unless (sub > 50, "4:2:0 error %.1f", sub);
  fail_unless (full < 15, "4:4:4 error %.1f (4:2:0: %.1f)", full, sub);
}
GST_END_TEST;

static Suite *
codecs_suite (void)
{
  Suite *s = suite_create ("codecs");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 60);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_fallback_past_missing_encoders);
  tcase_add_test (tc, test_default_order_prefers_hardware);
  tcase_add_test (tc, test_chosen_pair_round_trips);
  tcase_add_test (tc, test_preference_lists);
  tcase_add_test (tc, test_session_profile);
  tcase_add_test (tc, test_full_chroma_keeps_colour);
  return s;
}

GST_CHECK_MAIN (codecs);
