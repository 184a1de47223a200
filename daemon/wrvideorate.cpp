/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "wrvideorate.h"

#include <algorithm>

GST_DEBUG_CATEGORY_STATIC (wr_videorate_debug);
#define GST_CAT_DEFAULT wr_videorate_debug

namespace wayray {

uint64_t
RateControl::step (const RateInput & in)
{
  if (in.width <= 0 || in.height <= 0) {
    reason_ = "no video";
    return target_;
  }
  double need = (double) in.width * in.height * std::max (1.0, in.fps) * kBitsPerPixel;
  need_ = std::min<uint64_t> (kMax, std::max<uint64_t> (kMin, (uint64_t) need));
  if (target_ == 0)
    target_ = need_;
  /* How long the video's bytes not yet sent take at what the link
   * delivers (those in flight are the congestion window's business; the
   * display's own queue is bounded by the transport and waits there by
   * design). Without the video's own figure, everything unsent. */
  uint64_t unsent = in.video_unsent != UINT64_MAX ? in.video_unsent :
      in.send_queue_bytes > in.bytes_in_flight ? in.send_queue_bytes - in.bytes_in_flight : 0;
  double queued_s = in.delivery_rate ? (double) unsent / in.delivery_rate : (unsent > 0 ? 1.0 : 0.0);
  bool lost = in.lost_packets > lost_;
  lost_ = std::max (lost_, in.lost_packets);
  /* Video the transport threw away as stale: encoded for nothing. */
  bool dropped = in.groups_dropped > dropped_;
  dropped_ = std::max (dropped_, in.groups_dropped);
  bool cwnd_limited = in.cwnd > 0 && in.bytes_in_flight * 10 >= in.cwnd * 9;
  /* What the link delivered is its capacity only while the sender had more
   * than it took (a backlog in the step before): otherwise it is merely
   * what was sent, and a cut to it takes a quiet picture's 50 kbit/s for
   * the link's. A queue counts when it follows a backlog or lasts two
   * steps: one key frame caught on its way out of a quiet link is not
   * congestion. */
  const bool link_known = backlog_;
  backlog_ = queued_s > 0.02 || cwnd_limited;
  const bool queued = queued_s > 0.1 && (queued_before_ || link_known);
  queued_before_ = queued_s > 0.1;
  /* Queueing delay: what the round trip has gained over its minimum. The
   * transport lets display and video queue about kMediaQueueDelay at a
   * bottleneck (gstquicsend.cpp); more than that and 30 ms is someone
   * else's queue, or ours growing. */
  double delay_s = in.min_rtt_ns && in.rtt_ns > in.min_rtt_ns ? (in.rtt_ns - in.min_rtt_ns) / 1e9 : 0;
  bool delayed = in.min_rtt_ns && delay_s > std::max (kMediaQueueDelay + 0.03, in.min_rtt_ns / 1e9);
  bool congestion = delayed || queued || dropped || lost || cwnd_limited;
  const char *why = delayed ? "congestion: delay" : queued ? "congestion: queue" : dropped ?
      "congestion: dropped" : lost ? "congestion: loss" : "congestion: window";
  if (hold_ > 0)
    hold_--;
  if (congestion && hold_ == 0) {
    /* Under what the link delivers, with room for the queue to drain. One
     * cut, then a hold: the signals of one congestion (the queue behind
     * it draining, losses found a round trip later) do not cut again
     * until a round trip and 250 ms have passed. */
    uint64_t link = link_known ? in.delivery_rate * 8 : 0;
    uint64_t base = link ? std::min (target_, link) : target_;
    target_ = (uint64_t) (base * kCut);
    recent_ = 40;
    double rtt_s = in.rtt_ns ? in.rtt_ns / 1e9 : 0.1;
    hold_ = std::max (2, (int) ((rtt_s + 0.25) / kStepSeconds + 0.999));
    reason_ = why;
  } else if (congestion) {
    reason_ = why;                    /* holding while the queue drains */
  } else if (queued_s < 0.02 && delay_s < 0.015 && target_ < need_) {
    /* Carefully just after a congestion (2 % a step for 3 s), so that it
     * settles under a bottleneck instead of swinging across it; then 5 %
     * until 10 s have passed; then quickly. Between 15 ms of delay and
     * congestion it holds: at its own bottleneck the transport keeps
     * about kMediaQueueDelay queued there by design. */
    double up = recent_ > 28 ? 1.02 : recent_ > 0 ? 1.05 : 1.15;
    target_ = std::min (need_, (uint64_t) (target_ * up) + 1);
    reason_ = target_ == need_ ? "need" : "probing";
  } else if (target_ > need_) {
    target_ = need_;
    reason_ = "need";
  }
  if (!congestion && recent_ > 0)
    recent_--;
  target_ = std::max (kMin, std::min (target_, need_));
  return target_;
}

bool
VideoRate::start (GstElement * pipeline)
{
  if (!wr_videorate_debug)
    GST_DEBUG_CATEGORY_INIT (wr_videorate_debug, "wayray-videorate", 0, "WayRay video bitrate");
  enc_ = gst_bin_get_by_name (GST_BIN (pipeline), "venc");
  net_ = gst_bin_get_by_name (GST_BIN (pipeline), "net");
  if (!enc_ || !net_ || !g_object_class_find_property (G_OBJECT_GET_CLASS (enc_), "bitrate")) {
    stop ();
    return false;
  }
  GstElementFactory *f = gst_element_get_factory (enc_);
  bits_ = f && g_strcmp0 (GST_OBJECT_NAME (f), "openh264enc") == 0;
  GstPad *sink = gst_element_get_static_pad (enc_, "sink");
  if (sink) {
    probe_ = gst_pad_add_probe (sink, GST_PAD_PROBE_TYPE_BUFFER, [] (GstPad *, GstPadProbeInfo *,
            gpointer data) -> GstPadProbeReturn {
          static_cast<std::atomic<uint64_t> *> (data)->fetch_add (1);
          return GST_PAD_PROBE_OK;
        }, &frames_, nullptr);
    gst_object_unref (sink);
  }
  last_tick_us_ = g_get_monotonic_time ();
  timer_ = g_timeout_add (250, [] (gpointer data) -> gboolean {
        static_cast<VideoRate *> (data)->tick ();
        return G_SOURCE_CONTINUE;
      }, this);
  return true;
}

void
VideoRate::stop ()
{
  if (timer_)
    g_source_remove (timer_);
  timer_ = 0;
  if (probe_ && enc_) {
    GstPad *sink = gst_element_get_static_pad (enc_, "sink");
    if (sink) {
      gst_pad_remove_probe (sink, probe_);
      gst_object_unref (sink);
    }
  }
  probe_ = 0;
  gst_clear_object (&enc_);
  gst_clear_object (&net_);
}

void
VideoRate::tick ()
{
  RateInput in;
  GstPad *sink = gst_element_get_static_pad (enc_, "sink");
  GstCaps *caps = sink ? gst_pad_get_current_caps (sink) : nullptr;
  if (caps) {
    GstStructure *s = gst_caps_get_structure (caps, 0);
    gint n = 0, d = 1;
    gst_structure_get_int (s, "width", &in.width);
    gst_structure_get_int (s, "height", &in.height);
    if (gst_structure_get_fraction (s, "framerate", &n, &d) && n > 0 && d > 0)
      in.fps = (double) n / d;
    gst_caps_unref (caps);
  }
  if (sink)
    gst_object_unref (sink);
  /* The frame rate the encoder really gets (a 30 fps video in a 60 Hz
   * session), smoothed; at most the caps' rate, at least 5. */
  gint64 now = g_get_monotonic_time ();
  uint64_t n = frames_.load ();
  double dt = (now - last_tick_us_) / 1e6;
  if (dt > 0.05) {
    double measured = (n - frames_seen_) / dt;
    fps_ = fps_ <= 0 ? measured : 0.7 * fps_ + 0.3 * measured;
    frames_seen_ = n;
    last_tick_us_ = now;
  }
  if (fps_ > 0)
    in.fps = std::max (5.0, std::min (in.fps, fps_));
  GstStructure *st = nullptr;
  g_object_get (net_, "stats", &st, nullptr);
  if (st) {
    guint64 v = 0;
    if (gst_structure_get_uint64 (st, "send-queue-bytes", &v))
      in.send_queue_bytes = v;
    if (gst_structure_get_uint64 (st, "video-unsent-bytes", &v))
      in.video_unsent = v;
    /* What the link delivered lately, not the transport's estimate of its
     * best (which stays high for seconds after the link slows down). */
    if (gst_structure_get_uint64 (st, "acked-rate", &v) || gst_structure_get_uint64 (st, "delivery-rate", &v))
      in.delivery_rate = v;
    if (gst_structure_get_uint64 (st, "lost-packets", &v))
      in.lost_packets = v;
    if (gst_structure_get_uint64 (st, "bytes-in-flight", &v))
      in.bytes_in_flight = v;
    if (gst_structure_get_uint64 (st, "cwnd", &v))
      in.cwnd = v;
    if (gst_structure_get_uint64 (st, "smoothed-rtt", &v))
      in.rtt_ns = v;
    if (gst_structure_get_uint64 (st, "min-rtt", &v))
      in.min_rtt_ns = v;
    gst_structure_free (st);
  }
  guint64 resets = 0;
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (net_), "gops-reset")) {
    g_object_get (net_, "gops-reset", &resets, nullptr);
    in.groups_dropped = resets;
  }
  uint64_t t = rc_.step (in);
  if (t == 0)
    return;
  /* Small changes are not worth an encoder reconfiguration. */
  if (applied_ && t * 20 > applied_ * 19 && t * 20 < applied_ * 21)
    return;
  GST_INFO ("bitrate %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " kbit/s (%s): need %" G_GUINT64_FORMAT
      ", delivered %" G_GUINT64_FORMAT " kbit/s, rtt %.0f ms (min %.0f), queue %" G_GUINT64_FORMAT
      ", in flight %" G_GUINT64_FORMAT ", cwnd %" G_GUINT64_FORMAT ", lost %" G_GUINT64_FORMAT, applied_ / 1000,
      t / 1000, rc_.reason (), rc_.need () / 1000, in.delivery_rate * 8 / 1000, in.rtt_ns / 1e6, in.min_rtt_ns / 1e6,
      in.send_queue_bytes, in.bytes_in_flight, in.cwnd, in.lost_packets);
  applied_ = t;
  changes_++;
  g_object_set (enc_, "bitrate", (guint) (bits_ ? t : std::max<uint64_t> (1, t / 1000)), nullptr);
}

std::string
VideoRate::stats () const
{
  if (!enc_)
    return "";
  gchar *s = g_strdup_printf ("wayray-video-rate, bitrate=(guint64)%" G_GUINT64_FORMAT ", need=(guint64)%"
      G_GUINT64_FORMAT ", reason=(string)\"%s\", changes=(guint64)%" G_GUINT64_FORMAT ";", applied_, rc_.need (),
      rc_.reason (), changes_);
  std::string out = s;
  g_free (s);
  return out;
}

}  // namespace wayray
