/* The playout schedule (see wayrayplayout.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayrayplayout.h"

#include <algorithm>
#include <vector>

namespace wayray {

namespace {

constexpr guint64 kWindow = 2 * GST_SECOND;        /* transit times kept */
constexpr guint64 kAdaptEvery = GST_SECOND;
constexpr guint64 kAdaptAfterLate = 100 * GST_MSECOND;  /* sooner when a packet came late */
constexpr guint64 kMargin = 2 * GST_MSECOND;       /* on top of the jitter seen */
constexpr double kSpreadQuantile = 0.97;           /* the transit times the delay covers */
constexpr guint kTailFrames = 5;                   /* concealed when nothing more comes */
constexpr guint64 kGapJump = 100 * GST_MSECOND;    /* a longer hole is silence, not loss */
constexpr guint64 kRestart = GST_SECOND;           /* a jump this far: the sender started over */
constexpr size_t kMaxQueue = 400;

}  // namespace

Playout::Playout (guint64 min_delay, guint64 max_delay, guint64 frame)
    : min_delay_ (min_delay), max_delay_ (std::max (min_delay, max_delay)), frame_ (frame ? frame : 10 * GST_MSECOND)
{
}

Playout::~Playout ()
{
  clear ();
}

void
Playout::set_delays (guint64 min_delay, guint64 max_delay)
{
  min_delay_ = min_delay;
  max_delay_ = std::max (min_delay, max_delay);
}

void
Playout::clear ()
{
  for (auto &kv : queue_)
    gst_buffer_unref (kv.second.buffer);
  queue_.clear ();
  active_ = false;
  concealed_run_ = 0;
  stats_.depth = 0;
}

gint64
Playout::window_min () const
{
  gint64 m = G_MAXINT64;
  for (auto &t : transit_)
    m = std::min (m, t.second);
  return transit_.empty () ? 0 : m;
}

/* How much later than the fastest packet of the window kSpreadQuantile of
 * them came: what the delay must cover. The slowest few are left to
 * concealment, so one stray packet does not set the delay of the next
 * two seconds. */
guint64
Playout::window_spread () const
{
  if (transit_.empty ())
    return 0;
  std::vector<gint64> t;
  t.reserve (transit_.size ());
  for (auto &x : transit_)
    t.push_back (x.second);
  size_t q = std::min (t.size () - 1, (size_t) (t.size () * kSpreadQuantile));
  std::nth_element (t.begin (), t.begin () + q, t.end ());
  gint64 hi = t[q];
  gint64 lo = *std::min_element (t.begin (), t.end ());
  return (guint64) (hi - lo);
}

void
Playout::start_talkspurt (guint64 pts, guint64 now)
{
  /* The transit times of a talkspurt say nothing about the next one's: the
   * sender's timestamps may start from another base after a silence (its
   * encoder resynchronizes to the capture's clock). So each talkspurt
   * starts its own window, with the delay the last one's jitter needed. */
  transit_.clear ();
  have_last_ = false;
  stats_.target = std::clamp (spread_ + kMargin, min_delay_, max_delay_);
  offset_ = (gint64) now - (gint64) pts + (gint64) stats_.target;
  next_pts_ = pts;
  active_ = true;
  concealed_run_ = 0;
  next_adapt_ = now + kAdaptEvery;
  insert_ = 0;
  stats_.talkspurts++;
}

void
Playout::push (GstBuffer *buf, guint64 now)
{
  stats_.received++;
  guint64 pts = GST_BUFFER_PTS (buf);
  if (!GST_CLOCK_TIME_IS_VALID (pts)) {
    stats_.late++;
    gst_buffer_unref (buf);
    return;
  }
  guint64 dur = GST_BUFFER_DURATION_IS_VALID (buf) ? GST_BUFFER_DURATION (buf) : frame_;

  gint64 transit = (gint64) now - (gint64) pts;
  if (active_ && (pts + kRestart < next_pts_ || pts > next_pts_ + kRestart + stats_.depth))
    clear ();                   /* the sender started over */
  if (!active_)
    start_talkspurt (pts, now);
  transit_.emplace_back (now, transit);
  while (!transit_.empty () && transit_.front ().first + kWindow < now)
    transit_.pop_front ();
  /* Interarrival jitter within a talkspurt only: a silence in between is
   * not the network's. */
  if (have_last_) {
    gint64 d = transit - last_transit_;
    guint64 ad = (guint64) (d < 0 ? -d : d);
    /* RFC 3550, 6.4.1: J += (|D| - J) / 16 */
    jitter_ = (guint64) ((gint64) jitter_ + ((gint64) ad - (gint64) jitter_) / 16);
    stats_.jitter = jitter_;
  }
  last_transit_ = transit;
  have_last_ = true;
  if (pts + dur / 2 <= next_pts_) {
    stats_.late++;
    gst_buffer_unref (buf);
    /* The delay is too short for this link: look again soon. */
    next_adapt_ = std::min (next_adapt_, std::max (now, last_adapt_ + kAdaptAfterLate));
    return;
  }
  auto it = queue_.find (pts);
  if (it != queue_.end ()) {
    stats_.duplicates++;
    gst_buffer_unref (buf);
    return;
  }
  queue_.emplace (pts, Waiting { buf, transit });
  if (queue_.size () > kMaxQueue) {
    gst_buffer_unref (queue_.begin ()->second.buffer);
    queue_.erase (queue_.begin ());
    stats_.dropped++;
  }
  concealed_run_ = 0;
  stats_.depth = queue_.rbegin ()->first + dur - next_pts_;
}

guint64
Playout::next_due () const
{
  if (!active_)
    return GST_CLOCK_TIME_NONE;
  gint64 t = (gint64) next_pts_ + offset_;
  return t < 0 ? 0 : (guint64) t;
}

void
Playout::adapt (guint64 now)
{
  last_adapt_ = now;
  next_adapt_ = now + kAdaptEvery;
  spread_ = window_spread ();
  stats_.target = std::clamp (spread_ + kMargin, min_delay_, max_delay_);
}

Playout::Action
Playout::pop (guint64 now)
{
  Action a;
  a.time = next_due ();
  if (!active_)
    return a;

  if (now >= next_adapt_) {
    adapt (now);
    /* How long the fastest packet of late waits: more than the jitter
     * needs by three frames, drop one (a drop is a click: not for a few
     * milliseconds of a slow first packet); less, insert what is missing
     * (a frame at a time). */
    gint64 waits = offset_ - window_min ();
    gint64 target = (gint64) stats_.target;
    auto front = queue_.begin ();
    if (waits > target + (gint64) (3 * frame_) && front != queue_.end () &&
        front->first < next_pts_ + frame_ / 2) {
      GstBuffer *b = front->second.buffer;
      guint64 dur = GST_BUFFER_DURATION_IS_VALID (b) ? GST_BUFFER_DURATION (b) : frame_;
      gst_buffer_unref (b);
      queue_.erase (front);
      next_pts_ += dur;
      offset_ -= (gint64) dur;
      stats_.dropped++;
      a.time = next_due ();
    } else if (waits < target) {
      /* One frame at a time, 100 ms apart: a single concealed frame is
       * hardly heard, a run of them decays into a gap. */
      insert_ = 1;
      next_adapt_ = now + kAdaptAfterLate;
    }
  }
  if (insert_ > 0) {
    insert_--;
    a.kind = Kind::Conceal;
    a.duration = frame_;
    offset_ += (gint64) frame_;
    stats_.inserted++;
    stats_.concealed++;
    return a;
  }

  auto front = queue_.begin ();
  /* Packets before the frame due have been played or concealed already. */
  while (front != queue_.end () && front->first + frame_ / 2 <= next_pts_) {
    gst_buffer_unref (front->second.buffer);
    front = queue_.erase (front);
    stats_.late++;
  }
  if (front != queue_.end () && front->first < next_pts_ + frame_ / 2) {
    a.kind = Kind::Packet;
    a.buffer = front->second.buffer;
    a.duration = GST_BUFFER_DURATION_IS_VALID (a.buffer) ? GST_BUFFER_DURATION (a.buffer) : frame_;
    next_pts_ = front->first + a.duration;
    queue_.erase (front);
    stats_.played++;
    concealed_run_ = 0;
  } else if (front != queue_.end () && front->first > next_pts_ + kGapJump) {
    /* The sender was silent in between: what comes next is a talkspurt of
     * its own, played the target after it came (or now, if it waited
     * longer), whatever the sender's timestamps did meanwhile (an encoder
     * flushes its last frame with the old time when sound comes again). */
    a.kind = Kind::Conceal;
    a.duration = 0;
    next_pts_ = front->first;
    offset_ = std::max (front->second.transit + (gint64) stats_.target, (gint64) now - (gint64) front->first);
    stats_.talkspurts++;
    /* The frame before was of the old timeline: its transit time is not
     * jitter. The window starts again with what waits now. */
    transit_.clear ();
    for (auto &w : queue_)
      transit_.emplace_back (now, w.second.transit);
    last_transit_ = front->second.transit;
  } else {
    a.kind = Kind::Conceal;
    a.duration = frame_;
    next_pts_ += frame_;
    stats_.concealed++;
    if (queue_.empty () && ++concealed_run_ >= kTailFrames)
      active_ = false;   /* the talkspurt is over */
  }
  stats_.depth = queue_.empty () ? 0 : queue_.rbegin ()->first + frame_ - std::min (next_pts_, queue_.rbegin ()->first);
  return a;
}

}  // namespace wayray
