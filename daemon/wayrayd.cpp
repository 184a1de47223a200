/* wayrayd: the WayRay seat daemon.
 *
 * Hosts sessions (a wayraysrc compositor with the session command and the
 * server pipeline from a pipeline file), one per token, each running as the
 * token's Unix account in a PAM session of its own. Clients knock at the
 * front door (a QUIC port): they present a token and their screen size and
 * get the session's port, a one-time ticket and the server's certificate
 * fingerprint. On the session port the client presents the ticket; until it
 * does, the session's display stays behind a closed gate and its input is
 * dropped. A session outlives its client; the same token from another client
 * reattaches it, resized to the new screen, with a full refresh. Sessions
 * outlive the daemon too: a new wayrayd adopts the sessions it finds.
 *
 * The parts and who they run as: this daemon (root: reads the token store,
 * holds the seat key, serves the front door and the control socket); per
 * session a starter (root, wrstarter.h: PAM, then waits) and a worker (the
 * user, wrworker.h: the session pipeline and its applications).
 *
 *   wayrayd [--seat NAME] [--config FILE]
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"
#include "wrcodecs.h"
#include "wrcontrol.h"
#include "wrdaemon.h"
#include "wrdoorlimit.h"
#include "wrpipelinefile.h"
#include "wrscram.h"
#include "wrscreen.h"
#include "wrsession.h"
#include "wrdesktop.h"
#include "wrsound.h"
#include "wrtokens.h"
#include "wrcardkey.h"
#include "wrworker.h"
#include "wraccounts.h"
#include "wrprivileges.h"
#include "wrproxy.h"
#include "wrsessioncert.h"
#include "wrstarter.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <sstream>
#include <tuple>

GST_DEBUG_CATEGORY (wayrayd_debug);
#define GST_CAT_DEFAULT wayrayd_debug

namespace wayray {

/* ---- The daemon --------------------------------------------------------- */

/* How long a session's certificate is valid. Each names one session and
 * clients accept it only for that session; see docs/wayrayd.md. */
constexpr guint64 SESSION_CERTIFICATE_SECONDS = 90ull * 24 * 3600;

struct Daemon : ProxyHost {
  DaemonConfig cfg;
  PipelineFile server_file;      /* the last server pipeline that checked out */
  GMainLoop *loop = nullptr;
  std::map<int, std::unique_ptr<SessionProxy>> sessions;
  std::string self_exe;
  int next_id = 1;
  bool privileged = geteuid () == 0;

  /* Front door. */
  GstElement *door = nullptr, *door_in = nullptr, *door_out = nullptr, *door_net = nullptr;
  guint door_watch = 0;
  guint door_restart = 0;
  FailureLimit door_failures;     /* failed logins per source address */
  std::set<guint64> failed_conns; /* counted once per connection */
  void door_failed (const std::string &source, guint64 conn, gint64 now, bool once_per_connection);
  std::string fingerprint;
  std::string seat_cert, seat_key;

  GSocketService *control = nullptr;
  guint policy_timer = 0;
  gchar **starter_env = nullptr;  /* the environment of session starters */
  bool notified_ready = false;
  bool shutting_down = false;

  bool start_front_door (GError **error);
  void restart_front_door (guint delay_ms);
  void on_hello (GstStructure *msg, const MessageOrigin &origin);
  /* Logins between their hello and their proof, by connection: the hello
   * (what the client asked for), the token's entry, the nonces. */
  struct PendingLogin {
    std::unique_ptr<GstStructure, decltype (&gst_structure_free)> hello { nullptr, gst_structure_free };
    TokenEntry entry;
    std::string client_nonce, server_nonce;
    gint64 since_us = 0;
  };
  std::map<guint64, PendingLogin> pending_logins;
  static constexpr gint64 kProofWaitUs = 30 * G_USEC_PER_SEC;
  void reply (GstStructure *msg, guint64 conn_id);
  void reply (GstStructure *msg);
  SessionProxy *session_for_token (const std::string &name);
  SessionProxy *spawn_session (const std::string &token, const Account &account, const ClientScreen &screen,
      GError **error);
  bool prepare_runtime (GError **error);
  void share_registry ();
  void adopt_sessions ();
  bool start_control (GError **error);
  std::string handle_command (const std::string &line, uid_t peer);
  void update_status ();
  void reload ();
  void apply_policy ();
  void end_session (SessionProxy *p, const std::string &reason);

  /* ProxyHost */
  void proxy_ready (SessionProxy *p) override;
  void proxy_failed (SessionProxy *p, const std::string &reason) override;
  void proxy_changed (SessionProxy *p) override { update_status (); }
  void proxy_gone (SessionProxy *p, const std::string &why) override;
  GstStructure *proxy_setup (SessionProxy *p) override;
  void proxy_connected (SessionProxy *p) override { reroute (p); }
  /* One port per seat: the front door routes @p's connections to its
   * worker, through a new relay socket. */
  void reroute (SessionProxy *p);
  std::string new_route ();
};

static Daemon *the_daemon;


/* ---- Daemon ------------------------------------------------------------- */

/* SIGHUP: read the whole configuration again and take it if it checks out;
 * otherwise report why and keep the running one. Sessions that run keep
 * what they started with. */
void
Daemon::reload ()
{
  DaemonConfig fresh;
  PipelineFile file;
  GError *err = nullptr;
  if (!load_daemon_config (cfg.seat, cfg.config_file.empty () ? nullptr : cfg.config_file.c_str (), &fresh, &err) ||
      !check_daemon_config (fresh, &file, &err)) {
    g_printerr ("wayrayd: reload refused, the running configuration stays: %s\n", err->message);
    g_error_free (err);
    return;
  }
  for (auto [what, before, after] : { std::make_tuple ("runtime-directory", cfg.runtime_directory,
           fresh.runtime_directory), std::make_tuple ("control-socket", cfg.control_socket, fresh.control_socket),
           std::make_tuple ("certificate-file", cfg.certificate_file, fresh.certificate_file),
           std::make_tuple ("private-key-file", cfg.private_key_file, fresh.private_key_file) }) {
    if (before != after)
      g_printerr ("wayrayd: [daemon] %s changes only when wayrayd restarts; keeping %s\n", what, before.c_str ());
  }
  fresh.runtime_directory = cfg.runtime_directory;
  fresh.control_socket = cfg.control_socket;
  fresh.certificate_file = cfg.certificate_file;
  fresh.private_key_file = cfg.private_key_file;
  bool door_moved = fresh.port != cfg.port || fresh.listen_address != cfg.listen_address;
  cfg = fresh;
  server_file = file;
  g_print ("wayrayd: reloaded %s (pipeline %s) for new sessions\n",
      cfg.config_file.empty () ? "the built-in defaults" : cfg.config_file.c_str (), server_file.path.c_str ());
  if (door_moved)
    restart_front_door (0);
  apply_policy ();
}

void
Daemon::update_status ()
{
  int attached = 0;
  for (auto &kv : sessions)
    attached += kv.second->attached ? 1 : 0;
  sd_notifyf (0, "STATUS=%zu sessions, %d attached", sessions.size (), attached);
}

SessionProxy *
Daemon::session_for_token (const std::string &name)
{
  for (auto &kv : sessions)
    if (kv.second->token_name == name)
      return kv.second.get ();
  return nullptr;
}

/* A session's connection-ID prefix: 4 random bytes, not the front door's
 * (zeros), not another session's. */
std::string
Daemon::new_route ()
{
  for (;;) {
    std::string r = scram_random_hex (4);
    bool used = r == "00000000";
    for (auto &kv : sessions)
      used |= kv.second->route == r;
    if (!used)
      return r;
  }
}

void
Daemon::reroute (SessionProxy *p)
{
  if (!door_in || p->route.empty () || p->fd < 0)
    return;
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    g_printerr ("wayrayd: session %d: no relay socket: %s\n", p->id, g_strerror (errno));
    return;
  }
  gboolean routed = FALSE;
  g_signal_emit_by_name (door_in, "add-route", p->route.c_str (), sv[0], &routed);
  if (!routed || !p->send_fd (gst_structure_new_empty ("relay"), sv[1]))
    g_printerr ("wayrayd: session %d: its connections cannot be routed (route %s)\n", p->id, p->route.c_str ());
  close (sv[0]);
  close (sv[1]);
}

void
Daemon::end_session (SessionProxy *p, const std::string &reason)
{
  g_print ("session %d (%s): ending: %s\n", p->id, p->user.c_str (), reason.c_str ());
  p->ended_reason = reason;
  if (p->fd >= 0)
    p->send (gst_structure_new ("end", "reason", G_TYPE_STRING, reason.c_str (), nullptr));
  else
    p->terminate ();
}

/* detached-timeout: sessions left detached too long end. */
void
Daemon::apply_policy ()
{
  if (policy_timer)
    g_source_remove (policy_timer);
  policy_timer = 0;
  if (!cfg.detached_timeout_s)
    return;
  policy_timer = g_timeout_add_seconds (1, [] (gpointer data) -> gboolean {
        Daemon *d = static_cast<Daemon *> (data);
        gint64 now = g_get_monotonic_time ();
        for (auto &kv : d->sessions) {
          SessionProxy *p = kv.second.get ();
          if (p->ready && !p->attached && p->detached_since_us && p->ended_reason.empty () &&
              now - p->detached_since_us > (gint64) d->cfg.detached_timeout_s * G_USEC_PER_SEC)
            d->end_session (p, "it was detached for longer than detached-timeout");
        }
        return G_SOURCE_CONTINUE;
      }, this);
}

void
Daemon::proxy_ready (SessionProxy *p)
{
  g_print ("session %d (%s as %s): %s on port %u, socket %s, worker %d\n", p->id, p->token_name.c_str (),
      p->user.c_str (), p->adopted ? "adopted" : "started", p->port, p->socket_path.c_str (), p->worker);
  if (p->welcome) {
    p->expect (p->welcome_proof, p->welcome_screen, p->welcome_who, p->welcome_video, p->welcome_keymap);
    reply (p->welcome, p->welcome_conn);
    p->welcome = nullptr;
  }
  update_status ();
}

void
Daemon::proxy_failed (SessionProxy *p, const std::string &reason)
{
  if (!p->welcome)
    return;
  g_print ("refused %s: the session could not start: %s\n", p->welcome_who.c_str (), reason.c_str ());
  reply (gst_structure_new ("refused", "nonce", G_TYPE_STRING, gst_structure_get_string (p->welcome, "nonce"),
          "reason", G_TYPE_STRING, ("the session could not start: " + reason).c_str (), nullptr), p->welcome_conn);
  gst_structure_free (p->welcome);
  p->welcome = nullptr;
}

void
Daemon::proxy_gone (SessionProxy *p, const std::string &why)
{
  g_print ("session %d (%s) ends: %s\n", p->id, p->token_name.c_str (), why.c_str ());
  proxy_failed (p, why);
  gboolean removed = FALSE;
  if (door_in && !p->route.empty ())
    g_signal_emit_by_name (door_in, "remove-route", p->route.c_str (), &removed);
  sessions.erase (p->id);
  update_status ();
  if (shutting_down && sessions.empty ())
    g_main_loop_quit (loop);
}

GstStructure *
Daemon::proxy_setup (SessionProxy *p)
{
  std::string base = p->runtime_dir + "/wayray-session-" + std::to_string (p->id);
  const Keymap keymap = default_keymap (cfg, p->user);
  GstStructure *setup = gst_structure_new ("setup",
      "id", G_TYPE_INT, p->id, "token", G_TYPE_STRING, p->token_name.c_str (), "port", G_TYPE_UINT, p->port,
      "route", G_TYPE_STRING, p->route.c_str (),
      "socket", G_TYPE_STRING, p->socket_name.c_str (), "seat", G_TYPE_STRING, cfg.seat.c_str (),
      "command", G_TYPE_STRING, cfg.session_command.c_str (),
      "keymap-layout", G_TYPE_STRING, keymap.layout.c_str (),
      "keymap-variant", G_TYPE_STRING, keymap.variant.c_str (),
      "keymap-options", G_TYPE_STRING, keymap.options.c_str (),
      "desktop", G_TYPE_STRING, cfg.desktop.c_str (), "desktop-config", G_TYPE_STRING, cfg.desktop_config.c_str (),
      "listen-address", G_TYPE_STRING, cfg.listen_address.c_str (),
      "certificate-file", G_TYPE_STRING, (base + ".crt").c_str (),
      "private-key-file", G_TYPE_STRING, (base + ".key").c_str (),
      "video-encoder", G_TYPE_STRING, cfg.video_encoder.c_str (),
      "video-chroma", G_TYPE_STRING, cfg.video_chroma.c_str (),
      "sound", G_TYPE_BOOLEAN, (gboolean) cfg.sound, "audio-bitrate", G_TYPE_UINT, cfg.audio_bitrate,
      "client-video", G_TYPE_STRING, p->welcome_video.c_str (),
      "framerate", G_TYPE_UINT, cfg.framerate,
      "pipeline-path", G_TYPE_STRING, server_file.path.c_str (),
      "pipeline-text", G_TYPE_STRING, server_file.text.c_str (), nullptr);
  p->welcome_screen.put (setup);
  return setup;
}

SessionProxy *
Daemon::spawn_session (const std::string &token, const Account &account, const ClientScreen &screen, GError **error)
{
  auto p = std::make_unique<SessionProxy> ();
  p->host = this;
  p->id = next_id++;
  p->token_name = token;
  p->user = account.name;
  p->uid = account.uid;
  p->port = cfg.port;
  p->route = new_route ();
  p->seat_runtime = cfg.runtime_directory;
  p->socket_name = "wayray-" + cfg.seat + "-" + std::to_string (p->id);
  p->welcome_screen = screen;

  /* The session's own key, signed by the seat's: the seat key never
   * reaches anything the session's user can read. Its name is random, and
   * clients take the chain only with the name of the session they asked
   * for. */
  std::string chain, key;
  p->certificate_name = "wayray-session-" + scram_random_hex (16);
  if (!issue_session_certificate (seat_cert, seat_key, p->certificate_name, SESSION_CERTIFICATE_SECONDS, &chain,
          &key, error))
    return nullptr;
  GstStructure *start = gst_structure_new ("start", "id", G_TYPE_INT, p->id,
      "token", G_TYPE_STRING, token.c_str (), "user", G_TYPE_STRING, account.name.c_str (),
      "seat", G_TYPE_STRING, cfg.seat.c_str (), "socket", G_TYPE_STRING, p->socket_name.c_str (),
      "runtime-directory", G_TYPE_STRING, cfg.runtime_directory.c_str (), "port", G_TYPE_UINT, p->port,
      "route", G_TYPE_STRING, p->route.c_str (),
      "pam-service", G_TYPE_STRING, cfg.pam_service.c_str (),
      "pam-directory", G_TYPE_STRING, cfg.pam_directory.c_str (),
      "certificate", G_TYPE_STRING, chain.c_str (), "private-key", G_TYPE_STRING, key.c_str (),
      "certificate-name", G_TYPE_STRING, p->certificate_name.c_str (), nullptr);
  std::fill (key.begin (), key.end (), '\0');
  if (!p->spawn (self_exe, starter_env, start, error))
    return nullptr;
  SessionProxy *raw = p.get ();
  sessions[raw->id] = std::move (p);
  return raw;
}

/* Every answer goes to the connection the hello came on, and to no
 * other. */
void
Daemon::reply (GstStructure *msg, guint64 conn_id)
{
  if (!conn_id) {
    gst_structure_free (msg);
    return;
  }
  control_source_push (door_out, msg, conn_id);
}

/* A failed login counts against its address; a connection's malformed
 * messages count once, however many it sent. */
void
Daemon::door_failed (const std::string &source, guint64 conn, gint64 now, bool once_per_connection)
{
  door_failures.set_rate (cfg.max_failed_logins, (gint64) cfg.failed_login_interval_s * G_USEC_PER_SEC);
  if (once_per_connection && conn && !failed_conns.insert (conn).second)
    return;
  while (failed_conns.size () > 4096)
    failed_conns.erase (failed_conns.begin ());
  door_failures.failed (source, now);
}

void
Daemon::on_hello (GstStructure *in, const MessageOrigin &origin)
{
  /* A login is two messages on the hello stream: the hello (the token's
   * id, the screen, the keyboard...) and, after the challenge, the proof
   * (wrscram.h). For a proof, what the client asked for is its hello's. */
  const bool is_proof = gst_structure_has_name (in, "proof");
  PendingLogin pending;
  const gint64 now_us = g_get_monotonic_time ();
  for (auto it = pending_logins.begin (); it != pending_logins.end ();)
    it = now_us - it->second.since_us > kProofWaitUs ? pending_logins.erase (it) : std::next (it);
  if (auto it = pending_logins.find (origin.conn_id); it != pending_logins.end ()) {
    if (is_proof)
      pending = std::move (it->second);
    pending_logins.erase (it);
  }
  const GstStructure *msg = is_proof && pending.hello ? pending.hello.get () : in;
  /* Every hello gets its answer on its own connection, carrying the
   * client's nonce. */
  const std::string peer = origin.peer.empty () ? "?" : origin.peer;
  const guint64 conn = origin.conn_id;
  const gchar *nonce_s = gst_structure_get_string (msg, "nonce");
  std::string nonce = nonce_s ? nonce_s : "";
  const gchar *client = gst_structure_get_string (msg, "client");
  gint version = 0;
  gst_structure_get_int (msg, "version", &version);
  /* The client's own name is only a label: the address is the peer's. */
  std::string label = client ? client : "client";
  for (char &c : label)
    if (!g_ascii_isalnum (c) && c != '-' && c != '_' && c != '.')
      c = '_';
  if (label.size () > 64)
    label.resize (64);
  std::string who = label + "@" + peer;
  /* The client's keyboard layout, when it says one in plain XKB names;
   * anything else leaves the session's default. */
  auto field = [msg] (const char *f) {
    const gchar *v = gst_structure_get_string (msg, f);
    return std::string (v ? v : "");
  };
  Keymap keymap { field ("keymap-layout"), field ("keymap-variant"), field ("keymap-options") };
  /* The screen: its size (else the seat's default), its scale factor
   * (HiDPI, 1 to 4, anything else is 1) and its monitors. */
  std::string screen_note;
  const ClientScreen screen = ClientScreen::take (msg, cfg.default_width, cfg.default_height, &screen_note);
  if (!screen_note.empty ())
    g_print ("%s: ignoring its monitors: %s\n", who.c_str (), screen_note.c_str ());
  if (!keymap.empty () && !keymap.valid ()) {
    g_print ("%s: ignoring its keymap: not XKB names\n", who.c_str ());
    keymap = Keymap ();
  }
  /* The video codecs the client decodes: only "h264" is known; anything
   * else (or none, an older client) means the session stays lossless. */
  const gchar *codecs = gst_structure_get_string (msg, "video-codecs");
  std::string video;
  if (codecs) {
    gchar **list = g_strsplit (codecs, ",", 16);
    for (gchar **i = list; *i; i++)
      if (g_strcmp0 (g_strstrip (*i), "h264") == 0)
        video = "h264";
    g_strfreev (list);
  }
  /* ... and the H.264 profiles its decoder takes ("h264:high,main"; none
   * named: any). Only plain names pass, at most 16 of them. */
  const gchar *profiles = gst_structure_get_string (msg, "h264-profiles");
  if (!video.empty () && profiles && *profiles) {
    std::string list;
    gchar **names = g_strsplit (profiles, ",", 17);
    for (gchar **i = names; *i && i - names < 16; i++) {
      std::string name = g_strstrip (*i);
      bool plain = !name.empty () && name.size () <= 32 &&
          std::all_of (name.begin (), name.end (), [] (char c) {
            return g_ascii_isalnum (c) || c == '-' || c == ':';
          });
      if (plain)
        list += (list.empty () ? "" : ",") + name;
    }
    g_strfreev (names);
    if (!list.empty ())
      video += ":" + list;
  }
  const std::string source = FailureLimit::source_of (peer);
  const gint64 now = g_get_monotonic_time ();

  /* Refusals name the peer's address, one line each, for log watchers
   * (fail2ban and the like): "refused NAME@ADDRESS:PORT: REASON". */
  auto refuse = [&] (const std::string &reason) {
    g_print ("refused %s: %s\n", who.c_str (), reason.c_str ());
    reply (gst_structure_new ("refused", "nonce", G_TYPE_STRING, nonce.c_str (), "reason", G_TYPE_STRING,
            reason.c_str (), nullptr), conn);
  };
  gint64 wait_us = 0;
  door_failures.set_rate (cfg.max_failed_logins, (gint64) cfg.failed_login_interval_s * G_USEC_PER_SEC);
  if (!door_failures.allowed (source, now, &wait_us)) {
    /* Refused without a look at the token; the answer must reach the peer,
     * so its connection stays (it ends with the peer, or when not admitted
     * in time). */
    refuse ("too many failed logins from " + source + "; try again in " +
        std::to_string ((wait_us + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC) + " s");
    return;
  }
  GError *err = nullptr;
  if (!is_proof) {
    if (!gst_structure_has_name (msg, "hello") || version != 2) {
      door_failed (source, conn, now, true);
      refuse (version == 1 ? "this client sends its token; the server takes only a proof of it (update wayray-client)"
                           : "not a WayRay version 2 hello");
      return;
    }
    /* The token's entry, by its id; the client proves it holds the token
     * in its answer to the challenge. */
    const gchar *id = gst_structure_get_string (msg, "token-id");
    const gchar *cnonce = gst_structure_get_string (msg, "client-nonce");
    PendingLogin login;
    if (!id || !cnonce || strlen (cnonce) < 16 || strlen (cnonce) > 128 ||
        !token_store_find (cfg.token_store, id, &login.entry, &err)) {
      door_failed (source, conn, now, false);
      /* A card's id that no entry has: an unregistered card. */
      const gchar *credential = gst_structure_get_string (msg, "credential");
      bool card = g_strcmp0 (credential, "card") == 0 || g_strcmp0 (credential, "card-key") == 0;
      refuse (card && g_error_matches (err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED) ? "card not registered"
                                                                                     : err ? err->message
                                                                                           : "unknown token");
      g_clear_error (&err);
      return;
    }
    login.hello.reset (gst_structure_copy (msg));
    login.client_nonce = cnonce;
    login.server_nonce = login.client_nonce + scram_random_hex (18);
    login.since_us = now_us;
    const ScramVerifier &v = login.entry.verifier;
    if (!login.entry.public_key.empty ())   /* a card with a key signs (wrcardkey.h) */
      reply (gst_structure_new ("challenge", "nonce", G_TYPE_STRING, nonce.c_str (), "server-nonce", G_TYPE_STRING,
              login.server_nonce.c_str (), "kind", G_TYPE_STRING, "key", nullptr), conn);
    else
      reply (gst_structure_new ("challenge", "nonce", G_TYPE_STRING, nonce.c_str (), "server-nonce", G_TYPE_STRING,
              login.server_nonce.c_str (), "salt", G_TYPE_STRING, v.salt.c_str (), "iterations", G_TYPE_UINT,
              v.iterations, nullptr), conn);
    pending_logins[conn] = std::move (login);
    return;
  }
  /* The proof: over this very connection (its TLS exporter value), for
   * the challenge it was given. */
  const gchar *snonce = gst_structure_get_string (in, "server-nonce");
  const gchar *client_proof = gst_structure_get_string (in, "client-proof");
  gchar *binding = nullptr;
  if (door_in)
    g_signal_emit_by_name (door_in, "channel-binding", conn, &binding);
  ScramKey client_key {};
  const bool key_login = !pending.entry.public_key.empty ();
  std::string auth;
  if (pending.hello && binding)
    auth = key_login ? card_key_auth_message (pending.entry.verifier.id, pending.client_nonce, pending.server_nonce,
                           binding)
                     : scram_auth_message (pending.entry.verifier.id, pending.client_nonce, pending.server_nonce,
                           pending.entry.verifier.salt, pending.entry.verifier.iterations, binding);
  g_free (binding);
  /* A card with a key proves itself by its signature of the login; the
   * ticket's key comes from that signature. */
  std::string signature, why_not;
  bool verified = false;
  if (pending.hello && snonce && client_proof && pending.server_nonce == snonce && !auth.empty ()) {
    if (!key_login)
      verified = scram_verify (pending.entry.verifier, auth, client_proof, &client_key);
    else if (bytes_of_hex (client_proof, &signature) && signature.size () <= 1024 &&
        card_key_verify (pending.entry.public_key, auth, signature, &why_not)) {
      verified = true;
      client_key = card_key_ticket_key (signature);
    }
  }
  if (!verified) {
    door_failed (source, conn, now, false);
    refuse (!pending.hello ? "a proof without a hello before it on this connection"
            : key_login ? "the card's signature does not verify (another card, or the login was made over another "
                          "connection)"
                        : "the token's proof does not verify (a wrong token, or the login was made over "
                          "another connection)");
    return;
  }
  const std::string name = pending.entry.name, user = pending.entry.user;
  /* Only a token's verifier can sign for the server; a card's public key
   * cannot, and the server is known by its certificate alone. */
  const std::string server_signature = key_login ? "" : scram_server_signature (pending.entry.verifier.server_key,
      auth);

  SessionProxy *s = session_for_token (name);
  std::string ticket = scram_random_hex (16);
  std::string proof = ticket_proof (client_key, ticket);
  auto welcome = [&] (SessionProxy *p, bool created) {
    return gst_structure_new ("welcome", "nonce", G_TYPE_STRING, nonce.c_str (), "session", G_TYPE_INT, p->id,
        "port", G_TYPE_UINT, cfg.public_port ? cfg.public_port : cfg.port, "route", G_TYPE_STRING, p->route.c_str (),
        "ticket", G_TYPE_STRING, ticket.c_str (),
        "fingerprint", G_TYPE_STRING, fingerprint.c_str (),
        "certificate-name", G_TYPE_STRING, p->certificate_name.c_str (), "new-session", G_TYPE_BOOLEAN, created,
        "width", G_TYPE_INT, screen.width, "height", G_TYPE_INT, screen.height,
        "server-signature", G_TYPE_STRING, server_signature.c_str (), nullptr);
  };
  auto wait_for_worker = [&] (SessionProxy *p, bool created) {
    /* This hello's answer replaces any one waiting; that one's client is
     * told. */
    if (p->welcome) {
      if (p->welcome_conn != conn)
        reply (gst_structure_new ("refused", "nonce", G_TYPE_STRING, gst_structure_get_string (p->welcome, "nonce"),
                "reason", G_TYPE_STRING, "a newer login with the same token came while the session started",
                nullptr), p->welcome_conn);
      gst_structure_free (p->welcome);
    }
    p->welcome = welcome (p, created);
    p->welcome_conn = conn;
    p->welcome_proof = proof;
    p->welcome_screen = screen;
    p->welcome_who = who;
    p->welcome_video = video;
    p->welcome_keymap = keymap;
  };
  if (s && s->user != user) {
    /* The token was given to another account while its session ran. */
    refuse ("the token's session belongs to '" + s->user + "'; end it first (wayrayctl end " +
        std::to_string (s->id) + ")");
    return;
  }
  if (s && s->ready) {
    s->expect (proof, screen, who, video, keymap);
    reply (welcome (s, FALSE), conn);
    return;
  }
  if (s && s->adopted && g_get_monotonic_time () - s->adopted_us > 5 * G_USEC_PER_SEC) {
    /* Adopted, but its worker never answered (stopped, or not speaking
     * the protocol): its user's clients are told, the session is left as
     * it is for the administrator (wayrayctl end). */
    refuse ("the session of token '" + name + "' does not answer (worker " + std::to_string (s->worker) +
        "); ask the administrator to end it");
    return;
  }
  if (s) {
    wait_for_worker (s, !s->adopted);
    return;
  }
  Account account;
  if (!session_account (user, cfg.allow_root, &account, &err)) {
    refuse (std::string ("token '") + name + "': " + err->message);
    g_error_free (err);
    return;
  }
  if (!privileged && account.uid != geteuid ()) {
    refuse ("token '" + name + "': wayrayd does not run as root and starts sessions for its own user only");
    return;
  }
  if (sessions.size () >= cfg.max_sessions) {
    refuse ("the server has no room for another session (max-sessions)");
    return;
  }
  if (cfg.max_sessions_per_user) {
    guint mine = 0;
    for (auto &kv : sessions)
      mine += kv.second->uid == account.uid ? 1 : 0;
    if (mine >= cfg.max_sessions_per_user) {
      refuse ("'" + account.name + "' has " + std::to_string (mine) + " sessions already (max-sessions-per-user)");
      return;
    }
  }
  /* A new session: its worker answers once it listens. */
  s = spawn_session (name, account, screen, &err);
  if (!s) {
    refuse (std::string ("the session could not start: ") + err->message);
    g_error_free (err);
    return;
  }
  wait_for_worker (s, TRUE);
  update_status ();
}

static gboolean
door_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Daemon *d = static_cast<Daemon *> (data);
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gst_message_parse_error (msg, &err, nullptr);
      g_printerr ("front door: %s; restarting it\n", err->message);
      g_error_free (err);
      d->restart_front_door (500);
      break;
    }
    case GST_MESSAGE_STATE_CHANGED:
      if (GST_MESSAGE_SRC (msg) == GST_OBJECT (d->door) && !d->notified_ready) {
        GstState now;
        gst_message_parse_state_changed (msg, nullptr, &now, nullptr);
        if (now == GST_STATE_PLAYING) {
          d->notified_ready = true;
          sd_notify (0, "READY=1");
          g_print ("wayrayd (seat %s) ready on port %u\n", d->cfg.seat.c_str (), d->cfg.port);
          /* What stateless clients are given to trust this seat
           * (--fingerprint, WAYRAY_FINGERPRINT, wayray.fingerprint=). */
          g_print ("wayrayd (seat %s) certificate fingerprint %s\n", d->cfg.seat.c_str (), d->fingerprint.c_str ());
          for (const std::string &old : token_store_old_entries (d->cfg.token_store))
            g_printerr ("wayrayd: token '%s' in %s was issued before logins stopped carrying tokens and cannot log "
                "in; issue it again: wayrayctl token-add %s\n", old.c_str (), d->cfg.token_store.c_str (), old.c_str ());
        }
      }
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

bool
Daemon::start_front_door (GError **error)
{
  door = gst_pipeline_new ("front-door");
  door_in = gst_element_factory_make ("quicsrc", "door-in");
  GstElement *hello = control_sink_new ("door-hello");
  door_out = control_source_new ("door-reply");
  door_net = gst_element_factory_make ("quicsink", "door-out");
  if (!door_in || !hello || !door_out || !door_net) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "the quicsrc/quicsink elements (WayRay QUIC plugin) or appsrc/appsink are not installed");
    return false;
  }
  /* Every connection may send hellos (and nothing else) and is answered
  * on its own; none is ever admitted, so none displaces another. */
  for (GstElement *e : { door_in, door_net }) {
    g_object_set (e, "mode", 0 /* server */, "host", cfg.listen_address.c_str (), "port", cfg.port,
        "certificate-file", cfg.certificate_file.c_str (), "private-key-file", cfg.private_key_file.c_str (),
        "admission-timeout", 30000u, "max-connections", 1024u, "max-handshakes", 128u, nullptr);
    gst_util_set_object_arg (G_OBJECT (e), "admission", "application");
    /* The door's connection IDs start with zeros; every session's with its
     * route, which the door's endpoint hands over to the session. */
    g_object_set (e, "connection-id-prefix", "00000000", nullptr);
  }
  g_object_set (door_in, "unadmitted-streams", "hello", nullptr);
  gst_bin_add_many (GST_BIN (door), door_in, hello, door_out, door_net, nullptr);
  link_to_stream (door_out, door_net, "welcome");

  g_signal_connect (door_in, "pad-added", G_CALLBACK (+[] (GstElement *el, GstPad *pad, gpointer data) {
        link_stream_pad (el, pad, "hello", GST_ELEMENT (data));
      }), hello);
  g_signal_connect (hello, "new-sample", G_CALLBACK (+[] (GstAppSink *sink, gpointer data) -> GstFlowReturn {
        MessageOrigin origin;
        GstStructure *msg = control_message_pull (sink, &origin);
        Daemon *d = static_cast<Daemon *> (data);
        run_on_main ([d, msg, origin] {
              if (msg) {
                d->on_hello (msg, origin);
                gst_structure_free (msg);
                return;
              }
              std::string source = FailureLimit::source_of (origin.peer);
              gint64 now = g_get_monotonic_time ();
              bool quiet = !d->door_failures.allowed (source, now);
              d->door_failed (source, origin.conn_id, now, true);
              if (quiet)
                return;
              g_print ("refused client@%s: malformed hello\n", origin.peer.empty () ? "?" : origin.peer.c_str ());
              d->reply (gst_structure_new ("refused", "reason", G_TYPE_STRING, "malformed hello", nullptr),
                  origin.conn_id);
            });
        return GST_FLOW_OK;
      }), this);

  GstBus *bus = gst_element_get_bus (door);
  door_watch = gst_bus_add_watch (bus, door_bus, this);
  gst_object_unref (bus);
  if (gst_element_set_state (door, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
        "could not listen on port %u (in use? certificate unreadable?)", cfg.port);
    return false;
  }
  /* The door routes the running sessions' connections (again, after a
   * restart of the door). */
  for (auto &kv : sessions)
    reroute (kv.second.get ());
  gchar *fp = nullptr;
  g_object_get (door_net, "certificate-fingerprint", &fp, nullptr);
  fingerprint = fp ? fp : "";
  g_free (fp);
  /* The door made the seat's key and certificate if there were none. */
  seat_cert = cfg.certificate_file.empty () ? default_seat_certificate_file () : cfg.certificate_file;
  seat_key = cfg.private_key_file.empty () ? default_seat_key_file () : cfg.private_key_file;
  return true;
}

void
Daemon::restart_front_door (guint delay_ms)
{
  if (door_restart)
    g_source_remove (door_restart);
  door_restart = g_timeout_add (delay_ms, [] (gpointer data) -> gboolean {
        Daemon *d = static_cast<Daemon *> (data);
        d->door_restart = 0;
        g_source_remove (d->door_watch);
        gst_element_set_state (d->door, GST_STATE_NULL);
        gst_object_unref (d->door);
        d->door = nullptr;
        GError *err = nullptr;
        if (!d->start_front_door (&err)) {
          g_printerr ("front door: %s; trying again in 1 s\n", err->message);
          g_error_free (err);
          d->restart_front_door (1000);
        }
        return G_SOURCE_REMOVE;
      }, this);
}

/* ---- Runtime directory and adoption ---------------------------------------- */

/* The seat's runtime directory: everyone may pass through it (to the
 * control socket and to their own sessions' directories); its sessions/
 * directory, with the records and the workers' sockets, is root's alone. */
bool
Daemon::prepare_runtime (GError **error)
{
  std::string records = session_records_dir (cfg.runtime_directory);
  if (g_mkdir_with_parents (cfg.runtime_directory.c_str (), 0755) != 0 ||
      chmod (cfg.runtime_directory.c_str (), 0755) != 0 || g_mkdir_with_parents (records.c_str (), 0700) != 0 ||
      chmod (records.c_str (), 0700) != 0) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot prepare %s: %s",
        cfg.runtime_directory.c_str (), g_strerror (errno));
    return false;
  }
  return true;
}

/* Starters and workers load GStreamer's plugin registry; each scanning
 * the plugins for itself (a worker as its user has a registry of its own)
 * costs a new session hundreds of milliseconds. The daemon's registry,
 * brought up to date when it started, is shared read-only instead: a copy in
 * the runtime directory, with updates off. (After a plugin upgrade, restart
 * the daemon.) Without a registry to share, each one finds its own. */
void
Daemon::share_registry ()
{
  starter_env = g_get_environ ();
  std::string found;
  for (const char *var : { "GST_REGISTRY_1_0", "GST_REGISTRY" }) {
    const char *v = g_getenv (var);
    if (v && *v && found.empty ())
      found = v;
  }
  if (found.empty ()) {
    /* GStreamer's own place: $XDG_CACHE_HOME/gstreamer-1.0/registry.ARCH.bin */
    std::string dir = std::string (g_get_user_cache_dir ()) + "/gstreamer-1.0";
    GDir *d = g_dir_open (dir.c_str (), 0, nullptr);
    const gchar *e;
    while (d && (e = g_dir_read_name (d)))
      if (g_str_has_prefix (e, "registry.") && g_str_has_suffix (e, ".bin"))
        found = dir + "/" + e;
    if (d)
      g_dir_close (d);
  }
  gchar *data = nullptr;
  gsize len = 0;
  if (found.empty () || !g_file_get_contents (found.c_str (), &data, &len, nullptr))
    return;
  std::string shared = cfg.runtime_directory + "/gst-registry.bin";
  mode_t old = umask (0022);
  gboolean ok = g_file_set_contents (shared.c_str (), data, len, nullptr);
  umask (old);
  g_free (data);
  if (!ok || chmod (shared.c_str (), 0644) != 0)
    return;
  starter_env = g_environ_setenv (starter_env, "GST_REGISTRY_1_0", shared.c_str (), TRUE);
  starter_env = g_environ_setenv (starter_env, "GST_REGISTRY", shared.c_str (), TRUE);
  starter_env = g_environ_setenv (starter_env, "GST_REGISTRY_UPDATE", "no", TRUE);
}

/* Sessions that outlived an earlier wayrayd: their records say what they
 * are, their workers' sockets take this daemon's connection. */
void
Daemon::adopt_sessions ()
{
  std::string dir = session_records_dir (cfg.runtime_directory);
  GDir *d = g_dir_open (dir.c_str (), 0, nullptr);
  if (!d)
    return;
  const gchar *entry;
  while ((entry = g_dir_read_name (d))) {
    if (!g_str_has_suffix (entry, ".session"))
      continue;
    std::string path = dir + "/" + entry;
    GError *err = nullptr;
    std::unique_ptr<SessionProxy> p (session_proxy_from_record (path, &err));
    if (!p) {
      g_printerr ("wayrayd: %s; removed\n", err->message);
      g_error_free (err);
      unlink (path.c_str ());
      continue;
    }
    next_id = MAX (next_id, p->id + 1);
    p->host = this;
    p->seat_runtime = cfg.runtime_directory;
    bool alive = kill (p->starter, 0) == 0 || errno == EPERM;
    if (!alive || sessions.count (p->id) ||
        !p->connect_worker (gst_structure_new_empty ("adopt"), &err)) {
      g_printerr ("wayrayd: session %d (%s) is gone (%s); removing its record\n", p->id, p->user.c_str (),
          err ? err->message : "its starter no longer runs");
      g_clear_error (&err);
      if (!alive) {
        unlink (path.c_str ());
        unlink (session_socket_path (cfg.runtime_directory, p->id).c_str ());
      }
      continue;
    }
    p->detached_since_us = p->adopted_us = g_get_monotonic_time ();
    int id = p->id;
    sessions[id] = std::move (p);
  }
  g_dir_close (d);
  if (!sessions.empty ())
    g_print ("wayrayd: adopting %zu running sessions\n", sessions.size ());
}

/* ---- Control socket ----------------------------------------------------- */

/* Root and members of admin-group manage every session; anyone else lists,
 * detaches, ends and reads the figures of their own sessions only. */
std::string
Daemon::handle_command (const std::string &line, uid_t peer)
{
  gchar **argv = g_strsplit_set (line.c_str (), " \t", -1);
  std::string cmd = argv[0] ? argv[0] : "";
  std::string arg = (argv[0] && argv[1]) ? argv[1] : "";
  g_strfreev (argv);
  bool admin = peer == 0 || peer == geteuid () || uid_in_group (peer, cfg.admin_group);
  auto mine = [peer, admin] (SessionProxy *p) { return admin || p->uid == peer; };
  auto find = [this, &arg] () -> SessionProxy * {
    auto it = sessions.find (atoi (arg.c_str ()));
    return it == sessions.end () ? nullptr : it->second.get ();
  };

  if (cmd == "list") {
    std::string out;
    for (auto &kv : sessions)
      if (mine (kv.second.get ()))
        out += kv.second->listing () + "\n";
    return out + "ok\n";
  }
  if (cmd == "detach" || cmd == "end" || cmd == "stats") {
    SessionProxy *s = find ();
    /* Someone else's session does not exist, as far as they can tell. */
    if (!s || !mine (s))
      return "error: no session '" + arg + "' (see 'wayrayctl list')\n";
    std::string by = admin ? "the administrator" : user_name (peer);
    if (cmd == "stats")
      return s->listing () + "\n" + s->stats_text + "ok\n";
    if (cmd == "detach") {
      g_print ("session %d (%s): detached by %s\n", s->id, s->user.c_str (), by.c_str ());
      s->send (gst_structure_new ("detach", "reason", G_TYPE_STRING, ("detached by " + by).c_str (), nullptr));
      return "ok\n";
    }
    end_session (s, "ended by " + by);
    return "ok\n";
  }
  if (cmd == "revoke" || cmd == "shutdown") {
    if (!admin)
      return "error: only root" + std::string (cfg.admin_group.empty () ? "" : " and " + cfg.admin_group) +
          " may " + cmd + "\n";
    if (cmd == "revoke") {
      int n = 0;
      for (auto &kv : sessions)
        if (kv.second->token_name == arg && kv.second->ended_reason.empty ()) {
          end_session (kv.second.get (), "its token was revoked");
          n++;
        }
      return "ended " + std::to_string (n) + " session" + (n == 1 ? "" : "s") + "\nok\n";
    }
    g_print ("wayrayd: shutting down: ending every session\n");
    shutting_down = true;
    for (auto &kv : sessions)
      end_session (kv.second.get (), "the server is shutting down");
    if (sessions.empty ())
      g_main_loop_quit (loop);
    /* A session that does not end in time is ended harder: its starter's
     * SIGTERM ends the worker and closes the PAM session. */
    g_timeout_add_seconds (10, [] (gpointer data) -> gboolean {
          Daemon *d = static_cast<Daemon *> (data);
          for (auto &kv : d->sessions) {
            g_printerr ("wayrayd: session %d did not end in time; ending its starter\n", kv.first);
            kv.second->terminate ();
          }
          g_timeout_add_seconds (5, [] (gpointer l) -> gboolean {
                g_main_loop_quit (static_cast<GMainLoop *> (l));
                return G_SOURCE_REMOVE;
              }, d->loop);
          return G_SOURCE_REMOVE;
        }, this);
    return "ok\n";
  }
  return "error: unknown command '" + cmd + "' (list, detach ID, end ID, stats ID, revoke NAME, shutdown)\n";
}

struct ControlRequest {
  GSocketConnection *conn;
  uid_t peer;
};

static void
read_command (GObject *stream, GAsyncResult *res, gpointer data)
{
  auto *req = static_cast<ControlRequest *> (data);
  gsize len = 0;
  gchar *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (stream), res, &len, nullptr);
  if (line && the_daemon) {
    std::string answer = the_daemon->handle_command (g_strstrip (line), req->peer);
    GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (req->conn));
    g_output_stream_write_all (out, answer.data (), answer.size (), nullptr, nullptr, nullptr);
  }
  g_free (line);
  g_io_stream_close (G_IO_STREAM (req->conn), nullptr, nullptr);
  g_object_unref (stream);
  g_object_unref (req->conn);
  delete req;
}

bool
Daemon::start_control (GError **error)
{
  unlink (cfg.control_socket.c_str ());
  gchar *dir = g_path_get_dirname (cfg.control_socket.c_str ());
  g_mkdir_with_parents (dir, 0755);
  g_free (dir);
  control = g_socket_service_new ();
  GSocketAddress *addr = g_unix_socket_address_new (cfg.control_socket.c_str ());
  /* Everyone may connect; what they may do is decided by who they are
   * (SO_PEERCRED), command by command. */
  mode_t old = umask (0111);
  gboolean ok = g_socket_listener_add_address (G_SOCKET_LISTENER (control), addr, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_DEFAULT, nullptr, nullptr, error);
  umask (old);
  g_object_unref (addr);
  if (!ok)
    return false;
  g_signal_connect (control, "incoming", G_CALLBACK (+[] (GSocketService *, GSocketConnection *conn, GObject *,
          gpointer) -> gboolean {
        GCredentials *cred = g_socket_get_credentials (g_socket_connection_get_socket (conn), nullptr);
        if (!cred)
          return TRUE;          /* closed: who is it? */
        uid_t peer = g_credentials_get_unix_user (cred, nullptr);
        g_object_unref (cred);
        GDataInputStream *in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (conn)));
        g_data_input_stream_set_newline_type (in, G_DATA_STREAM_NEWLINE_TYPE_LF);
        g_data_input_stream_read_line_async (in, G_PRIORITY_DEFAULT, nullptr, read_command,
            new ControlRequest { G_SOCKET_CONNECTION (g_object_ref (conn)), peer });
        return TRUE;
      }), nullptr);
  g_socket_service_start (control);
  return true;
}

}  // namespace wayray

using namespace wayray;

static gboolean
on_signal (gpointer data)
{
  g_print ("wayrayd: stopping; sessions keep running (end them with 'wayrayctl shutdown')\n");
  sd_notify (0, "STOPPING=1");
  g_main_loop_quit (static_cast<GMainLoop *> (data));
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  gchar *seat = nullptr, *config = nullptr;
  gboolean check = FALSE;
  gint worker_fd = -1, starter_fd = -1;
  GOptionEntry entries[] = {
    {"session-worker", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &worker_fd,
        "Run one session, managed through the listening socket FD (started by the session starter)", "FD"},
    {"session-starter", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &starter_fd,
        "Start one session as its user, told what on FD (started by wayrayd itself)", "FD"},
    {"seat", 's', 0, G_OPTION_ARG_STRING, &seat, "Seat name (default: 'default'); selects /etc/wayray/SEAT.conf", "NAME"},
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config, "Configuration file (GKeyFile)", "FILE"},
    {"check", 0, 0, G_OPTION_ARG_NONE, &check, "Check the configuration and pipeline file, then exit", nullptr},
    {nullptr},
  };
  GOptionContext *ctx = g_option_context_new ("- WayRay seat daemon");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  GError *err = nullptr;
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("wayrayd: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  GST_DEBUG_CATEGORY_INIT (wayrayd_debug, "wayrayd", 0, "WayRay seat daemon");
  signal (SIGPIPE, SIG_IGN);
  /* One line at a time into the journal (or a log file), workers included. */
  setvbuf (stdout, nullptr, _IOLBF, 0);
  if (starter_fd >= 0)
    return session_starter_main (starter_fd);
  if (worker_fd >= 0)
    return session_worker_main (worker_fd);

  Daemon d;
  the_daemon = &d;
  if (!load_daemon_config (seat ? seat : "default", config, &d.cfg, &err)) {
    g_printerr ("wayrayd: %s\n", err->message);
    return 2;
  }
  if (check) {
    if (!check_daemon_config (d.cfg, &d.server_file, &err)) {
      g_printerr ("wayrayd: %s\n", err->message);
      return 2;
    }
    CodecChoice enc = pick_h264_encoder (codec_preference (d.cfg.video_encoder));
    g_print ("configuration and pipeline file are valid\n");
    if (enc.factory.empty ())
      g_print ("H.264 encoder: none usable (sessions are lossless: the pipeline file's %%if H264_ENCODER "
          "parts are left out)\n");
    else
      g_print ("H.264 encoder: %s (%s)\n", enc.launch.c_str (), enc.hardware ? "hardware" : "software");
    DesktopKind desktop = DesktopKind::Kiosk;
    parse_desktop (d.cfg.desktop, &desktop);
    const std::string desktop_missing = desktop_programs_missing (desktop);
    if (desktop == DesktopKind::Kiosk)
      g_print ("desktop: kiosk (every window full screen; runs: %s)\n", d.cfg.session_command.c_str ());
    else if (!desktop_missing.empty ())
      g_print ("desktop: kiosk instead of %s (not installed: %s)\n", d.cfg.desktop.c_str (), desktop_missing.c_str ());
    else
      g_print ("desktop: %s nested in every session%s%s\n", d.cfg.desktop.c_str (),
          d.cfg.desktop_config.empty () ? "" : ", configured by ", d.cfg.desktop_config.c_str ());
    const std::string sound_missing = d.cfg.sound ? sound_programs_missing () : "";
    if (!d.cfg.sound)
      g_print ("sound: off ([session] sound=false)\n");
    else if (!sound_missing.empty ())
      g_print ("sound: none (not installed: %s)\n", sound_missing.c_str ());
    else if (!pipeline_uses (d.server_file, "AUDIO"))
      g_print ("sound: a sound server in every session, but %s sends none of it (no ${AUDIO})\n",
          d.server_file.path.c_str ());
    else
      g_print ("sound: a PipeWire in every session, Opus at %u bit/s\n", d.cfg.audio_bitrate);
    if (!enc.factory.empty () && d.cfg.video_chroma == "4:4:4") {
      std::vector<std::string> made = h264_profiles_of (enc.factory, false);
      if (!pipeline_uses (d.server_file, "VIDEO_FORMAT"))
        g_print ("video chroma: 4:2:0 (video-chroma=4:4:4, but %s does not use ${VIDEO_FORMAT})\n",
            d.server_file.path.c_str ());
      else if (!made.empty () && std::find (made.begin (), made.end (), "high-4:4:4") == made.end ())
        g_print ("video chroma: 4:2:0 (video-chroma=4:4:4, but %s makes no high-4:4:4)\n", enc.factory.c_str ());
      else
        g_print ("video chroma: 4:4:4 for clients whose decoder takes high-4:4:4, else 4:2:0\n");
    }
    return 0;
  }
  if (!drop_capabilities (&err)) {
    g_printerr ("wayrayd: %s\n", err->message);
    return 1;
  }
  gchar *exe = g_file_read_link ("/proc/self/exe", nullptr);
  d.self_exe = exe ? exe : argv[0];
  g_free (exe);
  d.loop = g_main_loop_new (nullptr, FALSE);
  if (!check_daemon_config (d.cfg, &d.server_file, &err) || !d.prepare_runtime (&err) ||
      !d.start_control (&err)) {
    g_printerr ("wayrayd: %s\n", err->message);
    return 1;
  }
  d.share_registry ();
  /* Sessions first, so that no hello finds a running session's token
   * without its session; the door then routes their connections. */
  d.adopt_sessions ();
  if (!d.start_front_door (&err)) {
    g_printerr ("wayrayd: %s\n", err->message);
    return 1;
  }
  g_print ("wayrayd: control socket %s\n", d.cfg.control_socket.c_str ());
  d.apply_policy ();

  g_unix_signal_add (SIGTERM, on_signal, d.loop);
  g_unix_signal_add (SIGINT, on_signal, d.loop);
  g_unix_signal_add (SIGHUP, [] (gpointer data) -> gboolean {
        static_cast<Daemon *> (data)->reload ();
        return G_SOURCE_CONTINUE;
      }, &d);
  g_main_loop_run (d.loop);

  /* Sessions outlive the daemon: their starters and workers run on, and
   * the next wayrayd adopts them. Only their connections close here. */
  if (d.policy_timer)
    g_source_remove (d.policy_timer);
  for (auto &kv : d.sessions) {
    if (kv.second->child_watch)
      g_source_remove (kv.second->child_watch);
    kv.second->child_watch = 0;
  }
  d.sessions.clear ();
  if (d.door) {
    gst_element_set_state (d.door, GST_STATE_NULL);
    gst_object_unref (d.door);
  }
  if (d.control) {
    g_socket_service_stop (d.control);
    g_object_unref (d.control);
    unlink (d.cfg.control_socket.c_str ());
  }
  g_strfreev (d.starter_env);
  the_daemon = nullptr;
  return 0;
}
