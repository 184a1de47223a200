/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WAYRAY_TILE_ENC (gst_wayray_tile_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstWayrayTileEnc, gst_wayray_tile_enc, GST, WAYRAY_TILE_ENC, GstElement)

GST_ELEMENT_REGISTER_DECLARE (wayraytileenc);

G_END_DECLS
