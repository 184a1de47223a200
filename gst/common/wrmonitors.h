/* Monitor layouts: the screens of a client, as one picture.
 *
 * A client with several monitors gets one picture that spans them all;
 * the session has one output per monitor, placed where the monitor's
 * rectangle lies in that picture. Written "WxH[+X+Y],WxH[+X+Y],...": a
 * rectangle without a position goes to the right of the one before, top
 * edges aligned ("1920x1080,1280x1024" is 3200x1080 with the second
 * screen at x=1920). The picture is the rectangles' bounding box, whose
 * corner must be (0, 0).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string>
#include <vector>

#ifndef WAYRAY_API
#  define WAYRAY_API __attribute__ ((visibility ("default")))
#endif

namespace wayray {

struct MonitorRect {
  int x = 0, y = 0, width = 0, height = 0;
  bool operator== (const MonitorRect &o) const {
    return x == o.x && y == o.y && width == o.width && height == o.height;
  }
  bool operator!= (const MonitorRect &o) const { return !(*this == o); }
};

using MonitorLayout = std::vector<MonitorRect>;

/* Limits: at most kMaxMonitors, each side 16..8192, the whole picture at
 * most 8192 on each side, no two rectangles overlapping. */
constexpr int kMaxMonitors = 8;
constexpr int kMinMonitorSide = 16;
constexpr int kMaxPictureSide = 8192;

/* Parses @text into @out; false with a reason in @error (the layout is
 * then untouched). */
WAYRAY_API bool monitor_layout_parse (const std::string &text, MonitorLayout *out, std::string *error);
/* The written form, with every position ("1920x1080+0+0,1280x1024+1920+0"). */
WAYRAY_API std::string monitor_layout_format (const MonitorLayout &layout);
/* The picture's size: the bounding box (0x0 for an empty layout). */
WAYRAY_API void monitor_layout_bounds (const MonitorLayout &layout, int *width, int *height);

}  // namespace wayray
