/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-wayraytileenc
 * @title: wayraytileenc
 *
 * Encodes the damaged parts of BGRx frames losslessly as
 * `application/x-wayray-tiles` messages (see docs/protocol.md). For each
 * damaged tile it sends the cheapest exact coding: a solid fill, a palette
 * with run lengths (text), a reference to a tile the client already holds
 * in its cache, a zstd- or lz4-compressed delta against the client's tile,
 * or the compressed pixels. Scrolls become one copy inside the client's
 * framebuffer plus the residue. Unchanged frames produce no output.
 *
 * Damage comes from the #GstWayrayDamageMeta on each frame; a frame without
 * it is treated as fully damaged. From damagetiler, "wayray-lossy" region
 * metas mark what the client shows from video (never a reference) and
 * "wayray-move" ones the moves found already (taken instead of searching).
 * A force-key-unit event (from either
 * direction) makes the next message a reset that carries every tile.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc pattern=ball ! video/x-raw,format=BGRx,width=640,height=480 ! wayraytileenc ! wayraytiledec ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwayraytileenc.h"

#include "gstwayraydamagemeta.h"
#include "wayrayregions.h"
#include "wayraytilecodec.h"

#include <gst/video/video.h>

#include <atomic>
#include <mutex>
#include <new>
#include <vector>

GST_DEBUG_CATEGORY_STATIC (gst_wayray_tile_enc_debug);
#define GST_CAT_DEFAULT gst_wayray_tile_enc_debug

using namespace wayray::tiles;

enum
{
  PROP_0,
  PROP_TILE_SIZE,
  PROP_CACHE_SIZE,
  PROP_COMPRESSION,
  PROP_ZSTD_LEVEL,
  PROP_THREADS,
  PROP_SCROLL_DETECTION,
  PROP_GLYPH_CACHE_SIZE,
  PROP_STATS,
};

#define DEFAULT_TILE_SIZE 64
#define DEFAULT_CACHE_SIZE 2048
#define DEFAULT_COMPRESSION 0
#define DEFAULT_ZSTD_LEVEL 1
#define DEFAULT_THREADS 0
#define DEFAULT_SCROLL_DETECTION TRUE

#define GST_TYPE_WAYRAY_TILE_COMPRESSION (gst_wayray_tile_compression_get_type ())
static GType
gst_wayray_tile_compression_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {0, "zstd: better ratio", "zstd"},
    {1, "lz4: faster, larger", "lz4"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstWayrayTileCompression", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

struct GstWayrayTileEncPrivate
{
  std::mutex lock;              /* protects settings, stats */
  EncoderSettings settings;
  EncodeStats stats;
  guint64 messages = 0;

  /* streaming thread only */
  Encoder encoder;
  GstVideoInfo info;
  gboolean have_info = FALSE;
  std::vector<uint8_t> out;
  std::atomic<bool> reset_requested { false };
};

struct _GstWayrayTileEnc
{
  GstElement parent;
  GstPad *sinkpad, *srcpad;
  GstWayrayTileEncPrivate *priv;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) { BGRx, BGRA }, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], "
        "framerate = (fraction) [ 0/1, MAX ]"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("application/x-wayray-tiles, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ]"));

#define gst_wayray_tile_enc_parent_class parent_class
G_DEFINE_TYPE (GstWayrayTileEnc, gst_wayray_tile_enc, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (wayraytileenc, "wayraytileenc", GST_RANK_NONE,
    GST_TYPE_WAYRAY_TILE_ENC);

static gboolean
gst_wayray_tile_enc_set_caps (GstWayrayTileEnc * self, GstCaps * caps)
{
  GstWayrayTileEncPrivate *priv = self->priv;
  GstVideoInfo info;
  if (!gst_video_info_from_caps (&info, caps))
    return FALSE;

  EncoderSettings settings;
  {
    std::lock_guard<std::mutex> lk (priv->lock);
    settings = priv->settings;
  }
  std::string error;
  if ((uint64_t) GST_VIDEO_INFO_WIDTH (&info) * GST_VIDEO_INFO_HEIGHT (&info) > kMaxPixels) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("%dx%d is larger than the tile format's %" G_GUINT64_FORMAT " pixels",
            GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info),
            (guint64) kMaxPixels));
    return FALSE;
  }
  if (!validate_settings (settings, error)) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("Invalid settings"), ("%s", error.c_str ()));
    return FALSE;
  }
  priv->info = info;
  priv->have_info = TRUE;
  priv->encoder.configure (GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info),
      settings);

  GstCaps *out = gst_caps_new_simple ("application/x-wayray-tiles",
      "width", G_TYPE_INT, GST_VIDEO_INFO_WIDTH (&info),
      "height", G_TYPE_INT, GST_VIDEO_INFO_HEIGHT (&info), NULL);
  if (GST_VIDEO_INFO_FPS_D (&info) > 0)
    gst_caps_set_simple (out, "framerate", GST_TYPE_FRACTION, GST_VIDEO_INFO_FPS_N (&info),
        GST_VIDEO_INFO_FPS_D (&info), NULL);
  gboolean ret = gst_pad_set_caps (self->srcpad, out);
  gst_caps_unref (out);
  return ret;
}

/* The lossy regions and moves damagetiler marked (wayrayregions.h). */
static void
collect_regions (GstBuffer * buf, std::vector<Rect> &lossy, std::vector<Move> &moves)
{
  gpointer state = NULL;
  GstMeta *meta;
  GQuark q_lossy = g_quark_from_static_string (WAYRAY_ROI_LOSSY);
  GQuark q_move = g_quark_from_static_string (WAYRAY_ROI_MOVE);
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    auto *roi = (GstVideoRegionOfInterestMeta *) meta;
    Rect r = {(int) roi->x, (int) roi->y, (int) roi->w, (int) roi->h};
    if (roi->roi_type == q_lossy) {
      lossy.push_back (r);
    } else if (roi->roi_type == q_move) {
      GstStructure *from = gst_video_region_of_interest_meta_get_param (roi, WAYRAY_MOVE_PARAM);
      int x, y;
      if (from && gst_structure_get_int (from, "x", &x) && gst_structure_get_int (from, "y", &y))
        moves.push_back ({{x, y, r.w, r.h}, r});
    }
  }
}

static GstFlowReturn
gst_wayray_tile_enc_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstWayrayTileEnc *self = GST_WAYRAY_TILE_ENC (parent);
  GstWayrayTileEncPrivate *priv = self->priv;

  if (!priv->have_info) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("no caps before the first buffer"));
    return GST_FLOW_NOT_NEGOTIATED;
  }

  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &priv->info, buf, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map the input frame"));
    return GST_FLOW_ERROR;
  }

  if (priv->reset_requested.exchange (false))
    priv->encoder.request_reset ();

  std::vector<Rect> damage, lossy;
  std::vector<Move> moves;
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (buf);
  if (dm) {
    for (guint i = 0; i < dm->n_rects; i++)
      damage.push_back ({dm->rects[i].x, dm->rects[i].y, dm->rects[i].w, dm->rects[i].h});
  }
  collect_regions (buf, lossy, moves);
  priv->encoder.hint_moves (std::move (moves));

  ConstSurface surf = {(const uint8_t *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0),
    (size_t) GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0), GST_VIDEO_FRAME_WIDTH (&frame),
    GST_VIDEO_FRAME_HEIGHT (&frame)
  };
  EncodeStats stats;
  priv->out.clear ();
  gboolean produced;
  try {
    produced = priv->encoder.encode (surf, dm ? damage.data () : nullptr,
        damage.size (), lossy.data (), lossy.size (), priv->out, &stats);
  } catch (const std::bad_alloc &) {
    /* its state may be half updated: only a reset can follow */
    priv->encoder.request_reset ();
    gst_video_frame_unmap (&frame);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, (NULL),
        ("out of memory (the cache holds up to cache-size * tile-size^2 * 4 bytes)"));
    return GST_FLOW_ERROR;
  }
  gst_video_frame_unmap (&frame);

  {
    std::lock_guard<std::mutex> lk (priv->lock);
    for (int i = 0; i < kNumOpTypes; i++)
      priv->stats.ops[i] += stats.ops[i];
    priv->stats.tiles_unchanged += stats.tiles_unchanged;
    priv->stats.tiles_by_glyphs += stats.tiles_by_glyphs;
    priv->stats.bytes += stats.bytes;
    if (produced)
      priv->messages++;
  }

  if (!produced) {
    GST_LOG_OBJECT (self, "nothing changed in frame %" GST_TIME_FORMAT,
        GST_TIME_ARGS (GST_BUFFER_PTS (buf)));
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }

  /* The message leaves in the vector it was written into (no copy); the
   * next one starts in a new vector of about the same size. */
  const bool reset = priv->out[5] & kFlagReset;
  auto *msg = new std::vector<uint8_t> ();
  msg->swap (priv->out);
  priv->out.reserve (msg->size ());
  GstBuffer *outbuf = gst_buffer_new_wrapped_full (GST_MEMORY_FLAG_READONLY, msg->data (),
      msg->size (), 0, msg->size (), msg,
      [] (gpointer v) { delete static_cast<std::vector<uint8_t> *> (v); });
  gst_buffer_copy_into (outbuf, buf, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
  if (reset)
    GST_BUFFER_FLAG_UNSET (outbuf, GST_BUFFER_FLAG_DELTA_UNIT);
  else
    GST_BUFFER_FLAG_SET (outbuf, GST_BUFFER_FLAG_DELTA_UNIT);
  GST_LOG_OBJECT (self, "message of %" G_GSIZE_FORMAT " bytes", gst_buffer_get_size (outbuf));
  gst_buffer_unref (buf);
  return gst_pad_push (self->srcpad, outbuf);
}

static gboolean
gst_wayray_tile_enc_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayTileEnc *self = GST_WAYRAY_TILE_ENC (parent);
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      gboolean ret = gst_wayray_tile_enc_set_caps (self, caps);
      gst_event_unref (event);
      return ret;
    }
    case GST_EVENT_FLUSH_STOP:
      self->priv->encoder.request_reset ();
      break;
    case GST_EVENT_CUSTOM_DOWNSTREAM:
      if (gst_video_event_is_force_key_unit (event))
        self->priv->encoder.request_reset ();
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_wayray_tile_enc_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayTileEnc *self = GST_WAYRAY_TILE_ENC (parent);
  if (gst_video_event_is_force_key_unit (event)) {
    /* The client lost its state (or is new): resend everything. The
     * encoder is only touched from the streaming thread, so flag it. */
    GST_DEBUG_OBJECT (self, "force-key-unit: next message resets the client");
    self->priv->reset_requested = true;
  }
  return gst_pad_event_default (pad, parent, event);
}

static GstStructure *
gst_wayray_tile_enc_get_stats (GstWayrayTileEnc * self)
{
  GstWayrayTileEncPrivate *priv = self->priv;
  std::lock_guard<std::mutex> lk (priv->lock);
  GstStructure *s = gst_structure_new ("application/x-wayray-tileenc-stats",
      "messages", G_TYPE_UINT64, priv->messages,
      "bytes", G_TYPE_UINT64, (guint64) priv->stats.bytes,
      "tiles-unchanged", G_TYPE_UINT64, (guint64) priv->stats.tiles_unchanged,
      "tiles-by-glyphs", G_TYPE_UINT64, (guint64) priv->stats.tiles_by_glyphs, NULL);
  for (int i = 1; i < kNumOpTypes; i++)
    gst_structure_set (s, op_name (i), G_TYPE_UINT64, (guint64) priv->stats.ops[i], NULL);
  return s;
}

static void
gst_wayray_tile_enc_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstWayrayTileEnc *self = GST_WAYRAY_TILE_ENC (object);
  GstWayrayTileEncPrivate *priv = self->priv;
  std::lock_guard<std::mutex> lk (priv->lock);
  switch (prop_id) {
    case PROP_TILE_SIZE:
      priv->settings.tile_size = g_value_get_uint (value) / 16 * 16;
      break;
    case PROP_CACHE_SIZE:
      priv->settings.cache_slots = g_value_get_uint (value);
      break;
    case PROP_COMPRESSION:
      priv->settings.compressor = g_value_get_enum (value) == 1 ? Compressor::LZ4 :
          Compressor::ZSTD;
      break;
    case PROP_ZSTD_LEVEL:
      priv->settings.zstd_level = g_value_get_int (value);
      break;
    case PROP_THREADS:
      priv->settings.threads = g_value_get_uint (value);
      break;
    case PROP_SCROLL_DETECTION:
      priv->settings.scroll_detection = g_value_get_boolean (value);
      break;
    case PROP_GLYPH_CACHE_SIZE:
      priv->settings.glyph_slots = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_wayray_tile_enc_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstWayrayTileEnc *self = GST_WAYRAY_TILE_ENC (object);
  GstWayrayTileEncPrivate *priv = self->priv;
  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, gst_wayray_tile_enc_get_stats (self));
    return;
  }
  std::lock_guard<std::mutex> lk (priv->lock);
  switch (prop_id) {
    case PROP_TILE_SIZE:
      g_value_set_uint (value, priv->settings.tile_size);
      break;
    case PROP_CACHE_SIZE:
      g_value_set_uint (value, priv->settings.cache_slots);
      break;
    case PROP_COMPRESSION:
      g_value_set_enum (value, priv->settings.compressor == Compressor::LZ4 ? 1 : 0);
      break;
    case PROP_ZSTD_LEVEL:
      g_value_set_int (value, priv->settings.zstd_level);
      break;
    case PROP_THREADS:
      g_value_set_uint (value, priv->settings.threads);
      break;
    case PROP_SCROLL_DETECTION:
      g_value_set_boolean (value, priv->settings.scroll_detection);
      break;
    case PROP_GLYPH_CACHE_SIZE:
      g_value_set_uint (value, priv->settings.glyph_slots);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static GstStateChangeReturn
gst_wayray_tile_enc_change_state (GstElement * element, GstStateChange transition)
{
  GstWayrayTileEnc *self = GST_WAYRAY_TILE_ENC (element);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element,
      transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    self->priv->have_info = FALSE;
    self->priv->encoder.request_reset ();
  }
  return ret;
}

static void
gst_wayray_tile_enc_finalize (GObject * object)
{
  GstWayrayTileEnc *self = GST_WAYRAY_TILE_ENC (object);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_wayray_tile_enc_class_init (GstWayrayTileEncClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_wayray_tile_enc_set_property;
  gobject_class->get_property = gst_wayray_tile_enc_get_property;
  gobject_class->finalize = gst_wayray_tile_enc_finalize;
  element_class->change_state = gst_wayray_tile_enc_change_state;

  const GParamFlags rw_ready = (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
      G_PARAM_STATIC_STRINGS);

  g_object_class_install_property (gobject_class, PROP_TILE_SIZE,
      g_param_spec_uint ("tile-size", "Tile size",
          "Edge of the square tiles in pixels (multiple of 16); the decoder follows it",
          kMinTileSize, kMaxTileSize, DEFAULT_TILE_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_CACHE_SIZE,
      g_param_spec_uint ("cache-size", "Cache size",
          "Tiles both sides keep for references (least recently used evicted first); "
          "the client needs cache-size * tile-size^2 * 4 bytes (at most 256 MiB); 0 disables",
          0, kMaxCacheSlots, DEFAULT_CACHE_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_COMPRESSION,
      g_param_spec_enum ("compression", "Compression",
          "Compressor for tiles that are neither solid, few-coloured nor cached",
          GST_TYPE_WAYRAY_TILE_COMPRESSION, DEFAULT_COMPRESSION, rw_ready));
  g_object_class_install_property (gobject_class, PROP_ZSTD_LEVEL,
      g_param_spec_int ("zstd-level", "zstd level",
          "zstd compression level (negative: faster)", -7, 19, DEFAULT_ZSTD_LEVEL, rw_ready));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_uint ("threads", "Threads",
          "Threads compressing large updates (0: one per core, at most 4); "
          "small updates always stay on the streaming thread", 0, 16, DEFAULT_THREADS,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_SCROLL_DETECTION,
      g_param_spec_boolean ("scroll-detection", "Scroll detection",
          "Send vertical scrolls and moves as a copy inside the client's framebuffer "
          "plus the residue", DEFAULT_SCROLL_DETECTION, rw_ready));
  g_object_class_install_property (gobject_class, PROP_GLYPH_CACHE_SIZE,
      g_param_spec_uint ("glyph-cache-size", "Glyph cache size",
          "Glyphs (letters, icons: shapes up to 64x64 on a plain background) both sides "
          "keep, so that text costs a few bytes a letter (a letter takes well under 1 KiB on the "
          "client, the largest glyph 20 KiB). "
          "0 disables glyph coding", 0, kMaxGlyphSlots, 2048, rw_ready));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Messages and bytes sent and the number of tiles per coding",
          GST_TYPE_STRUCTURE, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,format=BGRx,width=640,height=480 ! wayraytileenc compression=lz4 ! fakesink");
  gst_element_class_set_static_metadata (element_class, "WayRay tile encoder",
      "Codec/Encoder/Video", "Lossless encoder for damaged screen tiles (WayRay tile format)",
      "WayRay developers");
  gst_type_mark_as_plugin_api (GST_TYPE_WAYRAY_TILE_COMPRESSION, (GstPluginAPIFlags) 0);

  GST_DEBUG_CATEGORY_INIT (gst_wayray_tile_enc_debug, "wayraytileenc", 0,
      "WayRay tile encoder");
}

static void
gst_wayray_tile_enc_init (GstWayrayTileEnc * self)
{
  self->priv = new GstWayrayTileEncPrivate ();
  gst_video_info_init (&self->priv->info);

  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_wayray_tile_enc_chain);
  gst_pad_set_event_function (self->sinkpad, gst_wayray_tile_enc_sink_event);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_event_function (self->srcpad, gst_wayray_tile_enc_src_event);
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
}
