/* quicsink: sends each of its request pads as a stream of a QUIC connection.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_QUIC_SINK (gst_quic_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstQuicSink, gst_quic_sink, GST, QUIC_SINK, GstElement);

GST_ELEMENT_REGISTER_DECLARE (quicsink);

G_END_DECLS
