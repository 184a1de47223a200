/* Console input for wayray-client: local keyboards and pointers read with
 * libinput (udev seat) and sent up the client pipeline as navigation events,
 * as a window's video sink would.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <functional>
#include <memory>

namespace wayray {

class ConsoleInput {
 public:
  ConsoleInput ();
  ~ConsoleInput ();
  /* Reads the devices of @seat and sends their events into @sink (upstream).
   * The pointer is kept inside width x height. */
  bool start (GstElement *sink, int width, int height, const char *seat, GError **error);
  /* Keys for the client itself (a card's PIN, with no session): each key
   * pressed goes to @key by its evdev code; nothing else is read. */
  bool start_keys (std::function<void (unsigned code)> key, const char *seat, GError **error);
  void stop ();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wayray
