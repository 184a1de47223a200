/* The playout schedule (gst/audio/wayrayplayout.h) with made-up times:
 * what is played when, what is concealed, how the delay follows jitter
 * and clock drift.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "wayrayplayout.h"

#include <algorithm>
#include <random>
#include <vector>

using wayray::Playout;

static constexpr guint64 MS = GST_MSECOND;
static constexpr guint64 FRAME = 10 * MS;

static GstBuffer *
packet (guint64 pts, guint8 tag = 0)
{
  GstBuffer *b = gst_buffer_new_memdup (&tag, 1);
  GST_BUFFER_PTS (b) = pts;
  GST_BUFFER_DURATION (b) = FRAME;
  return b;
}

struct Played {
  bool packet;
  guint64 time, sender_pts;
};

/* Runs the schedule until @until: arrivals (time, pts) in order of time;
 * returns what it did, in order. */
static std::vector<Played>
run (Playout & p, std::vector<std::pair<guint64, guint64>> arrivals, guint64 until)
{
  std::vector<Played> out;
  size_t next = 0;
  for (guint64 now = 0; now <= until; now += MS / 4) {
    while (next < arrivals.size () && arrivals[next].first <= now) {
      p.push (packet (arrivals[next].second), now);
      next++;
    }
    while (GST_CLOCK_TIME_IS_VALID (p.next_due ()) && p.next_due () <= now) {
      Playout::Action a = p.pop (now);
      if (a.kind == Playout::Kind::Packet) {
        out.push_back ({true, a.time, GST_BUFFER_PTS (a.buffer)});
        gst_buffer_unref (a.buffer);
      } else if (a.duration > 0) {
        out.push_back ({false, a.time, 0});
      }
    }
  }
  return out;
}

GST_START_TEST (test_in_order)
{
  Playout p (20 * MS, 200 * MS, FRAME);
  std::vector<std::pair<guint64, guint64>> arr;
  /* Sent every 10 ms from sender time 5 s, 3 ms on the way. */
  for (int i = 0; i < 100; i++)
    arr.push_back ({100 * MS + i * FRAME + 3 * MS, 5 * GST_SECOND + i * FRAME});
  auto out = run (p, arr, 2 * GST_SECOND);
  int packets = 0;
  for (size_t i = 0; i < out.size (); i++) {
    if (!out[i].packet)
      continue;
    /* Each played 20 ms after it came, back to back. */
    fail_unless_equals_uint64 (out[i].sender_pts, 5 * GST_SECOND + packets * FRAME);
    fail_unless_equals_uint64 (out[i].time, 123 * MS + packets * FRAME);
    packets++;
  }
  fail_unless_equals_int (packets, 100);
  /* Only the talkspurt's tail is concealed after the last packet. */
  fail_unless_equals_uint64 (p.stats ().late, 0);
  fail_unless (p.stats ().concealed <= 5);
  fail_unless_equals_uint64 (p.stats ().talkspurts, 1);
}
GST_END_TEST;

GST_START_TEST (test_loss_concealed)
{
  Playout p (20 * MS, 200 * MS, FRAME);
  std::vector<std::pair<guint64, guint64>> arr;
  for (int i = 0; i < 50; i++)
    if (i != 20 && i != 21)
      arr.push_back ({i * FRAME + 1 * MS, i * FRAME});
  auto out = run (p, arr, 520 * MS);
  /* Slots 20 and 21 are concealed in their place, the rest played. */
  fail_unless (out.size () >= 50);
  for (int i = 0; i < 50; i++) {
    fail_unless_equals_int (out[i].packet, i != 20 && i != 21);
    fail_unless_equals_uint64 (out[i].time, i * FRAME + 21 * MS);
  }
  fail_unless_equals_uint64 (p.stats ().played, 48);
}
GST_END_TEST;

GST_START_TEST (test_reordered_and_late)
{
  Playout p (20 * MS, 200 * MS, FRAME);
  std::vector<std::pair<guint64, guint64>> arr;
  for (int i = 0; i < 30; i++)
    arr.push_back ({i * FRAME, i * FRAME});
  /* 10 and 11 swapped (both within the delay); 15 comes 60 ms late. */
  std::swap (arr[10].second, arr[11].second);
  arr[15].first += 60 * MS;
  std::sort (arr.begin (), arr.end ());
  auto out = run (p, arr, 290 * MS);
  fail_unless (out[10].packet && out[10].sender_pts == 10 * FRAME);
  fail_unless (out[11].packet && out[11].sender_pts == 11 * FRAME);
  fail_if (out[15].packet);
  fail_unless (out[16].packet && out[16].sender_pts == 16 * FRAME);
  fail_unless_equals_uint64 (p.stats ().late, 1);
}
GST_END_TEST;

/* Jitter of up to 40 ms: after a second the delay covers it, and nothing
 * more is late. */
GST_START_TEST (test_delay_follows_jitter)
{
  Playout p (20 * MS, 200 * MS, FRAME);
  std::mt19937 rng (7);
  std::uniform_int_distribution<int> jitter (0, 40);
  std::vector<std::pair<guint64, guint64>> arr;
  for (int i = 0; i < 600; i++)
    arr.push_back ({i * FRAME + jitter (rng) * MS, i * FRAME});
  std::sort (arr.begin (), arr.end ());
  auto out = run (p, arr, 6 * GST_SECOND - 300 * MS);
  fail_unless (p.stats ().target >= 40 * MS, "target %" G_GUINT64_FORMAT, p.stats ().target);
  fail_unless (p.stats ().target <= 50 * MS);
  fail_unless (p.stats ().inserted >= 1);
  /* After the first two seconds: every packet played. */
  int late_after = 0;
  for (auto &o : out)
    if (!o.packet && o.time > 2 * GST_SECOND && o.time < 5 * GST_SECOND)
      late_after++;
  fail_unless_equals_int (late_after, 0);
}
GST_END_TEST;

/* The sender's clock 0.5 % fast or slow against ours: the delay stays
 * within a frame and a half of its target, by dropping or inserting a
 * frame now and then. */
static void
drift (double ratio, bool fast)
{
  Playout p (20 * MS, 200 * MS, FRAME);
  std::vector<std::pair<guint64, guint64>> arr;
  for (int i = 0; i < 3000; i++)
    arr.push_back ({(guint64) (i * FRAME * ratio) + 2 * MS, i * FRAME});
  run (p, arr, (guint64) (30 * GST_SECOND * ratio));
  const wayray::PlayoutStats &s = p.stats ();
  if (fast) {
    /* 30 s at 0.5 %: 150 ms too much, 15 frames to drop. */
    fail_unless (s.dropped >= 12 && s.dropped <= 18, "dropped %" G_GUINT64_FORMAT, s.dropped);
  } else {
    fail_unless (s.inserted >= 12 && s.inserted <= 18, "inserted %" G_GUINT64_FORMAT, s.inserted);
  }
  fail_unless_equals_uint64 (s.talkspurts, 1);
}

GST_START_TEST (test_drift_fast_sender)
{
  drift (0.995, true);
}
GST_END_TEST;

GST_START_TEST (test_drift_slow_sender)
{
  drift (1.005, false);
}
GST_END_TEST;

/* Silence in between (the sender's gate): a new talkspurt, no
 * concealment through the silence. */
GST_START_TEST (test_talkspurts)
{
  Playout p (20 * MS, 200 * MS, FRAME);
  std::vector<std::pair<guint64, guint64>> arr;
  for (int i = 0; i < 20; i++)
    arr.push_back ({i * FRAME, i * FRAME});
  for (int i = 0; i < 20; i++)
    arr.push_back ({GST_SECOND + i * FRAME, GST_SECOND + i * FRAME});
  auto out = run (p, arr, 2 * GST_SECOND);
  fail_unless_equals_uint64 (p.stats ().talkspurts, 2);
  fail_unless_equals_uint64 (p.stats ().played, 40);
  int concealed = 0;
  for (auto &o : out)
    concealed += !o.packet;
  fail_unless (concealed <= 10);
}
GST_END_TEST;

/* After a silence the sender's encoder flushes its last frame with its
 * old time, then the new sound comes with the new time: the new sound is
 * played the delay after it came (and the old frame, a frame before it),
 * not the silence's length later. */
GST_START_TEST (test_stale_frame_before_new_sound)
{
  Playout p (20 * MS, 200 * MS, FRAME);
  std::vector<std::pair<guint64, guint64>> arr;
  for (int i = 0; i < 10; i++)
    arr.push_back ({i * FRAME, i * FRAME});
  /* 500 ms later: the old frame (sender time 100 ms), then the new sound
   * from sender time 600 ms, all arriving at 600 ms. */
  arr.push_back ({600 * MS, 100 * MS});
  /* A sound long enough for the delay to be looked at again... */
  for (int i = 0; i < 150; i++)
    arr.push_back ({600 * MS + i * FRAME, 600 * MS + i * FRAME});
  /* ... and the next after a silence: the old frame's time was not taken
   * for jitter. */
  arr.push_back ({2600 * MS, 2100 * MS});
  for (int i = 0; i < 10; i++)
    arr.push_back ({2600 * MS + i * FRAME, 2600 * MS + i * FRAME});
  std::sort (arr.begin (), arr.end ());
  auto out = run (p, arr, 3 * GST_SECOND);
  int found = 0;
  for (auto &o : out)
    for (guint64 start : { 600 * MS, 2600 * MS })
      if (o.packet && o.sender_pts == start) {
        found++;
        fail_unless (o.time <= start + 31 * MS, "the new sound plays at %" GST_TIME_FORMAT, GST_TIME_ARGS (o.time));
      }
  fail_unless_equals_int (found, 2);
}
GST_END_TEST;

static Suite *
playout_suite (void)
{
  Suite *s = suite_create ("playout");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_in_order);
  tcase_add_test (tc, test_loss_concealed);
  tcase_add_test (tc, test_reordered_and_late);
  tcase_add_test (tc, test_delay_follows_jitter);
  tcase_add_test (tc, test_drift_fast_sender);
  tcase_add_test (tc, test_drift_slow_sender);
  tcase_add_test (tc, test_talkspurts);
  tcase_add_test (tc, test_stale_frame_before_new_sound);
  return s;
}

GST_CHECK_MAIN (playout);
