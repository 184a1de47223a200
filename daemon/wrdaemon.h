/* wayrayd's configuration: a GKeyFile, every key documented in
 * docs/wayrayd.md with its default.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrdesktop.h"
#include "wrpipelinefile.h"

#include <glib.h>

#include <map>
#include <string>

namespace wayray {

struct DaemonConfig {
  std::string seat = "default";
  std::string config_file;       /* the file read, or "" for built-in defaults */

  /* [daemon] */
  std::string listen_address;    /* "" = every address */
  guint port = 4433;
  guint public_port = 0;         /* the port clients are sent to; 0 = port */
  std::string certificate_file, private_key_file;   /* "" = quic elements' defaults */
  std::string token_store;       /* default /etc/wayray/SEAT.tokens */
  std::string runtime_directory; /* default: see default_runtime_directory () */
  std::string control_socket;    /* default RUNTIME/control */
  bool control_socket_set = false;   /* named by the configuration */
  guint max_sessions = 16;
  std::string pam_service = "wayray";
  std::string pam_directory;     /* "" = PAM's own (/etc/pam.d) */
  std::string admin_group;       /* "" = root alone manages every session */

  /* [session] */
  /* foot without its shared-memory scrolling (docs/wayrayd.md, "The
   * terminal's scrolling"), its font in points at 96 dpi whatever size the
   * desktop says its screen is (docs/desktop.md). */
  std::string session_command = "foot --override=tweak.max-shm-pool-size-mb=0 --override=dpi-aware=no";
  std::string keymap_layout = "us";
  std::string keymap_variant, keymap_options;
  /* [keymaps]: users' own defaults (USER=LAYOUT;VARIANT;OPTIONS), for
   * clients that say no layout. */
  std::map<std::string, Keymap> user_keymaps;
  /* Window management (wrdesktop.h): "weston", "sway" or "kiosk", and the
   * operator's own configuration file for the first two. */
  std::string desktop = "weston";
  std::string desktop_config;
  guint default_width = 1920, default_height = 1080;
  guint framerate = 60;
  std::string video_encoder = "auto";   /* H.264 encoders to try, in order */
  std::string video_chroma = "4:2:0";   /* or "4:4:4" where encoder and decoder allow */
  bool sound = true;             /* a sound server in every session (docs/audio.md) */
  guint audio_bitrate = 96000;   /* Opus, bits per second, each way */
  bool allow_root = false;
  guint detached_timeout_s = 0;  /* 0 = never */
  guint max_sessions_per_user = 0;   /* 0 = no limit */
  /* Failed logins per source address before its hellos are refused (0 = no
   * limit), and the time that gives one back. */
  guint max_failed_logins = 10;
  guint failed_login_interval_s = 3;

  /* [pipelines] */
  std::string server_pipeline = "server-session";
  std::string pipelines_dir;     /* "" = the standard search path */
};

/* Reads @file, or /etc/wayray/SEAT.conf when @file is NULL and it exists.
 * Unknown groups or keys and bad values are errors naming file and key. */
/* The keymap a session of @user starts with: the user's [keymaps] entry,
 * else the seat's. */
Keymap default_keymap (const DaemonConfig &cfg, const std::string &user);

bool load_daemon_config (const std::string &seat, const char *file, DaemonConfig *cfg, GError **error);

/* Checks what can be checked before serving: the token store is readable,
 * the server pipeline file exists, parses with this configuration and has
 * the elements the daemon needs. On success @server holds the file as it
 * was checked: sessions are built from that text, so a later broken edit
 * does not reach them (reload with SIGHUP). */
bool check_daemon_config (const DaemonConfig &cfg, PipelineFile *server, GError **error);

/* The variables of the server pipeline @file for one session. H264_ENCODER
 * is the best usable encoder of `[session] video-encoder` (probed only when
 * the file uses it); H264_PROFILE the best profile it makes that the first
 * client (@client_video, its hello's "h264:PROFILE,...") decodes. AUDIO is
 * "pipewire" when the session has a sound server (@sound), else empty. */
Variables session_variables (const DaemonConfig &cfg, const PipelineFile &file, int id, const std::string &socket,
    int width, int height, guint port, const std::string &client_video, bool sound);

/* The seat's runtime directory when the configuration names none:
 * $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=wayray/SEAT), else
 * /run/wayray/SEAT for root, else $XDG_RUNTIME_DIR/wayray-SEAT. */
std::string default_runtime_directory (const std::string &seat);

/* Where wayrayctl looks for a seat's control socket when told nothing
 * else: the daemon's default, or /run/wayray/SEAT/control when that exists
 * (a daemon started by the unit, seen by any user). */
std::string find_control_socket (const DaemonConfig &cfg);

}  // namespace wayray
