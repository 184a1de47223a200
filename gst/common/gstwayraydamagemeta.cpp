/* WayRay damage meta.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstwayraydamagemeta.h"

#include <algorithm>
#include <climits>

namespace {

gint64
rect_area (const GstVideoRectangle & r)
{
  return (gint64) r.w * r.h;
}

GstVideoRectangle
rect_union (const GstVideoRectangle & a, const GstVideoRectangle & b)
{
  gint x1 = std::min (a.x, b.x), y1 = std::min (a.y, b.y);
  gint x2 = std::max (a.x + a.w, b.x + b.w), y2 = std::max (a.y + a.h, b.y + b.h);
  return GstVideoRectangle { x1, y1, x2 - x1, y2 - y1 };
}

bool
rect_intersects (const GstVideoRectangle & a, const GstVideoRectangle & b)
{
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

bool
rect_contains (const GstVideoRectangle & outer, const GstVideoRectangle & inner)
{
  return inner.x >= outer.x && inner.y >= outer.y &&
      inner.x + inner.w <= outer.x + outer.w && inner.y + inner.h <= outer.y + outer.h;
}

/* Merges overlapping rectangles into their bounding box until none overlap,
 * so consumers never process a pixel twice. */
void
merge_overlaps (GstWayrayDamageMeta * meta)
{
  bool changed = true;
  while (changed) {
    changed = false;
    for (guint i = 0; i < meta->n_rects && !changed; i++) {
      for (guint j = i + 1; j < meta->n_rects; j++) {
        if (rect_intersects (meta->rects[i], meta->rects[j])) {
          meta->rects[i] = rect_union (meta->rects[i], meta->rects[j]);
          meta->rects[j] = meta->rects[--meta->n_rects];
          changed = true;
          break;
        }
      }
    }
  }
}

/* Merges the pair whose bounding box adds the least area not already damaged. */
void
merge_cheapest_pair (GstWayrayDamageMeta * meta)
{
  guint best_i = 0, best_j = 1;
  gint64 best_cost = G_MAXINT64;
  for (guint i = 0; i < meta->n_rects; i++) {
    for (guint j = i + 1; j < meta->n_rects; j++) {
      gint64 cost = rect_area (rect_union (meta->rects[i], meta->rects[j])) -
          rect_area (meta->rects[i]) - rect_area (meta->rects[j]);
      if (cost < best_cost) {
        best_cost = cost;
        best_i = i;
        best_j = j;
      }
    }
  }
  meta->rects[best_i] = rect_union (meta->rects[best_i], meta->rects[best_j]);
  meta->rects[best_j] = meta->rects[--meta->n_rects];
}

gboolean
damage_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  auto dmeta = (GstWayrayDamageMeta *) meta;
  dmeta->n_rects = 0;
  return TRUE;
}

gboolean
damage_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  auto src = (GstWayrayDamageMeta *) meta;

  if (GST_META_TRANSFORM_IS_COPY (type)) {
    auto copy = (GstMetaTransformCopy *) data;
    /* A partial copy of a frame's bytes is no longer the frame the
     * rectangles describe. */
    if (copy->region)
      return TRUE;
  } else if (type != gst_video_meta_transform_scale_get_quark () &&
      type != gst_wayray_damage_meta_crop_transform_get_quark ()) {
    return FALSE;
  }

  auto dmeta = (GstWayrayDamageMeta *)
      gst_buffer_add_meta (dest, GST_WAYRAY_DAMAGE_META_INFO, nullptr);
  if (!dmeta)
    return FALSE;
  dmeta->n_rects = src->n_rects;
  std::copy (src->rects, src->rects + src->n_rects, dmeta->rects);

  if (type == gst_video_meta_transform_scale_get_quark ()) {
    auto trans = (GstVideoMetaTransform *) data;
    gst_wayray_damage_meta_scale (dmeta,
        GST_VIDEO_INFO_WIDTH (trans->in_info), GST_VIDEO_INFO_HEIGHT (trans->in_info),
        GST_VIDEO_INFO_WIDTH (trans->out_info), GST_VIDEO_INFO_HEIGHT (trans->out_info));
  } else if (type == gst_wayray_damage_meta_crop_transform_get_quark ()) {
    auto trans = (GstWayrayDamageMetaCropTransform *) data;
    gst_wayray_damage_meta_crop (dmeta, &trans->crop);
  }
  return TRUE;
}

}  // namespace

GType
gst_wayray_damage_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR, GST_META_TAG_VIDEO_SIZE_STR, nullptr };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstWayrayDamageMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

const GstMetaInfo *
gst_wayray_damage_meta_get_info (void)
{
  static const GstMetaInfo *info = nullptr;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_register (GST_WAYRAY_DAMAGE_META_API_TYPE,
        "GstWayrayDamageMeta", sizeof (GstWayrayDamageMeta),
        damage_meta_init, nullptr, damage_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

GQuark
gst_wayray_damage_meta_crop_transform_get_quark (void)
{
  static GQuark quark = 0;
  if (quark == 0)
    quark = g_quark_from_static_string ("gst-wayray-crop");
  return quark;
}

void
gst_wayray_damage_meta_add_rect (GstWayrayDamageMeta * meta, const GstVideoRectangle * rect)
{
  if (rect->w <= 0 || rect->h <= 0)
    return;
  for (guint i = 0; i < meta->n_rects; i++) {
    if (rect_contains (meta->rects[i], *rect))
      return;
  }
  if (meta->n_rects == GST_WAYRAY_DAMAGE_META_MAX_RECTS)
    merge_cheapest_pair (meta);
  meta->rects[meta->n_rects++] = *rect;
  merge_overlaps (meta);
}

GstWayrayDamageMeta *
gst_buffer_add_wayray_damage_meta (GstBuffer * buffer, const GstVideoRectangle * rects,
    guint n_rects, guint width, guint height)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), nullptr);

  auto meta = (GstWayrayDamageMeta *)
      gst_buffer_add_meta (buffer, GST_WAYRAY_DAMAGE_META_INFO, nullptr);
  if (!meta)
    return nullptr;

  GstVideoRectangle bounds = { 0, 0, (gint) width, (gint) height };
  for (guint i = 0; i < n_rects; i++) {
    GstVideoRectangle r = rects[i];
    if (width > 0 && height > 0) {
      gint x2 = std::min (r.x + r.w, bounds.w), y2 = std::min (r.y + r.h, bounds.h);
      r.x = std::max (r.x, 0);
      r.y = std::max (r.y, 0);
      r.w = x2 - r.x;
      r.h = y2 - r.y;
    }
    gst_wayray_damage_meta_add_rect (meta, &r);
  }
  return meta;
}

GstWayrayDamageMeta *
gst_buffer_add_wayray_damage_meta_full (GstBuffer * buffer, guint width, guint height)
{
  GstVideoRectangle all = { 0, 0, (gint) width, (gint) height };
  return gst_buffer_add_wayray_damage_meta (buffer, &all, 1, width, height);
}

void
gst_wayray_damage_meta_crop (GstWayrayDamageMeta * meta, const GstVideoRectangle * crop)
{
  guint out = 0;
  for (guint i = 0; i < meta->n_rects; i++) {
    const GstVideoRectangle & r = meta->rects[i];
    gint x1 = std::max (r.x, crop->x), y1 = std::max (r.y, crop->y);
    gint x2 = std::min (r.x + r.w, crop->x + crop->w);
    gint y2 = std::min (r.y + r.h, crop->y + crop->h);
    if (x2 <= x1 || y2 <= y1)
      continue;
    meta->rects[out++] = GstVideoRectangle { x1 - crop->x, y1 - crop->y, x2 - x1, y2 - y1 };
  }
  meta->n_rects = out;
}

void
gst_wayray_damage_meta_scale (GstWayrayDamageMeta * meta, guint in_w, guint in_h,
    guint out_w, guint out_h)
{
  if (in_w == 0 || in_h == 0)
    return;
  for (guint i = 0; i < meta->n_rects; i++) {
    GstVideoRectangle & r = meta->rects[i];
    gint x1 = (gint) (((gint64) r.x * out_w) / in_w);
    gint y1 = (gint) (((gint64) r.y * out_h) / in_h);
    gint x2 = (gint) (((gint64) (r.x + r.w) * out_w + in_w - 1) / in_w);
    gint y2 = (gint) (((gint64) (r.y + r.h) * out_h + in_h - 1) / in_h);
    r = GstVideoRectangle { x1, y1, std::min (x2, (gint) out_w) - x1, std::min (y2, (gint) out_h) - y1 };
  }
  merge_overlaps (meta);
}

guint64
gst_wayray_damage_meta_area (const GstWayrayDamageMeta * meta)
{
  guint64 area = 0;
  for (guint i = 0; i < meta->n_rects; i++)
    area += (guint64) rect_area (meta->rects[i]);
  return area;
}
