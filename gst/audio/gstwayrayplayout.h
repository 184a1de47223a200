/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WAYRAY_PLAYOUT (gst_wayray_playout_get_type ())
G_DECLARE_FINAL_TYPE (GstWayrayPlayout, gst_wayray_playout, GST, WAYRAY_PLAYOUT, GstElement)

GST_ELEMENT_REGISTER_DECLARE (wayrayplayout);

G_END_DECLS
