/* The client's screen as the daemon carries it from the hello to the
 * session: the picture's size, the scale factor (HiDPI) and the monitors
 * (wrmonitors.h) that picture spans.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrmonitors.h"

#include <gst/gst.h>

#include <string>

namespace wayray {

struct ClientScreen {
  int width = 0, height = 0;
  int scale = 1;
  MonitorLayout monitors;       /* empty: one monitor, the whole picture */

  /* How many outputs the session shows it on. */
  int outputs () const { return monitors.empty () ? 1 : (int) monitors.size (); }
  bool operator== (const ClientScreen &o) const {
    return width == o.width && height == o.height && scale == o.scale && monitors == o.monitors;
  }
  bool operator!= (const ClientScreen &o) const { return !(*this == o); }
  /* Sets the fields "width", "height", "scale" and, with monitors,
   * "monitors" on @s. */
  void put (GstStructure *s) const;
  /* Reads those fields (a hello, a resize, a message between the daemon's
   * processes). A size outside 16..8192 becomes @fallback_w x
   * @fallback_h, a scale outside 1..4 is 1; a layout that does not parse,
   * or whose bounding box is not the size, is dropped, with the reason in
   * @note. */
  static ClientScreen take (const GstStructure *s, int fallback_w, int fallback_h, std::string *note = nullptr);
  /* "1920x1080", "3840x1080 on 2 monitors (1920x1080+0+0,...)": for logs. */
  std::string describe () const;
};

}  // namespace wayray
