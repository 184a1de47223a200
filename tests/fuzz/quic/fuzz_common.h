/* What both fuzz targets do with parsed frames: turn them into GStreamer
 * objects, as quicsrc and the endpoint do with network input.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gstquicframing.h"

#include <gst/gst.h>

#include <vector>

static inline void
convert_frames (std::vector<wrq::Frame> & frames)
{
  for (auto &f : frames) {
    std::string err;
    switch (f.type) {
      case wrq::FrameType::Caps:
        if (GstCaps *caps = f.to_caps (err))
          gst_caps_unref (caps);
        break;
      case wrq::FrameType::Event:
      case wrq::FrameType::UpstreamEvent:
      case wrq::FrameType::Navigation:
        if (GstEvent *ev = f.to_event (err))
          gst_event_unref (ev);
        else if (f.type == wrq::FrameType::Navigation && err.empty ())
          __builtin_trap ();   /* a refusal must be explained */
        break;
      case wrq::FrameType::Buffer:
        if (!f.buffer)
          __builtin_trap ();
        break;
      case wrq::FrameType::Segment:
        break;
    }
  }
  frames.clear ();
}

static inline void
fuzz_init (int *argc, char ***argv)
{
  gst_init (argc, argv);
  /* Conversion errors print criticals; they are expected here. */
  g_log_set_always_fatal ((GLogLevelFlags) G_LOG_FATAL_MASK);
}
