/* quicsrc: exposes each incoming stream of a QUIC connection as a source pad.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_QUIC_SRC (gst_quic_src_get_type ())
G_DECLARE_FINAL_TYPE (GstQuicSrc, gst_quic_src, GST, QUIC_SRC, GstElement);

GST_ELEMENT_REGISTER_DECLARE (quicsrc);

G_END_DECLS
