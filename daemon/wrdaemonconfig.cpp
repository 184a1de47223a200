/* wayrayd's configuration.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrdaemon.h"

#include "wrcodecs.h"
#include "wrdesktop.h"

#include "wrpipelinefile.h"
#include "wrtokens.h"

#include <gst/gst.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unistd.h>
#include <map>
#include <set>

namespace wayray {

std::string
default_runtime_directory (const std::string &seat)
{
  const char *dir = g_getenv ("RUNTIME_DIRECTORY");     /* systemd RuntimeDirectory= */
  if (dir && *dir && !strchr (dir, ':'))
    return dir;
  const char *xdg = g_getenv ("XDG_RUNTIME_DIR");
  if (geteuid () != 0 && xdg && *xdg)
    return std::string (xdg) + "/wayray-" + seat;
  return "/run/wayray/" + seat;
}

std::string
find_control_socket (const DaemonConfig &cfg)
{
  if (!cfg.control_socket_set) {
    std::string system = "/run/wayray/" + cfg.seat + "/control";
    if (g_file_test (system.c_str (), G_FILE_TEST_EXISTS))
      return system;
  }
  return cfg.control_socket;
}

static bool
get_string (GKeyFile *kf, const char *group, const char *key, std::string *out)
{
  gchar *v = g_key_file_get_string (kf, group, key, nullptr);
  if (!v)
    return false;
  *out = g_strstrip (v);
  g_free (v);
  return true;
}

static bool
get_bool (GKeyFile *kf, const std::string &file, const char *group, const char *key, bool *out, GError **error)
{
  std::string v;
  if (!get_string (kf, group, key, &v))
    return true;
  if (v == "true" || v == "yes" || v == "1")
    *out = true;
  else if (v == "false" || v == "no" || v == "0")
    *out = false;
  else {
    g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
        "%s: [%s] %s=%s: expected true or false", file.c_str (), group, key, v.c_str ());
    return false;
  }
  return true;
}

/* "N" minutes, "Nm" minutes or "Ns" seconds. */
static bool
get_duration (GKeyFile *kf, const std::string &file, const char *group, const char *key, guint *seconds,
    GError **error)
{
  std::string v;
  if (!get_string (kf, group, key, &v))
    return true;
  gchar *end = nullptr;
  guint64 n = g_ascii_strtoull (v.c_str (), &end, 10);
  guint64 unit = 60;
  if (end && *end == 's')
    unit = 1, end++;
  else if (end && *end == 'm')
    end++;
  if (v.empty () || !g_ascii_isdigit (v[0]) || *end || n > 100000) {
    g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
        "%s: [%s] %s=%s: expected minutes (e.g. 30), or seconds with an s (e.g. 90s)", file.c_str (), group, key,
        v.c_str ());
    return false;
  }
  *seconds = (guint) (n * unit);
  return true;
}

static bool
get_uint (GKeyFile *kf, const std::string &file, const char *group, const char *key, guint min, guint max,
    guint *out, GError **error)
{
  std::string v;
  if (!get_string (kf, group, key, &v))
    return true;
  gchar *end = nullptr;
  guint64 n = g_ascii_strtoull (v.c_str (), &end, 10);
  if (v.empty () || *end || n < min || n > max) {
    g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
        "%s: [%s] %s=%s: expected a whole number from %u to %u", file.c_str (), group, key, v.c_str (), min, max);
    return false;
  }
  *out = (guint) n;
  return true;
}

bool
load_daemon_config (const std::string &seat, const char *file, DaemonConfig *cfg, GError **error)
{
  cfg->seat = seat;
  cfg->token_store = "/etc/wayray/" + seat + ".tokens";
  cfg->runtime_directory = default_runtime_directory (seat);

  std::string path = file ? file : "/etc/wayray/" + seat + ".conf";
  if (!file && !g_file_test (path.c_str (), G_FILE_TEST_EXISTS)) {
    cfg->control_socket = cfg->runtime_directory + "/control";
    return true;                /* built-in defaults */
  }
  cfg->config_file = path;

  GKeyFile *kf = g_key_file_new ();
  GError *err = nullptr;
  if (!g_key_file_load_from_file (kf, path.c_str (), G_KEY_FILE_NONE, &err)) {
    g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "%s: %s", path.c_str (), err->message);
    g_error_free (err);
    g_key_file_free (kf);
    return false;
  }

  /* Misspelt keys are errors, not silently ignored. */
  const std::map<std::string, std::set<std::string>> known = {
    { "daemon", { "listen-address", "port", "public-port", "session-ports", "certificate-file", "private-key-file",
          "token-store", "runtime-directory", "control-socket", "max-sessions", "pam-service", "pam-directory",
          "admin-group", "max-failed-logins", "failed-login-interval" } },
    { "session", { "command", "desktop", "desktop-config", "keymap-layout", "keymap-variant", "keymap-options", "width", "height", "framerate", "video-encoder", "video-chroma", "sound", "audio-bitrate", "allow-root",
          "detached-timeout", "max-sessions-per-user" } },
    { "pipelines", { "server", "directory" } },
    { "keymaps", {} },    /* any user name */
  };
  gchar **groups = g_key_file_get_groups (kf, nullptr);
  bool ok = true;
  for (gchar **g = groups; *g && ok; g++) {
    auto it = known.find (*g);
    if (it == known.end ()) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
          "%s: unknown group [%s] (known: daemon, session, pipelines, keymaps)", path.c_str (), *g);
      ok = false;
      break;
    }
    gchar **keys = g_key_file_get_keys (kf, *g, nullptr, nullptr);
    for (gchar **k = keys; *k && ok; k++) {
      if (!it->second.count (*k) && it->first != "keymaps") {
        g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND, "%s: unknown key '%s' in [%s]",
            path.c_str (), *k, *g);
        ok = false;
      }
    }
    g_strfreev (keys);
  }
  g_strfreev (groups);

  std::string ports;
  guint w = cfg->default_width, h = cfg->default_height;
  ok = ok && get_uint (kf, path, "daemon", "port", 1, 65535, &cfg->port, error) &&
      get_uint (kf, path, "daemon", "public-port", 0, 65535, &cfg->public_port, error) &&
      get_uint (kf, path, "daemon", "max-sessions", 1, 1000, &cfg->max_sessions, error) &&
      get_uint (kf, path, "session", "width", 16, 8192, &w, error) &&
      get_uint (kf, path, "session", "height", 16, 8192, &h, error) &&
      get_uint (kf, path, "session", "framerate", 1, 240, &cfg->framerate, error) &&
      get_uint (kf, path, "session", "max-sessions-per-user", 0, 1000, &cfg->max_sessions_per_user, error) &&
      get_uint (kf, path, "daemon", "max-failed-logins", 0, 100000, &cfg->max_failed_logins, error) &&
      get_duration (kf, path, "daemon", "failed-login-interval", &cfg->failed_login_interval_s, error) &&
      get_bool (kf, path, "session", "allow-root", &cfg->allow_root, error) &&
      get_bool (kf, path, "session", "sound", &cfg->sound, error) &&
      get_uint (kf, path, "session", "audio-bitrate", 6000, 510000, &cfg->audio_bitrate, error) &&
      get_duration (kf, path, "session", "detached-timeout", &cfg->detached_timeout_s, error);
  cfg->default_width = w;
  cfg->default_height = h;
  if (ok && get_string (kf, "daemon", "session-ports", &ports))
    g_printerr ("%s: [daemon] session-ports is no longer used: every session is reached on the seat's port\n",
        path.c_str ());
  if (ok) {
    get_string (kf, "daemon", "listen-address", &cfg->listen_address);
    get_string (kf, "daemon", "certificate-file", &cfg->certificate_file);
    get_string (kf, "daemon", "private-key-file", &cfg->private_key_file);
    get_string (kf, "daemon", "token-store", &cfg->token_store);
    get_string (kf, "daemon", "runtime-directory", &cfg->runtime_directory);
    cfg->control_socket_set = get_string (kf, "daemon", "control-socket", &cfg->control_socket);
    if (!cfg->control_socket_set)
      cfg->control_socket = cfg->runtime_directory + "/control";
    get_string (kf, "daemon", "pam-service", &cfg->pam_service);
    get_string (kf, "daemon", "pam-directory", &cfg->pam_directory);
    get_string (kf, "daemon", "admin-group", &cfg->admin_group);
    get_string (kf, "session", "command", &cfg->session_command);
    get_string (kf, "session", "keymap-layout", &cfg->keymap_layout);
    get_string (kf, "session", "keymap-variant", &cfg->keymap_variant);
    get_string (kf, "session", "keymap-options", &cfg->keymap_options);
    get_string (kf, "session", "desktop", &cfg->desktop);
    get_string (kf, "session", "desktop-config", &cfg->desktop_config);
    DesktopKind kind;
    if (!parse_desktop (cfg->desktop, &kind)) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
          "%s: [session] desktop must be weston, sway or kiosk, not '%s'", path.c_str (), cfg->desktop.c_str ());
      ok = false;
    } else if (!cfg->desktop_config.empty () && kind == DesktopKind::Kiosk) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
          "%s: [session] desktop-config is for desktop=weston or sway, not kiosk", path.c_str ());
      ok = false;
    } else if (!cfg->desktop_config.empty () && !g_path_is_absolute (cfg->desktop_config.c_str ())) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
          "%s: [session] desktop-config must be an absolute path, not '%s'", path.c_str (),
          cfg->desktop_config.c_str ());
      ok = false;
    }
    if (ok && !Keymap { cfg->keymap_layout, cfg->keymap_variant, cfg->keymap_options }.valid ()) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
          "%s: [session] keymap-layout '%s' (variant '%s', options '%s') is not made of XKB names", path.c_str (),
          cfg->keymap_layout.c_str (), cfg->keymap_variant.c_str (), cfg->keymap_options.c_str ());
      ok = false;
    }
    gchar **users = ok ? g_key_file_get_keys (kf, "keymaps", nullptr, nullptr) : nullptr;
    for (gchar **u = users; u && *u && ok; u++) {
      gsize n = 0;
      gchar **parts = g_key_file_get_string_list (kf, "keymaps", *u, &n, nullptr);
      Keymap km;
      if (parts && n >= 1 && n <= 3) {
        km.layout = parts[0];
        km.variant = n > 1 ? parts[1] : "";
        km.options = n > 2 ? parts[2] : "";
      }
      g_strfreev (parts);
      if (!km.valid ()) {
        g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
            "%s: [keymaps] %s must be LAYOUT[;VARIANT[;OPTIONS]] in XKB names", path.c_str (), *u);
        ok = false;
      }
      cfg->user_keymaps[*u] = km;
    }
    g_strfreev (users);
    get_string (kf, "session", "video-encoder", &cfg->video_encoder);
    get_string (kf, "session", "video-chroma", &cfg->video_chroma);
    if (cfg->video_chroma != "4:2:0" && cfg->video_chroma != "4:4:4") {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
          "%s: [session] video-chroma must be 4:2:0 or 4:4:4, not '%s'", path.c_str (), cfg->video_chroma.c_str ());
      ok = false;
    }
    get_string (kf, "pipelines", "server", &cfg->server_pipeline);
    get_string (kf, "pipelines", "directory", &cfg->pipelines_dir);
  }
  g_key_file_free (kf);
  return ok;
}

Keymap
default_keymap (const DaemonConfig &cfg, const std::string &user)
{
  auto it = cfg.user_keymaps.find (user);
  if (it != cfg.user_keymaps.end ())
    return it->second;
  return Keymap { cfg.keymap_layout, cfg.keymap_variant, cfg.keymap_options };
}

Variables
session_variables (const DaemonConfig &cfg, const PipelineFile &file, int id, const std::string &socket, int width,
    int height, guint port, const std::string &client_video, bool sound)
{
  static CodecChoice encoder;
  static std::string encoder_for;
  if (pipeline_uses (file, "H264_ENCODER") && (encoder_for != cfg.video_encoder || encoder.factory.empty ())) {
    encoder = pick_h264_encoder (codec_preference (cfg.video_encoder));
    encoder_for = cfg.video_encoder;
  }
  /* 4:4:4 only where the file feeds the encoder ${VIDEO_FORMAT}: a file
   * written before it converts to 4:2:0. */
  const std::string profile = session_h264_profile (encoder.factory, client_video,
      pipeline_uses (file, "VIDEO_FORMAT") ? cfg.video_chroma : "4:2:0");
  return {
    { "SESSION_ID", std::to_string (id) },
    { "SESSION_COMMAND", cfg.session_command },
    { "SOCKET_NAME", socket },
    { "KEYMAP_LAYOUT", cfg.keymap_layout },
    { "WIDTH", std::to_string (width) },
    { "HEIGHT", std::to_string (height) },
    { "FRAMERATE", std::to_string (cfg.framerate) },
    { "LISTEN_ADDRESS", cfg.listen_address },
    { "PORT", std::to_string (port) },
    { "CERTIFICATE_FILE", cfg.certificate_file },
    { "PRIVATE_KEY_FILE", cfg.private_key_file },
    /* Empty with none usable: the file's %if H264_ENCODER parts are left out
     * and sessions are lossless. */
    { "H264_ENCODER", encoder.launch },
    { "H264_PROFILE", profile },
    { "VIDEO_FORMAT", video_format_for_profile (profile) },
    /* Empty without a sound server: the file's %if AUDIO parts are left out. */
    { "AUDIO", sound ? "pipewire" : "" },
    { "AUDIO_BITRATE", std::to_string (cfg.audio_bitrate) },
    { "SPEAKERS", "wayray-speakers" },
    { "MICROPHONE", "wayray-microphone" },
  };
}

bool
check_daemon_config (const DaemonConfig &cfg, PipelineFile *server, GError **error)
{
  GError *err = nullptr;
  TokenEntry entry;
  if (!token_store_find (cfg.token_store, "", &entry, &err) &&
      !g_error_matches (err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED)) {
    g_propagate_error (error, err);
    return false;
  }
  g_clear_error (&err);

  /* Parse the server pipeline with placeholder values: a broken file is
   * refused now, not when the first client arrives. */
  std::string path;
  PipelineFile file;
  if (!find_pipeline_file (cfg.server_pipeline, cfg.pipelines_dir, &path, error) ||
      !read_pipeline_file (path, &file, error))
    return false;
  Variables vars = session_variables (cfg, file, 0, "wayray-check", 640, 480, cfg.port, "h264", cfg.sound);
  GstElement *p = load_pipeline (file, vars, error);
  if (!p)
    return false;
  bool ok = true;
  for (auto [n, f] : std::initializer_list<std::pair<const char *, const char *>> {
           { "src", "wayraysrc" }, { "size", "capsfilter" }, { "gate", "valve" }, { "net", "quicsink" },
           { "netin", "quicsrc" } }) {
    GstElement *e = require_element (p, path, n, f, ok ? error : nullptr);
    if (!e)
      ok = false;
    else
      gst_object_unref (e);
  }
  gst_object_unref (p);
  if (ok && server)
    *server = file;
  return ok;
}

}  // namespace wayray
