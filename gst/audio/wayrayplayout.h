/* The playout schedule of a received audio stream: when each packet is
 * played, what is concealed, and how the delay adapts to jitter and to the
 * drift between the sender's and this machine's audio clocks
 * (docs/audio.md, "The playout buffer"). No GStreamer clock here: the
 * element (gstwayrayplayout.cpp) gives the times, so the schedule is
 * tested with made-up ones.
 *
 * Times are nanoseconds. A packet's sender time is its PTS; a packet is
 * played at sender time + offset, where the offset is set when a
 * talkspurt starts (the first packet after silence) to that packet's
 * transit time plus the target delay. Each talkspurt measures its own
 * transit times (the sender's timestamps may start from another base
 * after a silence); it starts with the delay the last one's jitter
 * needed. Within a talkspurt packets are
 * expected back to back (each one's duration after the last):
 *   - a packet there on time is played;
 *   - a missing one is concealed (the decoder's loss concealment, or the
 *     forward error correction of the next packet);
 *   - one that comes after its time is dropped (late);
 *   - when nothing more comes, a few frames are concealed and the
 *     talkspurt ends: the next packet starts a new one.
 * Every second (and 100 ms after a packet came late) the schedule
 * compares how long packets wait with what the jitter of the last two
 * seconds needs (97 % of the packets in time): a frame is dropped when
 * they wait three frames more than needed; a frame is concealed
 * (inserted) when they wait less, and again 100 ms later while they do. That keeps the
 * delay small and absorbs clock drift.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <deque>
#include <map>

namespace wayray {

struct PlayoutStats {
  guint64 received = 0;        /* packets */
  guint64 played = 0;          /* packets played */
  guint64 late = 0;            /* packets that came after their time (dropped) */
  guint64 duplicates = 0;      /* packets received twice */
  guint64 concealed = 0;       /* frames concealed: lost, late or inserted */
  guint64 dropped = 0;         /* packets dropped to shrink the delay */
  guint64 inserted = 0;        /* frames concealed to grow the delay */
  guint64 talkspurts = 0;      /* starts after silence */
  guint64 jitter = 0;          /* interarrival jitter (RFC 3550), ns */
  guint64 target = 0;          /* the delay the schedule aims at, ns */
  guint64 depth = 0;           /* how much is waiting to be played, ns */
};

class Playout {
 public:
  /* @min_delay: the least delay after the fastest packet; @max_delay the
   * most; @frame: a packet's duration when it does not say. */
  Playout (guint64 min_delay, guint64 max_delay, guint64 frame);
  ~Playout ();
  Playout (const Playout &) = delete;
  Playout &operator= (const Playout &) = delete;

  void set_delays (guint64 min_delay, guint64 max_delay);

  /* A packet arrived at @now (takes @buf). */
  void push (GstBuffer *buf, guint64 now);

  enum class Kind { Packet, Conceal };
  struct Action {
    Kind kind = Kind::Conceal;
    GstBuffer *buffer = nullptr;   /* Packet: owned by the caller */
    guint64 time = 0;              /* when it plays */
    guint64 duration = 0;
  };
  /* When the next packet or concealment is due; GST_CLOCK_TIME_NONE while
   * no talkspurt goes on. */
  guint64 next_due () const;
  /* The action due at @now (call once next_due () <= now). */
  Action pop (guint64 now);

  /* Drops everything (a flush): the next packet starts a talkspurt. */
  void clear ();
  const PlayoutStats &stats () const { return stats_; }

 private:
  void start_talkspurt (guint64 pts, guint64 now);
  void adapt (guint64 now);
  guint64 window_spread () const;
  gint64 window_min () const;

  guint64 min_delay_, max_delay_, frame_;
  bool active_ = false;
  gint64 offset_ = 0;          /* play time - sender time */
  guint64 next_pts_ = 0;       /* the sender time of the next frame to play */
  guint concealed_run_ = 0;    /* frames concealed in a row with nothing waiting */
  struct Waiting {
    GstBuffer *buffer;
    gint64 transit;            /* its arrival - its sender time */
  };
  std::map<guint64, Waiting> queue_;
  /* Transit times (arrival - sender time) of the last two seconds. */
  std::deque<std::pair<guint64, gint64>> transit_;
  gint64 last_transit_ = 0;
  bool have_last_ = false;
  guint64 jitter_ = 0;
  guint64 spread_ = 0;         /* the jitter the delay covered lately */
  guint64 next_adapt_ = 0, last_adapt_ = 0;
  guint insert_ = 0;           /* frames still to insert (the delay grows) */
  PlayoutStats stats_;
};

}  // namespace wayray
