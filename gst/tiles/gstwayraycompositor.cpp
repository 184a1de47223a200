/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-wayraycompositor
 * @title: wayraycompositor
 *
 * The client side of the damage path. It keeps the session's framebuffer
 * and:
 *
 * - applies the damaged rectangles of the BGRx frames arriving on its
 *   `tiles` pad (from wayraytiledec: each frame carries a
 *   #GstWayrayDamageMeta; a frame without it replaces everything);
 * - places decoded video frames arriving on the `video` request pad (the
 *   atlas of damagetiler's video regions): the rectangles named by their
 *   "wayray-video" GstVideoRegionOfInterestMetas or, when an encoder dropped
 *   them, by the last "wayray-video-region" event, each taken from its
 *   place in the atlas (wayrayregions.h).
 *   A video frame never overwrites pixels that a lossless update with the
 *   same or a later timestamp already wrote, so a late video frame cannot
 *   undo a refinement;
 * - draws the cursor published by wayraysrc ("wayray-cursor" events on any
 *   sink pad, e.g. the `cursor` request pad) alpha-blended over the
 *   picture, its old and new rectangles counting as damage;
 * - outputs a BGRx frame, with a #GstWayrayDamageMeta, only when the picture
 *   changed;
 * - forwards navigation and other upstream events through the `tiles` pad
 *   (towards the session).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc pattern=ball ! video/x-raw,format=BGRx,width=640,height=480 ! damagetiler ! wayraytileenc ! wayraytiledec ! wayraycompositor ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwayraycompositor.h"

#include "gstwayraycursor.h"
#include "gstwayraydamagemeta.h"
#include "gstwayraystreamtime.h"
#include "wayrayclassifier.h"
#include "wayrayregions.h"
#include "wayraytilecodec.h"

#include <gst/video/video.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

GST_DEBUG_CATEGORY_STATIC (gst_wayray_compositor_debug);
#define GST_CAT_DEFAULT gst_wayray_compositor_debug

enum
{
  PROP_0,
  PROP_DRAW_CURSOR,
  PROP_STATS,
};

#define DEFAULT_DRAW_CURSOR TRUE
#define BLOCK 16                /* granularity of the lossless timestamps */

struct GstWayrayCompositorPrivate
{
  /* Protects everything: three sink pads feed one framebuffer. Recursive
   * because a push may call back (queries, probes) on the same thread. */
  std::recursive_mutex lock;
  gboolean draw_cursor = DEFAULT_DRAW_CURSOR;

  int width = 0, height = 0;
  gint fps_n = 0, fps_d = 1;
  std::vector<uint8_t> fb;      /* the session picture, without the cursor */
  std::vector<GstClockTime> stamp;      /* per BLOCK: last lossless write */
  int blocks_x = 0, blocks_y = 0;
  /* fb + cursor. Two pictures used in turn, so that the one the sink still
   * shows is not written to (and need not be copied); each is brought up
   * to date with the damage of the last two outputs. */
  GstBuffer *outs[2] = { nullptr, nullptr };
  int out_index = 0;
  std::vector<GstVideoRectangle> prev_damage;
  bool caps_pending = true;
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
  GstSegment segment;

  GstVideoInfo video_info;
  bool have_video_info = false;
  /* From the last wayray-video-region event: where the parts of the video
   * frames go (atlas_x < 0: the whole frame at screen.x, screen.y). */
  std::vector<wayray::tiles::PasteRect> video_paste = { {{0, 0, 0, 0}, -1, -1} };
  bool video_event_seen = false;
  GstSegment video_segment;     /* the video pad's: encoders may shift timestamps */

  /* cursor */
  bool cursor_visible = false;
  int cursor_x = 0, cursor_y = 0, hot_x = 0, hot_y = 0;
  int cursor_w = 0, cursor_h = 0;
  guint cursor_serial = 0;
  std::vector<uint8_t> cursor_image;    /* premultiplied BGRA */

  guint64 frames_out = 0, tile_updates = 0, video_updates = 0, video_blocks_skipped = 0;
};

struct _GstWayrayCompositor
{
  GstElement parent;
  GstPad *tilespad, *videopad, *cursorpad, *srcpad;
  GstWayrayCompositorPrivate *priv;
};

static GstStaticPadTemplate tiles_template = GST_STATIC_PAD_TEMPLATE ("tiles",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) { BGRx, BGRA }, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], "
        "framerate = (fraction) [ 0/1, MAX ]"));
static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video",
    GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS ("video/x-raw, format = (string) { BGRx, BGRA }, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], "
        "framerate = (fraction) [ 0/1, MAX ]"));
static GstStaticPadTemplate cursor_template = GST_STATIC_PAD_TEMPLATE ("cursor",
    GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) BGRx, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], "
        "framerate = (fraction) [ 0/1, MAX ]"));

#define gst_wayray_compositor_parent_class parent_class
G_DEFINE_TYPE (GstWayrayCompositor, gst_wayray_compositor, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (wayraycompositor, "wayraycompositor", GST_RANK_NONE,
    GST_TYPE_WAYRAY_COMPOSITOR);

static void
drop_outputs (GstWayrayCompositorPrivate * priv)
{
  for (GstBuffer *&b : priv->outs) {
    if (b)
      gst_buffer_unref (b);
    b = nullptr;
  }
  priv->prev_damage.clear ();
}

static bool
clip (GstVideoRectangle & r, int w, int h)
{
  int x0 = std::max (r.x, 0), y0 = std::max (r.y, 0);
  int x1 = std::min (r.x + r.w, w), y1 = std::min (r.y + r.h, h);
  if (x1 <= x0 || y1 <= y0)
    return false;
  r = {x0, y0, x1 - x0, y1 - y0};
  return true;
}

static GstVideoRectangle
cursor_rect (GstWayrayCompositorPrivate * priv)
{
  GstVideoRectangle r = {priv->cursor_x - priv->hot_x, priv->cursor_y - priv->hot_y,
    priv->cursor_w, priv->cursor_h
  };
  return r;
}

static bool
cursor_shown (GstWayrayCompositorPrivate * priv)
{
  return priv->draw_cursor && priv->cursor_visible && priv->cursor_w > 0 &&
      !priv->cursor_image.empty ();
}

/* Blends the premultiplied cursor over @dst wherever it lies inside one
 * of @rects, once per pixel even where rectangles overlap. */
static void
blend_cursor (GstWayrayCompositorPrivate * priv, uint8_t *dst, size_t stride,
    const std::vector<GstVideoRectangle> &rects)
{
  GstVideoRectangle c = cursor_rect (priv);
  GstVideoRectangle frame = {0, 0, priv->width, priv->height};
  int x0 = std::max (c.x, frame.x), y0 = std::max (c.y, frame.y);
  int x1 = std::min (c.x + c.w, frame.w), y1 = std::min (c.y + c.h, frame.h);
  for (int y = y0; y < y1; y++) {
    for (int x = x0; x < x1; x++) {
      bool inside = false;
      for (const auto &r : rects)
        if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) {
          inside = true;
          break;
        }
      if (!inside)
        continue;
      const uint8_t *src = priv->cursor_image.data () + ((size_t) (y - c.y) * c.w + (x - c.x)) * 4;
      uint8_t *d = dst + (size_t) y * stride + (size_t) x * 4;
      unsigned a = src[3];
      if (a == 0)
        continue;
      for (int i = 0; i < 3; i++)
        d[i] = (uint8_t) std::min (255u, src[i] + (d[i] * (255 - a) + 127) / 255);
    }
  }
}

static gboolean
push_caps (GstWayrayCompositor * self)
{
  GstWayrayCompositorPrivate *priv = self->priv;
  GstCaps *caps = gst_caps_new_simple ("video/x-raw",
      "format", G_TYPE_STRING, "BGRx",
      "width", G_TYPE_INT, priv->width, "height", G_TYPE_INT, priv->height,
      "framerate", GST_TYPE_FRACTION, priv->fps_n, priv->fps_d,
      "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
  gboolean ok = gst_pad_set_caps (self->srcpad, caps);
  gst_caps_unref (caps);
  priv->caps_pending = !ok;
  return ok;
}

/* Composes @damage into the output picture and pushes it. Called with the
 * lock held. */
static GstFlowReturn
output (GstWayrayCompositor * self, std::vector<GstVideoRectangle> &damage, GstClockTime pts)
{
  GstWayrayCompositorPrivate *priv = self->priv;
  const int W = priv->width, H = priv->height;
  std::vector<GstVideoRectangle> rects;
  for (auto r : damage)
    if (clip (r, W, H))
      rects.push_back (r);
  if (rects.empty () || W == 0)
    return GST_FLOW_OK;

  priv->out_index ^= 1;
  GstBuffer *&out = priv->outs[priv->out_index];
  /* this picture last got the output before the previous one */
  std::vector<GstVideoRectangle> compose = rects;
  compose.insert (compose.end (), priv->prev_damage.begin (), priv->prev_damage.end ());
  if (!out) {
    /* a new picture: compose all of it once */
    out = gst_buffer_new_allocate (NULL, (gsize) W * H * 4, NULL);
    if (!out) {
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, (NULL),
          ("cannot allocate a %dx%d output frame", W, H));
      return GST_FLOW_ERROR;
    }
    compose.assign (1, GstVideoRectangle {0, 0, W, H});
  }
  GstMapInfo map;
  /* copies the memory first if that picture is still held downstream */
  if (!gst_buffer_map (out, &map, GST_MAP_WRITE)) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL), ("cannot map the output frame"));
    return GST_FLOW_ERROR;
  }
  const size_t stride = (size_t) W * 4;
  for (const auto &r : compose) {
    for (int y = 0; y < r.h; y++) {
      size_t off = (size_t) (r.y + y) * stride + (size_t) r.x * 4;
      memcpy (map.data + off, priv->fb.data () + off, (size_t) r.w * 4);
    }
  }
  if (cursor_shown (priv))
    blend_cursor (priv, map.data, stride, compose);
  gst_buffer_unmap (out, &map);
  priv->prev_damage = rects;

  GstBuffer *buf = gst_buffer_copy_region (out, GST_BUFFER_COPY_MEMORY, 0, -1);
  GST_BUFFER_PTS (buf) = pts;
  gst_buffer_add_wayray_damage_meta (buf, rects.data (), rects.size (), W, H);
  priv->frames_out++;
  if (GST_CLOCK_TIME_IS_VALID (pts))
    priv->last_pts = pts;
  return gst_pad_push (self->srcpad, buf);
}

/* A timestamp for output caused by an event: now, or just after the last. */
static GstClockTime
current_pts (GstWayrayCompositor * self)
{
  GstWayrayCompositorPrivate *priv = self->priv;
  return gst_wayray_stream_time_now (GST_ELEMENT (self), &priv->segment, priv->last_pts);
}

static void
resize (GstWayrayCompositorPrivate * priv, int w, int h)
{
  if (w == priv->width && h == priv->height && !priv->fb.empty ())
    return;
  priv->width = w;
  priv->height = h;
  priv->fb.assign ((size_t) w * h * 4, 0);
  priv->blocks_x = (w + BLOCK - 1) / BLOCK;
  priv->blocks_y = (h + BLOCK - 1) / BLOCK;
  priv->stamp.assign ((size_t) priv->blocks_x * priv->blocks_y, GST_CLOCK_TIME_NONE);
  drop_outputs (priv);
  priv->caps_pending = true;
}

static GstFlowReturn
gst_wayray_compositor_tiles_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (parent);
  GstWayrayCompositorPrivate *priv = self->priv;
  std::lock_guard<std::recursive_mutex> lk (priv->lock);

  GstCaps *caps = gst_pad_get_current_caps (pad);
  GstVideoInfo info;
  bool ok = caps && gst_video_info_from_caps (&info, caps);
  if (caps)
    gst_caps_unref (caps);
  if (!ok) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("no caps on the tiles pad"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &info, buf, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map the tile frame"));
    return GST_FLOW_ERROR;
  }
  const int W = priv->width, H = priv->height;
  std::vector<GstVideoRectangle> damage;
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (buf);
  if (dm) {
    damage.assign (dm->rects, dm->rects + dm->n_rects);
  } else {
    damage.push_back ({0, 0, W, H});
  }
  const uint8_t *data = (const uint8_t *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
  const size_t stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
  GstClockTime pts = GST_BUFFER_PTS (buf);
  std::vector<GstVideoRectangle> applied;
  for (auto r : damage) {
    if (!clip (r, W, H))
      continue;
    for (int y = 0; y < r.h; y++)
      memcpy (priv->fb.data () + ((size_t) (r.y + y) * W + r.x) * 4,
          data + (size_t) (r.y + y) * stride + (size_t) r.x * 4, (size_t) r.w * 4);
    for (int by = r.y / BLOCK; by <= (r.y + r.h - 1) / BLOCK; by++)
      for (int bx = r.x / BLOCK; bx <= (r.x + r.w - 1) / BLOCK; bx++) {
        GstClockTime &s = priv->stamp[(size_t) by * priv->blocks_x + bx];
        if (!GST_CLOCK_TIME_IS_VALID (s) || !GST_CLOCK_TIME_IS_VALID (pts) || pts > s)
          s = GST_CLOCK_TIME_IS_VALID (pts) ? pts : s;
      }
    applied.push_back (r);
  }
  gst_video_frame_unmap (&frame);
  gst_buffer_unref (buf);
  priv->tile_updates++;
  return output (self, applied, GST_CLOCK_TIME_IS_VALID (pts) ? pts : current_pts (self));
}

static GstFlowReturn
gst_wayray_compositor_video_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (parent);
  GstWayrayCompositorPrivate *priv = self->priv;
  std::lock_guard<std::recursive_mutex> lk (priv->lock);

  if (!priv->have_video_info || priv->fb.empty ()) {
    GST_DEBUG_OBJECT (self, "video before caps or before the first tile frame: dropped");
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }
  /* Where the frame's parts go: its metas with their atlas places, else
   * the last region event. Metas that lost their parameters on the way
   * (an element copying them without) place the whole frame, and only
   * when no event said better. */
  std::vector<wayray::tiles::PasteRect> paste, whole;
  GQuark q = g_quark_from_static_string (WAYRAY_ROI_VIDEO);
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    auto *roi = (GstVideoRegionOfInterestMeta *) meta;
    if (roi->roi_type != q)
      continue;
    GstStructure *at = gst_video_region_of_interest_meta_get_param (roi, WAYRAY_ATLAS_PARAM);
    int ax = -1, ay = -1;
    if (!at)
      whole.push_back ({{(int) roi->x, (int) roi->y, (int) roi->w, (int) roi->h}, -1, -1});
    else if (gst_structure_get_int (at, "x", &ax) && gst_structure_get_int (at, "y", &ay))
      paste.push_back ({{(int) roi->x, (int) roi->y, (int) roi->w, (int) roi->h}, ax, ay});
  }
  if (paste.empty ())
    paste = priv->video_event_seen || whole.empty () ? priv->video_paste : whole;
  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &priv->video_info, buf, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map the video frame"));
    return GST_FLOW_ERROR;
  }
  const uint8_t *data = (const uint8_t *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
  const size_t stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
  const int vw = GST_VIDEO_FRAME_WIDTH (&frame), vh = GST_VIDEO_FRAME_HEIGHT (&frame);
  /* The frame's time on the tiles pad's timeline (x264enc, for one, shifts
   * timestamps and segment by 1000 hours): running times compare. */
  GstClockTime pts = GST_BUFFER_PTS (buf);
  if (GST_CLOCK_TIME_IS_VALID (pts) && priv->video_segment.format == GST_FORMAT_TIME) {
    GstClockTime running = gst_segment_to_running_time (&priv->video_segment, GST_FORMAT_TIME, pts);
    pts = GST_CLOCK_TIME_IS_VALID (running) ?
        gst_segment_position_from_running_time (&priv->segment, GST_FORMAT_TIME, running) : GST_CLOCK_TIME_NONE;
  }
  std::vector<GstVideoRectangle> damage;
  for (const auto &p : paste) {
    /* The rectangle's source in the frame, both clipped: to the screen and
     * to the frame (a region list may be older or newer than the frame). */
    int ax = p.atlas_x, ay = p.atlas_y, sw = p.screen.w, sh = p.screen.h;
    if (ax < 0) {
      ax = ay = 0;
      sw = vw;
      sh = vh;
    }
    if (ax >= vw || ay >= vh)
      continue;
    GstVideoRectangle area = {p.screen.x, p.screen.y, std::min (sw, vw - ax), std::min (sh, vh - ay)};
    int ox = p.screen.x - ax, oy = p.screen.y - ay;       /* screen = frame + offset */
    if (!clip (area, priv->width, priv->height))
      continue;
    for (int by = area.y / BLOCK; by <= (area.y + area.h - 1) / BLOCK; by++) {
      for (int bx = area.x / BLOCK; bx <= (area.x + area.w - 1) / BLOCK; bx++) {
        GstClockTime s = priv->stamp[(size_t) by * priv->blocks_x + bx];
        if (GST_CLOCK_TIME_IS_VALID (s) && (!GST_CLOCK_TIME_IS_VALID (pts) || s >= pts)) {
          priv->video_blocks_skipped++;
          continue;
        }
        GstVideoRectangle b = {bx * BLOCK, by * BLOCK, BLOCK, BLOCK};
        int x0 = std::max (b.x, area.x), y0 = std::max (b.y, area.y);
        int x1 = std::min (b.x + b.w, area.x + area.w);
        int y1 = std::min (b.y + b.h, area.y + area.h);
        if (x1 <= x0 || y1 <= y0)
          continue;
        for (int y = y0; y < y1; y++)
          memcpy (priv->fb.data () + ((size_t) y * priv->width + x0) * 4,
              data + (size_t) (y - oy) * stride + (size_t) (x0 - ox) * 4,
              (size_t) (x1 - x0) * 4);
        if (!damage.empty () && damage.back ().y == y0 &&
            damage.back ().x + damage.back ().w == x0 && damage.back ().h == y1 - y0)
          damage.back ().w += x1 - x0;
        else
          damage.push_back ({x0, y0, x1 - x0, y1 - y0});
      }
    }
  }
  gst_video_frame_unmap (&frame);
  gst_buffer_unref (buf);
  priv->video_updates++;
  return output (self, damage, GST_CLOCK_TIME_IS_VALID (pts) ? pts : current_pts (self));
}

static GstFlowReturn
gst_wayray_compositor_cursor_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  /* The cursor pad carries events only. */
  gst_buffer_unref (buf);
  return GST_FLOW_OK;
}

/* Applies a cursor event; returns the damage it causes. */
static void
handle_cursor (GstWayrayCompositor * self, GstEvent * event)
{
  GstWayrayCompositorPrivate *priv = self->priv;
  GstWayrayCursor c;
  if (!gst_wayray_cursor_event_parse (event, &c)) {
    GST_WARNING_OBJECT (self, "malformed cursor event ignored");
    return;
  }
  std::lock_guard<std::recursive_mutex> lk (priv->lock);
  std::vector<GstVideoRectangle> damage;
  if (cursor_shown (priv))
    damage.push_back (cursor_rect (priv));
  priv->cursor_visible = c.visible;
  priv->cursor_x = c.x;
  priv->cursor_y = c.y;
  if (c.image) {
    GstMapInfo map;
    if (gst_buffer_map (c.image, &map, GST_MAP_READ)) {
      priv->cursor_image.assign (map.data, map.data + map.size);
      gst_buffer_unmap (c.image, &map);
      priv->cursor_w = c.width;
      priv->cursor_h = c.height;
      priv->hot_x = c.hotspot_x;
      priv->hot_y = c.hotspot_y;
      priv->cursor_serial = c.serial;
    }
    gst_buffer_unref (c.image);
  } else if (c.serial != priv->cursor_serial) {
    GST_DEBUG_OBJECT (self, "position for unknown cursor image %u", c.serial);
  } else {
    priv->hot_x = c.hotspot_x;
    priv->hot_y = c.hotspot_y;
  }
  if (cursor_shown (priv))
    damage.push_back (cursor_rect (priv));
  if (!priv->fb.empty ())
    output (self, damage, current_pts (self));
}

/* The rectangles of a "wayray-video-region" event; false when malformed
 * (it comes from the network). */
static bool
parse_region_event (const GstStructure * st, std::vector<wayray::tiles::PasteRect> &paste)
{
  const GValue *rects = gst_structure_get_value (st, "rects");
  if (!rects) {
    int x, y;
    if (!gst_structure_get_int (st, "x", &x) || !gst_structure_get_int (st, "y", &y))
      return false;
    paste.push_back ({{x, y, 0, 0}, -1, -1});
    return true;
  }
  if (!GST_VALUE_HOLDS_ARRAY (rects))
    return false;
  guint n = gst_value_array_get_size (rects);
  if (n % 6 != 0 || n / 6 > WAYRAY_VIDEO_REGION_MAX_RECTS)
    return false;
  for (guint i = 0; i < n; i += 6) {
    int v[6];
    for (guint k = 0; k < 6; k++) {
      const GValue *e = gst_value_array_get_value (rects, i + k);
      if (!G_VALUE_HOLDS_INT (e))
        return false;
      v[k] = g_value_get_int (e);
    }
    if (v[2] <= 0 || v[3] <= 0 || v[4] < 0 || v[5] < 0 || v[2] > 16384 || v[3] > 16384)
      return false;
    paste.push_back ({{v[0], v[1], v[2], v[3]}, v[4], v[5]});
  }
  return true;
}

static gboolean
gst_wayray_compositor_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (parent);
  GstWayrayCompositorPrivate *priv = self->priv;

  if (gst_wayray_cursor_event_is (event)) {
    handle_cursor (self, event);
    gst_event_unref (event);
    return TRUE;
  }
  if (pad != self->tilespad) {
    const GstStructure *st = gst_event_get_structure (event);
    if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM && st &&
        gst_structure_has_name (st, WAYRAY_VIDEO_REGION_EVENT)) {
      std::vector<wayray::tiles::PasteRect> paste;
      bool ok = parse_region_event (st, paste);
      if (ok) {
        std::lock_guard<std::recursive_mutex> lk (priv->lock);
        priv->video_paste = paste;
        priv->video_event_seen = true;
      } else {
        GST_WARNING_OBJECT (self, "malformed video region event ignored");
      }
      gst_event_unref (event);
      return TRUE;
    }
    if (GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT && pad == self->videopad) {
      std::lock_guard<std::recursive_mutex> lk (priv->lock);
      gst_event_copy_segment (event, &priv->video_segment);
      gst_event_unref (event);
      return TRUE;
    }
    if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS && pad == self->videopad) {
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      std::lock_guard<std::recursive_mutex> lk (priv->lock);
      priv->have_video_info = gst_video_info_from_caps (&priv->video_info, caps);
      gst_event_unref (event);
      return priv->have_video_info;
    }
    /* Flushes and EOS of the side pads do not end the picture. */
    gst_event_unref (event);
    return TRUE;
  }

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      GstVideoInfo info;
      gst_event_parse_caps (event, &caps);
      if (!gst_video_info_from_caps (&info, caps)) {
        gst_event_unref (event);
        return FALSE;
      }
      if ((guint64) GST_VIDEO_INFO_WIDTH (&info) * GST_VIDEO_INFO_HEIGHT (&info) >
          wayray::tiles::kMaxPixels) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
            ("%dx%d is larger than %" G_GUINT64_FORMAT " pixels", GST_VIDEO_INFO_WIDTH (&info),
                GST_VIDEO_INFO_HEIGHT (&info), (guint64) wayray::tiles::kMaxPixels));
        gst_event_unref (event);
        return FALSE;
      }
      std::lock_guard<std::recursive_mutex> lk (priv->lock);
      priv->fps_n = GST_VIDEO_INFO_FPS_N (&info);
      priv->fps_d = GST_VIDEO_INFO_FPS_D (&info);
      resize (priv, GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info));
      gst_event_unref (event);
      return push_caps (self);
    }
    case GST_EVENT_SEGMENT:{
      std::lock_guard<std::recursive_mutex> lk (priv->lock);
      gst_event_copy_segment (event, &priv->segment);
      break;
    }
    default:
      break;
  }
  return gst_pad_push_event (self->srcpad, event);
}

static gboolean
gst_wayray_compositor_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (parent);
  /* Navigation (and key-unit requests, QoS …) go towards the session; the
   * picture comes from the tile stream, so that is where they belong. */
  return gst_pad_push_event (self->tilespad, event);
}

static GstPad *
gst_wayray_compositor_request_new_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name, const GstCaps * caps)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (element);
  bool video = g_str_equal (GST_PAD_TEMPLATE_NAME_TEMPLATE (templ), "video");
  GST_OBJECT_LOCK (self);
  GstPad **slot = video ? &self->videopad : &self->cursorpad;
  if (*slot) {
    GST_OBJECT_UNLOCK (self);
    GST_WARNING_OBJECT (self, "the %s pad exists already", video ? "video" : "cursor");
    return NULL;
  }
  GstPad *pad = gst_pad_new_from_template (templ, video ? "video" : "cursor");
  gst_pad_set_chain_function (pad, video ? gst_wayray_compositor_video_chain :
      gst_wayray_compositor_cursor_chain);
  gst_pad_set_event_function (pad, gst_wayray_compositor_sink_event);
  *slot = pad;
  GST_OBJECT_UNLOCK (self);
  gst_pad_set_active (pad, TRUE);
  gst_element_add_pad (element, pad);
  return pad;
}

static void
gst_wayray_compositor_release_pad (GstElement * element, GstPad * pad)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (element);
  {
    std::lock_guard<std::recursive_mutex> lk (self->priv->lock);
    GST_OBJECT_LOCK (self);
    if (pad == self->videopad)
      self->videopad = NULL;
    if (pad == self->cursorpad)
      self->cursorpad = NULL;
    GST_OBJECT_UNLOCK (self);
  }
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

static GstStateChangeReturn
gst_wayray_compositor_change_state (GstElement * element, GstStateChange transition)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (element);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element,
      transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    GstWayrayCompositorPrivate *priv = self->priv;
    std::lock_guard<std::recursive_mutex> lk (priv->lock);
    priv->fb.clear ();
    priv->width = priv->height = 0;
    drop_outputs (priv);
    priv->caps_pending = true;
    priv->cursor_visible = false;
    priv->cursor_image.clear ();
    priv->have_video_info = false;
    gst_segment_init (&priv->segment, GST_FORMAT_TIME);
    gst_segment_init (&priv->video_segment, GST_FORMAT_TIME);
    priv->video_paste = { {{0, 0, 0, 0}, -1, -1} };
    priv->video_event_seen = false;
  }
  return ret;
}

static void
gst_wayray_compositor_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (object);
  std::lock_guard<std::recursive_mutex> lk (self->priv->lock);
  switch (prop_id) {
    case PROP_DRAW_CURSOR:
      self->priv->draw_cursor = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_wayray_compositor_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (object);
  GstWayrayCompositorPrivate *priv = self->priv;
  std::lock_guard<std::recursive_mutex> lk (priv->lock);
  switch (prop_id) {
    case PROP_DRAW_CURSOR:
      g_value_set_boolean (value, priv->draw_cursor);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, gst_structure_new ("application/x-wayray-compositor-stats",
              "frames-out", G_TYPE_UINT64, priv->frames_out,
              "tile-updates", G_TYPE_UINT64, priv->tile_updates,
              "video-updates", G_TYPE_UINT64, priv->video_updates,
              "video-blocks-skipped", G_TYPE_UINT64, priv->video_blocks_skipped, NULL));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_wayray_compositor_finalize (GObject * object)
{
  GstWayrayCompositor *self = GST_WAYRAY_COMPOSITOR (object);
  drop_outputs (self->priv);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_wayray_compositor_class_init (GstWayrayCompositorClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_wayray_compositor_set_property;
  gobject_class->get_property = gst_wayray_compositor_get_property;
  gobject_class->finalize = gst_wayray_compositor_finalize;
  element_class->change_state = gst_wayray_compositor_change_state;
  element_class->request_new_pad = gst_wayray_compositor_request_new_pad;
  element_class->release_pad = gst_wayray_compositor_release_pad;

  g_object_class_install_property (gobject_class, PROP_DRAW_CURSOR,
      g_param_spec_boolean ("draw-cursor", "Draw cursor",
          "Draw the session's cursor (from wayray-cursor events) into the output; off "
          "when the video sink shows its own", DEFAULT_DRAW_CURSOR,
          (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
              G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Frames output, tile and video updates applied, video blocks skipped because a "
          "newer lossless update covered them", GST_TYPE_STRUCTURE,
          (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template (element_class, &tiles_template);
  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_pad_template (element_class, &cursor_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 videotestsrc pattern=ball is-live=true ! video/x-raw,format=BGRx ! damagetiler ! wayraytileenc ! wayraytiledec ! wayraycompositor ! videoconvert ! autovideosink");
  gst_element_class_set_static_metadata (element_class, "WayRay client compositor",
      "Filter/Editor/Video/Compositor",
      "Keeps the client framebuffer: applies tile updates, places video regions, draws "
      "the cursor, outputs only changed frames", "WayRay developers");

  GST_DEBUG_CATEGORY_INIT (gst_wayray_compositor_debug, "wayraycompositor", 0,
      "WayRay client compositor");
}

static void
gst_wayray_compositor_init (GstWayrayCompositor * self)
{
  self->priv = new GstWayrayCompositorPrivate ();
  gst_video_info_init (&self->priv->video_info);
  gst_segment_init (&self->priv->segment, GST_FORMAT_TIME);
  gst_segment_init (&self->priv->video_segment, GST_FORMAT_TIME);

  self->tilespad = gst_pad_new_from_static_template (&tiles_template, "tiles");
  gst_pad_set_chain_function (self->tilespad, gst_wayray_compositor_tiles_chain);
  gst_pad_set_event_function (self->tilespad, gst_wayray_compositor_sink_event);
  gst_element_add_pad (GST_ELEMENT (self), self->tilespad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_event_function (self->srcpad, gst_wayray_compositor_src_event);
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
}
