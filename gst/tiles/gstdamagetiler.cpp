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
 * When the `video` request pad is linked, tiles are classified (the
 * classifier is wayray::tiles::Classifier, wayrayclassifier.h). A tile
 * whose changes are evidence of video (#GstWayrayDamageTiler:transient-changes
 * of them within #GstWayrayDamageTiler:transient-window, each touching at
 * least #GstWayrayDamageTiler:evidence-percent of its pixels and not
 * explained by a scroll or a moved window) is transient; typing, scrolling,
 * window switches and menus never are. Connected groups of at least
 * #GstWayrayDamageTiler:min-video-tiles transient tiles are video regions
 * (at most four; boxes 16-aligned, only growing while the region lasts).
 * The regions leave the `video` pad stacked in one frame (the atlas) for a
 * video encoder. Where each part of the atlas goes on the screen is given by
 * "wayray-video" GstVideoRegionOfInterestMetas (with a "wayray-atlas"
 * parameter: x, y in the atlas) and, because encoders drop metas, by a
 * serialized "wayray-video-region" custom event whose "rects" field lists
 * x, y, width, height, atlas x, atlas y for every rectangle the client
 * takes from the video, sent whenever that list changes.
 *
 * Everything else leaves losslessly on the `tiles` pad: full frames whose
 * damage meta lists only the changed tiles, plus "wayray-lossy" region
 * metas over the tiles the client shows from the video path and
 * "wayray-move" region metas for blocks found moved since the previous
 * frame (a scroll: where the block is now, with a "wayray-move-from"
 * parameter x, y saying where it was), which wayraytileenc takes instead of
 * searching again. A tile of a
 * region that has not changed for #GstWayrayDamageTiler:settle-time while
 * most of the region still changes is sent losslessly once more
 * (refinement, tile by tile, so text beside a playing video is sharp as
 * soon as it stops changing), and the client no longer takes it from the
 * video; a region without any change for
 * #GstWayrayDamageTiler:region-settle-time ends and all of it is refined,
 * also when no new frame arrives. Without a
 * linked `video` pad, or with #GstWayrayDamageTiler:video-enabled FALSE,
 * everything is lossless.
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
#include "gstwayraystreamtime.h"
#include "wayrayclassifier.h"
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

using wayray::tiles::Classifier;
using wayray::tiles::ClassifierSettings;
using wayray::tiles::ConstSurface;
using wayray::tiles::Move;
using wayray::tiles::PasteRect;
using wayray::tiles::Rect;

enum
{
  PROP_0,
  PROP_TILE_SIZE,
  PROP_TRANSIENT_CHANGES,
  PROP_TRANSIENT_WINDOW,
  PROP_MIN_VIDEO_TILES,
  PROP_SETTLE_TIME,
  PROP_REGION_SETTLE_TIME,
  PROP_EVIDENCE_PERCENT,
  PROP_VIDEO_ENABLED,
  PROP_STATS,
};

#define DEFAULT_TILE_SIZE 64
#define DEFAULT_TRANSIENT_CHANGES 5
#define DEFAULT_TRANSIENT_WINDOW 500    /* ms */
#define DEFAULT_MIN_VIDEO_TILES 4
#define DEFAULT_SETTLE_TIME 300 /* ms */
#define DEFAULT_REGION_SETTLE_TIME 1000 /* ms */
#define DEFAULT_EVIDENCE_PERCENT 25

struct GstWayrayDamageTilerPrivate
{
  /* Protects everything below: the streaming thread and the settle timer
   * both produce output. Properties take it too. */
  std::recursive_mutex lock;
  ClassifierSettings settings;
  bool video_enabled = true;

  GstVideoInfo info;
  bool have_info = false;
  std::atomic<bool> force_full { true };       /* set from any thread */
  Classifier classifier;
  int grid_w = 0, grid_h = 0, grid_tile = 0;   /* what the classifier was reset for */
  GstBuffer *last = nullptr;    /* the last input frame */
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
  gint64 last_frame_mono = 0;   /* when last_pts was taken, monotonic µs */
  std::atomic<gint64> busy_us { 0 };    /* how long the last frame took to go through, pushes included */
  std::atomic<bool> lossy_pending { false };    /* the timer has tiles to watch */

  bool video_started = false;   /* stream-start/segment sent on the video pad */
  int video_caps_w = 0, video_caps_h = 0;
  std::vector<PasteRect> announced;     /* the paste list last sent as an event */
  bool announced_valid = false;
  GstSegment segment;

  guint64 frames_in = 0, frames_tiles = 0, frames_video = 0, refinements = 0;
  guint64 tiles_changed = 0, tiles_dropped = 0, regions_started = 0;

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

/* Sends the sticky events a newly used video pad needs. */
/* What a frame sends, decided under the lock and pushed after it is
 * released, in order: a push may block for as long as downstream does (a
 * congested link), and the lock must stay free for the statistics, the
 * settings and the daemon meanwhile. */
struct Push {
  GstPad *pad;                  /* a reference */
  GstEvent *event;              /* or */
  GstBuffer *buffer;
};

static void
queue_event (std::vector<Push> &q, GstPad * pad, GstEvent * event)
{
  q.push_back ({GST_PAD (gst_object_ref (pad)), event, nullptr});
}

static void
queue_buffer (std::vector<Push> &q, GstPad * pad, GstBuffer * buffer)
{
  q.push_back ({GST_PAD (gst_object_ref (pad)), nullptr, buffer});
}

/* Pushes @q in order; the flow of the tiles pad, or of the video pad when
 * that failed otherwise than by not being linked. */
static GstFlowReturn
run_pushes (GstWayrayDamageTiler * self, std::vector<Push> &q)
{
  GstFlowReturn ret = GST_FLOW_OK;
  for (Push &p : q) {
    if (p.event) {
      gst_pad_push_event (p.pad, p.event);
    } else {
      GstFlowReturn r = gst_pad_push (p.pad, p.buffer);
      bool tiles = p.pad == self->tilespad;
      if (ret == GST_FLOW_OK && r != GST_FLOW_OK && (tiles || r != GST_FLOW_NOT_LINKED))
        ret = r;
    }
    gst_object_unref (p.pad);
  }
  q.clear ();
  return ret;
}

static void
start_video_pad (GstWayrayDamageTiler * self, int w, int h, std::vector<Push> &q)
{
  GstWayrayDamageTilerPrivate *priv = self->priv;
  if (!priv->video_started) {
    gchar *id = gst_pad_create_stream_id (self->videopad, GST_ELEMENT (self), "video");
    queue_event (q, self->videopad, gst_event_new_stream_start (id));
    g_free (id);
  }
  if (!priv->video_started || w != priv->video_caps_w || h != priv->video_caps_h) {
    GstVideoInfo vinfo = priv->info;
    gst_video_info_set_format (&vinfo, GST_VIDEO_INFO_FORMAT (&priv->info), w, h);
    GST_VIDEO_INFO_FPS_N (&vinfo) = GST_VIDEO_INFO_FPS_N (&priv->info);
    GST_VIDEO_INFO_FPS_D (&vinfo) = GST_VIDEO_INFO_FPS_D (&priv->info);
    GstCaps *caps = gst_video_info_to_caps (&vinfo);
    queue_event (q, self->videopad, gst_event_new_caps (caps));
    gst_caps_unref (caps);
    priv->video_caps_w = w;
    priv->video_caps_h = h;
  }
  if (!priv->video_started) {
    queue_event (q, self->videopad, gst_event_new_segment (&priv->segment));
    priv->announced_valid = false;
  }
  priv->video_started = true;
}

static bool
same_paste (const std::vector<PasteRect> &a, const std::vector<PasteRect> &b)
{
  if (a.size () != b.size ())
    return false;
  for (size_t i = 0; i < a.size (); i++)
    if (memcmp (&a[i], &b[i], sizeof (PasteRect)) != 0)
      return false;
  return true;
}

/* The atlas of the current regions, with where its parts go. */
static GstBuffer *
atlas_frame (GstWayrayDamageTilerPrivate * priv, const ConstSurface & cur,
    const std::vector<PasteRect> &paste)
{
  int aw = priv->classifier.atlas_width (), ah = priv->classifier.atlas_height ();
  GstBuffer *out = gst_buffer_new_allocate (NULL, (gsize) aw * ah * 4, NULL);
  GstMapInfo map;
  gst_buffer_map (out, &map, GST_MAP_WRITE);
  priv->classifier.crop_atlas (cur, map.data, (size_t) aw * 4);
  gst_buffer_unmap (out, &map);
  for (const PasteRect &p : paste) {
    GstVideoRegionOfInterestMeta *m = gst_buffer_add_video_region_of_interest_meta (out,
        WAYRAY_ROI_VIDEO, p.screen.x, p.screen.y, p.screen.w, p.screen.h);
    gst_video_region_of_interest_meta_add_param (m, gst_structure_new (WAYRAY_ATLAS_PARAM,
            "x", G_TYPE_INT, p.atlas_x, "y", G_TYPE_INT, p.atlas_y, NULL));
  }
  return out;
}

static GstEvent *
paste_event (const std::vector<PasteRect> &paste)
{
  GValue rects = G_VALUE_INIT, v = G_VALUE_INIT;
  gst_value_array_init (&rects, paste.size () * 6);
  g_value_init (&v, G_TYPE_INT);
  for (const PasteRect &p : paste)
    for (int n : { p.screen.x, p.screen.y, p.screen.w, p.screen.h, p.atlas_x, p.atlas_y }) {
      g_value_set_int (&v, n);
      gst_value_array_append_value (&rects, &v);
    }
  g_value_unset (&v);
  GstStructure *st = gst_structure_new_empty (WAYRAY_VIDEO_REGION_EVENT);
  gst_structure_take_value (st, "rects", &rects);
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM, st);
}

static std::vector<GstVideoRectangle>
to_video_rects (const std::vector<Rect> &rects)
{
  std::vector<GstVideoRectangle> out;
  out.reserve (rects.size ());
  for (const Rect &r : rects)
    out.push_back ({r.x, r.y, r.w, r.h});
  return out;
}

/* Queues @frame (the last input, or a copy of it) for the tiles pad with
 * damage over @send, lossy metas over @unknown (what the client's pixels
 * may differ in: the encoder must not use them as reference) and move
 * metas for @moves (found since the previous frame). Called with the lock
 * held. */
static void
queue_tiles (GstWayrayDamageTiler * self, std::vector<Push> &q, GstBuffer * frame, GstClockTime pts,
    const std::vector<uint8_t> &send, const std::vector<uint8_t> &unknown, bool full,
    const std::vector<Move> &moves = {})
{
  GstWayrayDamageTilerPrivate *priv = self->priv;
  std::vector<GstVideoRectangle> rects = to_video_rects (priv->classifier.rects_of (send));
  if (rects.empty () && !full)
    return;
  GstBuffer *out = gst_buffer_copy_region (frame, GST_BUFFER_COPY_MEMORY, 0, -1);
  GST_BUFFER_PTS (out) = pts;
  GST_BUFFER_DTS (out) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (out) = GST_CLOCK_TIME_NONE;
  int w = GST_VIDEO_INFO_WIDTH (&priv->info), h = GST_VIDEO_INFO_HEIGHT (&priv->info);
  gst_buffer_add_wayray_damage_meta (out, rects.data (), rects.size (), w, h);
  for (const Rect &r : priv->classifier.rects_of (unknown))
    gst_buffer_add_video_region_of_interest_meta (out, WAYRAY_ROI_LOSSY, r.x, r.y, r.w, r.h);
  for (const Move &m : moves) {
    GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta (out, WAYRAY_ROI_MOVE,
        m.dst.x, m.dst.y, m.dst.w, m.dst.h);
    gst_video_region_of_interest_meta_add_param (roi, gst_structure_new (WAYRAY_MOVE_PARAM,
            "x", G_TYPE_INT, m.src.x, "y", G_TYPE_INT, m.src.y, NULL));
  }
  priv->frames_tiles++;
  queue_buffer (q, self->tilespad, out);
}

/* Queues the tiles that settled (all of them with @all) to be sent
 * losslessly, with the client's picture there marked as unknown. Called
 * with the lock held. */
static void
refine (GstWayrayDamageTiler * self, GstClockTime pts, bool all, std::vector<Push> &q)
{
  GstWayrayDamageTilerPrivate *priv = self->priv;
  std::vector<uint8_t> settled;
  bool layout_changed = false;
  if (!priv->last || !priv->classifier.settle (pts, all, settled, layout_changed)) {
    priv->lossy_pending = priv->classifier.has_lossy () || !priv->classifier.regions ().empty ();
    return;
  }
  priv->lossy_pending = priv->classifier.has_lossy () || !priv->classifier.regions ().empty ();
  std::vector<uint8_t> unknown = priv->classifier.lossy ();
  for (size_t t = 0; t < unknown.size (); t++)
    unknown[t] |= settled[t];
  priv->refinements++;
  GST_DEBUG_OBJECT (self, "%u refinement rectangles, %u regions left (settle times %" G_GUINT64_FORMAT
      " and %" G_GUINT64_FORMAT " ms, evidence window %" G_GUINT64_FORMAT " ms)",
      (guint) priv->classifier.rects_of (settled).size (), (guint) priv->classifier.regions ().size (),
      priv->classifier.settle_ns () / 1000000, priv->classifier.region_settle_ns () / 1000000,
      priv->classifier.window_ns () / 1000000);
  queue_tiles (self, q, priv->last, pts, settled, unknown, false);
}

static GstFlowReturn
gst_wayray_damage_tiler_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (parent);
  GstWayrayDamageTilerPrivate *priv = self->priv;
  const gint64 entered = g_get_monotonic_time ();
  std::unique_lock<std::recursive_mutex> lk (priv->lock);
  if (!priv->have_info) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("no caps before the first buffer"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  priv->frames_in++;

  const int W = GST_VIDEO_INFO_WIDTH (&priv->info), H = GST_VIDEO_INFO_HEIGHT (&priv->info);
  bool full = priv->force_full.exchange (false);
  if (W != priv->grid_w || H != priv->grid_h || (int) priv->settings.tile_size != priv->grid_tile) {
    priv->classifier.reset (W, H, priv->settings);
    priv->grid_w = W;
    priv->grid_h = H;
    priv->grid_tile = priv->settings.tile_size;
    full = true;
  }
  GstClockTime now = GST_BUFFER_PTS (buf);
  if (!GST_CLOCK_TIME_IS_VALID (now))
    now = GST_CLOCK_TIME_IS_VALID (priv->last_pts) ? priv->last_pts : 0;
  priv->last_pts = now;
  priv->last_frame_mono = g_get_monotonic_time ();

  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &priv->info, buf, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL), ("cannot map the input frame"));
    return GST_FLOW_ERROR;
  }
  const ConstSurface cur = {(const uint8_t *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0),
    (size_t) GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0), W, H};

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

  if (full)
    GST_DEBUG_OBJECT (self, "a full frame: every tile losslessly");
  const bool video_linked = priv->video_enabled && self->videopad && gst_pad_is_linked (self->videopad);
  const size_t regions_before = priv->classifier.regions ().size ();
  Classifier::Result res;
  /* Whether this pipeline holds the frames back (wayrayclassifier.h, "A
   * busy pipeline"). */
  priv->classifier.pace ((uint64_t) priv->busy_us.load () * 1000);
  priv->classifier.process (cur, damage, full, now, video_linked, res);
  for (uint8_t l : res.lossless)
    priv->tiles_changed += l;
  priv->tiles_dropped += res.unchanged;
  if (priv->classifier.regions ().size () > regions_before)
    priv->regions_started += priv->classifier.regions ().size () - regions_before;
  if (res.layout_changed)
    GST_DEBUG_OBJECT (self, "%u video regions, atlas %dx%d", (guint) priv->classifier.regions ().size (),
        priv->classifier.atlas_width (), priv->classifier.atlas_height ());

  GstBuffer *video_out = NULL;
  std::vector<PasteRect> paste;
  if (res.video) {
    paste = priv->classifier.paste_rects ();
    video_out = atlas_frame (priv, cur, paste);
    gst_buffer_copy_into (video_out, buf, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
  }
  gst_video_frame_unmap (&frame);

  if (priv->last)
    gst_buffer_unref (priv->last);
  priv->last = gst_buffer_ref (buf);

  std::vector<Push> q;
  queue_tiles (self, q, buf, GST_BUFFER_PTS (buf), res.lossless, res.unknown, full, res.moves);
  if (video_out && self->videopad) {
    start_video_pad (self, priv->classifier.atlas_width (), priv->classifier.atlas_height (), q);
    if (!priv->announced_valid || !same_paste (paste, priv->announced)) {
      queue_event (q, self->videopad, paste_event (paste));
      priv->announced = paste;
      priv->announced_valid = true;
    }
    priv->frames_video++;
    queue_buffer (q, self->videopad, video_out);
  } else if (video_out) {
    gst_buffer_unref (video_out);
  }

  /* Tiles that settled (all of them when the video pad went away). */
  refine (self, now, !video_linked, q);
  if (priv->lossy_pending)
    priv->timer_cond.notify_all ();
  gst_buffer_unref (buf);
  lk.unlock ();
  GstFlowReturn ret = run_pushes (self, q);
  priv->busy_us = g_get_monotonic_time () - entered;
  return ret;
}

/* Only once the source went quiet: while frames come, each refines what
 * settled. A chain that is merely slow (an encoder behind, a congested
 * link) must not be answered with a burst of lossless tiles. Called with
 * the lock held. */
static bool
source_quiet (GstWayrayDamageTilerPrivate * priv)
{
  return GST_CLOCK_TIME_IS_VALID (priv->last_pts) &&
      g_get_monotonic_time () - priv->last_frame_mono >= (gint64) std::max<guint64> (priv->classifier.region_settle_ns (),
      1000 * GST_MSECOND) / 1000;
}

/* Runs while PLAYING or PAUSED: refines tiles that settled while no frames
 * arrived (the source sends nothing when nothing changes). */
static void
settle_timer (GstWayrayDamageTiler * self)
{
  GstWayrayDamageTilerPrivate *priv = self->priv;
  std::unique_lock<std::recursive_mutex> lk (priv->lock);
  while (!priv->timer_stop) {
    /* Without lossy tiles there is nothing to watch: sleep long (the
     * chain wakes us when a region starts; the bound only covers a stop
     * request racing with the wait). */
    priv->timer_cond.wait_for (lk, std::chrono::milliseconds (1000), [priv] {
          return priv->timer_stop || priv->lossy_pending;
        });
    if (!priv->timer_stop && priv->lossy_pending)
      priv->timer_cond.wait_for (lk, std::chrono::milliseconds (std::max
              (priv->settings.settle_ms / 4, 10u)), [priv] {
            return priv->timer_stop.load ();
          });
    if (priv->timer_stop || !priv->lossy_pending || !source_quiet (priv))
      continue;
    /* Decided and pushed in the stream's order: under the sink pad's
     * stream lock, as the chain is (taken first, so no frame comes between
     * the decision and the push), but pushed without the element's lock. */
    lk.unlock ();
    GST_PAD_STREAM_LOCK (self->sinkpad);
    lk.lock ();
    std::vector<Push> q;
    if (!priv->timer_stop && priv->lossy_pending && source_quiet (priv)) {
      /* The stream's time now: the last frame's plus what passed since, or
       * the pipeline clock's position when that is later. */
      GstClockTime pts = gst_wayray_stream_time_now (GST_ELEMENT (self), &priv->segment,
          priv->last_pts + (GstClockTime) (g_get_monotonic_time () - priv->last_frame_mono) * GST_USECOND);
      priv->last_pts = pts;
      priv->last_frame_mono = g_get_monotonic_time ();
      refine (self, pts, false, q);
    }
    lk.unlock ();
    run_pushes (self, q);
    GST_PAD_STREAM_UNLOCK (self->sinkpad);
    lk.lock ();
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
      std::vector<Push> q;
      {
        std::lock_guard<std::recursive_mutex> lk (priv->lock);
        gst_event_copy_segment (event, &priv->segment);
        if (priv->video_started && self->videopad)
          queue_event (q, self->videopad, gst_event_ref (event));
      }
      run_pushes (self, q);
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
    /* The timer may be pushing (under the sink pad's stream lock) into a
     * blocked downstream: the push returns once the parent deactivates the
     * pads below, and the timer then sees the stop. */
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
    priv->grid_w = priv->grid_h = 0;
    priv->lossy_pending = false;
  }
  return ret;
}

static void
gst_wayray_damage_tiler_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (object);
  std::lock_guard<std::recursive_mutex> lk (self->priv->lock);
  ClassifierSettings &s = self->priv->settings;
  switch (prop_id) {
    case PROP_TILE_SIZE:
      s.tile_size = g_value_get_uint (value) / 16 * 16;
      break;
    case PROP_TRANSIENT_CHANGES:
      s.transient_changes = g_value_get_uint (value);
      break;
    case PROP_TRANSIENT_WINDOW:
      s.transient_window_ms = g_value_get_uint (value);
      break;
    case PROP_MIN_VIDEO_TILES:
      s.min_video_tiles = g_value_get_uint (value);
      break;
    case PROP_SETTLE_TIME:
      s.settle_ms = g_value_get_uint (value);
      break;
    case PROP_REGION_SETTLE_TIME:
      s.region_settle_ms = g_value_get_uint (value);
      break;
    case PROP_EVIDENCE_PERCENT:
      s.evidence_percent = g_value_get_uint (value);
      break;
    case PROP_VIDEO_ENABLED:
      self->priv->video_enabled = g_value_get_boolean (value);
      return;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
  }
  /* all but tile-size take effect at once */
  self->priv->classifier.tune (s);
}

static void
gst_wayray_damage_tiler_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstWayrayDamageTiler *self = GST_WAYRAY_DAMAGE_TILER (object);
  GstWayrayDamageTilerPrivate *priv = self->priv;
  std::lock_guard<std::recursive_mutex> lk (priv->lock);
  const ClassifierSettings &s = priv->settings;
  switch (prop_id) {
    case PROP_TILE_SIZE:
      g_value_set_uint (value, s.tile_size);
      break;
    case PROP_TRANSIENT_CHANGES:
      g_value_set_uint (value, s.transient_changes);
      break;
    case PROP_TRANSIENT_WINDOW:
      g_value_set_uint (value, s.transient_window_ms);
      break;
    case PROP_MIN_VIDEO_TILES:
      g_value_set_uint (value, s.min_video_tiles);
      break;
    case PROP_SETTLE_TIME:
      g_value_set_uint (value, s.settle_ms);
      break;
    case PROP_REGION_SETTLE_TIME:
      g_value_set_uint (value, s.region_settle_ms);
      break;
    case PROP_EVIDENCE_PERCENT:
      g_value_set_uint (value, s.evidence_percent);
      break;
    case PROP_VIDEO_ENABLED:
      g_value_set_boolean (value, priv->video_enabled);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, gst_structure_new ("application/x-wayray-damagetiler-stats",
              "frames-in", G_TYPE_UINT64, priv->frames_in,
              "frames-tiles", G_TYPE_UINT64, priv->frames_tiles,
              "frames-video", G_TYPE_UINT64, priv->frames_video,
              "refinements", G_TYPE_UINT64, priv->refinements,
              "tiles-changed", G_TYPE_UINT64, priv->tiles_changed,
              "tiles-dropped", G_TYPE_UINT64, priv->tiles_dropped,
              "regions-started", G_TYPE_UINT64, priv->regions_started,
              "video-regions", G_TYPE_UINT, (guint) priv->classifier.regions ().size (), NULL));
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
          2, Classifier::kHistory, DEFAULT_TRANSIENT_CHANGES, rw_playing));
  g_object_class_install_property (gobject_class, PROP_TRANSIENT_WINDOW,
      g_param_spec_uint ("transient-window", "Transient window",
          "Time window for transient-changes, in milliseconds (stretched, up to 4 times, while "
          "the pipeline holds frames back)", 1, 60000,
          DEFAULT_TRANSIENT_WINDOW, rw_playing));
  g_object_class_install_property (gobject_class, PROP_MIN_VIDEO_TILES,
      g_param_spec_uint ("min-video-tiles", "Minimum video tiles",
          "Connected transient tiles needed for a video region (smaller groups stay "
          "lossless)", 1, G_MAXUINT, DEFAULT_MIN_VIDEO_TILES,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_SETTLE_TIME,
      g_param_spec_uint ("settle-time", "Settle time",
          "Milliseconds without change after which a tile shown from the video path is sent "
          "losslessly while most of its region still changes",
          1, 60000, DEFAULT_SETTLE_TIME, rw_playing));
  g_object_class_install_property (gobject_class, PROP_REGION_SETTLE_TIME,
      g_param_spec_uint ("region-settle-time", "Region settle time",
          "Milliseconds without any change after which a video region ends and all of it is "
          "sent losslessly (at least settle-time): a busy host's pauses do not send a playing "
          "video losslessly", 1, 60000, DEFAULT_REGION_SETTLE_TIME, rw_playing));
  g_object_class_install_property (gobject_class, PROP_EVIDENCE_PERCENT,
      g_param_spec_uint ("evidence-percent", "Evidence percent",
          "Share of a tile's pixels a change must touch to count towards transient-changes "
          "(a typed glyph or a blinking cursor touches few)", 0, 100, DEFAULT_EVIDENCE_PERCENT,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_VIDEO_ENABLED,
      g_param_spec_boolean ("video-enabled", "Video enabled",
          "Use the video pad (when linked) for video regions; FALSE sends everything losslessly "
          "(a client that decodes no H.264): what the client showed from video is refined at once",
          TRUE, rw_playing));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Frames in and out per pad, refinements, tiles changed and dropped as unchanged, "
          "video regions started and current",
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
