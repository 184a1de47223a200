/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WAYRAY_COMPOSITOR (gst_wayray_compositor_get_type ())
G_DECLARE_FINAL_TYPE (GstWayrayCompositor, gst_wayray_compositor, GST, WAYRAY_COMPOSITOR,
    GstElement)

GST_ELEMENT_REGISTER_DECLARE (wayraycompositor);

G_END_DECLS
