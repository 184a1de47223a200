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
#include "wrtokens.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <atomic>
#include <vector>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

GST_DEBUG_CATEGORY_STATIC (wayrayd_debug);
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

static bool
equal_secret (const std::string &a, const std::string &b)
{
  if (a.size () != b.size ())
    return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size (); i++)
    diff |= a[i] ^ b[i];
  return diff == 0;
}

struct Daemon;

/* ---- A session ---------------------------------------------------------- */

struct Session {
  Daemon *d = nullptr;
  int id = 0;
  std::string token_name;
  guint port = 0;
  std::string socket_name;
  int width = 0, height = 0;
  gint64 created_us = 0;

  GstElement *pipeline = nullptr;
  GstElement *src = nullptr, *size = nullptr, *gate = nullptr, *net = nullptr, *netin = nullptr;
  std::vector<GstElement *> gates;   /* every valve named gate*: display, video, ... */
  GstElement *ctl = nullptr, *ticket_sink = nullptr;
  guint bus_watch = 0;

  /* Attachment, main thread only (except `verified`, read by probes). */
  std::string pending_ticket;
  int pending_w = 0, pending_h = 0;
  std::string pending_client;
  std::atomic<bool> verified { false };
  /* Connection events of the session port, counted by the bus sync handler
   * (which also closes the gates on every change) as they happen:
   * `peer_up` is the latest state, `ups` the connections so far,
   * `unhandled` the events the main loop has not seen yet. */
  std::atomic<bool> peer_up { false };
  std::atomic<guint64> ups { 0 };
  std::atomic<int> unhandled { 0 };
  /* A valid ticket arrived. It counts for exactly one connection: the first
   * one after its welcome (`ups_at_welcome`). The ticket and the events
   * telling of that connection reach the main loop in either order. */
  bool ticket_ok = false;
  guint64 ups_at_welcome = 0;
  void try_attach ();
  std::string client;           /* who is attached, for listings */
  guint64 attaches = 0;

  ~Session ();
  bool start (GError **error);
  void close_gate (const char *why);
  void set_gates (bool open);
  void open_gate ();
  void set_size (int w, int h);
  void on_ticket (GstStructure *msg);
  void attach ();
  void send_control (GstStructure *msg);
  std::string describe ();
  std::string stats ();
};

/* ---- The daemon --------------------------------------------------------- */

struct Daemon {
  DaemonConfig cfg;
  PipelineFile server_file;      /* the last server pipeline that checked out */
  GMainLoop *loop = nullptr;
  std::map<int, std::unique_ptr<Session>> sessions;
  int next_id = 1;

  /* Front door. */
  GstElement *door = nullptr, *door_in = nullptr, *door_out = nullptr, *door_net = nullptr;
  guint door_watch = 0;
  guint door_restart = 0;
  bool door_answered = false;
  std::string door_peer;
  std::string fingerprint;

  GSocketService *control = nullptr;
  bool notified_ready = false;

  bool start_front_door (GError **error);
  void restart_front_door (guint delay_ms);
  void on_hello (GstStructure *msg);
  void reply (GstStructure *msg);
  Session *session_for_token (const std::string &name);
  void end_session (int id, const std::string &why);
  guint free_port ();
  bool start_control (GError **error);
  std::string handle_command (const std::string &line);
  void update_status ();
  void reload_pipeline ();
};

static Daemon *the_daemon;

/* ---- Session ------------------------------------------------------------ */

Session::~Session ()
{
  if (bus_watch)
    g_source_remove (bus_watch);
  if (pipeline) {
    GstBus *bus = gst_element_get_bus (pipeline);
    gst_bus_set_sync_handler (bus, nullptr, nullptr, nullptr);
    gst_object_unref (bus);
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_object_unref (pipeline);
  }
  for (GstElement *e : { src, size, gate, net, netin })
    if (e)
      gst_object_unref (e);
  for (GstElement *e : gates)
    gst_object_unref (e);
}

void
Session::set_gates (bool open)
{
  for (GstElement *g : gates)
    g_object_set (g, "drop", !open, nullptr);
}

void
Session::close_gate (const char *why)
{
  set_gates (false);
  if (verified.exchange (false))
    GST_INFO ("session %d: gate closed (%s)", id, why);
}

void
Session::open_gate ()
{
  verified = true;
  set_gates (true);
  /* A full refresh for the new client: wayraysrc repaints everything, the
   * tile encoder forgets what the previous client held, video encoders
   * start with a key frame. */
  for (GstElement *g : gates) {
    GstPad *sinkpad = gst_element_get_static_pad (g, "sink");
    gst_pad_push_event (sinkpad, gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 0));
    gst_object_unref (sinkpad);
  }
}

void
Session::set_size (int w, int h)
{
  if (w == width && h == height)
    return;
  width = w;
  height = h;
  gchar *caps = g_strdup_printf ("video/x-raw,width=%d,height=%d,framerate=%u/1", w, h, d->cfg.framerate);
  GstCaps *c = gst_caps_from_string (caps);
  g_object_set (size, "caps", c, nullptr);
  gst_caps_unref (c);
  g_free (caps);
}

void
Session::send_control (GstStructure *msg)
{
  control_source_push (ctl, msg);
}

void
Session::on_ticket (GstStructure *msg)
{
  const gchar *ticket = gst_structure_get_string (msg, "ticket");
  if (!gst_structure_has_name (msg, "ticket") || !ticket || pending_ticket.empty () ||
      !equal_secret (ticket, pending_ticket)) {
    GST_WARNING ("session %d: wrong or stale ticket from the session port; ignored", id);
    return;
  }
  pending_ticket.clear ();
  ticket_ok = true;
  try_attach ();
}

void
Session::try_attach ()
{
  if (!ticket_ok || unhandled > 0 || !peer_up)
    return;                     /* the connection's own events are still due */
  guint64 since = ups - ups_at_welcome;
  if (since == 0)
    return;
  ticket_ok = false;
  if (since > 1) {
    /* Someone else connected between the welcome and now: the ticket's
     * connection is gone, and the current one has not earned it. */
    g_print ("session %d (%s): another connection came before %s's ticket; not attaching\n", id,
        token_name.c_str (), pending_client.c_str ());
    return;
  }
  attach ();
}

void
Session::attach ()
{
  set_size (pending_w, pending_h);
  client = pending_client;
  attaches++;
  open_gate ();
  g_print ("session %d (%s): attached %s at %dx%d\n", id, token_name.c_str (), client.c_str (), width, height);
  d->update_status ();
}

static void
on_netin_pad (GstElement *netin, GstPad *pad, gpointer data)
{
  link_stream_pad (netin, pad, "ticket", static_cast<Session *> (data)->ticket_sink);
}

static GstPadProbeReturn
drop_unverified_input (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Session *s = static_cast<Session *> (data);
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
  if (!s->verified && (GST_EVENT_TYPE (ev) == GST_EVENT_NAVIGATION || gst_video_event_is_force_key_unit (ev)))
    return GST_PAD_PROBE_DROP;
  return GST_PAD_PROBE_OK;
}

/* Closes the gate the moment a connection changes, on the thread that
 * reports it, before any frame can reach an unverified peer. */
static GstBusSyncReply
session_sync_handler (GstBus *bus, GstMessage *msg, gpointer data)
{
  Session *s = static_cast<Session *> (data);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT) {
    const GstStructure *st = gst_message_get_structure (msg);
    if (gst_structure_has_name (st, "wayray-quic-connection") && GST_MESSAGE_SRC (msg) == GST_OBJECT (s->net)) {
      gboolean up = FALSE;
      gst_structure_get_boolean (st, "connected", &up);
      s->verified = false;
      s->set_gates (false);
      s->peer_up = up;
      if (up)
        s->ups++;
      s->unhandled++;
    }
  }
  return GST_BUS_PASS;
}

static gboolean
session_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Session *s = static_cast<Session *> (data);
  Daemon *d = s->d;
  int id = s->id;
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error (msg, &err, &dbg);
      std::string why = std::string (GST_OBJECT_NAME (GST_MESSAGE_SRC (msg))) + ": " + err->message;
      GST_ERROR ("session %d: %s (%s)", id, err->message, dbg ? dbg : "");
      g_error_free (err);
      g_free (dbg);
      d->end_session (id, "pipeline error: " + why);
      return G_SOURCE_REMOVE;
    }
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *st = gst_message_get_structure (msg);
      if (gst_structure_has_name (st, "wayraysrc-exec-exited")) {
        d->end_session (id, "the session command ended");
        return G_SOURCE_REMOVE;
      }
      if (gst_structure_has_name (st, "wayray-quic-connection") && GST_MESSAGE_SRC (msg) == GST_OBJECT (s->net)) {
        /* The gate itself was closed by the sync handler; this only keeps
         * the books (and may be late: a newer connection may be up). */
        gboolean up = FALSE;
        gst_structure_get_boolean (st, "connected", &up);
        const gchar *reason = gst_structure_get_string (st, "reason");
        s->unhandled--;
        if (up)
          s->try_attach ();
        else if (!s->peer_up && !s->client.empty ()) {
          g_print ("session %d (%s): %s detached (%s); the session keeps running\n", id,
              s->token_name.c_str (), s->client.c_str (), reason ? reason : "disconnected");
          s->client.clear ();
        }
        d->update_status ();
      }
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

bool
Session::start (GError **error)
{
  const std::string &path = d->server_file.path;
  Variables vars = session_variables (d->cfg, id, socket_name, width, height, port);
  pipeline = load_pipeline (d->server_file, vars, error);
  if (!pipeline)
    return false;
  if (!(src = require_element (pipeline, path, "src", "wayraysrc", error)) ||
      !(size = require_element (pipeline, path, "size", "capsfilter", error)) ||
      !(gate = require_element (pipeline, path, "gate", "valve", error)) ||
      !(net = require_element (pipeline, path, "net", "quicsink", error)) ||
      !(netin = require_element (pipeline, path, "netin", "quicsrc", error)))
    return false;

  /* The daemon's own streams: notices to the client, tickets from it. */
  ctl = control_source_new ("wayrayd-notice");
  ticket_sink = control_sink_new ("wayrayd-ticket");
  gst_bin_add_many (GST_BIN (pipeline), ctl, ticket_sink, nullptr);
  if (!link_to_stream (ctl, net, "notice")) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "%s: the quicsink 'net' has no room for the daemon's notice stream", path.c_str ());
    return false;
  }
  g_signal_connect (netin, "pad-added", G_CALLBACK (on_netin_pad), this);
  g_signal_connect (ticket_sink, "new-sample", G_CALLBACK (+[] (GstAppSink *sink, gpointer data) -> GstFlowReturn {
        Session *s = static_cast<Session *> (data);
        GstStructure *msg = control_message_pull (sink);
        if (!msg)
          return GST_FLOW_OK;
        int id = s->id;
        Daemon *d = s->d;
        run_on_main ([d, id, msg] {
              auto it = d->sessions.find (id);
              if (it != d->sessions.end ())
                it->second->on_ticket (msg);
              gst_structure_free (msg);
            });
        return GST_FLOW_OK;
      }), this);

  /* Every valve whose name starts with "gate" guards a stream. */
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = GST_ELEMENT (g_value_get_object (&v));
    GstElementFactory *f = gst_element_get_factory (e);
    if (f && g_strcmp0 (GST_OBJECT_NAME (f), "valve") == 0 && g_str_has_prefix (GST_OBJECT_NAME (e), "gate"))
      gates.push_back (GST_ELEMENT (gst_object_ref (e)));
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  set_gates (false);
  for (GstElement *g : gates) {
    GstPad *gatesrc = gst_element_get_static_pad (g, "src");
    gst_pad_add_probe (gatesrc, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, drop_unverified_input, this, nullptr);
    gst_object_unref (gatesrc);
  }

  GstBus *bus = gst_element_get_bus (pipeline);
  gst_bus_set_sync_handler (bus, session_sync_handler, this, nullptr);
  bus_watch = gst_bus_add_watch (bus, session_bus, this);
  gst_object_unref (bus);

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    GstMessage *m = gst_bus_pop_filtered (gst_element_get_bus (pipeline), GST_MESSAGE_ERROR);
    GError *err = nullptr;
    if (m)
      gst_message_parse_error (m, &err, nullptr);
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE, "session pipeline would not start: %s",
        err ? err->message : "unknown error");
    g_clear_error (&err);
    if (m)
      gst_message_unref (m);
    return false;
  }
  created_us = g_get_monotonic_time ();
  return true;
}

std::string
Session::describe ()
{
  int pid = 0;
  guint64 frames = 0;
  g_object_get (src, "exec-pid", &pid, "frames-pushed", &frames, nullptr);
  std::ostringstream o;
  o << id << " token=" << token_name << " state=" << (verified ? "attached" : "detached")
    << " client=" << (client.empty () ? "-" : client) << " size=" << width << "x" << height << " port=" << port
    << " socket=" << socket_name << " pid=" << pid << " frames=" << frames
    << " uptime=" << (g_get_monotonic_time () - created_us) / G_USEC_PER_SEC << "s"
    << " attaches=" << attaches;
  return o.str ();
}

std::string
Session::stats ()
{
  /* Every element of the pipeline that keeps statistics (transport, tiler,
   * tile encoder, ...), one line each. */
  std::string out = describe () + "\n";
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = GST_ELEMENT (g_value_get_object (&v));
    GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e), "stats");
    if (ps && ps->value_type == GST_TYPE_STRUCTURE) {
      GstStructure *st = nullptr;
      g_object_get (e, "stats", &st, nullptr);
      if (st) {
        gchar *str = gst_structure_to_string (st);
        out += std::string (GST_OBJECT_NAME (e)) + ": " + str + "\n";
        g_free (str);
        gst_structure_free (st);
      }
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  return out;
}

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
    attached += kv.second->verified ? 1 : 0;
  sd_notifyf (0, "STATUS=%zu sessions, %d attached", sessions.size (), attached);
}

Session *
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

void
Daemon::end_session (int id, const std::string &why)
{
  auto it = sessions.find (id);
  if (it == sessions.end ())
    return;
  g_print ("session %d (%s) ends: %s\n", id, it->second->token_name.c_str (), why.c_str ());
  std::unique_ptr<Session> s = std::move (it->second);
  sessions.erase (it);
  /* Tear down outside the bus callback that may have called us. */
  Session *raw = s.release ();
  g_idle_add ([] (gpointer p) -> gboolean {
        delete static_cast<Session *> (p);
        return G_SOURCE_REMOVE;
      }, raw);
  if (raw->bus_watch) {
    g_source_remove (raw->bus_watch);
    raw->bus_watch = 0;
  }
  update_status ();
}

void
Daemon::reply (GstStructure *msg)
{
  control_source_push (door_out, msg);
  /* One answer per connection; the next client replaces this one. */
  door_answered = true;
}

void
Daemon::on_hello (GstStructure *msg)
{
  if (door_answered)
    return;                     /* one question per connection */
  const gchar *token = gst_structure_get_string (msg, "token");
  const gchar *client = gst_structure_get_string (msg, "client");
  gint version = 0, w = 0, h = 0;
  gst_structure_get_int (msg, "version", &version);
  gst_structure_get_int (msg, "width", &w);
  gst_structure_get_int (msg, "height", &h);
  std::string who = std::string (client ? client : "client") + "@" + door_peer;

  auto refuse = [this, &who] (const std::string &reason) {
    g_print ("refused %s: %s\n", who.c_str (), reason.c_str ());
    reply (gst_structure_new ("refused", "reason", G_TYPE_STRING, reason.c_str (), nullptr));
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

  Session *s = session_for_token (name);
  bool created = false;
  if (!s) {
    if (sessions.size () >= cfg.max_sessions) {
      refuse ("the server has no room for another session (max-sessions)");
      return;
    }
    guint port = free_port ();
    if (!port) {
      refuse ("no free session port (session-ports)");
      return;
    }
    auto ns = std::make_unique<Session> ();
    ns->d = this;
    ns->id = next_id++;
    ns->token_name = name;
    ns->port = port;
    ns->width = w;
    ns->height = h;
    ns->socket_name = "wayray-" + cfg.seat + "-" + std::to_string (ns->id);
    GError *e = nullptr;
    if (!ns->start (&e)) {
      g_printerr ("could not start a session for %s: %s\n", name.c_str (), e->message);
      refuse (std::string ("the session could not start: ") + e->message);
      g_error_free (e);
      return;
    }
    s = ns.get ();
    sessions[s->id] = std::move (ns);
    created = true;
    g_print ("session %d (%s): started on port %u, socket %s\n", s->id, name.c_str (), s->port,
        s->socket_name.c_str ());
  }
  s->pending_ticket = random_hex (16);
  s->ticket_ok = false;
  s->ups_at_welcome = s->ups;
  s->pending_w = w;
  s->pending_h = h;
  s->pending_client = who;
  reply (gst_structure_new ("welcome",
          "session", G_TYPE_INT, s->id,
          "port", G_TYPE_UINT, s->port,
          "ticket", G_TYPE_STRING, s->pending_ticket.c_str (),
          "fingerprint", G_TYPE_STRING, fingerprint.c_str (),
          "new-session", G_TYPE_BOOLEAN, created,
          "width", G_TYPE_INT, w, "height", G_TYPE_INT, h, nullptr));
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
        if (up) {
          d->door_peer = peer ? peer : "?";
          d->door_answered = false;
        }
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
              } else if (!d->door_answered) {
                g_print ("refused client@%s: malformed hello\n", d->door_peer.c_str ());
                d->reply (gst_structure_new ("refused", "reason", G_TYPE_STRING, "malformed hello", nullptr));
              }
            });
        return GST_FLOW_OK;
      }), this);

  GstBus *bus = gst_element_get_bus (door);
  door_watch = gst_bus_add_watch (bus, door_bus, this);
  gst_object_unref (bus);
  door_answered = false;
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
  auto find = [this, &arg] () -> Session * {
    auto it = sessions.find (atoi (arg.c_str ()));
    return it == sessions.end () ? nullptr : it->second.get ();
  };

  if (cmd == "list") {
    std::string out;
    for (auto &kv : sessions)
      out += kv.second->describe () + "\n";
    return out + "ok\n";
  }
  if (cmd == "detach" || cmd == "end" || cmd == "stats") {
    Session *s = find ();
    if (!s)
      return "error: no session '" + arg + "' (see 'wayrayctl list')\n";
    if (cmd == "stats")
      return s->stats () + "ok\n";
    if (cmd == "detach") {
      s->send_control (gst_structure_new ("detached", "reason", G_TYPE_STRING,
              "detached by the administrator", nullptr));
      s->close_gate ("detached by the administrator");
      s->pending_ticket.clear ();
      s->client.clear ();
      return "ok\n";
    }
    s->send_control (gst_structure_new ("detached", "reason", G_TYPE_STRING, "the session was ended", nullptr));
    end_session (s->id, "ended by the administrator");
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
  GOptionEntry entries[] = {
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

  d.loop = g_main_loop_new (nullptr, FALSE);
  g_unix_signal_add (SIGTERM, on_signal, d.loop);
  g_unix_signal_add (SIGINT, on_signal, d.loop);
  g_unix_signal_add (SIGHUP, [] (gpointer data) -> gboolean {
        static_cast<Daemon *> (data)->reload_pipeline ();
        return G_SOURCE_CONTINUE;
      }, &d);
  g_main_loop_run (d.loop);

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
