/* The session's sound server: a PipeWire daemon with its session manager
 * (wireplumber) and PulseAudio server (pipewire-pulse), and the session D-Bus
 * they need, started by the session worker as the session's user, one set
 * per session (docs/audio.md).
 *
 * Everything lives in a directory of its own in the session's runtime
 * directory (`wayray-sound-ID/`): the PipeWire and PulseAudio sockets, the
 * bus, the configuration the daemons get and their log. So two sessions'
 * sound never mixes, even two sessions of one user sharing
 * /run/user/UID. The PipeWire daemon creates the session's speakers,
 * `wayray-speakers` (Audio/Sink, the default sink): what the session
 * plays, whose monitor the server pipeline captures. The microphone,
 * `wayray-microphone` (Audio/Source, the default source), is the server
 * pipeline's pipewiresink: what the client's microphone sends,
 * applications record.
 * The session manager has its device monitors (ALSA, Bluetooth, V4L2,
 * libcamera) turned off: a session never opens the server's own devices.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace wayray {

constexpr const char *kSpeakersNode = "wayray-speakers";
constexpr const char *kMicrophoneNode = "wayray-microphone";

/* The programs a sound server runs, found in PATH: empty when all are
 * there, else what is missing ("pipewire, wireplumber"). */
std::string sound_programs_missing ();

class SoundServer {
 public:
  SoundServer () = default;
  SoundServer (const SoundServer &) = delete;
  SoundServer &operator= (const SoundServer &) = delete;
  ~SoundServer () { stop (); }

  /* Starts the daemons for session @id in $XDG_RUNTIME_DIR and waits (at
   * most @timeout_ms) until PipeWire and PulseAudio take connections.
   * FALSE with @error saying why; whatever started is stopped again. */
  bool start (int id, int timeout_ms, std::string &error);
  /* Ends the daemons (SIGTERM, then SIGKILL after a second) and removes the
   * directory. */
  void stop ();
  bool running () const { return !children_.empty (); }

  /* NAME=value: how applications (and this process's PipeWire elements)
   * reach this sound server. */
  std::vector<std::string> environment () const;
  /* Sets them in this process's own environment. */
  void export_environment () const;
  const std::string &directory () const { return dir_; }

 private:
  bool write_config (std::string &error);
  pid_t spawn (const std::vector<std::string> &argv, const std::vector<std::string> &extra_env, std::string &error);

  std::string dir_;
  std::vector<pid_t> children_;
};

}  // namespace wayray
