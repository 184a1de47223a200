/* The client's screen (see wrscreen.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrscreen.h"

namespace wayray {

void
ClientScreen::put (GstStructure *s) const
{
  gst_structure_set (s, "width", G_TYPE_INT, width, "height", G_TYPE_INT, height, "scale", G_TYPE_INT, scale,
      nullptr);
  if (!monitors.empty ())
    gst_structure_set (s, "monitors", G_TYPE_STRING, monitor_layout_format (monitors).c_str (), nullptr);
}

ClientScreen
ClientScreen::take (const GstStructure *s, int fallback_w, int fallback_h, std::string *note)
{
  ClientScreen c;
  gst_structure_get_int (s, "width", &c.width);
  gst_structure_get_int (s, "height", &c.height);
  if (c.width < kMinMonitorSide || c.height < kMinMonitorSide || c.width > kMaxPictureSide ||
      c.height > kMaxPictureSide) {
    c.width = fallback_w;
    c.height = fallback_h;
  }
  if (!gst_structure_get_int (s, "scale", &c.scale) || c.scale < 1 || c.scale > 4)
    c.scale = 1;
  const gchar *text = gst_structure_get_string (s, "monitors");
  if (text && *text) {
    std::string error;
    MonitorLayout layout;
    int w = 0, h = 0;
    if (!monitor_layout_parse (text, &layout, &error)) {
      if (note)
        *note = error;
    } else if (monitor_layout_bounds (layout, &w, &h), w != c.width || h != c.height) {
      if (note)
        *note = "monitor layout " + monitor_layout_format (layout) + " is not the picture's size " +
            std::to_string (c.width) + "x" + std::to_string (c.height);
    } else if (layout.size () > 1) {
      c.monitors = std::move (layout);
    }
  }
  return c;
}

std::string
ClientScreen::describe () const
{
  std::string s = std::to_string (width) + "x" + std::to_string (height);
  if (!monitors.empty ())
    s += " on " + std::to_string (monitors.size ()) + " monitors (" + monitor_layout_format (monitors) + ")";
  return s;
}

}  // namespace wayray
