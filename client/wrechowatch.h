/* wrechowatch: key → changed picture, timed in the client.
 *
 * A watch is armed when a key is sent and ends at the first frame that
 * answers it: any new frame, or, with a region, the first frame whose
 * pixels there differ from the picture shown when the key was sent (so
 * that a video playing elsewhere on the screen does not count as the
 * echo).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <vector>

namespace wayray {

struct Region {
  int x = 0, y = 0, width = 0, height = 0;
};

class EchoWatch {
public:
  /* Starts timing from @now_us. @shown is the picture on screen (may be
   * null); @region null means any next frame answers. */
  void arm (gint64 now_us, GstSample *shown, const Region *region);
  /* Each delivered frame: the milliseconds since the key when this frame
   * answers it (the watch then ends), else a negative value. */
  double frame (GstSample *sample, gint64 now_us);
  bool armed () const { return sent_us != 0; }

private:
  gint64 sent_us = 0;
  bool with_region = false;
  Region region;
  std::vector<guint8> before;   /* the region's pixels when armed; empty: none */
};

/* Parses "X Y W H" (non-negative, W and H > 0). */
bool parse_region (const char *text, Region *region, const char **rest);

}  // namespace wayray
