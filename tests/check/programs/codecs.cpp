/* H.264 encoder/decoder choice: hardware first, software fallback, and the
 * chosen pair really encodes and decodes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "wrcodecs.h"

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
  return s;
}

GST_CHECK_MAIN (codecs);
