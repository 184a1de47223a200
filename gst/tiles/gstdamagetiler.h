/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WAYRAY_DAMAGE_TILER (gst_wayray_damage_tiler_get_type ())
G_DECLARE_FINAL_TYPE (GstWayrayDamageTiler, gst_wayray_damage_tiler, GST, WAYRAY_DAMAGE_TILER,
    GstElement)

GST_ELEMENT_REGISTER_DECLARE (damagetiler);

G_END_DECLS
