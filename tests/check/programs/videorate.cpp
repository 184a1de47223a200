/* The video rate controller (daemon/wrvideorate): the bitrate follows the
 * video regions' area and the link, down within a second of a queue
 * building up and back up when it drains.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "wrvideorate.h"

using wayray::RateControl;
using wayray::RateInput;

static RateInput
frames (int w, int h, uint64_t queue, uint64_t rate)
{
  RateInput in;
  in.width = w;
  in.height = h;
  in.fps = 30;
  in.send_queue_bytes = queue;
  in.delivery_rate = rate;
  return in;
}

GST_START_TEST (test_need_follows_area)
{
  RateControl small, full;
  /* a 256x256 animation needs far less than a full 1280x720 video */
  uint64_t s = small.step (frames (256, 256, 0, 0));
  uint64_t f = full.step (frames (1280, 720, 0, 0));
  fail_unless_equals_uint64 (s, (uint64_t) (256 * 256 * 30 * RateControl::kBitsPerPixel));
  fail_unless_equals_uint64 (f, (uint64_t) (1280 * 720 * 30 * RateControl::kBitsPerPixel));
  fail_unless (f > 10 * s);
  /* bounded both ways */
  RateControl tiny, huge;
  fail_unless_equals_uint64 (tiny.step (frames (16, 16, 0, 0)), RateControl::kMin);
  fail_unless_equals_uint64 (huge.step (frames (7680, 4320, 0, 0)), RateControl::kMax);
  /* the region shrinks: the target follows at once */
  fail_unless_equals_uint64 (full.step (frames (256, 256, 0, 0)), s);
}
GST_END_TEST;

GST_START_TEST (test_congestion_down_and_up)
{
  /* (768x480 at 30 fps: a video that needs 2.8 Mbit/s) */
  RateControl rc;
  const uint64_t need = rc.step (frames (768, 480, 0, 0));
  /* a 2 Mbit/s link (250 kB/s delivered) with a growing queue: within four
   * steps (one second) the target is under the link's rate */
  int steps = 0;
  while (rc.target () > 2000000 && steps < 20) {
    rc.step (frames (768, 480, 100000, 250000));
    steps++;
  }
  fail_unless (steps <= 4, "%d steps to get under the link", steps);
  fail_unless_equals_string (rc.reason (), "congestion: queue");
  /* one congestion, one cut, then a hold: a queue that lasts a second
   * (while it drains) does not take the target to the floor */
  for (int i = steps; i < 4; i++)
    rc.step (frames (768, 480, 100000, 250000));
  fail_unless (rc.target () >= 900000, "%" G_GUINT64_FORMAT " after a second of one congestion", rc.target ());
  /* a queue of 50 ms neither lowers nor raises */
  uint64_t held = rc.target ();
  rc.step (frames (768, 480, 12500, 250000));
  fail_unless_equals_uint64 (rc.target (), held);
  /* the cap is lifted: the queue drains, the target climbs back to the need */
  steps = 0;
  while (rc.target () < need && steps < 100) {
    rc.step (frames (768, 480, 0, 2000000));
    steps++;
  }
  fail_unless_equals_uint64 (rc.target (), need);
  fail_unless (steps <= 40, "%d steps back up", steps);
  fail_unless_equals_string (rc.reason (), "need");
}
GST_END_TEST;

GST_START_TEST (test_loss_and_window)
{
  RateControl rc;
  const uint64_t need = rc.step (frames (768, 480, 0, 0));
  /* packets lost since the last step: down, even with an empty queue */
  RateInput in = frames (768, 480, 0, 200000);
  in.lost_packets = 3;
  rc.step (in);
  fail_unless (rc.target () < need);
  fail_unless_equals_string (rc.reason (), "congestion: loss");
  /* the same count again is no new loss; a full window is congestion,
   * which cuts again once the hold after the first cut is over (a round
   * trip and 250 ms, at least two steps) */
  uint64_t after_loss = rc.target ();
  in.bytes_in_flight = 95000;
  in.cwnd = 100000;
  in.rtt_ns = 50000000;
  rc.step (in);
  fail_unless_equals_uint64 (rc.target (), after_loss);
  fail_unless_equals_string (rc.reason (), "congestion: window");
  rc.step (in);
  fail_unless (rc.target () < after_loss);
  /* neither: back up */
  uint64_t low = rc.target ();
  in.bytes_in_flight = 10000;
  rc.step (in);
  fail_unless (rc.target () > low);
}
GST_END_TEST;

GST_START_TEST (test_dropped_groups)
{
  /* the transport reset groups of pictures as stale: that is congestion
   * even when nothing else shows it (the sender's queue is bounded and
   * the bottleneck's delay held low) */
  RateControl rc;
  const uint64_t need = rc.step (frames (768, 480, 0, 0));
  RateInput in = frames (768, 480, 0, 200000);
  in.groups_dropped = 2;
  rc.step (in);
  fail_unless (rc.target () < need);
  fail_unless_equals_string (rc.reason (), "congestion: dropped");
  /* no new drops: back up */
  for (int i = 0; i < 4; i++)
    rc.step (in);
  fail_unless_equals_string (rc.reason (), "probing");
}
GST_END_TEST;

GST_START_TEST (test_queueing_delay)
{
  /* A bottleneck's queue shows as a round trip far above its minimum
   * (2 ms here), before anything is lost: down within two seconds (a cut
   * for delay waits 500 ms for the queue behind it to drain before the
   * next), and not back up while the delay lasts. */
  RateControl rc;
  const uint64_t need = rc.step (frames (768, 480, 0, 0));
  RateInput in = frames (768, 480, 0, 0);
  in.min_rtt_ns = 2000000;
  in.rtt_ns = 150000000;
  int steps = 0;
  while (rc.target () > 1500000 && steps < 20) {
    rc.step (in);
    steps++;
  }
  fail_unless (steps <= 8, "%d steps", steps);
  fail_unless_equals_string (rc.reason (), "congestion: delay");
  /* 20 ms of delay (what the transport keeps queued at its own
   * bottleneck): neither down nor up */
  in.rtt_ns = 22000000;
  uint64_t held = rc.target ();
  rc.step (in);
  fail_unless_equals_uint64 (rc.target (), held);
  /* the queue drained: up slowly for 10 s after the congestion (2 % a
   * step), then quickly, to the need */
  in.rtt_ns = 3000000;
  uint64_t before = rc.target ();
  rc.step (in);
  fail_unless (rc.target () > before && rc.target () <= before * 1.03, "%" G_GUINT64_FORMAT, rc.target ());
  for (int i = 0; i < 80; i++)
    rc.step (in);
  fail_unless_equals_uint64 (rc.target (), need);
}
GST_END_TEST;

GST_START_TEST (test_quiet_link_is_not_its_capacity)
{
  /* A picture that sent little (50 kbit/s delivered, nothing waiting),
   * then a burst (a window opening) fills the congestion window: a cut,
   * but from the target, not to 70 % of the quiet picture's 50 kbit/s. */
  RateControl rc;
  const uint64_t need = rc.step (frames (1280, 720, 0, 0));
  RateInput quiet = frames (1280, 720, 0, 6250);
  rc.step (quiet);
  fail_unless_equals_uint64 (rc.target (), need);
  RateInput burst = frames (1280, 720, 800000, 6250);
  burst.bytes_in_flight = burst.cwnd = 120000;
  rc.step (burst);
  fail_unless_equals_string (rc.reason (), "congestion: window");
  fail_unless_equals_uint64 (rc.target (), (uint64_t) (need * RateControl::kCut));
  /* still limited a step later: now the rate delivered was measured with a
   * backlog, and it bounds the next cut */
  burst.delivery_rate = 100000;
  for (int i = 0; i < 3; i++)
    rc.step (burst);
  fail_unless (rc.target () <= 800000 * RateControl::kCut + 1, "%" G_GUINT64_FORMAT, rc.target ());
}
GST_END_TEST;

GST_START_TEST (test_one_key_frame_is_not_a_queue)
{
  /* A key frame of 14 kB caught on its way out of a quiet link (80 kB/s
   * delivered: 0.17 s of it) is no congestion; the same queue a step
   * later is (and one that follows a backlog at once: the cap tests
   * above). */
  RateControl rc;
  const uint64_t need = rc.step (frames (1280, 720, 0, 0));
  rc.step (frames (1280, 720, 14000, 80000));
  fail_unless_equals_uint64 (rc.target (), need);
  rc.step (frames (1280, 720, 0, 80000));
  rc.step (frames (1280, 720, 14000, 80000));
  fail_unless_equals_uint64 (rc.target (), need);
  rc.step (frames (1280, 720, 14000, 80000));
  fail_unless (rc.target () < need);
  fail_unless_equals_string (rc.reason (), "congestion: queue");
}
GST_END_TEST;

GST_START_TEST (test_no_video)
{
  RateControl rc;
  fail_unless_equals_uint64 (rc.step (frames (0, 0, 0, 0)), 0);
  fail_unless_equals_string (rc.reason (), "no video");
}
GST_END_TEST;

static Suite *
videorate_suite (void)
{
  Suite *s = suite_create ("videorate");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_need_follows_area);
  tcase_add_test (tc, test_congestion_down_and_up);
  tcase_add_test (tc, test_loss_and_window);
  tcase_add_test (tc, test_queueing_delay);
  tcase_add_test (tc, test_dropped_groups);
  tcase_add_test (tc, test_quiet_link_is_not_its_capacity);
  tcase_add_test (tc, test_one_key_frame_is_not_a_queue);
  tcase_add_test (tc, test_no_video);
  return s;
}

GST_CHECK_MAIN (videorate);
