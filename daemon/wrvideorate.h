/* The video bitrate of a session: follows what the video regions need
 * (their area and frame rate) and what the link carries (the transport's
 * send queue and delivery rate), within about a second, down and up.
 *
 * Every 250 ms the controller reads the stats of the session's quicsink and
 * the size of the frames entering the video encoder (the atlas of the
 * video regions), and sets the encoder's bitrate:
 *
 * - the *need*: pixels per second of the atlas (its size times the frame
 *   rate the encoder really gets, measured, at most the caps') times
 *   bits-per-pixel (0.1), between 150 kbit/s and 20 Mbit/s: a 250x250
 *   animation is not given a full screen's bitrate, nor a 30 fps video a
 *   60 fps one's;
 * - *congestion*: when the round trip grew by more than 30 ms (and more
 *   than the link's own minimum) over its minimum — a queue building up at
 *   a bottleneck —, when the send queue holds more than 100 ms of what the
 *   link delivers after a backlog or in two steps running, when packets
 *   were lost since the
 *   last step, or when the connection is limited by its congestion window
 *   (bytes in flight at 90 % of it), the target drops to 70 % of itself,
 *   or of the delivery rate when that is lower and measured while the
 *   sender had a backlog (otherwise it is only what a quiet picture sent);
 *   when none of that holds, the round trip is within 15 ms of its minimum
 *   and the queue is (nearly) empty, it rises by 15 % per step, up to the
 *   need — by 2 % only in the 3 s after a congestion, so the rate settles
 *   under a bottleneck instead of swinging across it, and by 5 % until
 *   10 s have passed. A cut waits a round trip and 250 ms before the next,
 *   for the queue behind it to drain.
 *
 * The encoder is the element named `venc` in the session pipeline (any of
 * the H.264 encoders wrcodecs picks; openh264enc counts bits, the others
 * kbit). Without one the controller does nothing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace wayray {

/* One decision, on its own (tested without a pipeline). */
struct RateInput {
  int width = 0, height = 0;    /* the encoder's input; 0: no video now */
  double fps = 30;
  uint64_t send_queue_bytes = 0;   /* everything unacknowledged */
  uint64_t video_unsent = UINT64_MAX;   /* the video's bytes not yet sent; UINT64_MAX: not known */
  uint64_t delivery_rate = 0;   /* bytes per second, 0: not known */
  uint64_t lost_packets = 0;    /* since the connection began */
  uint64_t groups_dropped = 0;  /* groups of pictures the transport reset as stale, so far */
  uint64_t bytes_in_flight = 0, cwnd = 0;
  uint64_t rtt_ns = 0, min_rtt_ns = 0;  /* smoothed and minimum round trip; 0: not known */
};

class RateControl {
public:
  static constexpr double kBitsPerPixel = 0.25;
  static constexpr uint64_t kMin = 150000, kMax = 20000000;     /* bit/s */
  static constexpr double kStepSeconds = 0.25;  /* how often step () is called */
  static constexpr double kCut = 0.7;           /* a cut: this share of what the link delivers */
  static constexpr double kMediaQueueDelay = 0.05;  /* s: what the transport lets media queue */

  /* The next target (bit/s) after @in; also remembered. */
  uint64_t step (const RateInput & in);
  uint64_t target () const { return target_; }
  uint64_t need () const { return need_; }
  const char *reason () const { return reason_; }

private:
  uint64_t target_ = 0, need_ = 0, lost_ = 0, dropped_ = 0;
  int recent_ = 0;              /* steps since congestion, counting down from 40 */
  int hold_ = 0;                /* steps before congestion may cut again */
  bool backlog_ = false;        /* the last step had more to send than the link took */
  bool queued_before_ = false;  /* the last step's queue held more than 100 ms */
  const char *reason_ = "start";
};

class VideoRate {
public:
  /* Watches @pipeline's `venc` and `net`; false when it has no `venc`. */
  bool start (GstElement * pipeline);
  void stop ();
  ~VideoRate () { stop (); }
  /* For wayrayctl stats: a GstStructure-like line, or "" without video. */
  std::string stats () const;

private:
  void tick ();
  GstElement *enc_ = nullptr, *net_ = nullptr;
  bool bits_ = false;           /* the encoder counts bit/s, not kbit/s */
  guint timer_ = 0;
  gulong probe_ = 0;
  std::atomic<uint64_t> frames_ { 0 };  /* into the encoder, counted by a probe */
  uint64_t frames_seen_ = 0;
  gint64 last_tick_us_ = 0;
  double fps_ = 0;              /* measured, smoothed */
  uint64_t applied_ = 0, changes_ = 0;
  RateControl rc_;
};

}  // namespace wayray
