/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-wayraytiledec
 * @title: wayraytiledec
 *
 * Decodes `application/x-wayray-tiles` messages (see docs/protocol.md) into
 * a framebuffer and outputs it as a BGRx frame after every message, with a
 * #GstWayrayDamageMeta listing what the message changed. Every message is
 * validated: a malformed, truncated or out-of-sequence message stops the
 * stream with a decode error that names the fault; nothing is ever read or
 * written outside the buffers.
 *
 * The output shares the framebuffer's memory. When downstream still holds
 * the last frame as the next message arrives (a queue), decoding continues
 * in a second framebuffer that is brought up to date with only the damage
 * it missed.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc pattern=smpte ! video/x-raw,format=BGRx,width=640,height=480 ! wayraytileenc ! wayraytiledec ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwayraytiledec.h"

#include "gstwayraydamagemeta.h"
#include "wayraytilecodec.h"

#include <gst/video/video.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

GST_DEBUG_CATEGORY_STATIC (gst_wayray_tile_dec_debug);
#define GST_CAT_DEFAULT gst_wayray_tile_dec_debug

using namespace wayray::tiles;

enum
{
  PROP_0,
  PROP_STATS,
};

struct GstWayrayTileDecPrivate
{
  std::mutex lock;              /* protects the statistics */
  guint64 messages = 0, bytes = 0;

  /* streaming thread only */
  Decoder decoder;
  GstBuffer *fb = nullptr;      /* the framebuffer, shared with the output */
  /* A second framebuffer for when downstream still holds the first (a
   * queue): brought up to date with the damage it missed instead of
   * copying the whole picture. */
  GstBuffer *spare = nullptr;
  std::vector<Rect> spare_missed;
  bool spare_missed_all = false;
  int width = 0, height = 0;
  gint fps_n = 0, fps_d = 1;
  bool caps_pending = true;
  std::vector<Rect> damage;
  /* Sticky events that arrived before the first output caps could be set
   * (the frame size comes with the first reset message). */
  std::vector<GstEvent *> held;
};

struct _GstWayrayTileDec
{
  GstElement parent;
  GstPad *sinkpad, *srcpad;
  GstWayrayTileDecPrivate *priv;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("application/x-wayray-tiles"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) BGRx, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], "
        "framerate = (fraction) [ 0/1, MAX ]"));

#define gst_wayray_tile_dec_parent_class parent_class
G_DEFINE_TYPE (GstWayrayTileDec, gst_wayray_tile_dec, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (wayraytiledec, "wayraytiledec", GST_RANK_PRIMARY,
    GST_TYPE_WAYRAY_TILE_DEC);

static gboolean
gst_wayray_tile_dec_push_caps (GstWayrayTileDec * self)
{
  GstWayrayTileDecPrivate *priv = self->priv;
  GstCaps *caps = gst_caps_new_simple ("video/x-raw",
      "format", G_TYPE_STRING, "BGRx",
      "width", G_TYPE_INT, priv->width, "height", G_TYPE_INT, priv->height,
      "framerate", GST_TYPE_FRACTION, priv->fps_n, priv->fps_d,
      "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
  gboolean ret = gst_pad_set_caps (self->srcpad, caps);
  gst_caps_unref (caps);
  priv->caps_pending = false;
  for (GstEvent *ev : priv->held)
    gst_pad_push_event (self->srcpad, ev);
  priv->held.clear ();
  return ret;
}

static void
drop_framebuffers (GstWayrayTileDecPrivate * priv)
{
  for (GstBuffer **b : {&priv->fb, &priv->spare}) {
    if (*b)
      gst_buffer_unref (*b);
    *b = nullptr;
  }
  priv->spare_missed.clear ();
  priv->spare_missed_all = false;
}

/* The framebuffer is still held downstream: continue in the spare, after
 * copying into it what it missed, and keep the held one as the spare. */
static void
swap_to_spare (GstWayrayTileDecPrivate * priv)
{
  const size_t stride = (size_t) priv->width * 4;
  GstMapInfo from, to;
  if (!priv->spare) {
    priv->spare = gst_buffer_new_allocate (NULL, stride * priv->height, NULL);
    if (!priv->spare)
      return;                   /* decoding goes on in place (after a copy) */
    priv->spare_missed_all = true;
  }
  if (!gst_buffer_map (priv->fb, &from, GST_MAP_READ))
    return;
  if (!gst_buffer_map (priv->spare, &to, GST_MAP_WRITE)) {
    gst_buffer_unmap (priv->fb, &from);
    return;
  }
  if (priv->spare_missed_all) {
    memcpy (to.data, from.data, stride * priv->height);
  } else {
    for (const Rect &r : priv->spare_missed)
      for (int y = r.y; y < r.y + r.h; y++)
        memcpy (to.data + y * stride + (size_t) r.x * 4, from.data + y * stride +
            (size_t) r.x * 4, (size_t) r.w * 4);
  }
  gst_buffer_unmap (priv->spare, &to);
  gst_buffer_unmap (priv->fb, &from);
  std::swap (priv->fb, priv->spare);
  priv->spare_missed.clear ();
  priv->spare_missed_all = false;
}

static GstFlowReturn
gst_wayray_tile_dec_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstWayrayTileDec *self = GST_WAYRAY_TILE_DEC (parent);
  GstWayrayTileDecPrivate *priv = self->priv;
  GstMapInfo in;
  std::string error;

  if (!gst_buffer_map (buf, &in, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, DECODE, (NULL), ("cannot map the input buffer"));
    return GST_FLOW_ERROR;
  }

  Header header;
  if (!parse_header (in.data, in.size, header, error))
    goto malformed;

  if (header.flags & kFlagReset) {
    if (!priv->fb || header.width != priv->width || header.height != priv->height) {
      drop_framebuffers (priv);
      priv->width = header.width;
      priv->height = header.height;
      priv->fb = gst_buffer_new_allocate (NULL, (gsize) priv->width * priv->height * 4, NULL);
      if (!priv->fb) {
        gst_buffer_unmap (buf, &in);
        gst_buffer_unref (buf);
        GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, (NULL),
            ("cannot allocate a %dx%d framebuffer", priv->width, priv->height));
        return GST_FLOW_ERROR;
      }
      gst_buffer_memset (priv->fb, 0, 0, gst_buffer_get_size (priv->fb));
      priv->caps_pending = true;
    }
  } else if (!priv->fb) {
    error = "stream does not start with a reset message";
    goto malformed;
  }

  if (!gst_memory_is_writable (gst_buffer_peek_memory (priv->fb, 0)))
    swap_to_spare (priv);

  {
    GstMapInfo out;
    /* Would copy the memory if the previous output were still in use. */
    if (!gst_buffer_map (priv->fb, &out, GST_MAP_WRITE)) {
      gst_buffer_unmap (buf, &in);
      gst_buffer_unref (buf);
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL), ("cannot map the framebuffer"));
      return GST_FLOW_ERROR;
    }
    Surface fb = {out.data, (size_t) priv->width * 4, priv->width, priv->height};
    priv->damage.clear ();
    bool ok;
    try {
      ok = priv->decoder.decode (in.data, in.size, fb, priv->damage, error);
    } catch (const std::bad_alloc &) {
      /* the cache may take up to 256 MiB; a small client may not have it */
      ok = false;
      error = "out of memory for the tile cache";
    }
    gst_buffer_unmap (priv->fb, &out);
    if (!ok)
      goto malformed;
  }

  /* the spare misses what this message changed */
  if (priv->spare && !priv->spare_missed_all) {
    priv->spare_missed.insert (priv->spare_missed.end (), priv->damage.begin (),
        priv->damage.end ());
    if (priv->spare_missed.size () > 256) {
      priv->spare_missed.clear ();
      priv->spare_missed_all = true;
    }
  }

  {
    std::lock_guard<std::mutex> lk (priv->lock);
    priv->messages++;
    priv->bytes += in.size;
  }
  gst_buffer_unmap (buf, &in);

  if (priv->caps_pending && !gst_wayray_tile_dec_push_caps (self)) {
    gst_buffer_unref (buf);
    return GST_FLOW_NOT_NEGOTIATED;
  }

  {
    GstBuffer *outbuf = gst_buffer_copy_region (priv->fb, GST_BUFFER_COPY_MEMORY, 0, -1);
    gst_buffer_copy_into (outbuf, buf, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
    if (!GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT) &&
        priv->damage.empty ())
      priv->damage.push_back ({0, 0, priv->width, priv->height});
    std::vector<GstVideoRectangle> rects;
    rects.reserve (priv->damage.size ());
    for (const Rect &r : priv->damage)
      rects.push_back ({r.x, r.y, r.w, r.h});
    gst_buffer_add_wayray_damage_meta (outbuf, rects.data (), rects.size (), priv->width,
        priv->height);
    gst_buffer_unref (buf);
    return gst_pad_push (self->srcpad, outbuf);
  }

malformed:
  gst_buffer_unmap (buf, &in);
  gst_buffer_unref (buf);
  priv->decoder.reset ();
  drop_framebuffers (priv);
  GST_ELEMENT_ERROR (self, STREAM, DECODE, ("Malformed WayRay tile message"),
      ("%s", error.c_str ()));
  return GST_FLOW_ERROR;
}

static gboolean
gst_wayray_tile_dec_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayTileDec *self = GST_WAYRAY_TILE_DEC (parent);
  GstWayrayTileDecPrivate *priv = self->priv;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      GstStructure *s = gst_caps_get_structure (caps, 0);
      gint n, d;
      if (gst_structure_get_fraction (s, "framerate", &n, &d)) {
        priv->fps_n = n;
        priv->fps_d = d;
      }
      priv->caps_pending = true;
      /* Output caps follow from the first reset message. */
      gst_event_unref (event);
      return TRUE;
    }
    case GST_EVENT_FLUSH_STOP:
      /* After a flush only a reset message can continue the stream. */
      priv->decoder.reset ();
      drop_framebuffers (priv);
      break;
    default:
      break;
  }
  if (GST_EVENT_IS_STICKY (event) && GST_EVENT_TYPE (event) > GST_EVENT_CAPS &&
      !gst_pad_has_current_caps (self->srcpad) && GST_EVENT_TYPE (event) != GST_EVENT_EOS) {
    priv->held.push_back (event);
    return TRUE;
  }
  return gst_pad_event_default (pad, parent, event);
}

static void
drop_held (GstWayrayTileDecPrivate * priv)
{
  for (GstEvent *ev : priv->held)
    gst_event_unref (ev);
  priv->held.clear ();
}

static void
gst_wayray_tile_dec_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstWayrayTileDec *self = GST_WAYRAY_TILE_DEC (object);
  GstWayrayTileDecPrivate *priv = self->priv;
  switch (prop_id) {
    case PROP_STATS:{
      std::lock_guard<std::mutex> lk (priv->lock);
      g_value_take_boxed (value, gst_structure_new ("application/x-wayray-tiledec-stats",
              "messages", G_TYPE_UINT64, priv->messages,
              "bytes", G_TYPE_UINT64, priv->bytes, NULL));
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static GstStateChangeReturn
gst_wayray_tile_dec_change_state (GstElement * element, GstStateChange transition)
{
  GstWayrayTileDec *self = GST_WAYRAY_TILE_DEC (element);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element,
      transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    GstWayrayTileDecPrivate *priv = self->priv;
    priv->decoder.reset ();
    drop_framebuffers (priv);
    priv->caps_pending = true;
    drop_held (priv);
  }
  return ret;
}

static void
gst_wayray_tile_dec_finalize (GObject * object)
{
  GstWayrayTileDec *self = GST_WAYRAY_TILE_DEC (object);
  drop_framebuffers (self->priv);
  drop_held (self->priv);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_wayray_tile_dec_class_init (GstWayrayTileDecClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->get_property = gst_wayray_tile_dec_get_property;
  gobject_class->finalize = gst_wayray_tile_dec_finalize;
  element_class->change_state = gst_wayray_tile_dec_change_state;

  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics", "Messages and bytes decoded",
          GST_TYPE_STRUCTURE, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,format=BGRx,width=640,height=480 ! wayraytileenc ! wayraytiledec ! videoconvert ! autovideosink");
  gst_element_class_set_static_metadata (element_class, "WayRay tile decoder",
      "Codec/Decoder/Video",
      "Validating decoder for WayRay tile messages into a BGRx framebuffer",
      "WayRay developers");

  GST_DEBUG_CATEGORY_INIT (gst_wayray_tile_dec_debug, "wayraytiledec", 0,
      "WayRay tile decoder");
}

static void
gst_wayray_tile_dec_init (GstWayrayTileDec * self)
{
  self->priv = new GstWayrayTileDecPrivate ();

  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_wayray_tile_dec_chain);
  gst_pad_set_event_function (self->sinkpad, gst_wayray_tile_dec_sink_event);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
}
