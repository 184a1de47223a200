/* The stream's time now, for elements that send something of their own
 * between frames (damagetiler's refinements, wayraycompositor's cursor
 * frames).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

/* The position in @segment that @element's pipeline clock shows now, or
 * @at_least when that is later or no clock is set. */
GstClockTime gst_wayray_stream_time_now (GstElement * element, const GstSegment * segment,
    GstClockTime at_least);
