/* wayrayd: the WayRay seat daemon.
 *
 * Hosts sessions (a wayraysrc compositor with the session command and the
 * server pipeline from a pipeline file), one per token. Clients knock at the
 * front door (a QUIC port): they present a token and their screen size and
 * get the session's port, a one-time ticket and the server's certificate
 * fingerprint. On the session port the client presents the ticket; until it
 * does, the session's display stays behind a closed gate and its input is
 * dropped. A session outlives its client; the same token from another client
 * reattaches it, resized to the new screen, with a full refresh.
 *
 *   wayrayd [--seat NAME] [--config FILE]
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"
#include "wrcodecs.h"
#include "wrcontrol.h"
#include "wrdaemon.h"
#include "wrpipelinefile.h"
#include "wrsession.h"
#include "wrtokens.h"
#include "wrworker.h"

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

#include <atomic>
#include <vector>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

GST_DEBUG_CATEGORY (wayrayd_debug);
#define GST_CAT_DEFAULT wayrayd_debug

namespace wayray {

static std::string
random_hex (size_t bytes)
{
  std::string out;
  std::vector<guint8> buf (bytes);
  if (getrandom (buf.data (), bytes, 0) != (ssize_t) bytes)
    g_error ("no randomness available");
  static const char hex[] = "0123456789abcdef";
  for (guint8 b : buf) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

struct Daemon;

/* The daemon's view of a session running in its worker process. */
struct SessionProxy {
  Daemon *d = nullptr;
  int id = 0;
  std::string token_name;
  guint port = 0;
  std::string socket_name;
  GPid pid = 0;
  int fd = -1;
  guint io_watch = 0, child_watch = 0;
  std::string line_buf;

  bool ready = false;
  bool attached = false;
  std::string describe_line, stats_text, ended_reason;
  /* A welcome waiting for the worker to listen. It goes to whoever is at
   * the front door then: the nonce lets only its client take it, and the
   * ticket is worthless without the token (see ticket_proof). */
  GstStructure *welcome = nullptr;
  std::string welcome_proof;
  int welcome_w = 0, welcome_h = 0;
  std::string welcome_who;

  ~SessionProxy ();
  void send (GstStructure *msg);
  void handle (const GstStructure *msg);
  void expect (const std::string &proof, int w, int h, const std::string &who);
};


/* ---- The daemon --------------------------------------------------------- */

struct Daemon {
  DaemonConfig cfg;
  PipelineFile server_file;      /* the last server pipeline that checked out */
  GMainLoop *loop = nullptr;
  std::map<int, std::unique_ptr<SessionProxy>> sessions;
  std::string self_exe;
  int next_id = 1;

  /* Front door. */
  GstElement *door = nullptr, *door_in = nullptr, *door_out = nullptr, *door_net = nullptr;
  guint door_watch = 0;
  guint door_restart = 0;
  gint64 last_malformed_us = 0;   /* malformed hellos are answered once a second */
  std::string door_peer;
  std::string fingerprint;

  GSocketService *control = nullptr;
  bool notified_ready = false;

  bool start_front_door (GError **error);
  void restart_front_door (guint delay_ms);
  void on_hello (GstStructure *msg);
  void reply (GstStructure *msg);
  SessionProxy *session_for_token (const std::string &name);
  SessionProxy *spawn_worker (const std::string &token, int w, int h, GError **error);
  void worker_gone (SessionProxy *p, int status);
  guint free_port ();
  bool start_control (GError **error);
  std::string handle_command (const std::string &line);
  void update_status ();
  void reload_pipeline ();
};

static Daemon *the_daemon;


/* ---- Daemon ------------------------------------------------------------- */

/* SIGHUP: take the server pipeline file again if it checks out; a broken
 * edit is reported and the last good one stays in use. */
void
Daemon::reload_pipeline ()
{
  PipelineFile file;
  GError *err = nullptr;
  if (!check_daemon_config (cfg, &file, &err)) {
    g_printerr ("wayrayd: reload refused, new sessions keep using %s as it was: %s\n",
        server_file.path.c_str (), err->message);
    g_error_free (err);
    return;
  }
  server_file = file;
  g_print ("wayrayd: reloaded %s for new sessions\n", server_file.path.c_str ());
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

guint
Daemon::free_port ()
{
  for (guint p = cfg.session_port_first; p <= cfg.session_port_last; p++) {
    bool used = false;
    for (auto &kv : sessions)
      used |= kv.second->port == p;
    if (!used)
      return p;
  }
  return 0;
}

SessionProxy::~SessionProxy ()
{
  if (io_watch)
    g_source_remove (io_watch);
  if (child_watch)
    g_source_remove (child_watch);
  if (fd >= 0)
    close (fd);
  if (welcome)
    gst_structure_free (welcome);
}

void
SessionProxy::send (GstStructure *msg)
{
  if (fd < 0 || !worker_send (fd, msg))
    GST_WARNING ("session %d: its worker is not listening", id);
}

void
SessionProxy::expect (const std::string &proof, int w, int h, const std::string &who)
{
  send (gst_structure_new ("expect", "proof", G_TYPE_STRING, proof.c_str (), "width", G_TYPE_INT, w,
          "height", G_TYPE_INT, h, "client", G_TYPE_STRING, who.c_str (), nullptr));
}

void
SessionProxy::handle (const GstStructure *msg)
{
  if (gst_structure_has_name (msg, "ready")) {
    ready = true;
    g_print ("session %d (%s): started on port %u, socket %s, worker %d\n", id, token_name.c_str (), port,
        socket_name.c_str (), pid);
    if (welcome) {
      expect (welcome_proof, welcome_w, welcome_h, welcome_who);
      d->reply (welcome);
      welcome = nullptr;
    }
  } else if (gst_structure_has_name (msg, "failed")) {
    const gchar *reason = gst_structure_get_string (msg, "reason");
    ended_reason = std::string ("could not start: ") + (reason ? reason : "?");
    if (welcome) {
      g_print ("refused %s: the session could not start: %s\n", welcome_who.c_str (), reason ? reason : "?");
      d->reply (gst_structure_new ("refused", "nonce", G_TYPE_STRING, gst_structure_get_string (welcome, "nonce"),
              "reason", G_TYPE_STRING,
              (std::string ("the session could not start: ") + (reason ? reason : "?")).c_str (), nullptr));
      gst_structure_free (welcome);
      welcome = nullptr;
    }
  } else if (gst_structure_has_name (msg, "status")) {
    gboolean a = FALSE;
    gst_structure_get_boolean (msg, "attached", &a);
    const gchar *desc = gst_structure_get_string (msg, "describe");
    const gchar *stats = gst_structure_get_string (msg, "stats");
    const gchar *who = gst_structure_get_string (msg, "client");
    (void) who;                 /* the worker logs attach and detach itself */
    attached = a;
    describe_line = desc ? desc : "";
    stats_text = stats ? stats : "";
    d->update_status ();
  } else if (gst_structure_has_name (msg, "ended")) {
    const gchar *reason = gst_structure_get_string (msg, "reason");
    ended_reason = reason ? reason : "ended";
  }
}

/* Lines from a worker; its end (EOF) is handled by the child watch. */
static gboolean
worker_input (gint fd, GIOCondition cond, gpointer data)
{
  SessionProxy *p = static_cast<SessionProxy *> (data);
  char buf[65536];
  ssize_t n = read (fd, buf, sizeof buf);
  if (n <= 0) {
    p->io_watch = 0;
    return G_SOURCE_REMOVE;
  }
  p->line_buf.append (buf, n);
  size_t nl;
  while ((nl = p->line_buf.find ('\n')) != std::string::npos) {
    std::string line = p->line_buf.substr (0, nl);
    p->line_buf.erase (0, nl + 1);
    GstStructure *s = gst_structure_from_string (line.c_str (), nullptr);
    if (s) {
      p->handle (s);
      gst_structure_free (s);
    }
  }
  return G_SOURCE_CONTINUE;
}

SessionProxy *
Daemon::spawn_worker (const std::string &token, int w, int h, GError **error)
{
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "socketpair: %s", g_strerror (errno));
    return nullptr;
  }
  auto p = std::make_unique<SessionProxy> ();
  p->d = this;
  p->id = next_id++;
  p->token_name = token;
  p->port = free_port ();
  p->socket_name = "wayray-" + cfg.seat + "-" + std::to_string (p->id);
  const gchar *argv[] = { self_exe.c_str (), "--session-worker=3", nullptr };
  gint source_fds[] = { sv[1] }, target_fds[] = { 3 };
  GPid pid = 0;
  gboolean ok = g_spawn_async_with_pipes_and_fds (nullptr, argv, nullptr, G_SPAWN_DO_NOT_REAP_CHILD, nullptr,
      nullptr, -1, -1, -1, source_fds, target_fds, 1, &pid, nullptr, nullptr, nullptr, error);
  close (sv[1]);
  if (!ok) {
    close (sv[0]);
    return nullptr;
  }
  p->pid = pid;
  p->fd = sv[0];
  p->io_watch = g_unix_fd_add (p->fd, (GIOCondition) (G_IO_IN | G_IO_HUP | G_IO_ERR), worker_input, p.get ());
  p->child_watch = g_child_watch_add (pid, [] (GPid, gint status, gpointer data) {
        SessionProxy *sp = static_cast<SessionProxy *> (data);
        sp->child_watch = 0;
        sp->d->worker_gone (sp, status);
      }, p.get ());
  p->send (gst_structure_new ("setup",
          "id", G_TYPE_INT, p->id, "token", G_TYPE_STRING, token.c_str (), "port", G_TYPE_UINT, p->port,
          "socket", G_TYPE_STRING, p->socket_name.c_str (), "width", G_TYPE_INT, w, "height", G_TYPE_INT, h,
          "seat", G_TYPE_STRING, cfg.seat.c_str (),
          "command", G_TYPE_STRING, cfg.session_command.c_str (),
          "keymap-layout", G_TYPE_STRING, cfg.keymap_layout.c_str (),
          "listen-address", G_TYPE_STRING, cfg.listen_address.c_str (),
          "certificate-file", G_TYPE_STRING, cfg.certificate_file.c_str (),
          "private-key-file", G_TYPE_STRING, cfg.private_key_file.c_str (),
          "video-encoder", G_TYPE_STRING, cfg.video_encoder.c_str (),
          "framerate", G_TYPE_UINT, cfg.framerate,
          "pipeline-path", G_TYPE_STRING, server_file.path.c_str (),
          "pipeline-text", G_TYPE_STRING, server_file.text.c_str (), nullptr));
  SessionProxy *raw = p.get ();
  sessions[raw->id] = std::move (p);
  return raw;
}

void
Daemon::worker_gone (SessionProxy *p, int status)
{
  std::string why = p->ended_reason;
  if (why.empty ()) {
    if (WIFSIGNALED (status))
      why = std::string ("its worker crashed (") + g_strsignal (WTERMSIG (status)) + ")";
    else
      why = "its worker exited with status " + std::to_string (WIFEXITED (status) ? WEXITSTATUS (status) : -1);
  }
  g_print ("session %d (%s) ends: %s\n", p->id, p->token_name.c_str (), why.c_str ());
  if (WIFSIGNALED (status)) {
    /* A crashed worker could not remove its Wayland socket. */
    const gchar *dir = g_getenv ("XDG_RUNTIME_DIR");
    if (dir) {
      std::string sock = std::string (dir) + "/" + p->socket_name;
      unlink (sock.c_str ());
      unlink ((sock + ".lock").c_str ());
    }
  }
  if (p->welcome) {
    reply (gst_structure_new ("refused", "nonce", G_TYPE_STRING, gst_structure_get_string (p->welcome, "nonce"),
            "reason", G_TYPE_STRING, ("the session could not start: " + why).c_str (), nullptr));
  }
  sessions.erase (p->id);
  update_status ();
}

void
Daemon::reply (GstStructure *msg)
{
  control_source_push (door_out, msg);
}

void
Daemon::on_hello (GstStructure *msg)
{
  /* Every hello gets its answer, carrying the client's nonce: the answer
   * goes to whoever is connected then, and only the asking client takes
   * an answer with its own nonce. */
  const gchar *nonce_s = gst_structure_get_string (msg, "nonce");
  std::string nonce = nonce_s ? nonce_s : "";
  const gchar *token = gst_structure_get_string (msg, "token");
  const gchar *client = gst_structure_get_string (msg, "client");
  gint version = 0, w = 0, h = 0;
  gst_structure_get_int (msg, "version", &version);
  gst_structure_get_int (msg, "width", &w);
  gst_structure_get_int (msg, "height", &h);
  std::string who = std::string (client ? client : "client") + "@" + door_peer;

  auto refuse = [this, &who, &nonce] (const std::string &reason) {
    g_print ("refused %s: %s\n", who.c_str (), reason.c_str ());
    reply (gst_structure_new ("refused", "nonce", G_TYPE_STRING, nonce.c_str (), "reason", G_TYPE_STRING,
            reason.c_str (), nullptr));
  };
  if (!gst_structure_has_name (msg, "hello") || version != 1) {
    refuse ("not a WayRay version 1 hello");
    return;
  }
  if (w < 16 || h < 16 || w > 8192 || h > 8192) {
    w = cfg.default_width;
    h = cfg.default_height;
  }
  std::string name;
  GError *err = nullptr;
  if (!token || !token_store_verify (cfg.token_store, token, &name, &err)) {
    refuse (err ? err->message : "unknown token");
    g_clear_error (&err);
    return;
  }

  SessionProxy *s = session_for_token (name);
  std::string ticket = random_hex (16);
  std::string proof = ticket_proof (token, ticket);
  auto welcome = [&] (SessionProxy *p, bool created) {
    return gst_structure_new ("welcome", "nonce", G_TYPE_STRING, nonce.c_str (), "session", G_TYPE_INT, p->id,
        "port", G_TYPE_UINT, p->port, "ticket", G_TYPE_STRING, ticket.c_str (),
        "fingerprint", G_TYPE_STRING, fingerprint.c_str (), "new-session", G_TYPE_BOOLEAN, created,
        "width", G_TYPE_INT, w, "height", G_TYPE_INT, h, nullptr);
  };
  if (s && s->ready) {
    s->expect (proof, w, h, who);
    reply (welcome (s, FALSE));
    return;
  }
  if (s) {
    /* Still starting: this hello's answer replaces the one waiting. */
    if (s->welcome)
      gst_structure_free (s->welcome);
    s->welcome = welcome (s, TRUE);
    s->welcome_proof = proof;
    s->welcome_w = w;
    s->welcome_h = h;
    s->welcome_who = who;
    return;
  }
  if (sessions.size () >= cfg.max_sessions) {
    refuse ("the server has no room for another session (max-sessions)");
    return;
  }
  if (!free_port ()) {
    refuse ("no free session port (session-ports)");
    return;
  }
  /* A new session: its worker answers once it listens. */
  GError *e = nullptr;
  s = spawn_worker (name, w, h, &e);
  if (!s) {
    refuse (std::string ("the session could not start: ") + e->message);
    g_error_free (e);
    return;
  }
  s->welcome = welcome (s, TRUE);
  s->welcome_proof = proof;
  s->welcome_w = w;
  s->welcome_h = h;
  s->welcome_who = who;
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
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *st = gst_message_get_structure (msg);
      if (gst_structure_has_name (st, "wayray-quic-connection")) {
        gboolean up = FALSE;
        gst_structure_get_boolean (st, "connected", &up);
        const gchar *peer = gst_structure_get_string (st, "peer");
        if (up)
          d->door_peer = peer ? peer : "?";
      }
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
  for (GstElement *e : { door_in, door_net })
    g_object_set (e, "mode", 0 /* server */, "host", cfg.listen_address.c_str (), "port", cfg.port,
        "certificate-file", cfg.certificate_file.c_str (), "private-key-file", cfg.private_key_file.c_str (), nullptr);
  gst_bin_add_many (GST_BIN (door), door_in, hello, door_out, door_net, nullptr);
  link_to_stream (door_out, door_net, "welcome");

  g_signal_connect (door_in, "pad-added", G_CALLBACK (+[] (GstElement *el, GstPad *pad, gpointer data) {
        link_stream_pad (el, pad, "hello", GST_ELEMENT (data));
      }), hello);
  g_signal_connect (hello, "new-sample", G_CALLBACK (+[] (GstAppSink *sink, gpointer data) -> GstFlowReturn {
        GstStructure *msg = control_message_pull (sink);
        Daemon *d = static_cast<Daemon *> (data);
        run_on_main ([d, msg] {
              if (msg) {
                d->on_hello (msg);
                gst_structure_free (msg);
              } else if (g_get_monotonic_time () - d->last_malformed_us > G_USEC_PER_SEC) {
                d->last_malformed_us = g_get_monotonic_time ();
                g_print ("refused client@%s: malformed hello\n", d->door_peer.c_str ());
                d->reply (gst_structure_new ("refused", "reason", G_TYPE_STRING, "malformed hello", nullptr));
              }
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
  gchar *fp = nullptr;
  g_object_get (door_net, "certificate-fingerprint", &fp, nullptr);
  fingerprint = fp ? fp : "";
  g_free (fp);
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

/* ---- Control socket ----------------------------------------------------- */

std::string
Daemon::handle_command (const std::string &line)
{
  gchar **argv = g_strsplit_set (line.c_str (), " \t", -1);
  std::string cmd = argv[0] ? argv[0] : "";
  std::string arg = (argv[0] && argv[1]) ? argv[1] : "";
  g_strfreev (argv);
  auto find = [this, &arg] () -> SessionProxy * {
    auto it = sessions.find (atoi (arg.c_str ()));
    return it == sessions.end () ? nullptr : it->second.get ();
  };
  auto listing = [] (SessionProxy *p) {
    if (!p->describe_line.empty ())
      return p->describe_line + " worker=" + std::to_string (p->pid);
    return std::to_string (p->id) + " token=" + p->token_name + " state=starting port=" + std::to_string (p->port)
        + " socket=" + p->socket_name + " worker=" + std::to_string (p->pid);
  };

  if (cmd == "list") {
    std::string out;
    for (auto &kv : sessions)
      out += listing (kv.second.get ()) + "\n";
    return out + "ok\n";
  }
  if (cmd == "detach" || cmd == "end" || cmd == "stats") {
    SessionProxy *s = find ();
    if (!s)
      return "error: no session '" + arg + "' (see 'wayrayctl list')\n";
    if (cmd == "stats") {
      /* The worker's figures, at most two seconds old. */
      std::string text = s->stats_text.empty () ? listing (s) + "\n" : s->stats_text;
      return text + "ok\n";
    }
    if (cmd == "detach") {
      s->send (gst_structure_new ("detach", "reason", G_TYPE_STRING, "detached by the administrator", nullptr));
      return "ok\n";
    }
    s->send (gst_structure_new ("end", "reason", G_TYPE_STRING, "ended by the administrator", nullptr));
    return "ok\n";
  }
  return "error: unknown command '" + cmd + "' (list, detach ID, end ID, stats ID)\n";
}

static void
read_command (GObject *stream, GAsyncResult *res, gpointer data)
{
  GSocketConnection *conn = G_SOCKET_CONNECTION (data);
  gsize len = 0;
  gchar *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (stream), res, &len, nullptr);
  if (line && the_daemon) {
    std::string answer = the_daemon->handle_command (g_strstrip (line));
    GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
    g_output_stream_write_all (out, answer.data (), answer.size (), nullptr, nullptr, nullptr);
  }
  g_free (line);
  g_io_stream_close (G_IO_STREAM (conn), nullptr, nullptr);
  g_object_unref (stream);
  g_object_unref (conn);
}

bool
Daemon::start_control (GError **error)
{
  unlink (cfg.control_socket.c_str ());
  gchar *dir = g_path_get_dirname (cfg.control_socket.c_str ());
  g_mkdir_with_parents (dir, 0700);
  g_free (dir);
  control = g_socket_service_new ();
  GSocketAddress *addr = g_unix_socket_address_new (cfg.control_socket.c_str ());
  mode_t old = umask (0177);    /* the socket is the daemon user's alone */
  gboolean ok = g_socket_listener_add_address (G_SOCKET_LISTENER (control), addr, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_DEFAULT, nullptr, nullptr, error);
  umask (old);
  g_object_unref (addr);
  if (!ok)
    return false;
  g_signal_connect (control, "incoming", G_CALLBACK (+[] (GSocketService *, GSocketConnection *conn, GObject *,
          gpointer) -> gboolean {
        GDataInputStream *in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (conn)));
        g_data_input_stream_read_line_async (in, G_PRIORITY_DEFAULT, nullptr, read_command, g_object_ref (conn));
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
  g_print ("wayrayd: stopping\n");
  sd_notify (0, "STOPPING=1");
  g_main_loop_quit (static_cast<GMainLoop *> (data));
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  gchar *seat = nullptr, *config = nullptr;
  gboolean check = FALSE;
  gint worker_fd = -1;
  GOptionEntry entries[] = {
    {"session-worker", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &worker_fd,
        "Run one session, talking to wayrayd on FD (started by wayrayd itself)", "FD"},
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
      g_print ("H.264 encoder: none usable (pipelines using ${H264_ENCODER} will not start)\n");
    else
      g_print ("H.264 encoder: %s (%s)\n", enc.launch.c_str (), enc.hardware ? "hardware" : "software");
    return 0;
  }
  if (!check_daemon_config (d.cfg, &d.server_file, &err) || !d.start_control (&err) ||
      !d.start_front_door (&err)) {
    g_printerr ("wayrayd: %s\n", err->message);
    return 1;
  }
  g_print ("wayrayd: control socket %s\n", d.cfg.control_socket.c_str ());

  gchar *exe = g_file_read_link ("/proc/self/exe", nullptr);
  d.self_exe = exe ? exe : argv[0];
  g_free (exe);

  d.loop = g_main_loop_new (nullptr, FALSE);
  g_unix_signal_add (SIGTERM, on_signal, d.loop);
  g_unix_signal_add (SIGINT, on_signal, d.loop);
  g_unix_signal_add (SIGHUP, [] (gpointer data) -> gboolean {
        static_cast<Daemon *> (data)->reload_pipeline ();
        return G_SOURCE_CONTINUE;
      }, &d);
  g_main_loop_run (d.loop);

  /* End every session and wait (a while) for the workers. */
  for (auto &kv : d.sessions)
    kv.second->send (gst_structure_new ("end", "reason", G_TYPE_STRING, "the server is stopping", nullptr));
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (!d.sessions.empty () && g_get_monotonic_time () < deadline)
    g_main_context_iteration (nullptr, FALSE) || (g_usleep (10000), true);
  for (auto &kv : d.sessions) {
    kill (kv.second->pid, SIGKILL);
    waitpid (kv.second->pid, nullptr, 0);
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
  the_daemon = nullptr;
  return 0;
}
