/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WAYRAY_TILE_DEC (gst_wayray_tile_dec_get_type ())
G_DECLARE_FINAL_TYPE (GstWayrayTileDec, gst_wayray_tile_dec, GST, WAYRAY_TILE_DEC, GstElement)

GST_ELEMENT_REGISTER_DECLARE (wayraytiledec);

G_END_DECLS
