/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-damagetiler
 * @title: damagetiler
 *
 * Turns the damage of a screen into work. Damage (#GstWayrayDamageMeta,
 * none meaning the whole frame) is aligned to a tile grid; every damaged
 * tile is compared with the previous frame and dropped when its pixels did
 * not change, because compositors over-report damage. Frames in which
 * nothing really changed produce no output.
 *
 * Each tile keeps a short history of its changes. A tile that changed
 * #GstWayrayDamageTiler:transient-changes times within
 * #GstWayrayDamageTiler:transient-window is transient (video, animation);
 * changes explained by a scroll or a moved window do not count. When the `video`
 * request pad is linked and at least #GstWayrayDamageTiler:min-video-tiles
 * tiles are transient, their 16-aligned bounding box leaves on the `video`
 * pad as cropped frames for a video encoder; their place in the full frame
 * is given by a GstVideoRegionOfInterestMeta of type "wayray-video" and,
 * because encoders drop that meta, by a serialized "wayray-video-region"
 * custom event (x, y, width, height) sent whenever the region changes.
 * Everything else leaves losslessly on the `tiles` pad: full frames whose
 * damage meta lists only the changed tiles, plus a "wayray-lossy" region
 * meta while the client shows part of the picture from the video path.
 * When the region has not changed for #GstWayrayDamageTiler:settle-time,
 * its tiles are sent losslessly once more (refinement), also when no new
 * frame arrives. Without a linked `video` pad everything is lossless.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc pattern=ball ! video/x-raw,format=BGRx,width=640,height=480 ! damagetiler name=t t.tiles ! wayraytileenc ! wayraytiledec ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstdamagetiler.h"

#include "gstwayraydamagemeta.h"
#include "wayrayregions.h"
#include "wayraytilecodec.h"

#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

GST_DEBUG_CATEGORY_STATIC (gst_wayray_damage_tiler_debug);
#define GST_CAT_DEFAULT gst_wayray_damage_tiler_debug

using wayray::tiles::ConstSurface;
using wayray::tiles::Rect;

enum
{
  PROP_0,
  PROP_TILE_SIZE,
  PROP_TRANSIENT_CHANGES,
  PROP_TRANSIENT_WINDOW,
  PROP_MIN_VIDEO_TILES,
  PROP_SETTLE_TIME,
  PROP_STATS,
};

#define DEFAULT_TILE_SIZE 64
#define DEFAULT_TRANSIENT_CHANGES 5
#define DEFAULT_TRANSIENT_WINDOW 500    /* ms */
#define DEFAULT_MIN_VIDEO_TILES 4
#define DEFAULT_SETTLE_TIME 300 /* ms */
#define HISTORY 8               /* change times kept per tile */

struct Settings
{
  guint tile_size = DEFAULT_TILE_SIZE;
  guint transient_changes = DEFAULT_TRANSIENT_CHANGES;
  guint transient_window = DEFAULT_TRANSIENT_WINDOW;
  guint min_video_tiles = DEFAULT_MIN_VIDEO_TILES;
  guint settle_time = DEFAULT_SETTLE_TIME;
};

struct GstWayrayDamageTilerPrivate
{
  /* Protects everything below: the streaming thread and the settle timer
   * both produce output. Properties take it too. */
  std::recursive_mutex lock;
  Settings settings;

  GstVideoInfo info;
  bool have_info = false;
  std::atomic<bool> force_full { true };       /* set from any thread */
  Settings active;              /* settings in use for the current grid */
  int tiles_x = 0, tiles_y = 0;
  std::vector<uint8_t> prev;    /* the last frame, W*H*4 */
  std::vector<GstClockTime> history;    /* HISTORY change times per tile */
  std::vector<uint8_t> lossy;   /* tile shown from the video path */
  GstBuffer *last = nullptr;    /* the last input frame */
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;

  bool video_active = false;
  Rect video_box = {0, 0, 0, 0};
  GstClockTime last_video_change = GST_CLOCK_TIME_NONE;
  gint64 last_video_change_mono = 0;
  bool video_started = false;   /* stream-start/segment sent on the video pad */
  int video_caps_w = 0, video_caps_h = 0;
  Rect announced = {-1, -1, 0, 0};      /* the region last sent as an event */
  GstSegment segment;

  guint64 frames_in = 0, frames_tiles = 0, frames_video = 0, refinements = 0;
  guint64 tiles_changed = 0, tiles_dropped = 0;

  /* settle timer */
  std::thread timer;
  std::condition_variable_any timer_cond;
  std::atomic<bool> timer_stop { false };
};

struct _GstWayrayDamageTiler
{
  GstElement parent;
  GstPad *sinkpad, *tilespad, *videopad;
  GstWayrayDamageTilerPrivate *priv;
};

#define CAPS_STR "video/x-raw, format = (string) { BGRx, BGRA }, " \
    "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], " \
    "framerate = (fraction) [ 0/1, MAX ]"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (CAPS_STR));
static GstStaticPadTemplate tiles_template = GST_STATIC_PAD_TEMPLATE ("tiles",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (CAPS_STR));
static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video",
    GST_PAD_SRC, GST_PAD_REQUEST, GST_STATIC_CAPS (CAPS_STR));

#define gst_wayray_damage_tiler_parent_class parent_class
G_DEFINE_TYPE (GstWayrayDamageTiler, gst_wayray_damage_tiler, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (damagetiler, "damagetiler", GST_RANK_NONE,
    GST_TYPE_WAYRAY_DAMAGE_TILER);

static inline size_t
tile_index (GstWayrayDamageTilerPrivate * priv, int tx, int ty)
{
  return (size_t) ty * priv->tiles_x + tx;
}

static void
reset_grid (GstWayrayDamageTilerPrivate * priv)
{
  int w = GST_VIDEO_INFO_WIDTH (&priv->info), h = GST_VIDEO_INFO_HEIGHT (&priv->info);
  priv->active = priv->settings;
  int ts = priv->active.tile_size;
  priv->tiles_x = (w + ts - 1) / ts;
  priv->tiles_y = (h + ts - 1) / ts;
  priv->prev.assign ((size_t) w * h * 4, 0);
  priv->history.assign ((size_t) priv->tiles_x * priv->tiles_y * HISTORY, GST_CLOCK_TIME_NONE);
  priv->lossy.assign ((size_t) priv->tiles_x * priv->tiles_y, 0);
  priv->video_active = false;
}

static bool
is_transient (GstWayrayDamageTilerPrivate * priv, size_t t, GstClockTime now)
{
  const GstClockTime *h = &priv->history[t * HISTORY];
  guint need = std::min<guint> (priv->active.transient_changes, HISTORY);
  /* history is most recent first */
  GstClockTime kth = h[need - 1];
  return GST_CLOCK_TIME_IS_VALID (kth) && GST_CLOCK_TIME_IS_VALID (now) &&
      now - kth <= priv->active.transient_window * GST_MSECOND;
}

static void
record_change (GstWayrayDamageTilerPrivate * priv, size_t t, GstClockTime now)
{
  GstClockTime *h = &priv->history[t * HISTORY];
  memmove (h + 1, h, (HISTORY - 1) * sizeof (GstClockTime));
  h[0] = now;
}

/* Sends the sticky events a newly used video pad needs. */
static void
start_video_pad (GstWayrayDamageTiler * self, int w, int h)
{
  GstWayrayDamageTilerPrivate *priv = self->priv;
  if (!priv->video_started) {
    gchar *id = gst_pad_create_stream_id (self->videopad, GST_ELEMENT (self), "video");
    gst_pad_push_event (self->videopad, gst_event_new_stream_start (id));
    g_free (id);
  }
  if (!priv->video_started || w != priv->video_caps_w || h != priv->video_caps_h) {
    GstVideoInfo vinfo = priv->info;
    gst_video_info_set_format (&vinfo, GST_VIDEO_INFO_FORMAT (&priv->info), w, h);
    GST_VIDEO_INFO_FPS_N (&vinfo) = GST_VIDEO_INFO_FPS_N (&priv->info);
    GST_VIDEO_INFO_FPS_D (&vinfo) = GST_VIDEO_INFO_FPS_D (&priv->info);
    GstCaps *caps = gst_video_info_to_caps (&vinfo);
    gst_pad_push_event (self->videopad, gst_event_new_caps (caps));
    gst_caps_unref (caps);
    priv->video_caps_w = w;
    priv->video_caps_h = h;
  }
  if (!priv->video_started) {
    gst_pad_push_event (self->videopad, gst_event_new_segment (&priv->segment));
    priv->announced = {-1, -1, 0, 0};
  }
  priv->video_started = true;
}

static GstBuffer *
crop_frame (GstWayrayDamageTilerPrivate * priv, const uint8_t *data, size_t stride,
    const Rect & box)
{
  GstBuffer *out = gst_buffer_new_allocate (NULL, (gsize) box.w * box.h * 4, NULL);
  GstMapInfo map;
  gst_buffer_map (out, &map, GST_MAP_WRITE);
  for (int y = 0; y < box.h; y++)
    memcpy (map.data + (size_t) y * box.w * 4,
        data + (size_t) (box.y + y) * stride + (size_t) box.x * 4, (size_t) box.w * 4);
  gst_buffer_unmap (out, &map);
  gst_buffer_add_video_region_of_interest_meta (out, WAYRAY_ROI_VIDEO, box.x, box.y, box.w,
      box.h);
  return out;
}

/* Rectangles for the marked tiles: runs of tiles along each row, merged
 * with the run above when they line up. */
static std::vector<GstVideoRectangle>
tile_rects (GstWayrayDamageTilerPrivate * priv, const std::vector<uint8_t> &mark)
{
  int ts = priv->active.tile_size;
  int w = GST_VIDEO_INFO_WIDTH (&priv->info), h = GST_VIDEO_INFO_HEIGHT (&priv->info);
  std::vector<GstVideoRectangle> rects;
  std::vector<int> open_run;    /* index into rects of runs ending on the row above */
  for (int ty = 0; ty < priv->tiles_y; ty++) {
    std::vector<int> now_open;
    for (int tx = 0; tx < priv->tiles_x;) {
      if (!mark[tile_index (priv, tx, ty)]) {
        tx++;
        continue;
      }
      int start = tx;
      while (tx < priv->tiles_x && mark[tile_index (priv, tx, ty)])
        tx++;
      GstVideoRectangle r = {start * ts, ty * ts, std::min (tx * ts, w) - start * ts,
        std::min ((ty + 1) * ts, h) - ty * ts
      };
      bool merged = false;
      for (int idx : open_run) {
        GstVideoRectangle &a = rects[idx];
        if (a.x == r.x && a.w == r.w && a.y + a.h == r.y) {
          a.h += r.h;
          now_open.push_back (idx);
          merged = true;
          break;
        }
      }
      if (!merged) {
        rects.push_back (r);
        now_open.push_back ((int) rects.size () - 1);
      }
    }
    open_run.swap (now_open);
  }
  return rects;
}

static Rect
align16 (Rect r, int width, int height)
{
  int x0 = r.x & ~15, y0 = r.y & ~15;
  int x1 = std::min ((r.x + r.w + 15) & ~15, width);
  int y1 = std::min ((r.y + r.h + 15) & ~15, height);
  /* keep the size a multiple of 16 where the frame allows it */
  int w = (x1 - x0 + 15) & ~15, h = (y1 - y0 + 15) & ~15;
  x0 = std::max (0, std::min (x0, width - w));
  y0 = std::max (0, std::min (y0, height - h));
  return {x0, y0, std::min (w, width - x0), std::min (h, height - y0)};
}

/* Pushes the current frame with damage over every lossy tile: the video
 * region in lossless quality. Called with the lock held. */
static GstFlowReturn
refine (GstWayrayDamageTiler * self, GstClockTime pts)
{
  GstWayrayDamageTilerPrivate *priv = self->priv;
  priv->video_active = false;
  if (!priv->last)
    return GST_FLOW_OK;
  std::vector<GstVideoRectangle> rects = tile_rects (priv, priv->lossy);
  std::fill (priv->lossy.begin (), priv->lossy.end (), 0);
  if (rects.empty ())
    return GST_FLOW_OK;
  GstBuffer *out = gst_buffer_copy_region (priv->last, GST_BUFFER_COPY_MEMORY, 0, -1);
  GST_BUFFER_PTS (out) = pts;
  GST_BUFFER_DTS (out) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (out) = GST_CLOCK_TIME_NONE;
  int w = GST_VIDEO_INFO_WIDTH (&priv->info), h = GST_VIDEO_INFO_HEIGHT (&priv->info);
  gst_buffer_add_wayray_damage_meta (out, rects.data (), rects.size (), w, h);
  for (const auto &r : rects)
    gst_buffer_add_video_region_of_interest_meta (out, WAYRAY_ROI_LOSSY, r.x, r.y, r.w, r.h);
  priv->refinements++;
  priv->frames_tiles++;
  GST_DEBUG_OBJECT (self, "region settled: %u lossless refinement rectangles",
      (guint) rects.size ());
  return gst_pad_push (self->tilespad, out);
}

static GstFlowReturn
gst_wayray_damage_tiler_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (parent);
  GstWayrayDamageTilerPrivate *priv = self->priv;
  std::unique_lock<std::recursive_mutex> lk (priv->lock);
  GstFlowReturn ret = GST_FLOW_OK;

  if (!priv->have_info) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("no caps before the first buffer"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  priv->frames_in++;

  const int W = GST_VIDEO_INFO_WIDTH (&priv->info), H = GST_VIDEO_INFO_HEIGHT (&priv->info);
  bool full = priv->force_full.exchange (false) ||
      priv->settings.tile_size != priv->active.tile_size;
  if (full) {
    bool was_lossy = priv->video_active;
    reset_grid (priv);
    if (was_lossy)
      GST_DEBUG_OBJECT (self, "full refresh ends the video region");
  }
  const int ts = priv->active.tile_size;
  GstClockTime now = GST_BUFFER_PTS (buf);
  if (!GST_CLOCK_TIME_IS_VALID (now))
    now = GST_CLOCK_TIME_IS_VALID (priv->last_pts) ? priv->last_pts : 0;
  priv->last_pts = now;

  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &priv->info, buf, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map the input frame"));
    return GST_FLOW_ERROR;
  }
  const uint8_t *data = (const uint8_t *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
  const size_t stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);

  /* The damaged rectangles, clipped. */
  std::vector<Rect> damage;
  GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (buf);
  if (full || !dm) {
    damage.push_back ({0, 0, W, H});
  } else {
    for (guint i = 0; i < dm->n_rects; i++) {
      const GstVideoRectangle &r = dm->rects[i];
      int x0 = std::max (r.x, 0), y0 = std::max (r.y, 0);
      int x1 = std::min (r.x + r.w, W), y1 = std::min (r.y + r.h, H);
      if (x1 > x0 && y1 > y0)
        damage.push_back ({x0, y0, x1 - x0, y1 - y0});
    }
  }

  const bool video_linked = self->videopad && gst_pad_is_linked (self->videopad);
  const size_t n_tiles = (size_t) priv->tiles_x * priv->tiles_y;
  std::vector<uint8_t> changed (n_tiles, 0), moved (n_tiles, 0);

  /* Scrolls and window moves are copies for the encoder, not animation:
   * tiles inside a moved rectangle do not count towards the transient
   * history. */
  if (video_linked && !full) {
    ConstSurface prev = {priv->prev.data (), (size_t) W * 4, W, H};
    ConstSurface cur = {data, stride, W, H};
    std::vector<Rect> groups = damage;
    wayray::tiles::merge_touching (groups);
    for (Rect r : groups) {
      if (!wayray::tiles::changed_box (prev, cur, r) || r.w * r.h < ts * ts)
        continue;
      Rect src, dst;
      if (wayray::tiles::detect_move (prev, cur, r, src, dst)) {
        for (int ty = r.y / ts; ty <= (r.y + r.h - 1) / ts; ty++)
          for (int tx = r.x / ts; tx <= (r.x + r.w - 1) / ts; tx++)
            moved[tile_index (priv, tx, ty)] = 1;
      }
    }
  }

  /* Drop tiles whose pixels did not change. */
  std::vector<uint8_t> visited (n_tiles, 0);
  for (const Rect &r : damage) {
    for (int ty = r.y / ts; ty <= (r.y + r.h - 1) / ts; ty++) {
      for (int tx = r.x / ts; tx <= (r.x + r.w - 1) / ts; tx++) {
        size_t t = tile_index (priv, tx, ty);
        if (visited[t])
          continue;
        visited[t] = 1;
        Rect tr = wayray::tiles::tile_rect (tx, ty, ts, W, H);
        bool diff = full;
        for (int y = 0; y < tr.h; y++) {
          const uint8_t *a = data + (size_t) (tr.y + y) * stride + (size_t) tr.x * 4;
          uint8_t *b = priv->prev.data () + ((size_t) (tr.y + y) * W + tr.x) * 4;
          if (diff || memcmp (a, b, (size_t) tr.w * 4) != 0) {
            diff = true;
            memcpy (b, a, (size_t) tr.w * 4);
          }
        }
        if (!diff) {
          priv->tiles_dropped++;
          continue;
        }
        changed[t] = 1;
        priv->tiles_changed++;
        if (!moved[t] && !full)
          record_change (priv, t, now);
      }
    }
  }

  /* Classification: the transient region, when a video pad wants it. */
  GstBuffer *video_out = NULL;
  if (video_linked) {
    int n_transient = 0;
    int bx0 = W, by0 = H, bx1 = 0, by1 = 0;
    for (int ty = 0; ty < priv->tiles_y; ty++) {
      for (int tx = 0; tx < priv->tiles_x; tx++) {
        if (!is_transient (priv, tile_index (priv, tx, ty), now))
          continue;
        n_transient++;
        Rect tr = wayray::tiles::tile_rect (tx, ty, ts, W, H);
        bx0 = std::min (bx0, tr.x);
        by0 = std::min (by0, tr.y);
        bx1 = std::max (bx1, tr.x + tr.w);
        by1 = std::max (by1, tr.y + tr.h);
      }
    }
    if (n_transient >= (int) priv->active.min_video_tiles) {
      Rect box = align16 ({bx0, by0, bx1 - bx0, by1 - by0}, W, H);
      if (priv->video_active) {
        /* The region only grows while it lasts so the encoder keeps its size. */
        Rect &o = priv->video_box;
        int x0 = std::min (o.x, box.x), y0 = std::min (o.y, box.y);
        int x1 = std::max (o.x + o.w, box.x + box.w), y1 = std::max (o.y + o.h, box.y + box.h);
        box = {x0, y0, x1 - x0, y1 - y0};
      }
      if (!priv->video_active)
        GST_DEBUG_OBJECT (self, "transient region %dx%d at %d,%d", box.w, box.h, box.x,
            box.y);
      priv->video_box = box;
      if (!priv->video_active)
        priv->timer_cond.notify_all ();
      priv->video_active = true;
    }
    if (priv->video_active) {
      const Rect &b = priv->video_box;
      bool region_changed = false;
      for (int ty = b.y / ts; ty <= (b.y + b.h - 1) / ts; ty++)
        for (int tx = b.x / ts; tx <= (b.x + b.w - 1) / ts; tx++) {
          size_t t = tile_index (priv, tx, ty);
          region_changed |= changed[t] != 0;
        }
      if (region_changed) {
        for (int ty = b.y / ts; ty <= (b.y + b.h - 1) / ts; ty++)
          for (int tx = b.x / ts; tx <= (b.x + b.w - 1) / ts; tx++)
            priv->lossy[tile_index (priv, tx, ty)] = 1;
        video_out = crop_frame (priv, data, stride, b);
        gst_buffer_copy_into (video_out, buf, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
        priv->last_video_change = now;
        priv->last_video_change_mono = g_get_monotonic_time ();
      }
    }
  }
  gst_video_frame_unmap (&frame);

  /* Lossless tiles: everything changed outside the lossy region. */
  for (size_t t = 0; t < n_tiles; t++)
    if (priv->lossy[t])
      changed[t] = 0;
  std::vector<GstVideoRectangle> rects = tile_rects (priv, changed);
  std::vector<GstVideoRectangle> lossy_rects;
  if (priv->video_active)
    lossy_rects = tile_rects (priv, priv->lossy);

  if (priv->last)
    gst_buffer_unref (priv->last);
  priv->last = gst_buffer_ref (buf);

  if (!rects.empty () || full) {
    GstBuffer *out = gst_buffer_copy_region (buf, GST_BUFFER_COPY_MEMORY, 0, -1);
    gst_buffer_copy_into (out, buf, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
    gst_buffer_add_wayray_damage_meta (out, rects.data (), rects.size (), W, H);
    for (const auto &r : lossy_rects)
      gst_buffer_add_video_region_of_interest_meta (out, WAYRAY_ROI_LOSSY, r.x, r.y, r.w, r.h);
    priv->frames_tiles++;
    ret = gst_pad_push (self->tilespad, out);
  }
  if (video_out) {
    start_video_pad (self, priv->video_box.w, priv->video_box.h);
    const Rect &b = priv->video_box;
    const Rect &a = priv->announced;
    if (a.x != b.x || a.y != b.y || a.w != b.w || a.h != b.h) {
      gst_pad_push_event (self->videopad, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
              gst_structure_new (WAYRAY_VIDEO_REGION_EVENT, "x", G_TYPE_INT, b.x,
                  "y", G_TYPE_INT, b.y, "width", G_TYPE_INT, b.w,
                  "height", G_TYPE_INT, b.h, NULL)));
      priv->announced = b;
    }
    priv->frames_video++;
    GstFlowReturn vret = gst_pad_push (self->videopad, video_out);
    if (vret != GST_FLOW_OK && vret != GST_FLOW_NOT_LINKED && ret == GST_FLOW_OK)
      ret = vret;
  }

  /* Settled (or the video pad went away): send the region losslessly. */
  if (priv->video_active && (!video_linked ||
          (!video_out && GST_CLOCK_TIME_IS_VALID (priv->last_video_change) &&
              now - priv->last_video_change >= priv->active.settle_time * GST_MSECOND))) {
    GstFlowReturn rret = refine (self, now);
    if (ret == GST_FLOW_OK)
      ret = rret;
  }
  gst_buffer_unref (buf);
  return ret;
}

/* Runs while PLAYING or PAUSED: refines a region that settled while no
 * frames arrived (the source sends nothing when nothing changes). */
static void
settle_timer (GstWayrayDamageTiler * self)
{
  GstWayrayDamageTilerPrivate *priv = self->priv;
  std::unique_lock<std::recursive_mutex> lk (priv->lock);
  while (!priv->timer_stop) {
    /* Without a video region there is nothing to watch: sleep long (the
     * chain wakes us when a region starts; the bound only covers a stop
     * request racing with the wait). */
    auto wait = std::chrono::milliseconds (priv->video_active ?
        std::max (priv->settings.settle_time / 2, 10u) : 1000u);
    priv->timer_cond.wait_for (lk, wait, [priv] {
          return priv->timer_stop || priv->video_active;
        });
    if (!priv->timer_stop && priv->video_active)
      priv->timer_cond.wait_for (lk, std::chrono::milliseconds (std::max
              (priv->settings.settle_time / 2, 10u)), [priv] {
            return priv->timer_stop.load ();
          });
    if (priv->timer_stop || !priv->video_active)
      continue;
    gint64 idle = g_get_monotonic_time () - priv->last_video_change_mono;
    if (idle < (gint64) priv->active.settle_time * 1000)
      continue;
    GstClockTime pts = priv->last_pts;
    GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
    if (clock) {
      GstClockTime running = gst_clock_get_time (clock) - gst_element_get_base_time (GST_ELEMENT
          (self));
      gst_object_unref (clock);
      GstClockTime pos = gst_segment_position_from_running_time (&priv->segment,
          GST_FORMAT_TIME, running);
      if (GST_CLOCK_TIME_IS_VALID (pos) && (!GST_CLOCK_TIME_IS_VALID (pts) || pos > pts))
        pts = pos;
    }
    priv->last_pts = pts;
    refine (self, pts);
  }
}

static gboolean
gst_wayray_damage_tiler_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (parent);
  GstWayrayDamageTilerPrivate *priv = self->priv;
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
      {
        std::lock_guard<std::recursive_mutex> lk (priv->lock);
        priv->info = info;
        priv->have_info = true;
        priv->force_full = true;
        priv->video_caps_w = priv->video_caps_h = 0;
      }
      return gst_pad_push_event (self->tilespad, event);
    }
    case GST_EVENT_SEGMENT:{
      std::lock_guard<std::recursive_mutex> lk (priv->lock);
      gst_event_copy_segment (event, &priv->segment);
      if (priv->video_started && self->videopad)
        gst_pad_push_event (self->videopad, gst_event_ref (event));
      break;
    }
    case GST_EVENT_STREAM_START:
      return gst_pad_push_event (self->tilespad, event);
    case GST_EVENT_CUSTOM_DOWNSTREAM:
      if (gst_video_event_is_force_key_unit (event)) {
        std::lock_guard<std::recursive_mutex> lk (priv->lock);
        priv->force_full = true;
      }
      return gst_pad_push_event (self->tilespad, event);
    case GST_EVENT_EOS:
    case GST_EVENT_FLUSH_START:
    case GST_EVENT_FLUSH_STOP:
      if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
        std::lock_guard<std::recursive_mutex> lk (priv->lock);
        priv->force_full = true;
      }
      /* to both pads */
      return gst_pad_event_default (pad, parent, event);
    default:
      break;
  }
  /* Serialized events (segment, cursor, tags) belong to the tile stream;
   * the video pad gets its own sticky events when it starts. */
  if (GST_EVENT_IS_SERIALIZED (event))
    return gst_pad_push_event (self->tilespad, event);
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_wayray_damage_tiler_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (parent);
  if (gst_video_event_is_force_key_unit (event)) {
    if (pad == self->tilespad) {
      /* The tile client needs everything again; upstream too. No lock:
       * this may come from a thread the streaming thread waits on. */
      self->priv->force_full = true;
    } else {
      /* The video encoder makes its own key frames. */
      gst_event_unref (event);
      return TRUE;
    }
  }
  return gst_pad_push_event (self->sinkpad, event);
}

static GstPad *
gst_wayray_damage_tiler_request_new_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name, const GstCaps * caps)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (element);
  GST_OBJECT_LOCK (self);
  if (self->videopad) {
    GST_OBJECT_UNLOCK (self);
    GST_WARNING_OBJECT (self, "the video pad exists already");
    return NULL;
  }
  GstPad *pad = gst_pad_new_from_template (templ, "video");
  gst_pad_set_event_function (pad, gst_wayray_damage_tiler_src_event);
  gst_pad_use_fixed_caps (pad);
  self->videopad = pad;
  GST_OBJECT_UNLOCK (self);
  {
    std::lock_guard<std::recursive_mutex> lk (self->priv->lock);
    self->priv->video_started = false;
  }
  gst_pad_set_active (pad, TRUE);
  gst_element_add_pad (element, pad);
  return pad;
}

static void
gst_wayray_damage_tiler_release_pad (GstElement * element, GstPad * pad)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (element);
  {
    std::lock_guard<std::recursive_mutex> lk (self->priv->lock);
    GST_OBJECT_LOCK (self);
    if (pad == self->videopad)
      self->videopad = NULL;
    GST_OBJECT_UNLOCK (self);
  }
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

static GstStateChangeReturn
gst_wayray_damage_tiler_change_state (GstElement * element, GstStateChange transition)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (element);
  GstWayrayDamageTilerPrivate *priv = self->priv;
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    std::lock_guard<std::recursive_mutex> lk (priv->lock);
    priv->timer_stop = false;
    priv->force_full = true;
    priv->video_started = false;
    gst_segment_init (&priv->segment, GST_FORMAT_TIME);
    priv->timer = std::thread (settle_timer, self);
  }
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    /* Not under the lock: the timer may hold it while a push blocks; the
     * push returns once the parent deactivates the pads below. */
    priv->timer_stop = true;
    priv->timer_cond.notify_all ();
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element,
      transition);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && ret == GST_STATE_CHANGE_FAILURE) {
    priv->timer_stop = true;
    priv->timer_cond.notify_all ();
    priv->timer.join ();
  }
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    if (priv->timer.joinable ())
      priv->timer.join ();
    std::lock_guard<std::recursive_mutex> lk (priv->lock);
    if (priv->last) {
      gst_buffer_unref (priv->last);
      priv->last = nullptr;
    }
    priv->have_info = false;
    priv->video_active = false;
  }
  return ret;
}

static void
gst_wayray_damage_tiler_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (object);
  std::lock_guard<std::recursive_mutex> lk (self->priv->lock);
  Settings &s = self->priv->settings;
  switch (prop_id) {
    case PROP_TILE_SIZE:
      s.tile_size = g_value_get_uint (value) / 16 * 16;
      break;
    case PROP_TRANSIENT_CHANGES:
      s.transient_changes = g_value_get_uint (value);
      break;
    case PROP_TRANSIENT_WINDOW:
      s.transient_window = g_value_get_uint (value);
      break;
    case PROP_MIN_VIDEO_TILES:
      s.min_video_tiles = g_value_get_uint (value);
      break;
    case PROP_SETTLE_TIME:
      s.settle_time = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
  }
  /* all but tile-size take effect at once */
  guint ts = self->priv->active.tile_size;
  self->priv->active = s;
  self->priv->active.tile_size = ts;
}

static void
gst_wayray_damage_tiler_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (object);
  GstWayrayDamageTilerPrivate *priv = self->priv;
  std::lock_guard<std::recursive_mutex> lk (priv->lock);
  const Settings &s = priv->settings;
  switch (prop_id) {
    case PROP_TILE_SIZE:
      g_value_set_uint (value, s.tile_size);
      break;
    case PROP_TRANSIENT_CHANGES:
      g_value_set_uint (value, s.transient_changes);
      break;
    case PROP_TRANSIENT_WINDOW:
      g_value_set_uint (value, s.transient_window);
      break;
    case PROP_MIN_VIDEO_TILES:
      g_value_set_uint (value, s.min_video_tiles);
      break;
    case PROP_SETTLE_TIME:
      g_value_set_uint (value, s.settle_time);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, gst_structure_new ("application/x-wayray-damagetiler-stats",
              "frames-in", G_TYPE_UINT64, priv->frames_in,
              "frames-tiles", G_TYPE_UINT64, priv->frames_tiles,
              "frames-video", G_TYPE_UINT64, priv->frames_video,
              "refinements", G_TYPE_UINT64, priv->refinements,
              "tiles-changed", G_TYPE_UINT64, priv->tiles_changed,
              "tiles-dropped", G_TYPE_UINT64, priv->tiles_dropped, NULL));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_wayray_damage_tiler_finalize (GObject * object)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (object);
  if (self->priv->timer.joinable ()) {
    self->priv->timer_stop = true;
    self->priv->timer_cond.notify_all ();
    self->priv->timer.join ();
  }
  if (self->priv->last)
    gst_buffer_unref (self->priv->last);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_wayray_damage_tiler_class_init (GstWayrayDamageTilerClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_wayray_damage_tiler_set_property;
  gobject_class->get_property = gst_wayray_damage_tiler_get_property;
  gobject_class->finalize = gst_wayray_damage_tiler_finalize;
  element_class->change_state = gst_wayray_damage_tiler_change_state;
  element_class->request_new_pad = gst_wayray_damage_tiler_request_new_pad;
  element_class->release_pad = gst_wayray_damage_tiler_release_pad;

  const GParamFlags rw_ready = (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
      G_PARAM_STATIC_STRINGS);
  const GParamFlags rw_playing = (GParamFlags) (G_PARAM_READWRITE |
      GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS);

  g_object_class_install_property (gobject_class, PROP_TILE_SIZE,
      g_param_spec_uint ("tile-size", "Tile size",
          "Edge of the square tiles damage is aligned to, in pixels (multiple of 16)",
          16, 256, DEFAULT_TILE_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_TRANSIENT_CHANGES,
      g_param_spec_uint ("transient-changes", "Transient changes",
          "Changes within transient-window that make a tile transient (video-like)",
          2, HISTORY, DEFAULT_TRANSIENT_CHANGES, rw_playing));
  g_object_class_install_property (gobject_class, PROP_TRANSIENT_WINDOW,
      g_param_spec_uint ("transient-window", "Transient window",
          "Time window for transient-changes, in milliseconds", 1, 60000,
          DEFAULT_TRANSIENT_WINDOW, rw_playing));
  g_object_class_install_property (gobject_class, PROP_MIN_VIDEO_TILES,
      g_param_spec_uint ("min-video-tiles", "Minimum video tiles",
          "Transient tiles needed before the video pad is used (smaller changes, "
          "like typing, stay lossless)", 1, G_MAXUINT, DEFAULT_MIN_VIDEO_TILES,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_SETTLE_TIME,
      g_param_spec_uint ("settle-time", "Settle time",
          "Milliseconds without change after which the video region is sent losslessly",
          1, 60000, DEFAULT_SETTLE_TIME, rw_playing));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Frames in and out per pad, refinements, tiles changed and dropped as unchanged",
          GST_TYPE_STRUCTURE, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &tiles_template);
  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 wayraysrc exec=foot ! damagetiler ! wayraytileenc ! wayraytiledec ! wayraycompositor ! videoconvert ! autovideosink");
  gst_element_class_set_static_metadata (element_class, "WayRay damage tiler",
      "Filter/Video",
      "Aligns damage to tiles, drops unchanged tiles, splits static (lossless) from "
      "transient (video) regions", "WayRay developers");

  GST_DEBUG_CATEGORY_INIT (gst_wayray_damage_tiler_debug, "damagetiler", 0,
      "WayRay damage tiler");
}

static void
gst_wayray_damage_tiler_init (GstWayrayDamageTiler * self)
{
  self->priv = new GstWayrayDamageTilerPrivate ();
  gst_video_info_init (&self->priv->info);
  gst_segment_init (&self->priv->segment, GST_FORMAT_TIME);

  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_wayray_damage_tiler_chain);
  gst_pad_set_event_function (self->sinkpad, gst_wayray_damage_tiler_sink_event);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->tilespad = gst_pad_new_from_static_template (&tiles_template, "tiles");
  gst_pad_set_event_function (self->tilespad, gst_wayray_damage_tiler_src_event);
  gst_pad_use_fixed_caps (self->tilespad);
  gst_element_add_pad (GST_ELEMENT (self), self->tilespad);
}
