/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_WAYRAY_AUDIO_GATE (gst_wayray_audio_gate_get_type ())
G_DECLARE_FINAL_TYPE (GstWayrayAudioGate, gst_wayray_audio_gate, GST, WAYRAY_AUDIO_GATE, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (wayrayaudiogate);

G_END_DECLS
