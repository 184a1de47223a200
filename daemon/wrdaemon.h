/* wayrayd's configuration: a GKeyFile, every key documented in
 * docs/wayrayd.md with its default.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrpipelinefile.h"

#include <glib.h>

#include <string>

namespace wayray {

struct DaemonConfig {
  std::string seat = "default";
  std::string config_file;       /* the file read, or "" for built-in defaults */

  /* [daemon] */
  std::string listen_address;    /* "" = every address */
  guint port = 4433;
  guint session_port_first = 4434, session_port_last = 4533;
  std::string certificate_file, private_key_file;   /* "" = quic elements' defaults */
  std::string token_store;       /* default /etc/wayray/SEAT.tokens */
  std::string control_socket;    /* default $RUNTIME_DIRECTORY/SEAT.ctl */
  guint max_sessions = 16;

  /* [session] */
  std::string session_command = "foot";
  std::string keymap_layout = "us";
  guint default_width = 1920, default_height = 1080;
  guint framerate = 60;
  std::string video_encoder = "auto";   /* H.264 encoders to try, in order */

  /* [pipelines] */
  std::string server_pipeline = "server-session";
  std::string pipelines_dir;     /* "" = the standard search path */
};

/* Reads @file, or /etc/wayray/SEAT.conf when @file is NULL and it exists.
 * Unknown groups or keys and bad values are errors naming file and key. */
bool load_daemon_config (const std::string &seat, const char *file, DaemonConfig *cfg, GError **error);

/* Checks what can be checked before serving: the token store is readable,
 * the server pipeline file exists, parses with this configuration and has
 * the elements the daemon needs. On success @server holds the file as it
 * was checked: sessions are built from that text, so a later broken edit
 * does not reach them (reload with SIGHUP). */
bool check_daemon_config (const DaemonConfig &cfg, PipelineFile *server, GError **error);

/* The variables of the server pipeline file for one session. H264_ENCODER
 * is the best usable encoder of `[session] video-encoder`. */
Variables session_variables (const DaemonConfig &cfg, int id, const std::string &socket, int width, int height,
    guint port);

/* The control socket path for a seat when the configuration names none. */
std::string default_control_socket (const std::string &seat);

}  // namespace wayray
