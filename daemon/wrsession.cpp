/* A session and its gates.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrsession.h"

#include "wrscram.h"

#include "wrcodecs.h"
#include "wrcontrol.h"

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

GST_DEBUG_CATEGORY_EXTERN (wayrayd_debug);
#define GST_CAT_DEFAULT wayrayd_debug

namespace wayray {

Session::~Session ()
{
  video_rate.stop ();
  late.stop ();
  if (resize_timer)
    g_source_remove (resize_timer);
  if (relay_fd >= 0)
    close (relay_fd);
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
  if (screen_by == ScreenBy::Fixed && pipeline) {
    g_print ("session %d (%s): stays %dx%d, not %dx%d: its desktop cannot change its screen size\n", id,
        token_name.c_str (), width, height, w, h);
    return;
  }
  width = w;
  height = h;
  gchar *caps = g_strdup_printf ("video/x-raw,width=%d,height=%d,framerate=%u/1", w, h, host->config ().framerate);
  GstCaps *c = gst_caps_from_string (caps);
  g_object_set (size, "caps", c, nullptr);
  gst_caps_unref (c);
  g_free (caps);
}

void
Session::log_monitors () const
{
  if (!monitors.empty ())
    g_print ("session %d (%s): %zu monitors, %s\n", id, token_name.c_str (), monitors.size (),
        monitor_layout_format (monitors).c_str ());
}

void
Session::set_monitors (const MonitorLayout &layout)
{
  if (layout == monitors || screen_by == ScreenBy::Fixed)
    return;
  monitors = layout;
  g_object_set (src, "monitors", layout.empty () ? nullptr : monitor_layout_format (layout).c_str (), nullptr);
  log_monitors ();
  host->desktop_changed (id, keymap, scale, (int) std::max<size_t> (1, layout.size ()));
}

void
Session::apply_requested_size ()
{
  if (!verified || (want_w == width && want_h == height && want_monitors == monitors))
    return;
  /* The layout first: wayraysrc uses it once the picture has its size. */
  set_monitors (want_monitors);
  set_size (want_w, want_h);
  if (width == want_w && height == want_h) {
    g_print ("session %d (%s): resized to %dx%d by its client\n", id, token_name.c_str (), width, height);
    resizes++;
    host->session_changed (id);
  }
}

void
Session::request_size (int w, int h, const MonitorLayout &layout)
{
  if (w < 16 || h < 16 || w > 8192 || h > 8192)
    return;
  want_w = w;
  want_h = h;
  want_monitors = layout;
  /* The first request after a quiet spell is carried out at once (a
   * window put full screen); those that follow within kResizeSettleMs (a
   * window being dragged) wait until the size holds still, so the
   * applications are not asked to redraw at every step. */
  if (resize_timer)
    g_source_remove (resize_timer);
  else
    apply_requested_size ();
  resize_timer = g_timeout_add (kResizeSettleMs, [] (gpointer data) -> gboolean {
        Session *s = static_cast<Session *> (data);
        s->resize_timer = 0;
        s->apply_requested_size ();
        return G_SOURCE_REMOVE;
      }, this);
}

/* Lets the session's damagetilers use their video path (when linked) or
 * not; returns whether one will. */
bool
Session::set_video (bool on)
{
  bool any = false;
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = GST_ELEMENT (g_value_get_object (&v));
    GstElementFactory *f = gst_element_get_factory (e);
    if (f && g_strcmp0 (GST_OBJECT_NAME (f), "damagetiler") == 0) {
      g_object_set (e, "video-enabled", on, nullptr);
      GstPad *vp = gst_element_get_static_pad (e, "video");
      any |= on && vp && gst_pad_is_linked (vp);
      if (vp)
        gst_object_unref (vp);
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  return any;
}

void
Session::send_control (GstStructure *msg)
{
  control_source_push (ctl, msg);
}

/* A ticket from a connection the transport has not admitted: the right
 * one admits that connection (replacing the client attached before); a
 * wrong or stale one closes it. Nothing else can make a connection carry
 * the session's picture or input. */
void
Session::on_ticket (GstStructure *msg, const MessageOrigin &origin)
{
  if (origin.admitted)
    return;                     /* the attached client repeating itself */
  const gchar *proof = gst_structure_get_string (msg, "proof");
  if (!gst_structure_has_name (msg, "ticket") || !proof || pending_ticket.empty () ||
      !scram_equal (proof, pending_ticket)) {
    g_print ("session %d (%s): wrong or stale ticket from %s; closing that connection\n", id,
        token_name.c_str (), origin.peer.empty () ? "?" : origin.peer.c_str ());
    gboolean closed = FALSE;
    if (origin.conn_id)
      g_signal_emit_by_name (netin, "close-connection", origin.conn_id, "wrong or stale ticket", &closed);
    return;
  }
  pending_ticket.clear ();
  gboolean admitted = FALSE;
  if (origin.conn_id)
    g_signal_emit_by_name (netin, "admit", origin.conn_id, &admitted);
  if (!admitted) {
    g_print ("session %d (%s): the connection of %s's ticket is gone\n", id, token_name.c_str (),
        pending_client.c_str ());
    return;
  }
  ticket_ok = true;
  admitted_conn = origin.conn_id;
  try_attach ();
}

void
Session::set_relay (int fd)
{
  for (GstElement *e : { net, netin })
    if (e)
      g_object_set (e, "relay-fd", fd, nullptr);
}

void
Session::try_attach ()
{
  /* Not before the events of the admission reached this loop (the
   * connection it replaced going, this one coming up): they close the gates
   * as they pass. */
  if (!ticket_ok || unhandled > 0 || !peer_up || up_conn != admitted_conn)
    return;
  ticket_ok = false;
  attach ();
}

void
Session::set_keymap (const Keymap &want)
{
  const Keymap &km = want.empty () ? default_keymap : want;
  if (km == keymap)
    return;
  keymap = km;
  g_object_set (src, "keymap-layout", km.layout.c_str (), "keymap-variant", km.variant.c_str (), "keymap-options",
      km.options.c_str (), nullptr);
  g_print ("session %d (%s): keyboard layout %s%s\n", id, token_name.c_str (), km.describe ().c_str (),
      want.empty () ? " (the session's default)" : " (the client's)");
  host->desktop_changed (id, km, scale, (int) std::max<size_t> (1, monitors.size ()));
}

void
Session::set_scale (int sc)
{
  if (sc == scale)
    return;
  if (screen_by == ScreenBy::Fixed) {
    g_print ("session %d (%s): stays at scale %d, not %d: its desktop cannot change it\n", id, token_name.c_str (),
        scale, sc);
    return;
  }
  scale = sc;
  if (screen_by == ScreenBy::Compositor)
    g_object_set (src, "scale", sc, nullptr);
  g_print ("session %d (%s): scale %d (the client's)\n", id, token_name.c_str (), sc);
  host->desktop_changed (id, keymap, scale, (int) std::max<size_t> (1, monitors.size ()));
}

void
Session::attach ()
{
  set_monitors (pending_screen.monitors);
  set_size (pending_screen.width, pending_screen.height);
  set_keymap (pending_keymap);
  set_scale (pending_screen.scale);
  clipboard.attach (admitted_conn);
  client = pending_client;
  attaches++;
  /* Video only for a client whose decoder takes what this session's
   * encoder makes. */
  bool h264 = pending_video.rfind ("h264", 0) == 0;
  bool decodable = h264 && h264_profile_decodable (h264_profile, client_h264_profiles (pending_video));
  bool video = set_video (decodable);
  open_gate ();
  std::string how = video ? "video regions as H.264, profile " + h264_profile :
      !h264 ? "lossless; the client decodes no H.264" :
      !decodable ? "lossless; the client's H.264 decoder does not take profile " + h264_profile :
      "lossless; the pipeline has no video path";
  g_print ("session %d (%s): attached %s at %dx%d%s (%s)\n", id, token_name.c_str (), client.c_str (), width, height,
      monitors.empty () ? "" : (" on " + std::to_string (monitors.size ()) + " monitors").c_str (),
      how.c_str ());
  host->session_changed (id);
}

static void
on_netin_pad (GstElement *netin, GstPad *pad, gpointer data)
{
  Session *s = static_cast<Session *> (data);
  link_stream_pad (netin, pad, { { "ticket", s->ticket_sink }, { "clipboard", s->clipboard.sink () } });
}

static GstPadProbeReturn
drop_unverified_input (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Session *s = static_cast<Session *> (data);
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
  const GstStructure *st = gst_event_get_structure (ev);
  if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_UPSTREAM && st && gst_structure_has_name (st, "wayray-resize")) {
    /* The client's screen changed: the session follows (main thread). */
    int w = 0, h = 0;
    if (s->verified && gst_structure_get_int (st, "width", &w) && gst_structure_get_int (st, "height", &h)) {
      SessionHost *host = s->host;
      int id = s->id;
      /* With several monitors, their layout (its bounding box is the
       * size; one that is not, or does not parse, is dropped). */
      std::string note;
      ClientScreen screen = ClientScreen::take (st, w, h, &note);
      if (!note.empty ())
        g_print ("session %d (%s): ignoring the client's monitors: %s\n", s->id, s->token_name.c_str (),
            note.c_str ());
      MonitorLayout layout = screen.monitors;
      run_on_main ([host, id, w, h, layout] {
            if (Session *found = host->find_session (id))
              found->request_size (w, h, layout);
          });
    }
    return GST_PAD_PROBE_DROP;
  }
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
      guint64 conn = 0;
      gst_structure_get_boolean (st, "connected", &up);
      gst_structure_get_uint64 (st, "connection-id", &conn);
      s->verified = false;
      s->set_gates (false);
      s->peer_up = up;
      if (up)
        s->up_conn = conn;
      s->unhandled++;
    }
  }
  return GST_BUS_PASS;
}

static gboolean
session_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Session *s = static_cast<Session *> (data);
  SessionHost *host = s->host;
  int id = s->id;
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error (msg, &err, &dbg);
      std::string why = std::string (GST_OBJECT_NAME (GST_MESSAGE_SRC (msg))) + ": " + err->message;
      /* The debug text's last line says why a stream stopped ("streaming
       * stopped, reason not-negotiated (-4)"): worth a line in the log. */
      if (dbg) {
        const gchar *nl = strrchr (dbg, '\n');
        std::string last = nl ? nl + 1 : dbg;
        if (last.size () < 200 && last.find ("reason") != std::string::npos)
          why += " (" + last + ")";
      }
      GST_ERROR ("session %d: %s (%s)", id, err->message, dbg ? dbg : "");
      g_error_free (err);
      g_free (dbg);
      s->bus_watch = 0;
      host->session_ended (id, "pipeline error: " + why);
      return G_SOURCE_REMOVE;
    }
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *st = gst_message_get_structure (msg);
      if (gst_structure_has_name (st, "wayraysrc-exec-exited")) {
        s->bus_watch = 0;
        host->session_ended (id, "the session command ended");
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
          s->clipboard.detach ();
        }
        host->session_changed (id);
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
  const std::string &path = host->server_file ().path;
  Variables vars = session_variables (host->config (), host->server_file (), id, socket_name, width, height, port,
      first_video, sound);
  h264_profile = vars["H264_PROFILE"];
  pipeline = load_pipeline (host->server_file (), vars, error);
  if (!pipeline)
    return false;
  if (!(src = require_element (pipeline, path, "src", "wayraysrc", error)) ||
      !(size = require_element (pipeline, path, "size", "capsfilter", error)) ||
      !(gate = require_element (pipeline, path, "gate", "valve", error)) ||
      !(net = require_element (pipeline, path, "net", "quicsink", error)) ||
      !(netin = require_element (pipeline, path, "netin", "quicsrc", error)))
    return false;
  if (!app_env.empty ()) {
    std::vector<const gchar *> strv;
    for (const std::string &e : app_env)
      strv.push_back (e.c_str ());
    strv.push_back (nullptr);
    g_object_set (src, "exec-environment", strv.data (), nullptr);
  }

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
  if (!xwayland && g_object_class_find_property (G_OBJECT_GET_CLASS (src), "xwayland"))
    g_object_set (src, "xwayland", FALSE, nullptr);
  /* The first client's monitors, before the session command starts (a
   * nested desktop then opens its outputs one per monitor). */
  if (!monitors.empty ()) {
    g_object_set (src, "monitors", monitor_layout_format (monitors).c_str (), nullptr);
    log_monitors ();
  }
  if (!clipboard.start (pipeline, src, net))
    g_printerr ("session %d: no clipboard (%s has no selection signals)\n", id, GST_OBJECT_NAME (src));
  /* The session's connections wait for admission: only a ticket's. They
   * reach it on the seat's port, through the router's relay. */
  for (GstElement *e : { net, netin }) {
    gst_util_set_object_arg (G_OBJECT (e), "admission", "application");
    if (!route.empty ())
      g_object_set (e, "connection-id-prefix", route.c_str (), nullptr);
  }
  if (relay_fd >= 0) {
    set_relay (relay_fd);
    close (relay_fd);
    relay_fd = -1;
  }
  g_object_set (netin, "unadmitted-streams", "ticket", nullptr);
  g_signal_connect (ticket_sink, "new-sample", G_CALLBACK (+[] (GstAppSink *sink, gpointer data) -> GstFlowReturn {
        Session *s = static_cast<Session *> (data);
        MessageOrigin origin;
        GstStructure *msg = control_message_pull (sink, &origin);
        if (!msg)
          return GST_FLOW_OK;
        int id = s->id;
        SessionHost *host = s->host;
        run_on_main ([host, id, msg, origin] {
              if (Session *found = host->find_session (id))
                found->on_ticket (msg, origin);
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

  /* The session's sound capture waits for PipeWire to link it: it starts
   * after the rest, so that a slow sound server does not hold the
   * session. */
  late.hold (pipeline, "pipewiresrc");
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    GstMessage *m = gst_bus_pop_filtered (gst_element_get_bus (pipeline), GST_MESSAGE_ERROR);
    GError *err = nullptr;
    if (m)
      gst_message_parse_error (m, &err, nullptr);
    /* An element that fails without a word: at least name it. */
    std::string stuck;
    if (!err) {
      GstIterator *sit = gst_bin_iterate_recurse (GST_BIN (pipeline));
      GValue sv = G_VALUE_INIT;
      while (gst_iterator_next (sit, &sv) == GST_ITERATOR_OK) {
        GstElement *e = GST_ELEMENT (g_value_get_object (&sv));
        if (GST_STATE_RETURN (e) == GST_STATE_CHANGE_FAILURE)
          stuck += (stuck.empty () ? "" : ", ") + std::string (GST_OBJECT_NAME (e));
        g_value_reset (&sv);
      }
      g_value_unset (&sv);
      gst_iterator_free (sit);
    }
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE, "session pipeline would not start: %s",
        err ? err->message : stuck.empty () ? "an element failed without a reason"
                                            : (stuck + " failed without a reason").c_str ());
    g_clear_error (&err);
    if (m)
      gst_message_unref (m);
    return false;
  }
  created_us = g_get_monotonic_time ();
  video_rate.start (pipeline);
  const int sid = id;
  late.start (pipeline, 5000, [sid] (const std::string &line) { g_print ("session %d: %s\n", sid, line.c_str ()); });
  return true;
}

std::string
Session::stats ()
{
  /* Every element of the pipeline that keeps statistics (transport, tiler,
   * tile encoder, ...), one line each. */
  std::string out;
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
  std::string rate = video_rate.stats ();
  if (!rate.empty ())
    out += "video-rate: " + rate + "\n";
  return out;
}

void
Session::expect (const std::string &proof, const ClientScreen &screen, const std::string &who,
    const std::string &video, const Keymap &km)
{
  pending_keymap = km;
  pending_screen = screen;
  pending_ticket = proof;
  pending_client = who;
  pending_video = video;
  ticket_ok = false;
}

void
Session::detach (const std::string &reason)
{
  send_control (gst_structure_new ("detached", "reason", G_TYPE_STRING, reason.c_str (), nullptr));
  close_gate (reason.c_str ());
  pending_ticket.clear ();
  client.clear ();
  clipboard.detach ();
  host->session_changed (id);
}

}  // namespace wayray
