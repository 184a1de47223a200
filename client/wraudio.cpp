/* The client's sound (see wraudio.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wraudio.h"

#include <gst/app/gstappsink.h>

#include <cstring>

namespace wayray {

namespace {

/* What may stand in a pipeline fragment unquoted: device names and paths
 * of these characters only. */
bool
fragment_safe (const std::string &s)
{
  if (s.empty ())
    return false;
  for (char ch : s)
    if (!g_ascii_isalnum (ch) && !strchr ("_.,:/@+=-", ch))
      return false;
  return true;
}

/* The element of a device. Sinks do not take part in the pipeline's
 * preroll: the sound's pad appears only when the session first makes a
 * sound, and the picture must not wait for it. */
std::string
device_element (const std::string &device, bool source)
{
  std::string name = std::string (" name=") + (source ? kMicrophoneDevice : kSpeakersDevice);
  if (device.empty ())
    return source ? "autoaudiosrc" + name : "autoaudiosink async-handling=true" + name;
  if (device.rfind ("alsa:", 0) == 0)
    return std::string (source ? "alsasrc" : "alsasink async=false") + name + " device=" + device.substr (5);
  return std::string (source ? "pulsesrc" : "pulsesink async=false") + name + " device=" + device;
}

/* Whether @desc (one element) works: a source that gives sound without an
 * error for a while, a sink that plays a little silence. Audio elements
 * open their device only when they get going (autoaudiosrc picks a child
 * that opens in READY and fails on its first buffer), so the probe runs. */
bool
device_opens (const std::string &desc, bool source, std::string &why)
{
  std::string launch = source ? desc + " ! fakesink sync=false"
      : "audiotestsrc wave=silence num-buffers=3 samplesperbuffer=480 ! audioconvert ! audioresample ! " + desc;
  GError *err = nullptr;
  GstElement *pipe = gst_parse_launch (launch.c_str (), &err);
  if (!pipe) {
    why = err ? err->message : "cannot make " + desc;
    g_clear_error (&err);
    return false;
  }
  bool ok = gst_element_set_state (pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *m = gst_bus_timed_pop_filtered (bus, (source ? 300 : 1000) * GST_MSECOND,
      (GstMessageType) (GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  if (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
    gst_message_parse_error (m, &err, nullptr);
    why = err->message;
    g_clear_error (&err);
    ok = false;
  } else if (!ok) {
    why = "it does not start";
  }
  if (m)
    gst_message_unref (m);
  gst_object_unref (bus);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  return ok;
}

void
put_le (guint8 *p, guint32 v, int bytes)
{
  for (int i = 0; i < bytes; i++)
    p[i] = (guint8) (v >> (8 * i));
}

}  // namespace

bool
audio_options_check (const AudioOptions &o, bool headless, std::string &error)
{
  for (auto [opt, v] : { std::make_pair ("--audio-sink", &o.sink_device),
           std::make_pair ("--audio-source", &o.source_device), std::make_pair ("--audio-file", &o.out_file),
           std::make_pair ("--microphone-file", &o.microphone_file) }) {
    if (!v->empty () && !fragment_safe (*v)) {
      error = std::string (opt) + " '" + *v + "': only letters, digits and _.,:/@+=- are allowed";
      return false;
    }
  }
  if (!headless && (!o.out_file.empty () || !o.microphone_file.empty ())) {
    error = "--audio-file and --microphone-file are for --headless";
    return false;
  }
  if (!o.microphone_file.empty () && !g_file_test (o.microphone_file.c_str (), G_FILE_TEST_IS_REGULAR)) {
    error = "--microphone-file " + o.microphone_file + ": no such file";
    return false;
  }
  if (o.microphone_bitrate < 6000 || o.microphone_bitrate > 510000) {
    error = "--microphone-bitrate: from 6000 to 510000";
    return false;
  }
  return true;
}

void
audio_variables (const AudioOptions &o, bool headless, Variables &vars)
{
  std::string sink, source;
  if (o.speakers) {
    if (!o.out_file.empty ())
      sink = std::string ("audioconvert ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! audiorate ! appsink name=") +
          kAudioOutSink + " emit-signals=true sync=false async=false";
    else if (!headless)
      sink = device_element (o.sink_device, false);
  }
  if (o.microphone) {
    if (!o.microphone_file.empty ())
      source = std::string ("filesrc name=") + kMicrophoneDevice + " location=" + o.microphone_file +
          " ! wavparse ! identity sync=true";
    else if (!headless)
      source = device_element (o.source_device, true);
  }
  vars["AUDIO_SINK"] = sink;
  vars["MICROPHONE_SOURCE"] = source;
  vars["MICROPHONE_BITRATE"] = std::to_string (o.microphone_bitrate);
}

void
audio_probe (AudioOptions &o, bool headless, std::vector<std::string> &warnings)
{
  if (headless)
    return;
  std::string why;
  if (o.speakers && !device_opens (device_element (o.sink_device, false), false, why)) {
    warnings.push_back ("no sound: the audio output does not open (" + why + ")");
    o.speakers = false;
  }
  if (o.microphone && !device_opens (device_element (o.source_device, true), true, why)) {
    warnings.push_back ("no microphone: the audio input does not open (" + why + ")");
    o.microphone = false;
  }
}

int
audio_error_part (GstElement *session, GstMessage *msg)
{
  int part = 0;
  for (auto [name, which] : { std::make_pair (kSpeakersDevice, 1), std::make_pair (kMicrophoneDevice, 2) }) {
    GstElement *e = gst_bin_get_by_name (GST_BIN (session), name);
    if (e && GST_MESSAGE_SRC (msg) &&
        (GST_MESSAGE_SRC (msg) == GST_OBJECT (e) || gst_object_has_as_ancestor (GST_MESSAGE_SRC (msg), GST_OBJECT (e))))
      part = which;
    if (e)
      gst_object_unref (e);
  }
  return part;
}

bool
WavWriter::open (const std::string &path, std::string &error)
{
  std::lock_guard<std::mutex> g (lock_);
  f_ = fopen (path.c_str (), "wb");
  if (!f_) {
    error = "--audio-file " + path + ": " + g_strerror (errno);
    return false;
  }
  data_bytes_ = since_header_ = 0;
  fix_header ();
  return true;
}

void
WavWriter::fix_header ()
{
  /* RIFF/WAVE, PCM, 2 channels, 48000 Hz, 16 bits. */
  guint8 h[44];
  memcpy (h, "RIFF", 4);
  put_le (h + 4, (guint32) MIN (data_bytes_ + 36, (guint64) G_MAXUINT32), 4);
  memcpy (h + 8, "WAVEfmt ", 8);
  put_le (h + 16, 16, 4);
  put_le (h + 20, 1, 2);
  put_le (h + 22, 2, 2);
  put_le (h + 24, 48000, 4);
  put_le (h + 28, 48000 * 4, 4);
  put_le (h + 32, 4, 2);
  put_le (h + 34, 16, 2);
  memcpy (h + 36, "data", 4);
  put_le (h + 40, (guint32) MIN (data_bytes_, (guint64) G_MAXUINT32 - 36), 4);
  long at = ftell (f_);
  fseek (f_, 0, SEEK_SET);
  fwrite (h, 1, sizeof h, f_);
  fseek (f_, at > 44 ? at : 44, SEEK_SET);
  fflush (f_);
  since_header_ = 0;
}

void
WavWriter::wait_sound (double level, std::function<void (double)> heard)
{
  std::lock_guard<std::mutex> g (lock_);
  armed_us_ = g_get_monotonic_time ();
  level_ = level;
  heard_ = std::move (heard);
}

void
WavWriter::write (const guint8 *data, size_t len)
{
  std::lock_guard<std::mutex> g (lock_);
  if (heard_) {
    const gint16 *s = reinterpret_cast<const gint16 *> (data);
    int limit = (int) (level_ * 32767);
    for (size_t i = 0; i < len / 2; i++)
      if (s[i] >= limit || s[i] <= -limit) {
        heard_ ((g_get_monotonic_time () - armed_us_) / 1000.0);
        heard_ = nullptr;
        break;
      }
  }
  if (!f_)
    return;
  fwrite (data, 1, len, f_);
  data_bytes_ += len;
  since_header_ += len;
  if (since_header_ >= 48000 * 4)
    fix_header ();
}

void
WavWriter::close ()
{
  std::lock_guard<std::mutex> g (lock_);
  if (!f_)
    return;
  fix_header ();
  fclose (f_);
  f_ = nullptr;
}

GstFlowReturn
WavWriter::on_sample (GstElement *sink, gpointer data)
{
  GstSample *s = gst_app_sink_pull_sample (GST_APP_SINK (sink));
  if (!s)
    return GST_FLOW_OK;
  GstBuffer *b = gst_sample_get_buffer (s);
  GstMapInfo map;
  if (b && gst_buffer_map (b, &map, GST_MAP_READ)) {
    static_cast<WavWriter *> (data)->write (map.data, map.size);
    gst_buffer_unmap (b, &map);
  }
  gst_sample_unref (s);
  return GST_FLOW_OK;
}

void
WavWriter::attach (GstElement *session)
{
  GstElement *sink = gst_bin_get_by_name (GST_BIN (session), kAudioOutSink);
  if (!sink)
    return;
  if (GST_IS_APP_SINK (sink))
    g_signal_connect (sink, "new-sample", G_CALLBACK (on_sample), this);
  gst_object_unref (sink);
}

std::string
audio_stats (GstElement *session)
{
  std::string out;
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (session));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = GST_ELEMENT (g_value_get_object (&v));
    GstElementFactory *f = gst_element_get_factory (e);
    if (f && g_strcmp0 (GST_OBJECT_NAME (f), "wayrayplayout") == 0) {
      GstStructure *st = nullptr;
      g_object_get (e, "stats", &st, nullptr);
      if (st) {
        gchar *text = gst_structure_to_string (st);
        out += (out.empty () ? "" : "; ") + std::string (text);
        g_free (text);
        gst_structure_free (st);
      }
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  return out;
}

}  // namespace wayray
