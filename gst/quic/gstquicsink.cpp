/* quicsink
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

/**
 * SECTION:element-quicsink
 * @title: quicsink
 * @see_also: quicsrc
 *
 * Sends media to a WayRay peer over QUIC (ngtcp2 + GnuTLS, TLS 1.3, ALPN
 * "wayray/1"). Every request sink pad becomes a QUIC stream named after the
 * pad: its caps (at the start and on every change), segment, buffers with
 * their timestamps, duration and flags, and serialized downstream events
 * (the "wayray-cursor" event, tags, gaps, EOS) reach the quicsrc at the
 * other end, which exposes a source pad of the same name.
 *
 * The pad name says what the stream carries and sets its priority: `input`
 * > `cursor` > `audio` > `display`/`video` > anything else (`usb`, `bulk`).
 * Pads whose name starts with `video` send each group of pictures on a
 * stream of its own: when a new key unit arrives while the earlier groups
 * still have more bytes unsent than gop-reset-threshold or than the link
 * delivers in max-queue-time, they are reset instead of being delivered
 * late; when the send queue is full mid-group, the rest of the group is
 * dropped and a key unit is requested upstream.
 *
 * Streams of `display` and `video` pads start with a key unit: delta units
 * that would come first on a new connection are dropped and a key unit is
 * requested upstream (as it is on every pad when a peer connects).
 *
 * Upstream events that the peer's quicsrc receives (navigation, force-key-
 * unit) leave this element's sink pad of the same name upstream, as if sent
 * by a local element; they travel on the connection's control stream, which
 * has the highest priority and never waits behind media.
 *
 * Send queues are bounded by max-queue-bytes per pad (queued plus
 * unacknowledged bytes) and, on display pads, in time: by max-queue-time
 * of unsent data at the rate the link delivers (measured by the
 * transport). A full queue blocks the streaming thread (back-pressure:
 * a source that merges frames, as wayraysrc does, sends fewer and larger
 * updates over a slow link), except on video pads as described above. A
 * frame larger than the bounds is still accepted into an empty queue.
 *
 * Elements of one process with the same mode, host and port share one
 * connection (published as a "wayray.quic.endpoint" GstContext), so a quicsrc
 * and a quicsink can receive and send on the same connection.
 *
 * The element posts "wayray-quic-connection" element messages (connected,
 * peer, transport, reason) when a peer connects or goes away, and
 * "wayray-quic-stats" messages every stats-interval.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=640,height=480 ! quicsink mode=server port=4433
 * gst-launch-1.0 quicsrc mode=client host=127.0.0.1 port=4433 ! videoconvert ! autovideosink sync=false
 * ]|
 * The server sends raw video on the "display" stream; the client trusts the
 * server's certificate on first use and refuses it if it ever changes.
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=30 ! s.video quicsink name=s mode=server \
 *     audiotestsrc is-live=true ! opusenc ! s.audio
 * gst-launch-1.0 quicsrc name=c mode=client host=127.0.0.1 c.video ! h264parse ! avdec_h264 ! videoconvert ! autovideosink \
 *     c.audio ! opusdec ! autoaudiosink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#  include "config.h"
#endif

#include "gstquicsink.h"
#include "gstquiccommon.h"
#include "gstquicframing.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>

GST_DEBUG_CATEGORY_STATIC (gst_quic_sink_debug);
#define GST_CAT_DEFAULT gst_quic_sink_debug

using namespace wrq;

enum {
  PROP_MAX_QUEUE_BYTES = PROP_COMMON_LAST,
  PROP_WAIT_FOR_CONNECTION,
  PROP_GOP_RESET_THRESHOLD,
  PROP_GOPS_RESET,
  PROP_MAX_QUEUE_TIME,
};

#define DEFAULT_MAX_QUEUE_BYTES (4 * 1024 * 1024)
#define DEFAULT_WAIT_FOR_CONNECTION TRUE
#define DEFAULT_GOP_RESET_THRESHOLD (64 * 1024)
#define DEFAULT_MAX_QUEUE_TIME 150   /* ms */
#define EOS_DRAIN_TIMEOUT_MS 30000

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("%s",
    GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS_ANY);

namespace {

struct PadState {
  std::string name;
  Purpose purpose = Purpose::Bulk;
  bool gop_mode = false;
  GstCaps *caps = nullptr;
  GstSegment segment;
  bool have_segment = false;
  std::shared_ptr<SendStream> stream;
  /* Video: earlier groups, finished but perhaps not all sent yet. */
  std::vector<std::shared_ptr<SendStream>> older;
  /* Server: streams to one connection each, for buffers that name it (a
   * WayrayConnectionMeta): answers to a peer not (yet) admitted. */
  std::map<guint64, std::shared_ptr<SendStream>> to_conn;
  guint32 gop = 0;
  bool stream_has_media = false;    /* a buffer went into the current stream */
  bool dropping_to_key = false;     /* video: waiting for the next key unit */
  std::atomic<guint> key_requests { 0 };
  std::atomic<bool> flushing { false };
  bool eos = false;

  PadState () { gst_segment_init (&segment, GST_FORMAT_UNDEFINED); }
  ~PadState () { gst_clear_caps (&caps); }
};

}  // namespace

struct GstQuicSinkPrivate : public EndpointUser {
  GstQuicSink *self = nullptr;
  std::mutex lock;   /* properties, pads, ep */
  Config cfg;
  guint64 max_queue_bytes = DEFAULT_MAX_QUEUE_BYTES;
  gboolean wait_for_connection = DEFAULT_WAIT_FOR_CONNECTION;
  guint64 gop_reset_threshold = DEFAULT_GOP_RESET_THRESHOLD;
  guint max_queue_time = DEFAULT_MAX_QUEUE_TIME;
  std::atomic<guint64> gops_reset { 0 };
  std::shared_ptr<Endpoint> ep;
  std::shared_ptr<Endpoint> ctx_ep;
  std::map<std::string, GstPad *> pads;
  bool registered = false;

  void on_connection_state (bool up, guint64 conn_id, const std::string & peer, const std::string & transport,
      const std::string & reason, bool fatal) override;
  void on_stats (const Stats & stats) override;
  bool on_upstream_event (const std::string & target, GstEvent * event) override;
  void on_warning (const std::string & message) override;
};

struct _GstQuicSink {
  GstElement parent;
  GstQuicSinkPrivate *priv;
};

#define gst_quic_sink_parent_class parent_class
G_DEFINE_TYPE (GstQuicSink, gst_quic_sink, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (quicsink, "quicsink", GST_RANK_NONE, GST_TYPE_QUIC_SINK);

static PadState *
pad_state (GstPad * pad)
{
  return static_cast<PadState *> (gst_pad_get_element_private (pad));
}

static void
request_key_unit (GstPad * pad, PadState * st)
{
  GstEvent *ev = gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, ++st->key_requests);
  GST_DEBUG_OBJECT (pad, "requesting a key unit upstream");
  gst_pad_push_event (pad, ev);
}

void
GstQuicSinkPrivate::on_connection_state (bool up, guint64 conn_id, const std::string & peer,
    const std::string & transport, const std::string & reason, bool fatal)
{
  GstElement *el = GST_ELEMENT (self);
  post_connection_message (el, up, conn_id, peer, transport, reason);
  if (fatal) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("%s", reason.c_str ()), (nullptr));
    return;
  }
  if (!up) {
    if (!reason.empty ())
      GST_INFO_OBJECT (self, "%s", reason.c_str ());
    return;
  }
  /* A new peer has seen nothing yet: ask every source for a full picture. */
  std::vector<GstPad *> list;
  {
    std::lock_guard<std::mutex> lk (lock);
    for (auto &kv : pads)
      list.push_back (GST_PAD (gst_object_ref (kv.second)));
  }
  for (GstPad *p : list) {
    request_key_unit (p, pad_state (p));
    gst_object_unref (p);
  }
}

void
GstQuicSinkPrivate::on_stats (const Stats & stats)
{
  post_stats_message (GST_ELEMENT (self), stats);
}

bool
GstQuicSinkPrivate::on_upstream_event (const std::string & target, GstEvent * event)
{
  GstPad *pad = nullptr;
  {
    std::lock_guard<std::mutex> lk (lock);
    auto it = pads.find (target);
    if (it != pads.end ())
      pad = GST_PAD (gst_object_ref (it->second));
  }
  if (!pad)
    return false;
  GST_LOG_OBJECT (pad, "upstream event from the peer: %" GST_PTR_FORMAT, event);
  gst_pad_push_event (pad, gst_event_ref (event));
  gst_object_unref (pad);
  return true;
}

void
GstQuicSinkPrivate::on_warning (const std::string & message)
{
  GST_ELEMENT_WARNING (self, STREAM, DECODE, ("%s", message.c_str ()), (nullptr));
}

/* Makes sure the pad has a stream on the current connection; writes its
 * preamble, caps and segment. FALSE: flushing, or no connection and not
 * waiting for one. */
static bool
ensure_stream (GstQuicSink * self, GstPad * pad, PadState * st, bool * flushing)
{
  GstQuicSinkPrivate *priv = self->priv;
  *flushing = false;
  if (st->stream)
    return true;
  std::shared_ptr<Endpoint> ep = priv->ep;
  while (!st->stream) {
    if (st->flushing) {
      *flushing = true;
      return false;
    }
    if (!ep->connected ()) {
      if (!priv->wait_for_connection)
        return false;
      GST_DEBUG_OBJECT (pad, "waiting for a peer");
      if (!ep->wait_connected (st->flushing, 500))
        continue;
    }
    Preamble pre;
    pre.purpose = st->purpose;
    pre.gop_stream = st->gop_mode;
    pre.gop = st->gop;
    pre.name = st->name;
    st->stream = ep->open_stream (pre);
  }
  st->stream_has_media = false;
  std::vector<guint8> bytes;
  if (st->caps)
    encode_caps (bytes, st->caps);
  if (st->have_segment)
    encode_segment (bytes, &st->segment);
  if (!bytes.empty ())
    ep->write (*st->stream, std::move (bytes), G_MAXUINT64, false, st->flushing);
  GST_DEBUG_OBJECT (pad, "opened stream (gop %u)", st->gop);
  return true;
}

/* The display waits in the sender at most max-queue-time (at the rate the
 * link delivers): what would wait longer holds its streaming thread (the
 * source merges the frames it could not push). Video is bounded in time
 * at its key units (supersede_groups): in the middle of a group a key
 * unit larger than the bound would otherwise never get through a slow
 * link, each group dropped for the next. */
static bool
time_bounded (const PadState * st)
{
  return st->purpose == Purpose::Display;
}

/* A new key unit supersedes every earlier group of pictures: those still
 * unsent beyond what the link delivers in max-queue-time (and beyond
 * gop-reset-threshold) are reset rather than delivered late. Returns how
 * many were reset. */
static guint
supersede_groups (GstQuicSinkPrivate * priv, GstPad * pad, PadState * st)
{
  Endpoint &ep = *priv->ep;
  guint64 limit = priv->gop_reset_threshold;
  guint64 budget = priv->max_queue_time ? ep.queue_budget (*st->stream, priv->max_queue_time) : 0;
  if (budget)
    limit = std::min (limit, budget);
  st->older.erase (std::remove_if (st->older.begin (), st->older.end (), [&] (const std::shared_ptr<SendStream> & o) {
        return !ep.stream_alive (*o) || ep.unsent (*o) == 0;
      }), st->older.end ());
  guint64 unsent = ep.unsent (*st->stream);
  for (auto &o : st->older)
    unsent += ep.unsent (*o);
  if (unsent <= limit) {
    ep.finish (*st->stream);
    st->older.push_back (st->stream);
    return 0;
  }
  GST_INFO_OBJECT (pad, "resetting superseded groups up to %u (%" G_GUINT64_FORMAT " bytes unsent, %"
      G_GUINT64_FORMAT " allowed)", st->gop, unsent, limit);
  guint n = 1;
  ep.reset (*st->stream, kErrSuperseded);
  for (auto &o : st->older) {
    ep.reset (*o, kErrSuperseded);
    n++;
  }
  st->older.clear ();
  return n;
}

/* Writes @bytes to the pad's stream, reopening it on a new connection. */
static GstFlowReturn
send_bytes (GstQuicSink * self, GstPad * pad, PadState * st, std::vector<guint8> && bytes, bool block,
    bool drop_on_close = false)
{
  GstQuicSinkPrivate *priv = self->priv;
  for (int attempt = 0; attempt < 3; attempt++) {
    bool flushing;
    if (!ensure_stream (self, pad, st, &flushing))
      return flushing ? GST_FLOW_FLUSHING : GST_FLOW_OK;
    /* write () takes the bytes only when it returns Ok. */
    auto res = priv->ep->write (*st->stream, std::move (bytes), priv->max_queue_bytes, block,
        st->flushing, time_bounded (st) ? priv->max_queue_time : 0);
    switch (res) {
      case Endpoint::WriteResult::Ok:
        return GST_FLOW_OK;
      case Endpoint::WriteResult::Cancelled:
        return GST_FLOW_FLUSHING;
      case Endpoint::WriteResult::Full:
        return GST_FLOW_CUSTOM_SUCCESS;
      case Endpoint::WriteResult::Closed:
        /* The connection went away: start over on the next one. */
        st->stream.reset ();
        st->older.clear ();
        if (drop_on_close)
          return GST_FLOW_CUSTOM_SUCCESS_1;
        break;
    }
  }
  return GST_FLOW_OK;
}

/* A buffer for connection @conn_id only, on a stream of its own to that
 * connection; dropped when the connection is gone. */
static GstFlowReturn
send_to_connection (GstQuicSink * self, GstPad * pad, PadState * st, guint64 conn_id, GstBuffer * buf)
{
  GstQuicSinkPrivate *priv = self->priv;
  std::vector<guint8> bytes;
  encode_buffer (bytes, buf);
  gst_buffer_unref (buf);
  for (int attempt = 0; attempt < 2; attempt++) {
    auto it = st->to_conn.find (conn_id);
    if (it == st->to_conn.end ()) {
      /* Streams of connections that went away are forgotten here. */
      for (auto i = st->to_conn.begin (); i != st->to_conn.end ();)
        i = priv->ep->stream_alive (*i->second) ? std::next (i) : st->to_conn.erase (i);
      Preamble pre;
      pre.purpose = st->purpose;
      pre.name = st->name;
      auto stream = priv->ep->open_stream (pre, conn_id);
      if (!stream) {
        GST_DEBUG_OBJECT (pad, "connection %" G_GUINT64_FORMAT " is gone; dropping its buffer", conn_id);
        return GST_FLOW_OK;
      }
      std::vector<guint8> head;
      if (st->caps)
        encode_caps (head, st->caps);
      if (st->have_segment)
        encode_segment (head, &st->segment);
      if (!head.empty ())
        priv->ep->write (*stream, std::move (head), G_MAXUINT64, false, st->flushing);
      it = st->to_conn.emplace (conn_id, stream).first;
    }
    switch (priv->ep->write (*it->second, std::move (bytes), G_MAXUINT64, false, st->flushing)) {
      case Endpoint::WriteResult::Ok:
        return GST_FLOW_OK;
      case Endpoint::WriteResult::Cancelled:
        return GST_FLOW_FLUSHING;
      case Endpoint::WriteResult::Full:
        return GST_FLOW_OK;
      case Endpoint::WriteResult::Closed:
        st->to_conn.erase (it);
        break;
    }
  }
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_quic_sink_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstQuicSink *self = GST_QUIC_SINK (parent);
  GstQuicSinkPrivate *priv = self->priv;
  PadState *st = pad_state (pad);
  bool key = !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);

  guint64 conn_id = priv->ep->config ().mode == Mode::Server ? connection_meta_id (buf) : 0;
  if (conn_id)
    return send_to_connection (self, pad, st, conn_id, buf);

  if (st->gop_mode) {
    if (key && st->stream && st->stream_has_media) {
      /* A new group of pictures: the previous ones are complete. */
      priv->gops_reset += supersede_groups (priv, pad, st);
      st->stream.reset ();
      st->gop++;
    }
  }
  /* Video and display start every stream with a key unit: a receiver that
   * just connected cannot use delta units before one. */
  bool keyed = st->gop_mode || st->purpose == Purpose::Display;
  if (keyed && (st->dropping_to_key || (!st->stream && !key))) {
    if (!key) {
      if (!st->dropping_to_key) {
        st->dropping_to_key = true;
        request_key_unit (pad, st);
      }
      gst_buffer_unref (buf);
      return GST_FLOW_OK;
    }
    st->dropping_to_key = false;
  }

  /* Sound goes as a datagram where it can: a lost packet is concealed by
   * the receiver, never waited for. Its stream carries the caps first. */
  if (st->purpose == Purpose::Audio && st->stream && priv->ep->send_datagram (*st->stream, buf)) {
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }
  std::vector<guint8> bytes;
  encode_buffer (bytes, buf);
  gst_buffer_unref (buf);
  /* A delta unit cannot start a stream on a new connection; a key unit
   * can, so it is not dropped when the connection it was queued for went
   * (a client replaced: its picture would cost a second full frame). */
  GstFlowReturn ret = send_bytes (self, pad, st, std::move (bytes), !st->gop_mode, keyed && !key);
  if (ret == GST_FLOW_CUSTOM_SUCCESS || ret == GST_FLOW_CUSTOM_SUCCESS_1) {
    /* Video with a full queue (or a lost connection): drop the rest of this
     * group and ask for a key unit. */
    if (ret == GST_FLOW_CUSTOM_SUCCESS && st->stream) {
      GST_INFO_OBJECT (pad, "send queue full: resetting group %u and requesting a key unit", st->gop);
      priv->ep->reset (*st->stream, kErrSuperseded);
      priv->gops_reset++;
      st->stream.reset ();
      st->gop++;
    }
    st->dropping_to_key = true;
    request_key_unit (pad, st);
    return GST_FLOW_OK;
  }
  if (ret == GST_FLOW_OK && st->stream)
    st->stream_has_media = true;
  return ret;
}

static gboolean
all_pads_eos (GstQuicSink * self)
{
  std::lock_guard<std::mutex> lk (self->priv->lock);
  for (auto &kv : self->priv->pads)
    if (!pad_state (kv.second)->eos)
      return FALSE;
  return !self->priv->pads.empty ();
}

static gboolean
gst_quic_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstQuicSink *self = GST_QUIC_SINK (parent);
  GstQuicSinkPrivate *priv = self->priv;
  PadState *st = pad_state (pad);
  std::vector<guint8> bytes;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      gst_caps_replace (&st->caps, caps);
      if (st->stream) {
        encode_caps (bytes, caps);
        send_bytes (self, pad, st, std::move (bytes), true);
      }
      break;
    }
    case GST_EVENT_SEGMENT: {
      const GstSegment *seg;
      gst_event_parse_segment (event, &seg);
      gst_segment_copy_into (seg, &st->segment);
      st->have_segment = true;
      if (st->stream) {
        encode_segment (bytes, seg);
        send_bytes (self, pad, st, std::move (bytes), true);
      }
      break;
    }
    case GST_EVENT_FLUSH_START:
      st->flushing = true;
      if (priv->ep)
        priv->ep->wake_waiters ();
      break;
    case GST_EVENT_FLUSH_STOP:
      st->flushing = false;
      st->eos = false;
      break;
    case GST_EVENT_EOS: {
      if (encode_event (bytes, event) && priv->ep->connected ()) {
        if (send_bytes (self, pad, st, std::move (bytes), true) == GST_FLOW_OK && st->stream) {
          auto s = st->stream;
          priv->ep->finish (*s);
          /* EOS means delivered: wait until the peer acknowledged it all. */
          if (!priv->ep->wait_drained (*s, st->flushing, EOS_DRAIN_TIMEOUT_MS))
            GST_WARNING_OBJECT (pad, "EOS: not all data was acknowledged by the peer");
          st->stream.reset ();
        }
      }
      st->eos = true;
      if (all_pads_eos (self)) {
        GST_DEBUG_OBJECT (self, "all pads are EOS");
        GstMessage *msg = gst_message_new_eos (GST_OBJECT (self));
        gst_message_set_seqnum (msg, gst_event_get_seqnum (event));
        gst_element_post_message (GST_ELEMENT (self), msg);
      }
      break;
    }
    default:
      if (GST_EVENT_IS_DOWNSTREAM (event) && encode_event (bytes, event)) {
        GST_LOG_OBJECT (pad, "forwarding %" GST_PTR_FORMAT, event);
        send_bytes (self, pad, st, std::move (bytes), true);
      }
      break;
  }
  gst_event_unref (event);
  return TRUE;
}

static gboolean
gst_quic_sink_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_ACCEPT_CAPS:
      gst_query_set_accept_caps_result (query, TRUE);
      return TRUE;
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

static GstPad *
gst_quic_sink_request_new_pad (GstElement * element, GstPadTemplate * templ, const gchar * req_name,
    const GstCaps * caps)
{
  GstQuicSink *self = GST_QUIC_SINK (element);
  GstQuicSinkPrivate *priv = self->priv;
  std::string name;
  {
    std::lock_guard<std::mutex> lk (priv->lock);
    if (req_name) {
      name = req_name;
    } else if (!priv->pads.count ("display")) {
      name = "display";
    } else {
      for (guint i = 1; name.empty (); i++)
        if (!priv->pads.count ("bulk" + std::to_string (i)))
          name = "bulk" + std::to_string (i);
    }
    if (!valid_stream_name (name) || name == "control" || priv->pads.count (name)) {
      GST_WARNING_OBJECT (self, "pad name '%s' is taken, reserved or not 1..64 of [A-Za-z0-9_-]",
          name.c_str ());
      return nullptr;
    }
  }
  GstPad *pad = gst_pad_new_from_template (templ, name.c_str ());
  PadState *st = new PadState ();
  st->name = name;
  st->purpose = purpose_from_pad_name (name);
  st->gop_mode = st->purpose == Purpose::Video;
  gst_pad_set_element_private (pad, st);
  gst_pad_set_chain_function (pad, gst_quic_sink_chain);
  gst_pad_set_event_function (pad, gst_quic_sink_event);
  gst_pad_set_query_function (pad, gst_quic_sink_query);
  GST_PAD_SET_PROXY_ALLOCATION (pad);
  {
    std::lock_guard<std::mutex> lk (priv->lock);
    priv->pads[name] = pad;
  }
  gst_element_add_pad (element, pad);
  GST_DEBUG_OBJECT (self, "new pad '%s': purpose %s, priority %d%s", name.c_str (),
      purpose_name (st->purpose), purpose_priority (st->purpose), st->gop_mode ? ", stream per GOP" : "");
  return pad;
}

static void
gst_quic_sink_release_pad (GstElement * element, GstPad * pad)
{
  GstQuicSink *self = GST_QUIC_SINK (element);
  PadState *st = pad_state (pad);
  st->flushing = true;
  if (self->priv->ep)
    self->priv->ep->wake_waiters ();
  GST_PAD_STREAM_LOCK (pad);
  if (st->stream && self->priv->ep)
    self->priv->ep->finish (*st->stream);
  GST_PAD_STREAM_UNLOCK (pad);
  {
    std::lock_guard<std::mutex> lk (self->priv->lock);
    self->priv->pads.erase (st->name);
  }
  gst_pad_set_element_private (pad, nullptr);
  delete st;
  gst_element_remove_pad (element, pad);
}

static void
gst_quic_sink_set_context (GstElement * element, GstContext * context)
{
  GstQuicSink *self = GST_QUIC_SINK (element);
  auto ep = endpoint_from_context (context);
  if (ep) {
    std::lock_guard<std::mutex> lk (self->priv->lock);
    self->priv->ctx_ep = ep;
  }
  GST_ELEMENT_CLASS (parent_class)->set_context (element, context);
}

static GstStateChangeReturn
gst_quic_sink_change_state (GstElement * element, GstStateChange transition)
{
  GstQuicSink *self = GST_QUIC_SINK (element);
  GstQuicSinkPrivate *priv = self->priv;

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
      std::string error;
      if (!ep->add_user (priv, error)) {
        GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE, ("%s", error.c_str ()), (nullptr));
        return GST_STATE_CHANGE_FAILURE;
      }
      std::lock_guard<std::mutex> lk (priv->lock);
      priv->ep = ep;
      priv->registered = true;
      break;
    }
    case GST_STATE_CHANGE_READY_TO_PAUSED: {
      std::lock_guard<std::mutex> lk (priv->lock);
      for (auto &kv : priv->pads) {
        PadState *st = pad_state (kv.second);
        st->flushing = false;
        st->eos = false;
      }
      break;
    }
    case GST_STATE_CHANGE_PAUSED_TO_READY: {
      /* Unblock streaming threads waiting for a peer or queue space before
       * the pads are deactivated (which takes their stream locks). */
      std::lock_guard<std::mutex> lk (priv->lock);
      for (auto &kv : priv->pads)
        pad_state (kv.second)->flushing = true;
      if (priv->ep)
        priv->ep->wake_waiters ();
      break;
    }
    default:
      break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY: {
      std::lock_guard<std::mutex> lk (priv->lock);
      for (auto &kv : priv->pads) {
        PadState *st = pad_state (kv.second);
        if (st->stream && priv->ep)
          priv->ep->finish (*st->stream);
        st->stream.reset ();
        st->older.clear ();
        st->have_segment = false;
        st->dropping_to_key = false;
      }
      break;
    }
    case GST_STATE_CHANGE_READY_TO_NULL: {
      std::shared_ptr<Endpoint> ep;
      {
        std::lock_guard<std::mutex> lk (priv->lock);
        ep = std::move (priv->ep);
        priv->registered = false;
      }
      if (ep)
        ep->remove_user (priv);
      break;
    }
    default:
      break;
  }
  return ret;
}

static void
gst_quic_sink_set_property (GObject * object, guint prop_id, const GValue * value, GParamSpec * pspec)
{
  GstQuicSinkPrivate *priv = GST_QUIC_SINK (object)->priv;
  std::lock_guard<std::mutex> lk (priv->lock);
  if (set_common_property (priv->cfg, priv->ep.get (), prop_id, value))
    return;
  switch (prop_id) {
    case PROP_MAX_QUEUE_BYTES:
      priv->max_queue_bytes = g_value_get_uint64 (value);
      break;
    case PROP_WAIT_FOR_CONNECTION:
      priv->wait_for_connection = g_value_get_boolean (value);
      break;
    case PROP_GOP_RESET_THRESHOLD:
      priv->gop_reset_threshold = g_value_get_uint64 (value);
      break;
    case PROP_MAX_QUEUE_TIME:
      priv->max_queue_time = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_quic_sink_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  GstQuicSinkPrivate *priv = GST_QUIC_SINK (object)->priv;
  std::lock_guard<std::mutex> lk (priv->lock);
  if (get_common_property (priv->cfg, priv->ep.get (), prop_id, value))
    return;
  switch (prop_id) {
    case PROP_MAX_QUEUE_BYTES:
      g_value_set_uint64 (value, priv->max_queue_bytes);
      break;
    case PROP_WAIT_FOR_CONNECTION:
      g_value_set_boolean (value, priv->wait_for_connection);
      break;
    case PROP_GOP_RESET_THRESHOLD:
      g_value_set_uint64 (value, priv->gop_reset_threshold);
      break;
    case PROP_MAX_QUEUE_TIME:
      g_value_set_uint (value, priv->max_queue_time);
      break;
    case PROP_GOPS_RESET:
      g_value_set_uint64 (value, priv->gops_reset);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_quic_sink_finalize (GObject * object)
{
  GstQuicSink *self = GST_QUIC_SINK (object);
  clear_common_config (self->priv->cfg);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_quic_sink_class_init (GstQuicSinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_quic_sink_set_property;
  gobject_class->get_property = gst_quic_sink_get_property;
  gobject_class->finalize = gst_quic_sink_finalize;

  install_common_properties (gobject_class);
  install_common_signals (G_TYPE_FROM_CLASS (klass), [] (GstElement * el) {
    GstQuicSinkPrivate *p = GST_QUIC_SINK (el)->priv;
    std::lock_guard<std::mutex> lk (p->lock);
    return p->ep;
  });
  g_object_class_install_property (gobject_class, PROP_MAX_QUEUE_BYTES,
      g_param_spec_uint64 ("max-queue-bytes", "Maximum queue bytes",
          "Per pad: bytes queued or unacknowledged beyond which the streaming thread waits "
          "(video pads: the group of pictures is dropped and a key unit requested)",
          16 * 1024, G_MAXUINT64, DEFAULT_MAX_QUEUE_BYTES,
          (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_WAIT_FOR_CONNECTION,
      g_param_spec_boolean ("wait-for-connection", "Wait for connection",
          "Hold buffers (blocking the streaming thread) until a peer is connected; when FALSE "
          "they are dropped while no peer is connected", DEFAULT_WAIT_FOR_CONNECTION,
          (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_GOP_RESET_THRESHOLD,
      g_param_spec_uint64 ("gop-reset-threshold", "GOP reset threshold",
          "Video pads: when a key unit arrives while more than this many bytes of the previous "
          "group of pictures are unsent, that group's stream is reset", 0, G_MAXUINT64,
          DEFAULT_GOP_RESET_THRESHOLD,
          (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_MAX_QUEUE_TIME,
      g_param_spec_uint ("max-queue-time", "Maximum queue time",
          "Milliseconds of data (at the rate the link delivers) that may wait unsent: beyond it a "
          "display pad's streaming thread waits, and a video pad's earlier groups of pictures are "
          "reset at its next key unit (0: bytes only)", 0, 60000, DEFAULT_MAX_QUEUE_TIME,
          (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_GOPS_RESET,
      g_param_spec_uint64 ("gops-reset", "GOPs reset",
          "How many groups of pictures were reset as stale so far", 0, G_MAXUINT64, 0,
          (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  element_class->request_new_pad = GST_DEBUG_FUNCPTR (gst_quic_sink_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR (gst_quic_sink_release_pad);
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_quic_sink_change_state);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_quic_sink_set_context);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=640,height=480 ! quicsink mode=server port=4433");
  gst_element_class_set_static_metadata (element_class, "WayRay QUIC sink", "Sink/Network",
      "Sends streams to a WayRay peer over QUIC (TCP+TLS fallback)", "WayRay developers");

  GST_DEBUG_CATEGORY_INIT (gst_quic_sink_debug, "quicsink", 0, "WayRay QUIC sink");
}

static void
gst_quic_sink_init (GstQuicSink * self)
{
  self->priv = new GstQuicSinkPrivate ();
  self->priv->self = self;
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SINK);
}
