/* WayRay damage meta: which rectangles of a video frame changed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#ifndef WAYRAY_API
#  define WAYRAY_API __attribute__ ((visibility ("default")))
#endif

/* The number of rectangles a meta holds at most. Damage with more rectangles
 * is coalesced (pairs merged by least added area) so per-frame work stays
 * bounded however fragmented the damage is. */
#define GST_WAYRAY_DAMAGE_META_MAX_RECTS 32

#define GST_WAYRAY_DAMAGE_META_API_TYPE (gst_wayray_damage_meta_api_get_type ())
#define GST_WAYRAY_DAMAGE_META_INFO (gst_wayray_damage_meta_get_info ())

typedef struct _GstWayrayDamageMeta GstWayrayDamageMeta;

/**
 * GstWayrayDamageMeta:
 * @meta: parent #GstMeta
 * @n_rects: number of valid entries in @rects (0 means nothing changed)
 * @rects: changed rectangles in buffer pixels, clipped to the frame,
 *   not overlapping each other after coalescing
 *
 * Marks the parts of a video frame that differ from the previous frame of
 * the same stream. A frame without this meta must be treated as fully
 * damaged.
 */
struct _GstWayrayDamageMeta {
  GstMeta meta;
  guint n_rects;
  GstVideoRectangle rects[GST_WAYRAY_DAMAGE_META_MAX_RECTS];
};

/* Data for the "gst-wayray-crop" transform: the crop rectangle in the source
 * buffer's pixels. Damage outside it is dropped, the rest moves to the
 * crop's origin. */
typedef struct {
  GstVideoRectangle crop;
} GstWayrayDamageMetaCropTransform;

WAYRAY_API GType gst_wayray_damage_meta_api_get_type (void);
WAYRAY_API const GstMetaInfo *gst_wayray_damage_meta_get_info (void);
WAYRAY_API GQuark gst_wayray_damage_meta_crop_transform_get_quark (void);

/* Adds a meta with the given rectangles. Rectangles are clipped to
 * width x height (pass 0 to skip clipping), empty ones dropped, and the
 * result coalesced to at most GST_WAYRAY_DAMAGE_META_MAX_RECTS. */
WAYRAY_API GstWayrayDamageMeta *gst_buffer_add_wayray_damage_meta (GstBuffer * buffer,
    const GstVideoRectangle * rects, guint n_rects, guint width, guint height);

/* Adds a meta that marks the whole width x height frame as changed. */
WAYRAY_API GstWayrayDamageMeta *gst_buffer_add_wayray_damage_meta_full (GstBuffer * buffer,
    guint width, guint height);

#define gst_buffer_get_wayray_damage_meta(b) \
  ((GstWayrayDamageMeta *) gst_buffer_get_meta ((b), GST_WAYRAY_DAMAGE_META_API_TYPE))

/* Adds one rectangle, coalescing when the meta is full. */
WAYRAY_API void gst_wayray_damage_meta_add_rect (GstWayrayDamageMeta * meta,
    const GstVideoRectangle * rect);

/* Restricts the damage to @crop and makes it relative to the crop origin. */
WAYRAY_API void gst_wayray_damage_meta_crop (GstWayrayDamageMeta * meta,
    const GstVideoRectangle * crop);

/* Scales the damage from in_w x in_h to out_w x out_h, rounding outwards so
 * no changed pixel is ever left out. */
WAYRAY_API void gst_wayray_damage_meta_scale (GstWayrayDamageMeta * meta,
    guint in_w, guint in_h, guint out_w, guint out_h);

/* Total damaged area in pixels. */
WAYRAY_API guint64 gst_wayray_damage_meta_area (const GstWayrayDamageMeta * meta);

G_END_DECLS
