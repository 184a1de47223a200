/* Elements that start after their pipeline, on a thread of their own.
 *
 * pipewiresrc waits in its READY to PAUSED change until PipeWire has
 * linked its stream (up to 30 s, then it fails without saying why). The
 * session's capture of its speakers' monitor is such a stream: a session
 * manager (wireplumber) that is slow to come up, as on a loaded server
 * where many sessions start at once, would hold the whole session's start
 * and then fail it. Held here, the session starts at once, its sound a
 * moment later; a capture that does not start is tried again until it
 * does, and logged.
 *
 * The held elements' state is locked (the pipeline leaves them alone);
 * start () brings them to the pipeline's state with its base time (the
 * pipeline's clock is the system's: they provide none while stopped),
 * stop () interrupts a start that waits (a flush) and hands them back
 * before the pipeline stops.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace wayray {

class LateStart {
 public:
  LateStart () = default;
  ~LateStart () { stop (); }
  LateStart (const LateStart &) = delete;
  LateStart &operator= (const LateStart &) = delete;

  /* Holds every element of @pipeline made by the factory @factory. */
  void hold (GstElement *pipeline, const char *factory);
  bool holding () const { return !held_.empty (); }
  /* Starts the held elements (the pipeline is PLAYING). @note is called
   * on the main loop with a line to log: a start that failed (and is
   * tried again in @retry_ms) or one that came after a failure. */
  void start (GstElement *pipeline, guint retry_ms, std::function<void (const std::string &)> note);
  /* Before the pipeline stops. */
  void stop ();

 private:
  void run (GstClockTime base_time, guint retry_ms, std::function<void (const std::string &)> note);

  std::vector<GstElement *> held_;
  std::thread thread_;
  std::atomic<bool> stopping_ { false }, done_ { false };
};

}  // namespace wayray
