/* wayrayplayout: the receiver's playout buffer for encoded audio packets.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-wayrayplayout
 * @title: wayrayplayout
 *
 * Holds received audio packets (Opus, or any audio of fixed-length packets
 * with timestamps from the sender) and releases each at its playout time,
 * on this pipeline's clock, timestamped with it: it absorbs network jitter,
 * reorders, drops what comes too late, and asks the decoder to conceal what
 * is missing with a GAP event (`opusdec plc=true` then uses its loss
 * concealment, or the next packet's forward error correction). The delay
 * follows the jitter of the last two seconds, between
 * #GstWayrayPlayout:latency and #GstWayrayPlayout:max-latency, and a frame
 * is dropped or inserted now and then to follow the drift between the
 * sender's clock and this pipeline's (the audio device's, with an audio
 * sink that provides the clock). See docs/audio.md.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 quicsrc name=net mode=client host=server net.audio ! wayrayplayout \
 *     ! opusdec plc=true use-inband-fec=true ! audioconvert ! autoaudiosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwayrayplayout.h"
#include "wayrayplayout.h"

#include <condition_variable>
#include <memory>
#include <mutex>

GST_DEBUG_CATEGORY_STATIC (wayray_playout_debug);
#define GST_CAT_DEFAULT wayray_playout_debug

#define DEFAULT_LATENCY 20
#define DEFAULT_MAX_LATENCY 200
/* Released this much before it plays: the decoder's and sink's time. */
#define LEAD (10 * GST_MSECOND)

enum {
  PROP_0,
  PROP_LATENCY,
  PROP_MAX_LATENCY,
  PROP_STATS,
};

struct PlayoutPriv {
  std::mutex lock;
  std::condition_variable cond;
  std::unique_ptr<wayray::Playout> playout;
  guint latency_ms = DEFAULT_LATENCY, max_latency_ms = DEFAULT_MAX_LATENCY;
  bool flushing = true;
  bool eos = false;
  bool need_segment = true;
  GstClockID waiting = nullptr;
  guint64 waiting_for = GST_CLOCK_TIME_NONE;
};

struct _GstWayrayPlayout {
  GstElement parent;
  GstPad *sinkpad, *srcpad;
  PlayoutPriv *priv;
};

static GstStaticPadTemplate sink_template =
GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-opus; audio/x-raw"));
static GstStaticPadTemplate src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-opus; audio/x-raw"));

G_DEFINE_TYPE (GstWayrayPlayout, gst_wayray_playout, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (wayrayplayout, "wayrayplayout", GST_RANK_NONE, GST_TYPE_WAYRAY_PLAYOUT,
    GST_DEBUG_CATEGORY_INIT (wayray_playout_debug, "wayrayplayout", 0, "WayRay audio playout buffer"));

static guint64
running_time (GstWayrayPlayout * self)
{
  return gst_element_get_current_running_time (GST_ELEMENT (self));
}

static GstFlowReturn
gst_wayray_playout_chain (GstPad *, GstObject * parent, GstBuffer * buf)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (parent);
  PlayoutPriv *p = self->priv;
  guint64 now = running_time (self);
  std::lock_guard<std::mutex> lk (p->lock);
  if (p->flushing) {
    gst_buffer_unref (buf);
    return GST_FLOW_FLUSHING;
  }
  if (!GST_CLOCK_TIME_IS_VALID (now)) {
    /* Not playing yet: nothing to schedule against. */
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }
  GST_LOG_OBJECT (self, "packet %" GST_TIME_FORMAT " at %" GST_TIME_FORMAT, GST_TIME_ARGS (GST_BUFFER_PTS (buf)),
      GST_TIME_ARGS (now));
  p->playout->push (buf, now);
  guint64 due = p->playout->next_due ();
  if (p->waiting && GST_CLOCK_TIME_IS_VALID (due) && due < p->waiting_for)
    gst_clock_id_unschedule (p->waiting);
  p->cond.notify_all ();
  return GST_FLOW_OK;
}

static void
gst_wayray_playout_loop (gpointer data)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (data);
  PlayoutPriv *p = self->priv;
  std::unique_lock<std::mutex> lk (p->lock);
  guint64 due;
  while (!p->flushing && !p->eos && !GST_CLOCK_TIME_IS_VALID (due = p->playout->next_due ()))
    p->cond.wait (lk);
  if (p->flushing) {
    lk.unlock ();
    gst_pad_pause_task (self->srcpad);
    return;
  }
  if (p->eos) {
    p->playout->clear ();
    p->eos = false;
    lk.unlock ();
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
    return;
  }
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
  if (!clock) {
    p->cond.wait_for (lk, std::chrono::milliseconds (10));
    return;
  }
  GstClockTime base = gst_element_get_base_time (GST_ELEMENT (self));
  GstClockTime at = due > LEAD ? due - LEAD : 0;
  GstClockID id = gst_clock_new_single_shot_id (clock, base + at);
  gst_object_unref (clock);
  p->waiting = id;
  p->waiting_for = due;
  lk.unlock ();
  GstClockReturn cr = gst_clock_id_wait (id, nullptr);
  lk.lock ();
  p->waiting = nullptr;
  p->waiting_for = GST_CLOCK_TIME_NONE;
  gst_clock_id_unref (id);
  if (cr == GST_CLOCK_UNSCHEDULED || p->flushing || p->eos)
    return;                     /* look again */
  guint64 now = running_time (self);
  if (!GST_CLOCK_TIME_IS_VALID (now) || !GST_CLOCK_TIME_IS_VALID (p->playout->next_due ()) ||
      p->playout->next_due () > now + LEAD)
    return;
  wayray::Playout::Action a = p->playout->pop (now + LEAD);
  bool segment = p->need_segment;
  p->need_segment = false;
  lk.unlock ();
  GST_LOG_OBJECT (self, "%s at %" GST_TIME_FORMAT " for %" GST_TIME_FORMAT,
      a.kind == wayray::Playout::Kind::Packet ? "packet" : "conceal", GST_TIME_ARGS (now), GST_TIME_ARGS (a.time));

  if (segment) {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    gst_pad_push_event (self->srcpad, gst_event_new_segment (&seg));
  }
  if (a.kind == wayray::Playout::Kind::Packet) {
    GstBuffer *b = gst_buffer_make_writable (a.buffer);
    GST_BUFFER_PTS (b) = a.time;
    GST_BUFFER_DTS (b) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION (b) = a.duration;
    GstFlowReturn ret = gst_pad_push (self->srcpad, b);
    if (ret != GST_FLOW_OK) {
      GST_DEBUG_OBJECT (self, "push: %s", gst_flow_get_name (ret));
      if (ret == GST_FLOW_FLUSHING || ret <= GST_FLOW_NOT_NEGOTIATED) {
        if (ret <= GST_FLOW_NOT_NEGOTIATED)
          GST_ELEMENT_FLOW_ERROR (self, ret);
        gst_pad_pause_task (self->srcpad);
      }
    }
  } else if (a.duration > 0) {
    gst_pad_push_event (self->srcpad, gst_event_new_gap (a.time, a.duration));
  }
}

static void
stop_task (GstWayrayPlayout * self)
{
  PlayoutPriv *p = self->priv;
  {
    std::lock_guard<std::mutex> lk (p->lock);
    p->flushing = true;
    if (p->waiting)
      gst_clock_id_unschedule (p->waiting);
    p->cond.notify_all ();
  }
  gst_pad_stop_task (self->srcpad);
}

static void
start_task (GstWayrayPlayout * self)
{
  PlayoutPriv *p = self->priv;
  {
    std::lock_guard<std::mutex> lk (p->lock);
    p->flushing = false;
    p->eos = false;
    p->need_segment = true;
    p->playout->clear ();
  }
  gst_pad_start_task (self->srcpad, gst_wayray_playout_loop, self, nullptr);
}

static gboolean
gst_wayray_playout_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (parent);
  PlayoutPriv *p = self->priv;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START: {
      gboolean ok = gst_pad_push_event (self->srcpad, event);
      stop_task (self);
      return ok;
    }
    case GST_EVENT_FLUSH_STOP: {
      gboolean ok = gst_pad_push_event (self->srcpad, event);
      start_task (self);
      return ok;
    }
    case GST_EVENT_SEGMENT:
      /* Ours is the running time this element plays at. */
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_GAP:
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_EOS: {
      std::lock_guard<std::mutex> lk (p->lock);
      p->eos = true;
      if (p->waiting)
        gst_clock_id_unschedule (p->waiting);
      p->cond.notify_all ();
      gst_event_unref (event);
      return TRUE;
    }
    default:
      return gst_pad_event_default (pad, parent, event);
  }
}

static gboolean
gst_wayray_playout_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (parent);
  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    if (!gst_pad_peer_query (self->sinkpad, query))
      return FALSE;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency (query, &live, &min, &max);
    guint max_ms;
    {
      std::lock_guard<std::mutex> lk (self->priv->lock);
      max_ms = self->priv->max_latency_ms;
    }
    /* Packets are released LEAD before the time they carry. */
    gst_query_set_latency (query, TRUE, min + LEAD,
        GST_CLOCK_TIME_IS_VALID (max) ? max + (guint64) max_ms * GST_MSECOND : GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return gst_pad_query_default (pad, parent, query);
}

static gboolean
gst_wayray_playout_src_activate_mode (GstPad *, GstObject * parent, GstPadMode mode, gboolean active)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (parent);
  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  if (active)
    start_task (self);
  else
    stop_task (self);
  return TRUE;
}

static GstStructure *
stats_structure (GstWayrayPlayout * self)
{
  std::lock_guard<std::mutex> lk (self->priv->lock);
  const wayray::PlayoutStats &s = self->priv->playout->stats ();
  return gst_structure_new ("wayray-playout",
      "received", G_TYPE_UINT64, s.received, "played", G_TYPE_UINT64, s.played,
      "late", G_TYPE_UINT64, s.late, "duplicates", G_TYPE_UINT64, s.duplicates,
      "concealed", G_TYPE_UINT64, s.concealed,
      "drift-dropped", G_TYPE_UINT64, s.dropped, "drift-inserted", G_TYPE_UINT64, s.inserted,
      "talkspurts", G_TYPE_UINT64, s.talkspurts,
      "jitter-ms", G_TYPE_DOUBLE, s.jitter / 1e6, "delay-ms", G_TYPE_DOUBLE, s.target / 1e6,
      "depth-ms", G_TYPE_DOUBLE, s.depth / 1e6, nullptr);
}

static void
gst_wayray_playout_set_property (GObject * object, guint id, const GValue * value, GParamSpec * pspec)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (object);
  PlayoutPriv *p = self->priv;
  std::lock_guard<std::mutex> lk (p->lock);
  switch (id) {
    case PROP_LATENCY:
      p->latency_ms = g_value_get_uint (value);
      break;
    case PROP_MAX_LATENCY:
      p->max_latency_ms = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      return;
  }
  p->playout->set_delays ((guint64) p->latency_ms * GST_MSECOND, (guint64) p->max_latency_ms * GST_MSECOND);
}

static void
gst_wayray_playout_get_property (GObject * object, guint id, GValue * value, GParamSpec * pspec)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (object);
  PlayoutPriv *p = self->priv;
  switch (id) {
    case PROP_LATENCY: {
      std::lock_guard<std::mutex> lk (p->lock);
      g_value_set_uint (value, p->latency_ms);
      break;
    }
    case PROP_MAX_LATENCY: {
      std::lock_guard<std::mutex> lk (p->lock);
      g_value_set_uint (value, p->max_latency_ms);
      break;
    }
    case PROP_STATS:
      g_value_take_boxed (value, stats_structure (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      break;
  }
}

static void
gst_wayray_playout_finalize (GObject * object)
{
  GstWayrayPlayout *self = GST_WAYRAY_PLAYOUT (object);
  delete self->priv;
  G_OBJECT_CLASS (gst_wayray_playout_parent_class)->finalize (object);
}

static void
gst_wayray_playout_class_init (GstWayrayPlayoutClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_wayray_playout_set_property;
  gobject_class->get_property = gst_wayray_playout_get_property;
  gobject_class->finalize = gst_wayray_playout_finalize;

  g_object_class_install_property (gobject_class, PROP_LATENCY,
      g_param_spec_uint ("latency", "Latency",
          "The least delay, in milliseconds, a packet waits after the fastest packet of the last two seconds "
          "(more when the jitter needs it)", 0, 2000, DEFAULT_LATENCY,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_MAX_LATENCY,
      g_param_spec_uint ("max-latency", "Maximum latency",
          "The most delay, in milliseconds, whatever the jitter: later packets are concealed", 0, 5000,
          DEFAULT_MAX_LATENCY,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "received, played, late, duplicates, concealed (frames), drift-dropped and drift-inserted "
          "(frames dropped or concealed to follow the delay the jitter needs and the clocks' drift), "
          "talkspurts, jitter-ms (RFC 3550), delay-ms (the target), depth-ms (waiting now)",
          GST_TYPE_STRUCTURE, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "WayRay playout buffer", "Filter/Network/Audio",
      "Plays received audio packets at their time: absorbs jitter, conceals losses, follows clock drift",
      "WayRay project");
}

static void
gst_wayray_playout_init (GstWayrayPlayout * self)
{
  self->priv = new PlayoutPriv ();
  self->priv->playout = std::make_unique<wayray::Playout> (DEFAULT_LATENCY * GST_MSECOND,
      DEFAULT_MAX_LATENCY * GST_MSECOND, 10 * GST_MSECOND);
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_wayray_playout_chain));
  gst_pad_set_event_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_wayray_playout_sink_event));
  GST_PAD_SET_PROXY_CAPS (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_wayray_playout_src_query));
  gst_pad_set_activatemode_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_wayray_playout_src_activate_mode));
  GST_PAD_SET_PROXY_CAPS (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
}
