/* libFuzzer target: monitor layouts (wrmonitors.h), from a client's hello
 * or resize. Whatever parses must be within the limits, overlap-free and
 * read back the same from its written form.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrmonitors.h"

#include <cstdint>
#include <string>

using namespace wayray;

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  const std::string text (reinterpret_cast<const char *> (data), size);
  MonitorLayout layout;
  std::string error;
  if (!monitor_layout_parse (text, &layout, &error)) {
    if (error.empty () || !layout.empty ())
      __builtin_trap ();      /* a refusal says why and leaves nothing */
    return 0;
  }
  int w = 0, h = 0;
  monitor_layout_bounds (layout, &w, &h);
  if (layout.empty () || (int) layout.size () > kMaxMonitors || w > kMaxPictureSide || h > kMaxPictureSide)
    __builtin_trap ();
  for (size_t i = 0; i < layout.size (); i++) {
    const MonitorRect &a = layout[i];
    if (a.width < kMinMonitorSide || a.height < kMinMonitorSide || a.x < 0 || a.y < 0)
      __builtin_trap ();
    for (size_t j = i + 1; j < layout.size (); j++) {
      const MonitorRect &b = layout[j];
      if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height)
        __builtin_trap ();
    }
  }
  MonitorLayout again;
  if (!monitor_layout_parse (monitor_layout_format (layout), &again, &error) || again != layout)
    __builtin_trap ();
  return 0;
}
