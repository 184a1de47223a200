/* Monitor layouts (see wrmonitors.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrmonitors.h"

#include <algorithm>

namespace wayray {

namespace {

/* A decimal number of at most five digits at @p; advances it. */
bool
read_number (const char *&p, int *value)
{
  int n = 0, digits = 0;
  while (*p >= '0' && *p <= '9') {
    if (++digits > 5)
      return false;
    n = n * 10 + (*p - '0');
    p++;
  }
  *value = n;
  return digits > 0;
}

bool
overlap (const MonitorRect &a, const MonitorRect &b)
{
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

}  // namespace

bool
monitor_layout_parse (const std::string &text, MonitorLayout *out, std::string *error)
{
  MonitorLayout layout;
  const char *p = text.c_str ();
  int next_x = 0;
  auto fail = [error, &text] (const std::string &why) {
    if (error)
      *error = "monitor layout '" + text.substr (0, 80) + "': " + why;
    return false;
  };
  if (text.empty ())
    return fail ("empty");
  while (true) {
    MonitorRect r;
    if (!read_number (p, &r.width) || *p++ != 'x' || !read_number (p, &r.height))
      return fail ("wants WxH[+X+Y] for each monitor, separated by commas");
    if (*p == '+') {
      p++;
      if (!read_number (p, &r.x) || *p++ != '+' || !read_number (p, &r.y))
        return fail ("a position is +X+Y");
    } else {
      r.x = next_x;
      r.y = 0;
    }
    if (r.width < kMinMonitorSide || r.height < kMinMonitorSide || r.width > kMaxPictureSide ||
        r.height > kMaxPictureSide)
      return fail ("each side is " + std::to_string (kMinMonitorSide) + ".." + std::to_string (kMaxPictureSide));
    if ((int) layout.size () == kMaxMonitors)
      return fail ("at most " + std::to_string (kMaxMonitors) + " monitors");
    for (const MonitorRect &o : layout)
      if (overlap (o, r))
        return fail ("two monitors overlap");
    layout.push_back (r);
    next_x = r.x + r.width;
    if (*p == '\0')
      break;
    if (*p++ != ',')
      return fail ("wants WxH[+X+Y] for each monitor, separated by commas");
  }
  int w = 0, h = 0, min_x = kMaxPictureSide, min_y = kMaxPictureSide;
  for (const MonitorRect &r : layout) {
    min_x = std::min (min_x, r.x);
    min_y = std::min (min_y, r.y);
  }
  monitor_layout_bounds (layout, &w, &h);
  if (min_x != 0 || min_y != 0)
    return fail ("the top-left monitor must start at +0+0");
  if (w > kMaxPictureSide || h > kMaxPictureSide)
    return fail ("the whole picture is at most " + std::to_string (kMaxPictureSide) + " on each side");
  *out = std::move (layout);
  return true;
}

std::string
monitor_layout_format (const MonitorLayout &layout)
{
  std::string s;
  for (const MonitorRect &r : layout) {
    if (!s.empty ())
      s += ",";
    s += std::to_string (r.width) + "x" + std::to_string (r.height) + "+" + std::to_string (r.x) + "+" +
        std::to_string (r.y);
  }
  return s;
}

void
monitor_layout_bounds (const MonitorLayout &layout, int *width, int *height)
{
  int w = 0, h = 0;
  for (const MonitorRect &r : layout) {
    w = std::max (w, r.x + r.width);
    h = std::max (h, r.y + r.height);
  }
  *width = w;
  *height = h;
}

}  // namespace wayray
