/* The stream's time now. See gstwayraystreamtime.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstwayraystreamtime.h"

GstClockTime
gst_wayray_stream_time_now (GstElement * element, const GstSegment * segment, GstClockTime at_least)
{
  GstClockTime pts = at_least;
  GstClock *clock = gst_element_get_clock (element);
  if (clock) {
    GstClockTime running = gst_clock_get_time (clock) - gst_element_get_base_time (element);
    gst_object_unref (clock);
    GstClockTime pos = gst_segment_position_from_running_time (segment, GST_FORMAT_TIME, running);
    if (GST_CLOCK_TIME_IS_VALID (pos) && (!GST_CLOCK_TIME_IS_VALID (pts) || pos > pts))
      pts = pos;
  }
  return pts;
}
