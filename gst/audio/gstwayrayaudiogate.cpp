/* wayrayaudiogate: lets audio through while it sounds, drops it once it has
 * been silent for a while, so a quiet session costs nothing on the wire.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-wayrayaudiogate
 * @title: wayrayaudiogate
 *
 * Passes raw audio through unchanged while it is not silent. Once every
 * sample stayed below #GstWayrayAudioGate:threshold for
 * #GstWayrayAudioGate:hangover, buffers are dropped until a louder one
 * comes; that one is marked discont (a new talkspurt). Put it before the
 * encoder: the encoder then sends nothing while the session is quiet, and
 * the receiver's wayrayplayout starts its talkspurt anew.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 pipewiresrc ! audio/x-raw,format=F32LE,rate=48000,channels=2 \
 *     ! wayrayaudiogate ! opusenc frame-size=10 ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwayrayaudiogate.h"

#include <gst/audio/audio.h>

#include <cmath>

GST_DEBUG_CATEGORY_STATIC (wayray_audio_gate_debug);
#define GST_CAT_DEFAULT wayray_audio_gate_debug

static constexpr int kOpenedKept = 32;

struct _GstWayrayAudioGate {
  GstBaseTransform parent;
  GstAudioInfo info;
  gdouble threshold_db;
  guint hangover_ms;
  /* Streaming thread; stats under the object lock. */
  guint64 silent_ns;
  gboolean closed;
  guint64 passed, dropped, openings;
  /* When it opened lately (g_get_monotonic_time, µs), newest last: what a
   * benchmark compares with when the sound reached the client. */
  guint64 opened_at[kOpenedKept];
};

enum {
  PROP_0,
  PROP_THRESHOLD,
  PROP_HANGOVER,
  PROP_STATS,
};

#define DEFAULT_THRESHOLD -90.0
#define DEFAULT_HANGOVER 200

#define CAPS "audio/x-raw, format = (string) { F32LE, S16LE }, layout = (string) interleaved, " \
    "rate = (int) [ 1, MAX ], channels = (int) [ 1, 8 ]"

static GstStaticPadTemplate sink_template =
GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (CAPS));
static GstStaticPadTemplate src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (CAPS));

G_DEFINE_TYPE (GstWayrayAudioGate, gst_wayray_audio_gate, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (wayrayaudiogate, "wayrayaudiogate", GST_RANK_NONE,
    GST_TYPE_WAYRAY_AUDIO_GATE,
    GST_DEBUG_CATEGORY_INIT (wayray_audio_gate_debug, "wayrayaudiogate", 0, "WayRay silence suppression"));

static gboolean
gst_wayray_audio_gate_set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps *)
{
  GstWayrayAudioGate *self = GST_WAYRAY_AUDIO_GATE (trans);
  return gst_audio_info_from_caps (&self->info, incaps);
}

/* The loudest sample of @buf, as a fraction of full scale. */
static gdouble
peak_of (GstWayrayAudioGate * self, GstBuffer * buf)
{
  GstMapInfo map;
  if (!gst_buffer_map (buf, &map, GST_MAP_READ))
    return 1.0;
  gdouble peak = 0.0;
  if (GST_AUDIO_INFO_FORMAT (&self->info) == GST_AUDIO_FORMAT_F32LE) {
    const gfloat *s = reinterpret_cast<const gfloat *> (map.data);
    for (gsize i = 0; i < map.size / sizeof (gfloat); i++)
      peak = MAX (peak, std::fabs ((gdouble) s[i]));
  } else {
    const gint16 *s = reinterpret_cast<const gint16 *> (map.data);
    for (gsize i = 0; i < map.size / sizeof (gint16); i++)
      peak = MAX (peak, std::fabs ((gdouble) s[i]) / 32768.0);
  }
  gst_buffer_unmap (buf, &map);
  return peak;
}

static GstFlowReturn
gst_wayray_audio_gate_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstWayrayAudioGate *self = GST_WAYRAY_AUDIO_GATE (trans);
  if (GST_AUDIO_INFO_BPF (&self->info) == 0)
    return GST_FLOW_NOT_NEGOTIATED;
  GST_OBJECT_LOCK (self);
  gdouble threshold = std::pow (10.0, self->threshold_db / 20.0);
  guint64 hangover = (guint64) self->hangover_ms * GST_MSECOND;
  GST_OBJECT_UNLOCK (self);

  guint64 dur = GST_BUFFER_DURATION_IS_VALID (buf) ? GST_BUFFER_DURATION (buf) :
      gst_util_uint64_scale (gst_buffer_get_size (buf) / GST_AUDIO_INFO_BPF (&self->info), GST_SECOND,
          GST_AUDIO_INFO_RATE (&self->info));
  bool quiet = peak_of (self, buf) < threshold;
  if (quiet)
    self->silent_ns += dur;
  else
    self->silent_ns = 0;

  GST_OBJECT_LOCK (self);
  GstFlowReturn ret = GST_FLOW_OK;
  if (quiet && self->silent_ns > hangover) {
    if (!self->closed)
      GST_DEBUG_OBJECT (self, "silent for %" GST_TIME_FORMAT ": closing", GST_TIME_ARGS (self->silent_ns));
    self->closed = TRUE;
    self->dropped++;
    ret = GST_BASE_TRANSFORM_FLOW_DROPPED;
  } else {
    if (self->closed) {
      GST_DEBUG_OBJECT (self, "sound again: opening");
      GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
      self->opened_at[self->openings % kOpenedKept] = (guint64) g_get_monotonic_time ();
      self->openings++;
    }
    self->closed = FALSE;
    self->passed++;
  }
  GST_OBJECT_UNLOCK (self);
  return ret;
}

static gboolean
gst_wayray_audio_gate_start (GstBaseTransform * trans)
{
  GstWayrayAudioGate *self = GST_WAYRAY_AUDIO_GATE (trans);
  GST_OBJECT_LOCK (self);
  self->silent_ns = 0;
  self->closed = FALSE;
  gst_audio_info_init (&self->info);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static void
gst_wayray_audio_gate_set_property (GObject * object, guint id, const GValue * value, GParamSpec * pspec)
{
  GstWayrayAudioGate *self = GST_WAYRAY_AUDIO_GATE (object);
  GST_OBJECT_LOCK (self);
  switch (id) {
    case PROP_THRESHOLD:
      self->threshold_db = g_value_get_double (value);
      break;
    case PROP_HANGOVER:
      self->hangover_ms = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_wayray_audio_gate_get_property (GObject * object, guint id, GValue * value, GParamSpec * pspec)
{
  GstWayrayAudioGate *self = GST_WAYRAY_AUDIO_GATE (object);
  GST_OBJECT_LOCK (self);
  switch (id) {
    case PROP_THRESHOLD:
      g_value_set_double (value, self->threshold_db);
      break;
    case PROP_HANGOVER:
      g_value_set_uint (value, self->hangover_ms);
      break;
    case PROP_STATS: {
      GstStructure *st = gst_structure_new ("wayray-audio-gate",
          "passed", G_TYPE_UINT64, self->passed, "dropped", G_TYPE_UINT64, self->dropped,
          "openings", G_TYPE_UINT64, self->openings, "silent", G_TYPE_BOOLEAN, self->closed, nullptr);
      GValue list = G_VALUE_INIT, v = G_VALUE_INIT;
      gst_value_list_init (&list, kOpenedKept);
      g_value_init (&v, G_TYPE_UINT64);
      guint64 first = self->openings > (guint64) kOpenedKept ? self->openings - kOpenedKept : 0;
      for (guint64 i = first; i < self->openings; i++) {
        g_value_set_uint64 (&v, self->opened_at[i % kOpenedKept]);
        gst_value_list_append_value (&list, &v);
      }
      g_value_unset (&v);
      gst_structure_take_value (st, "opened-at", &list);
      g_value_take_boxed (value, st);
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_wayray_audio_gate_class_init (GstWayrayAudioGateClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_wayray_audio_gate_set_property;
  gobject_class->get_property = gst_wayray_audio_gate_get_property;

  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
          "Level in dB of full scale below which a sample counts as silence", -200.0, 0.0, DEFAULT_THRESHOLD,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_HANGOVER,
      g_param_spec_uint ("hangover", "Hangover",
          "Milliseconds of silence that still pass before the gate closes (the encoder's and "
          "receiver's tail)", 0, 10000, DEFAULT_HANGOVER,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Buffers passed and dropped, how often the gate opened, whether it is closed now, and when it "
          "opened the last 32 times (opened-at: g_get_monotonic_time, microseconds)",
          GST_TYPE_STRUCTURE, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "WayRay audio gate", "Filter/Audio",
      "Drops audio after a while of silence, so that silence costs nothing on the wire",
      "WayRay project");

  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_wayray_audio_gate_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_wayray_audio_gate_transform_ip);
  trans_class->start = GST_DEBUG_FUNCPTR (gst_wayray_audio_gate_start);
  trans_class->passthrough_on_same_caps = FALSE;
}

static void
gst_wayray_audio_gate_init (GstWayrayAudioGate * self)
{
  self->threshold_db = DEFAULT_THRESHOLD;
  self->hangover_ms = DEFAULT_HANGOVER;
  gst_audio_info_init (&self->info);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}
