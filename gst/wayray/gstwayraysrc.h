/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS

#define GST_TYPE_WAYRAY_SRC (gst_wayray_src_get_type ())
G_DECLARE_FINAL_TYPE (GstWayraySrc, gst_wayray_src, GST, WAYRAY_SRC, GstPushSrc);

GST_ELEMENT_REGISTER_DECLARE (wayraysrc);

G_END_DECLS
