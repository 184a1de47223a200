/* wayrayaudiogate and wayrayplayout as elements: what the gate lets
 * through, and the playout buffer in a live Opus pipeline, with and
 * without lost packets.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

#include <atomic>

static GstBuffer *
audio_buffer (guint64 pts, float value)
{
  const int frames = 480;       /* 10 ms at 48 kHz */
  GstBuffer *b = gst_buffer_new_allocate (nullptr, frames * 2 * sizeof (float), nullptr);
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  float *s = reinterpret_cast<float *> (map.data);
  for (int i = 0; i < frames * 2; i++)
    s[i] = (i / 2) % 2 ? value : -value;
  gst_buffer_unmap (b, &map);
  GST_BUFFER_PTS (b) = pts;
  GST_BUFFER_DURATION (b) = 10 * GST_MSECOND;
  return b;
}

static guint64
stat (GstElement * e, const char *field)
{
  GstStructure *st = nullptr;
  g_object_get (e, "stats", &st, nullptr);
  guint64 v = 0;
  fail_unless (st && gst_structure_get_uint64 (st, field, &v), "no %s", field);
  gst_structure_free (st);
  return v;
}

GST_START_TEST (test_gate_drops_silence_after_hangover)
{
  GstHarness *h = gst_harness_new ("wayrayaudiogate");
  gst_harness_set_src_caps_str (h, "audio/x-raw,format=F32LE,layout=interleaved,rate=48000,channels=2");
  guint64 t = 0;
  for (int i = 0; i < 5; i++, t += 10 * GST_MSECOND)
    gst_harness_push (h, audio_buffer (t, 0.5f));
  /* 300 ms of silence: the first 200 ms still pass. */
  for (int i = 0; i < 30; i++, t += 10 * GST_MSECOND)
    gst_harness_push (h, audio_buffer (t, 0.0f));
  fail_unless_equals_int (gst_harness_buffers_received (h), 25);
  /* Below the threshold (-90 dB) counts as silence too. */
  gst_harness_push (h, audio_buffer (t, 1e-5f));
  t += 10 * GST_MSECOND;
  fail_unless_equals_int (gst_harness_buffers_received (h), 25);
  /* Sound again: it passes at once, marked as a new start. */
  gst_harness_push (h, audio_buffer (t, 0.01f));
  fail_unless_equals_int (gst_harness_buffers_received (h), 26);
  GstBuffer *out = nullptr;
  for (int i = 0; i < 26; i++) {
    if (out)
      gst_buffer_unref (out);
    out = gst_harness_pull (h);
  }
  fail_unless (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DISCONT));
  GstElement *gate = gst_harness_find_element (h, "wayrayaudiogate");
  fail_unless_equals_uint64 (stat (gate, "dropped"), 11);
  fail_unless_equals_uint64 (stat (gate, "openings"), 1);
  gst_object_unref (gate);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}
GST_END_TEST;

struct Counted {
  std::atomic<guint64> samples { 0 };
  std::atomic<guint64> buffers { 0 };
};

static GstPadProbeReturn
count_samples (GstPad *, GstPadProbeInfo * info, gpointer data)
{
  Counted *c = static_cast<Counted *> (data);
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  c->samples += gst_buffer_get_size (b) / 4;     /* S16 stereo */
  c->buffers++;
  return GST_PAD_PROBE_OK;
}

/* Two seconds of a live tone through Opus and the playout buffer, with
 * @drop of the packets lost on the way: what comes out of the decoder. */
static void
run_live (double drop, GstElement ** playout_out, Counted & counted)
{
  gchar *desc = g_strdup_printf ("audiotestsrc is-live=true samplesperbuffer=480 num-buffers=200 "
      "! audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=10 inband-fec=true packet-loss-percentage=10 "
      "! identity drop-probability=%.2f ! wayrayplayout name=p "
      "! opusdec plc=true use-inband-fec=true ! audio/x-raw,format=S16LE,channels=2 "
      "! fakesink name=out sync=false", drop);
  GError *err = nullptr;
  GstElement *pipe = gst_parse_launch (desc, &err);
  g_free (desc);
  fail_unless (pipe != nullptr, "%s", err ? err->message : "");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "out");
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_samples, &counted, nullptr);
  gst_object_unref (pad);
  gst_object_unref (sink);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  /* The source ends after 2 s; the playout buffer's tail follows. */
  g_usleep (2500 * 1000);
  *playout_out = gst_bin_get_by_name (GST_BIN (pipe), "p");
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
}

GST_START_TEST (test_playout_live)
{
  GstElement *p = nullptr;
  Counted c;
  run_live (0.0, &p, c);
  /* Every packet played, only the tail concealed; at most one late,
   * when the machine stalls the test's threads (seen under ASan on two
   * busy cores: a sanitizer build's pause, not the buffer's). */
  fail_unless (stat (p, "played") >= 195, "played %" G_GUINT64_FORMAT, stat (p, "played"));
  fail_unless (stat (p, "late") <= 1, "late %" G_GUINT64_FORMAT, stat (p, "late"));
  fail_unless (stat (p, "concealed") <= 5);
  /* 2 s of sound came out of the decoder. */
  fail_unless (c.samples >= 2 * 48000 * 97 / 100, "%" G_GUINT64_FORMAT " samples", c.samples.load ());
  gst_object_unref (p);
}
GST_END_TEST;

GST_START_TEST (test_playout_conceals_losses)
{
  GstElement *p = nullptr;
  Counted c;
  run_live (0.1, &p, c);
  guint64 played = stat (p, "played"), concealed = stat (p, "concealed");
  /* About a tenth lost; the decoder filled their place: the output is as
   * long as the input. */
  fail_unless (played >= 150 && played <= 195, "played %" G_GUINT64_FORMAT, played);
  fail_unless (concealed >= 5, "concealed %" G_GUINT64_FORMAT, concealed);
  fail_unless (c.samples >= 2 * 48000 * 97 / 100, "%" G_GUINT64_FORMAT " samples", c.samples.load ());
  gst_object_unref (p);
}
GST_END_TEST;

static Suite *
audioelements_suite (void)
{
  Suite *s = suite_create ("audioelements");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_gate_drops_silence_after_hangover);
  tcase_add_test (tc, test_playout_live);
  tcase_add_test (tc, test_playout_conceals_losses);
  return s;
}

GST_CHECK_MAIN (audioelements);
