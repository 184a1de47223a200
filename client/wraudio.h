/* The client's sound (docs/audio.md): what the session pipeline file gets
 * for its audio branches, the WAV file a headless client plays into
 * (--audio-file), and the playout statistics.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrpipelinefile.h"

#include <gst/gst.h>

#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace wayray {

struct AudioOptions {
  bool speakers = true;          /* --no-audio turns it off */
  bool microphone = true;        /* --no-microphone */
  std::string sink_device;       /* --audio-sink: a PulseAudio/PipeWire sink, or alsa:DEVICE */
  std::string source_device;     /* --audio-source */
  std::string out_file;          /* --audio-file: WAV (headless) */
  std::string microphone_file;   /* --microphone-file: WAV played as the microphone */
  unsigned microphone_bitrate = 64000;
};

/* Checks the options; FALSE with @error saying what is wrong. */
bool audio_options_check (const AudioOptions &o, bool headless, std::string &error);

/* AUDIO_SINK (what the decoded sound goes into; empty: no sound),
 * MICROPHONE_SOURCE (raw audio of the microphone; empty: none) and
 * MICROPHONE_BITRATE. A headless client plays only into --audio-file and
 * records only --microphone-file. */
void audio_variables (const AudioOptions &o, bool headless, Variables &vars);

/* Window and console: turns off the speakers or the microphone when the
 * device does not open (a thin client without sound hardware), with a
 * warning for each. */
void audio_probe (AudioOptions &o, bool headless, std::vector<std::string> &warnings);

/* The audio devices' elements in the session pipeline, and which of them
 * (1 speakers, 2 microphone, 0 neither) an error message comes from. */
constexpr const char *kSpeakersDevice = "wayray-speakers-device";
constexpr const char *kMicrophoneDevice = "wayray-microphone-device";
int audio_error_part (GstElement *session, GstMessage *msg);

/* Name of the appsink AUDIO_SINK ends in with --audio-file. */
constexpr const char *kAudioOutSink = "wayray-audio-out";

/* A 16-bit stereo 48 kHz WAV file written as the sound arrives; its header
 * is kept right after every second of sound and at close. */
class WavWriter {
 public:
  ~WavWriter () { close (); }
  bool open (const std::string &path, std::string &error);
  void close ();
  /* Connects @session's kAudioOutSink, if it has one, to this file. */
  void attach (GstElement *session);
  /* The next sound at least @level of full scale that reaches the file
   * calls @heard with the milliseconds since this call (benchmarks: a
   * click's way from the session's application to the client's output). */
  void wait_sound (double level, std::function<void (double)> heard);

 private:
  static GstFlowReturn on_sample (GstElement *sink, gpointer data);
  void write (const guint8 *data, size_t len);
  void fix_header ();

  std::mutex lock_;
  FILE *f_ = nullptr;
  gint64 armed_us_ = 0;
  double level_ = 0;
  std::function<void (double)> heard_;
  guint64 data_bytes_ = 0, since_header_ = 0;
};

/* One line of the session pipeline's playout statistics (its
 * wayrayplayout elements), "" when it has none. */
std::string audio_stats (GstElement *session);

}  // namespace wayray
