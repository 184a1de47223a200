/* quicsrc
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:element-quicsrc
 * @title: quicsrc
 * @see_also: quicsink
 *
 * Receives media from a WayRay peer over QUIC (ngtcp2 + GnuTLS, TLS 1.3,
 * ALPN "wayray/1"). Each stream the peer's quicsink sends appears as a
 * sometimes source pad named like the peer's sink pad ("display", "video",
 * "audio", "cursor", ...), with the caps, segment, buffer timestamps,
 * durations and flags and the serialized downstream events of the sender.
 * Each pad pushes from its own streaming thread, so a busy display stream
 * never delays the cursor or audio.
 *
 * Upstream events sent into a source pad — navigation (pointer, keys) and
 * force-key-unit requests — travel to the peer on the connection's control
 * stream (highest priority) and leave the peer's quicsink pad of the same
 * name upstream.
 *
 * At most 32 differently named streams become pads; further names are
 * ignored with a warning (each pad has a streaming thread).
 *
 * Video sent as a stream per group of pictures is delivered in group order;
 * a group reset by the sender (stale under congestion) ends early and the
 * next buffer carries the DISCONT flag.
 *
 * In client mode the server's certificate is pinned by its SHA-256
 * fingerprint: pinned-fingerprint when set, otherwise the known-hosts file
 * (trust on first use). A changed fingerprint refuses the connection with
 * an error that names both fingerprints and the file. A lost connection
 * is an error in client mode; a server waits for the next client. Both post
 * "wayray-quic-connection" and "wayray-quic-stats" element messages.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! quicsink mode=server port=4433
 * gst-launch-1.0 quicsrc mode=client host=127.0.0.1 port=4433 ! videoconvert ! autovideosink sync=false
 * ]|
 * |[
 * gst-launch-1.0 quicsrc mode=client host=::1 port=4433 pinned-fingerprint=SHA256_HEX_OF_THE_SERVER ! fakesink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#  include "config.h"
#endif

#include "gstquicsrc.h"
#include "gstquiccommon.h"
#include "gstquicframing.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

GST_DEBUG_CATEGORY_STATIC (gst_quic_src_debug);
#define GST_CAT_DEFAULT gst_quic_src_debug

using namespace wrq;

enum {
  PROP_MAX_RECEIVE_BYTES = PROP_COMMON_LAST,
  PROP_UNADMITTED_STREAMS,
};

#define DEFAULT_UNADMITTED_STREAMS "hello,ticket"

#define DEFAULT_MAX_RECEIVE_BYTES (8 * 1024 * 1024)
/* Each pad has a streaming thread; a peer may not make more of them. */
#define MAX_PADS 32

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("%s",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);

namespace {

struct PendingGop {
  std::deque<Frame> frames;
  bool ended = false;
  bool reset = false;
};

/* One named stream of the peer (across its GOP streams and reconnects). */
struct Channel {
  std::string name;
  GstPad *pad = nullptr;
  std::deque<Frame> queue;
  guint64 queued_bytes = 0;
  bool discont = true;
  bool flushing = false;
  std::condition_variable cv;
  /* Groups of pictures, keyed (connection << 32 | group). */
  bool head_open = false;
  bool have_head = false;
  guint64 head_key = 0;
  std::map<guint64, PendingGop> pending;
  /* Pushed state. */
  GstCaps *caps = nullptr;
  bool segment_pushed = false;

  ~Channel () { gst_clear_caps (&caps); }
};

}  // namespace

struct GstQuicSrcPrivate : public EndpointUser {
  GstQuicSrc *self = nullptr;
  std::mutex lock;          /* properties, ep */
  Config cfg;
  guint64 max_receive_bytes = DEFAULT_MAX_RECEIVE_BYTES;
  std::shared_ptr<Endpoint> ep;
  std::shared_ptr<Endpoint> ctx_ep;

  std::mutex chan_lock;     /* channels and their queues */
  std::map<std::string, std::unique_ptr<Channel>> channels;
  bool running = false;
  bool too_many_warned = false;

  /* Its own lock: read on the network thread with the endpoint locked. */
  mutable std::mutex unadmitted_lock;
  std::vector<std::string> unadmitted_streams { "hello", "ticket" };

  void on_connection_state (bool up, guint64 conn_id, const std::string & peer, const std::string & transport,
      const std::string & reason, bool fatal) override;
  void on_stats (const Stats & stats) override;
  void on_warning (const std::string & message) override;
  bool is_receiver () const override { return true; }
  bool on_frames (const InStreamRef & s, std::vector<Frame> & frames) override;
  void on_stream_end (const InStreamRef & s, bool reset) override;
  bool accepts_unadmitted (const std::string & name) const override;
  void on_admitted (const std::string & peer) override;

  void append (Channel & ch, Frame && f);
  void create_pad (const std::string & name);
};

struct _GstQuicSrc {
  GstElement parent;
  GstQuicSrcPrivate *priv;
};

#define gst_quic_src_parent_class parent_class
G_DEFINE_TYPE (GstQuicSrc, gst_quic_src, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (quicsrc, "quicsrc", GST_RANK_NONE, GST_TYPE_QUIC_SRC);

void
GstQuicSrcPrivate::on_connection_state (bool up, guint64 conn_id, const std::string & peer,
    const std::string & transport, const std::string & reason, bool fatal)
{
  post_connection_message (GST_ELEMENT (self), up, conn_id, peer, transport, reason);
  if (fatal)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("%s", reason.c_str ()), (nullptr));
  else if (!up && !reason.empty ())
    GST_INFO_OBJECT (self, "%s", reason.c_str ());
}

void
GstQuicSrcPrivate::on_stats (const Stats & stats)
{
  post_stats_message (GST_ELEMENT (self), stats);
}

void
GstQuicSrcPrivate::on_warning (const std::string & message)
{
  GST_ELEMENT_WARNING (self, STREAM, DECODE, ("%s", message.c_str ()), (nullptr));
}

bool
GstQuicSrcPrivate::accepts_unadmitted (const std::string & name) const
{
  std::lock_guard<std::mutex> lk (unadmitted_lock);
  return std::find (unadmitted_streams.begin (), unadmitted_streams.end (), name) != unadmitted_streams.end ();
}

void
GstQuicSrcPrivate::on_admitted (const std::string & peer)
{
  post_admitted_message (GST_ELEMENT (self), peer);
}

void
GstQuicSrcPrivate::append (Channel & ch, Frame && f)
{
  ch.queued_bytes += f.wire_size;
  ch.queue.push_back (std::move (f));
}

/* Network thread: queue only. */
bool
GstQuicSrcPrivate::on_frames (const InStreamRef & s, std::vector<Frame> & frames)
{
  std::lock_guard<std::mutex> lk (chan_lock);
  if (!running)
    return true;
  if (!channels.count (s.pre->name) && channels.size () >= MAX_PADS) {
    if (!too_many_warned) {
      too_many_warned = true;
      std::string msg = "the peer opened more than " + std::to_string (MAX_PADS)
          + " differently named streams; ignoring '" + s.pre->name + "' and any further new names";
      GstQuicSrc *el = GST_QUIC_SRC (gst_object_ref (self));
      ep->post ([el, msg] {
        GST_ELEMENT_WARNING (el, STREAM, DEMUX, ("%s", msg.c_str ()), (nullptr));
        gst_object_unref (el);
      });
    }
    return true;
  }
  auto &slot = channels[s.pre->name];
  if (!slot) {
    slot.reset (new Channel ());
    slot->name = s.pre->name;
    std::string name = s.pre->name;
    GstQuicSrc *el = GST_QUIC_SRC (gst_object_ref (self));
    ep->post ([el, name] {
      el->priv->create_pad (name);
      gst_object_unref (el);
    });
  }
  Channel &ch = *slot;
  if (cfg.mode == Mode::Server) {
    /* Which connection sent it: the application answers on it, admits it,
     * or names its peer. */
    for (auto &f : frames)
      if (f.buffer) {
        f.buffer = gst_buffer_make_writable (f.buffer);
        add_connection_meta (f.buffer, s.conn_gen, s.peer ? *s.peer : "", s.admitted);
      }
  }
  if (!s.pre->gop_stream) {
    for (auto &f : frames)
      append (ch, std::move (f));
  } else {
    guint64 key = (s.conn_gen << 32) | s.pre->gop;
    if (!ch.have_head || (!ch.head_open && key > ch.head_key)) {
      ch.have_head = ch.head_open = true;
      ch.head_key = key;
    }
    if (key == ch.head_key && ch.head_open) {
      for (auto &f : frames)
        append (ch, std::move (f));
    } else if (key > ch.head_key) {
      /* A later group waits for the current one to end; it still counts
       * against the receive bound. */
      for (auto &f : frames) {
        ch.queued_bytes += f.wire_size;
        ch.pending[key].frames.push_back (std::move (f));
      }
    } else {
      GST_DEBUG_OBJECT (self, "'%s': dropping frames of a stale group", ch.name.c_str ());
    }
  }
  ch.cv.notify_one ();
  return ch.queued_bytes < max_receive_bytes;
}

void
GstQuicSrcPrivate::on_stream_end (const InStreamRef & s, bool reset)
{
  std::lock_guard<std::mutex> lk (chan_lock);
  auto it = channels.find (s.pre->name);
  if (it == channels.end ())
    return;
  Channel &ch = *it->second;
  if (!s.pre->gop_stream) {
    if (reset)
      ch.discont = true;
    return;
  }
  guint64 key = (s.conn_gen << 32) | s.pre->gop;
  if (ch.have_head && ch.head_open && key == ch.head_key) {
    if (reset)
      ch.discont = true;
    ch.head_open = false;
    /* Promote waiting groups in order. */
    while (!ch.pending.empty ()) {
      auto first = ch.pending.begin ();
      ch.head_key = first->first;
      ch.head_open = true;
      PendingGop &g = first->second;
      if (g.reset) {
        for (auto &f : g.frames)
          ch.queued_bytes -= f.wire_size;
        ch.discont = true;
      } else {
        for (auto &f : g.frames)
          ch.queue.push_back (std::move (f));
      }
      bool ended = g.ended;
      ch.pending.erase (first);
      if (!ended)
        break;
      ch.head_open = false;
    }
    ch.cv.notify_one ();
  } else if (key > ch.head_key) {
    PendingGop &g = ch.pending[key];
    g.ended = true;
    g.reset = g.reset || reset;
  }
}

static gboolean
gst_quic_src_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstQuicSrc *self = GST_QUIC_SRC (parent);
  std::shared_ptr<Endpoint> ep;
  {
    std::lock_guard<std::mutex> lk (self->priv->lock);
    ep = self->priv->ep;
  }
  gboolean ret = FALSE;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_NAVIGATION:
    case GST_EVENT_CUSTOM_UPSTREAM:
    case GST_EVENT_CUSTOM_BOTH:
      if (ep) {
        gchar *name = gst_pad_get_name (pad);
        ret = ep->send_upstream_event (name, event);
        GST_LOG_OBJECT (pad, "%s upstream %" GST_PTR_FORMAT, ret ? "sent" : "could not send", event);
        g_free (name);
      }
      gst_event_unref (event);
      return ret;
    case GST_EVENT_RECONFIGURE:
    case GST_EVENT_LATENCY:
    case GST_EVENT_QOS:
      gst_event_unref (event);
      return TRUE;
    default:
      return gst_pad_event_default (pad, parent, event);
  }
}

static gboolean
gst_quic_src_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:
      gst_query_set_latency (query, TRUE, 0, GST_CLOCK_TIME_NONE);
      return TRUE;
    case GST_QUERY_CAPS: {
      GstCaps *caps = gst_pad_get_current_caps (pad);
      if (!caps)
        caps = gst_caps_new_any ();
      GstCaps *filter;
      gst_query_parse_caps (query, &filter);
      if (filter) {
        GstCaps *tmp = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref (caps);
        caps = tmp;
      }
      gst_query_set_caps_result (query, caps);
      gst_caps_unref (caps);
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

static void
gst_quic_src_loop (gpointer data)
{
  GstPad *pad = GST_PAD (data);
  GstQuicSrc *self = GST_QUIC_SRC (gst_pad_get_parent_element (pad));
  if (!self) {
    gst_pad_pause_task (pad);
    return;
  }
  GstQuicSrcPrivate *priv = self->priv;
  gchar *pname = gst_pad_get_name (pad);
  Frame f;
  bool discont = false;
  bool resume = false;
  GstCaps *new_caps = nullptr;
  bool push_caps = false;
  {
    std::unique_lock<std::mutex> lk (priv->chan_lock);
    auto it = priv->channels.find (pname);
    if (it == priv->channels.end ()) {
      lk.unlock ();
      gst_pad_pause_task (pad);
      g_free (pname);
      gst_object_unref (self);
      return;
    }
    Channel &ch = *it->second;
    ch.cv.wait (lk, [&] { return ch.flushing || !ch.queue.empty (); });
    if (ch.flushing) {
      lk.unlock ();
      gst_pad_pause_task (pad);
      g_free (pname);
      gst_object_unref (self);
      return;
    }
    f = std::move (ch.queue.front ());
    ch.queue.pop_front ();
    bool was_full = ch.queued_bytes >= priv->max_receive_bytes;
    ch.queued_bytes -= MIN (ch.queued_bytes, (guint64) f.wire_size);
    resume = was_full && ch.queued_bytes < priv->max_receive_bytes;
    if (f.type == FrameType::Buffer) {
      discont = ch.discont;
      ch.discont = false;
    } else if (f.type == FrameType::Caps) {
      std::string err;
      new_caps = f.to_caps (err);
      if (!new_caps) {
        GST_ELEMENT_WARNING (self, STREAM, DECODE, ("'%s': %s", pname, err.c_str ()), (nullptr));
      } else if (!ch.caps || !gst_caps_is_equal (ch.caps, new_caps)) {
        gst_caps_replace (&ch.caps, new_caps);
        push_caps = true;
      }
    } else if (f.type == FrameType::Segment) {
      ch.segment_pushed = true;
    }
  }
  if (resume && priv->ep)
    priv->ep->resume_receive ();

  /* A stream name outlives a peer's EOS: the next connection (or the same
   * peer starting over) reuses it. Flush the EOS away and start the stream
   * anew before its new data. */
  if (GST_PAD_IS_EOS (pad) && f.type != FrameType::UpstreamEvent && f.type != FrameType::Navigation) {
    GST_DEBUG_OBJECT (pad, "data after EOS: starting the stream again");
    gst_pad_push_event (pad, gst_event_new_flush_start ());
    gst_pad_push_event (pad, gst_event_new_flush_stop (TRUE));
    gchar *sid = gst_pad_create_stream_id_printf (pad, GST_ELEMENT (self), "%s-%" G_GINT64_FORMAT, pname,
        g_get_monotonic_time ());
    gst_pad_push_event (pad, gst_event_new_stream_start (sid));
    g_free (sid);
    GstCaps *caps = nullptr;
    {
      std::lock_guard<std::mutex> lk (priv->chan_lock);
      auto it = priv->channels.find (pname);
      if (it != priv->channels.end () && it->second->caps)
        caps = gst_caps_ref (it->second->caps);
    }
    if (caps && !push_caps) {
      gst_pad_push_event (pad, gst_event_new_caps (caps));
    }
    gst_clear_caps (&caps);
    if (f.type != FrameType::Segment) {
      GstSegment seg;
      gst_segment_init (&seg, GST_FORMAT_TIME);
      gst_pad_push_event (pad, gst_event_new_segment (&seg));
    }
  }

  GstFlowReturn ret = GST_FLOW_OK;
  switch (f.type) {
    case FrameType::Caps:
      if (push_caps)
        gst_pad_push_event (pad, gst_event_new_caps (new_caps));
      break;
    case FrameType::Segment:
      gst_pad_push_event (pad, gst_event_new_segment (&f.segment));
      break;
    case FrameType::Buffer: {
      GstBuffer *b = f.buffer;
      f.buffer = nullptr;
      if (discont)
        GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DISCONT);
      ret = gst_pad_push (pad, b);
      break;
    }
    case FrameType::Event: {
      std::string err;
      GstEvent *ev = f.to_event (err);
      if (ev)
        gst_pad_push_event (pad, ev);
      else
        GST_ELEMENT_WARNING (self, STREAM, DECODE, ("'%s': %s", pname, err.c_str ()), (nullptr));
      break;
    }
    case FrameType::UpstreamEvent:
    case FrameType::Navigation:
      break;
  }
  gst_clear_caps (&new_caps);
  if (ret == GST_FLOW_FLUSHING) {
    gst_pad_pause_task (pad);
  } else if (ret < GST_FLOW_EOS) {
    GST_ELEMENT_FLOW_ERROR (self, ret);
    gst_pad_pause_task (pad);
  } else if (ret != GST_FLOW_OK) {
    GST_DEBUG_OBJECT (pad, "push: %s", gst_flow_get_name (ret));
  }
  g_free (pname);
  gst_object_unref (self);
}

/* Dispatcher thread: a stream with a new name arrived. */
void
GstQuicSrcPrivate::create_pad (const std::string & name)
{
  GstElement *el = GST_ELEMENT (self);
  {
    std::lock_guard<std::mutex> lk (chan_lock);
    auto it = channels.find (name);
    if (!running || it == channels.end () || it->second->pad)
      return;
  }
  GstPad *pad = gst_pad_new_from_static_template (&src_template, name.c_str ());
  gst_pad_set_event_function (pad, gst_quic_src_src_event);
  gst_pad_set_query_function (pad, gst_quic_src_src_query);
  gst_pad_use_fixed_caps (pad);
  gst_pad_set_active (pad, TRUE);
  gchar *sid = gst_pad_create_stream_id (pad, el, name.c_str ());
  gst_pad_push_event (pad, gst_event_new_stream_start (sid));
  g_free (sid);
  {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    /* Frames that precede the peer's segment use a time segment from 0. */
    std::lock_guard<std::mutex> lk (chan_lock);
    Channel &ch = *channels[name];
    ch.pad = pad;
    /* Caps first if known, so that pad-added handlers can look at them. */
    while (!ch.queue.empty () && ch.queue.front ().type == FrameType::Caps) {
      std::string err;
      GstCaps *caps = ch.queue.front ().to_caps (err);
      ch.queued_bytes -= MIN (ch.queued_bytes, (guint64) ch.queue.front ().wire_size);
      ch.queue.pop_front ();
      if (caps) {
        gst_pad_push_event (pad, gst_event_new_caps (caps));
        gst_caps_replace (&ch.caps, caps);
        gst_caps_unref (caps);
      }
    }
    if (ch.queue.empty () || ch.queue.front ().type != FrameType::Segment)
      gst_pad_push_event (pad, gst_event_new_segment (&seg));
  }
  GST_DEBUG_OBJECT (self, "new stream '%s'", name.c_str ());
  gst_element_add_pad (el, pad);
  gst_pad_start_task (pad, gst_quic_src_loop, pad, nullptr);
}

static void
stop_channels (GstQuicSrc * self)
{
  GstQuicSrcPrivate *priv = self->priv;
  std::vector<GstPad *> pads;
  {
    std::lock_guard<std::mutex> lk (priv->chan_lock);
    priv->running = false;
    for (auto &kv : priv->channels) {
      kv.second->flushing = true;
      kv.second->cv.notify_all ();
      if (kv.second->pad)
        pads.push_back (kv.second->pad);
    }
  }
  for (GstPad *pad : pads) {
    gst_pad_stop_task (pad);
    gst_pad_set_active (pad, FALSE);
    gst_element_remove_pad (GST_ELEMENT (self), pad);
  }
  std::lock_guard<std::mutex> lk (priv->chan_lock);
  priv->channels.clear ();
  priv->too_many_warned = false;
}

static void
gst_quic_src_set_context (GstElement * element, GstContext * context)
{
  GstQuicSrc *self = GST_QUIC_SRC (element);
  auto ep = endpoint_from_context (context);
  if (ep) {
    std::lock_guard<std::mutex> lk (self->priv->lock);
    self->priv->ctx_ep = ep;
  }
  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

static GstStateChangeReturn
gst_quic_src_change_state (GstElement * element, GstStateChange transition)
{
  GstQuicSrc *self = GST_QUIC_SRC (element);
  GstQuicSrcPrivate *priv = self->priv;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY: {
      Config cfg;
      std::shared_ptr<Endpoint> ctx;
      {
        std::lock_guard<std::mutex> lk (priv->lock);
        cfg = priv->cfg;
        ctx = priv->ctx_ep;
      }
      auto ep = acquire_endpoint (element, cfg, ctx);
      std::lock_guard<std::mutex> lk (priv->lock);
      priv->ep = ep;
      break;
    }
    case GST_STATE_CHANGE_READY_TO_PAUSED: {
      {
        std::lock_guard<std::mutex> lk (priv->chan_lock);
        priv->running = true;
      }
      std::string error;
      if (!priv->ep->add_user (priv, error)) {
        GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("%s", error.c_str ()), (nullptr));
        std::lock_guard<std::mutex> lk (priv->chan_lock);
        priv->running = false;
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    }
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      if (priv->ep)
        priv->ep->remove_user (priv);
      stop_channels (self);
      break;
    default:
      break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      ret = GST_STATE_CHANGE_NO_PREROLL;
      break;
    case GST_STATE_CHANGE_READY_TO_NULL: {
      std::lock_guard<std::mutex> lk (priv->lock);
      priv->ep.reset ();
      break;
    }
    default:
      break;
  }
  return ret;
}

static void
gst_quic_src_set_property (GObject * object, guint prop_id, const GValue * value, GParamSpec * pspec)
{
  GstQuicSrcPrivate *priv = GST_QUIC_SRC (object)->priv;
  std::lock_guard<std::mutex> lk (priv->lock);
  if (set_common_property (priv->cfg, priv->ep.get (), prop_id, value))
    return;
  switch (prop_id) {
    case PROP_MAX_RECEIVE_BYTES:
      priv->max_receive_bytes = g_value_get_uint64 (value);
      break;
    case PROP_UNADMITTED_STREAMS: {
      const gchar *v = g_value_get_string (value);
      std::vector<std::string> names;
      gchar **parts = g_strsplit (v ? v : "", ",", -1);
      for (gchar **p = parts; *p; p++) {
        g_strstrip (*p);
        if (**p)
          names.push_back (*p);
      }
      g_strfreev (parts);
      std::lock_guard<std::mutex> lk2 (priv->unadmitted_lock);
      priv->unadmitted_streams = names;
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_quic_src_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  GstQuicSrcPrivate *priv = GST_QUIC_SRC (object)->priv;
  std::lock_guard<std::mutex> lk (priv->lock);
  if (get_common_property (priv->cfg, priv->ep.get (), prop_id, value))
    return;
  switch (prop_id) {
    case PROP_MAX_RECEIVE_BYTES:
      g_value_set_uint64 (value, priv->max_receive_bytes);
      break;
    case PROP_UNADMITTED_STREAMS: {
      std::lock_guard<std::mutex> lk2 (priv->unadmitted_lock);
      std::string joined;
      for (auto &n : priv->unadmitted_streams)
        joined += (joined.empty () ? "" : ",") + n;
      g_value_set_string (value, joined.c_str ());
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_quic_src_finalize (GObject * object)
{
  GstQuicSrc *self = GST_QUIC_SRC (object);
  clear_common_config (self->priv->cfg);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_quic_src_class_init (GstQuicSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_quic_src_set_property;
  gobject_class->get_property = gst_quic_src_get_property;
  gobject_class->finalize = gst_quic_src_finalize;

  install_common_properties (gobject_class);
  g_object_class_install_property (gobject_class, PROP_MAX_RECEIVE_BYTES,
      g_param_spec_uint64 ("max-receive-bytes", "Maximum receive bytes",
          "Per pad: bytes received but not yet pushed beyond which flow control stops "
          "granting the sender credit", 64 * 1024, G_MAXUINT64, DEFAULT_MAX_RECEIVE_BYTES,
          (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_UNADMITTED_STREAMS,
      g_param_spec_string ("unadmitted-streams", "Unadmitted streams",
          "server, admission=application: comma-separated names of the streams a connection may "
          "send on before it is admitted (each buffer names its connection in a WayrayConnectionMeta); "
          "other streams of such a connection are refused, its upstream events dropped, and all it may "
          "send before admission is 256 KiB", DEFAULT_UNADMITTED_STREAMS,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)));
  install_common_signals (G_TYPE_FROM_CLASS (klass), [] (GstElement * el) {
    GstQuicSrcPrivate *p = GST_QUIC_SRC (el)->priv;
    std::lock_guard<std::mutex> lk (p->lock);
    return p->ep;
  });

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_quic_src_change_state);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_quic_src_set_context);

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 quicsrc mode=client host=127.0.0.1 port=4433 ! videoconvert ! autovideosink sync=false");
  gst_element_class_set_static_metadata (element_class, "WayRay QUIC source", "Source/Network",
      "Receives streams from a WayRay peer over QUIC (TCP+TLS fallback)", "WayRay developers");

  GST_DEBUG_CATEGORY_INIT (gst_quic_src_debug, "quicsrc", 0, "WayRay QUIC source");
}

static void
gst_quic_src_init (GstQuicSrc * self)
{
  self->priv = new GstQuicSrcPrivate ();
  self->priv->self = self;
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
}
