/* Quality of the video path: the default server pipeline's tile and video
 * branches and the default client pipeline's decoders, joined without a
 * network, fed a 1280x720 30 fps moving picture for 10 s. The
 * H.264 encoder is the one wayrayd would pick, at the bitrate the session's
 * rate controller gives an unconstrained link (wrvideorate: the atlas'
 * pixels per second x 0.25 bit). For every video frame: the luma PSNR of
 * the decoded frame against the frame the encoder got (matched by running
 * time; the rest of the client's picture is lossless, so this is the
 * quality of what the client shows from video); bytes of the tile
 * messages and of the H.264 stream; frames that went through the video
 * encoder. Content: a zone plate changing every frame (not a translation,
 * which the classifier leaves to the lossless path as a move), with and
 * without a 160x120 block of noise.
 *
 * Run: ./dev bench video-quality (or build/bench/tiles/bench-video-quality
 * [SECONDS]); the plugins are found through GST_PLUGIN_PATH (bench/run).
 * To compare settings: WAYRAY_BENCH_ENCODER="x264enc ..." replaces the
 * encoder, WAYRAY_BENCH_RATE_FACTOR=2 doubles the bitrate,
 * WAYRAY_BENCH_DEBUG=1 prints the tiler's statistics.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcodecs.h"
#include "wrvideorate.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

struct Run {
  std::mutex lock;
  /* the encoder's input (the atlas the tiler sends) and the decoder's
   * output, by timestamp */
  std::map<GstClockTime, std::vector<uint8_t>> sent, decoded;
  uint64_t tile_bytes = 0, video_bytes = 0, video_frames = 0;
  GstElement *enc = nullptr;
  uint64_t bitrate = 0;
};

static GstPadProbeReturn
keep_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  auto *where = static_cast<std::pair<Run *, bool> *> (data);
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  /* By running time: encoders may shift timestamps and segment alike
   * (x264enc adds 1000 hours). */
  GstClockTime t = GST_BUFFER_PTS (b);
  GstEvent *seg = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0);
  if (seg) {
    const GstSegment *sg;
    gst_event_parse_segment (seg, &sg);
    t = gst_segment_to_running_time (sg, GST_FORMAT_TIME, t);
    gst_event_unref (seg);
  }
  GstMapInfo m;
  if (gst_buffer_map (b, &m, GST_MAP_READ)) {
    std::lock_guard<std::mutex> g (where->first->lock);
    (where->second ? where->first->decoded : where->first->sent)[t].assign (m.data, m.data + m.size);
    gst_buffer_unmap (b, &m);
  }
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
count_bytes (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  uint64_t *n = static_cast<uint64_t *> (data);
  *n += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
count_frames (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (*static_cast<uint64_t *> (data))++;
  return GST_PAD_PROBE_OK;
}

/* The encoder's input size is the atlas: give it the controller's need. */
static GstPadProbeReturn
on_encoder_caps (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Run *r = static_cast<Run *> (data);
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (ev) != GST_EVENT_CAPS)
    return GST_PAD_PROBE_OK;
  GstCaps *caps;
  gst_event_parse_caps (ev, &caps);
  GstStructure *st = gst_caps_get_structure (caps, 0);
  wayray::RateInput in;
  gint n = 30, d = 1;
  gst_structure_get_int (st, "width", &in.width);
  gst_structure_get_int (st, "height", &in.height);
  if (gst_structure_get_fraction (st, "framerate", &n, &d) && n > 0)
    in.fps = (double) n / d;
  wayray::RateControl rc;
  r->bitrate = rc.step (in);
  if (g_getenv ("WAYRAY_BENCH_RATE_FACTOR"))
    r->bitrate = (uint64_t) (r->bitrate * g_ascii_strtod (g_getenv ("WAYRAY_BENCH_RATE_FACTOR"), nullptr));
  GstElementFactory *f = gst_element_get_factory (r->enc);
  bool bits = f && g_strcmp0 (GST_OBJECT_NAME (f), "openh264enc") == 0;
  g_object_set (r->enc, "bitrate", (guint) (bits ? r->bitrate : r->bitrate / 1000), nullptr);
  return GST_PAD_PROBE_OK;
}

/* PSNR of two BGRx pictures of the same size: luma, and chroma (Cb and Cr
 * together), with BT.601 weights. */
struct Psnr {
  double luma = 0, chroma = 0;
};

static double
to_db (double se, size_t n)
{
  double mse = n ? se / n : 0;
  return mse <= 1e-10 ? 99.0 : 10.0 * std::log10 (255.0 * 255.0 / mse);
}

static Psnr
psnr_of (const std::vector<uint8_t> &a, const std::vector<uint8_t> &b)
{
  double se_y = 0, se_c = 0;
  size_t n = std::min (a.size (), b.size ()) / 4;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = &a[i * 4], *q = &b[i * 4];
    double db = (double) p[0] - q[0], dg = (double) p[1] - q[1], dr = (double) p[2] - q[2];
    double dy = 0.114 * db + 0.587 * dg + 0.299 * dr;
    double dcb = -0.169 * dr - 0.331 * dg + 0.5 * db;
    double dcr = 0.5 * dr - 0.419 * dg - 0.081 * db;
    se_y += dy * dy;
    se_c += dcb * dcb + dcr * dcr;
  }
  return { to_db (se_y, n), to_db (se_c, 2 * n) };
}

struct Result {
  double median = 0, low = 0, min = 0, chroma = 0;
  size_t compared = 0;
  uint64_t bitrate = 0, video_frames = 0;
  double video_mb = 0, tile_mb = 0;
};

/* The moving pictures measured: none is a translation (which the
 * classifier leaves to the lossless path as a move). */
struct Content {
  const char *name;
  const char *source;           /* BGRx 1280x720 30 fps, %1$d: frames */
};

static const Content kContents[] = {
  { "zone plate (moving)",
    "videotestsrc pattern=zone-plate kx2=20 ky2=20 kt=1 num-buffers=%1$d" },
  /* Worst case for any codec. */
  { "zone plate + 160x120 noise block",
    "compositor name=mix sink_1::xpos=560 sink_1::ypos=300 "
    "videotestsrc pattern=zone-plate kx2=20 ky2=20 kt=1 num-buffers=%1$d "
    "! video/x-raw,format=BGRx,width=1280,height=720,framerate=30/1 ! mix.sink_0 "
    "videotestsrc pattern=snow num-buffers=%1$d ! video/x-raw,format=BGRx,width=160,height=120,framerate=30/1 "
    "! mix.sink_1 mix." },
  /* What `./dev bench content` plays as its full-screen video: moving
   * bars with a block of noise. */
  { "moving bars + 160x120 noise block",
    "compositor name=mix sink_1::xpos=560 sink_1::ypos=300 "
    "videotestsrc pattern=smpte horizontal-speed=3 num-buffers=%1$d "
    "! video/x-raw,format=BGRx,width=1280,height=720,framerate=30/1 ! mix.sink_0 "
    "videotestsrc pattern=snow num-buffers=%1$d ! video/x-raw,format=BGRx,width=160,height=120,framerate=30/1 "
    "! mix.sink_1 mix." },
  /* Coloured text on moving pictures (captions, a page with an animation
   * under it): what 4:2:0 smears. */
  { "coloured text on a zone plate",
    "videotestsrc pattern=zone-plate kx2=20 ky2=20 kt=1 num-buffers=%1$d "
    "! video/x-raw,width=1280,height=720,framerate=30/1 ! timeoverlay font-desc=\"Sans 28\" color=0xffff3030 "
    "valignment=top halignment=left ! textoverlay font-desc=\"Serif 22\" color=0xff3060ff valignment=center "
    "text=\"The quick brown fox jumps over the lazy dog: coloured text at 4:2:0 and 4:4:4\" "
    "! textoverlay font-desc=\"Sans 16\" color=0xff20c020 valignment=bottom "
    "text=\"green on bars, 16 points, the size of a toolbar label\" ! videoconvert" },
};

static bool
measure (const wayray::CodecChoice &enc, const wayray::CodecChoice &dec, int seconds, const Content &content,
    const char *chroma, Result &out)
{
  int frames = seconds * 30;
  /* 4:2:0 or 4:4:4 into the encoder, as the session's pipeline does with
   * ${VIDEO_FORMAT} and ${H264_PROFILE}. */
  const bool full = strcmp (chroma, "4:4:4") == 0;
  gchar *source = g_strdup_printf (content.source, frames);
  gchar *desc = g_strdup_printf (
      "%s ! video/x-raw,format=BGRx,width=1280,height=720,framerate=30/1 ! damagetiler name=tiler "
      "tiler.tiles ! wayraytileenc name=tenc ! wayraytiledec ! comp.tiles "
      "tiler.video ! queue ! videoconvert ! video/x-raw,format=%s ! %s name=venc ! video/x-h264,profile=%s "
      "! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! h264parse name=vparse "
      "! %s ! videoconvert ! video/x-raw,format=BGRx ! identity name=decoded ! comp.video "
      "wayraycompositor name=comp draw-cursor=false ! fakesink sync=false",
      source, full ? "Y444" : "I420", enc.launch.c_str (), full ? "high-4:4:4" : "high", dec.launch.c_str ());
  g_free (source);
  GError *err = nullptr;
  GstElement *p = gst_parse_launch (desc, &err);
  g_free (desc);
  if (!p) {
    fprintf (stderr, "bench-video-quality: %s\n", err->message);
    g_error_free (err);
    return false;
  }
  Run r;
  r.enc = gst_bin_get_by_name (GST_BIN (p), "venc");
  std::pair<Run *, bool> at_sent (&r, false), at_decoded (&r, true);
  GstElement *tiler = gst_bin_get_by_name (GST_BIN (p), "tiler");
  GstElement *decoded = gst_bin_get_by_name (GST_BIN (p), "decoded");
  GstElement *tenc = gst_bin_get_by_name (GST_BIN (p), "tenc"), *vparse = gst_bin_get_by_name (GST_BIN (p), "vparse");
  GstPad *vsrc = gst_element_get_static_pad (tiler, "video");
  GstPad *dsrc = gst_element_get_static_pad (decoded, "src");
  GstPad *tp = gst_element_get_static_pad (tenc, "src"), *vp = gst_element_get_static_pad (vparse, "src");
  GstPad *es = gst_element_get_static_pad (r.enc, "sink");
  gst_pad_add_probe (vsrc, GST_PAD_PROBE_TYPE_BUFFER, keep_frame, &at_sent, nullptr);
  gst_pad_add_probe (dsrc, GST_PAD_PROBE_TYPE_BUFFER, keep_frame, &at_decoded, nullptr);
  gst_pad_add_probe (tp, GST_PAD_PROBE_TYPE_BUFFER, count_bytes, &r.tile_bytes, nullptr);
  gst_pad_add_probe (vp, GST_PAD_PROBE_TYPE_BUFFER, count_bytes, &r.video_bytes, nullptr);
  gst_pad_add_probe (vp, GST_PAD_PROBE_TYPE_BUFFER, count_frames, &r.video_frames, nullptr);
  gst_pad_add_probe (es, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_encoder_caps, &r, nullptr);
  for (GstPad *pad : { vsrc, dsrc, tp, vp, es })
    gst_object_unref (pad);
  for (GstElement *e : { tiler, decoded, tenc, vparse })
    gst_object_unref (e);

  gst_element_set_state (p, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *m = gst_bus_timed_pop_filtered (bus, 600 * GST_SECOND,
      (GstMessageType) (GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  bool ok = m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS;
  if (!ok) {
    GError *e = nullptr;
    if (m)
      gst_message_parse_error (m, &e, nullptr);
    fprintf (stderr, "bench-video-quality: %s\n", e ? e->message : "timed out");
    g_clear_error (&e);
  }
  if (m)
    gst_message_unref (m);
  gst_object_unref (bus);
  if (g_getenv ("WAYRAY_BENCH_DEBUG")) {
    GstElement *t = gst_bin_get_by_name (GST_BIN (p), "tiler");
    GstStructure *st = nullptr;
    g_object_get (t, "stats", &st, nullptr);
    gchar *str = gst_structure_to_string (st);
    fprintf (stderr, "%s\nsent %zu decoded %zu; first sizes %zu %zu\n", str, r.sent.size (), r.decoded.size (),
        r.sent.empty () ? 0 : r.sent.begin ()->second.size (), r.decoded.empty () ? 0 : r.decoded.begin ()->second.size ());
    if (!r.sent.empty () && !r.decoded.empty ())
      fprintf (stderr, "first pts %" GST_TIME_FORMAT " %" GST_TIME_FORMAT "\n", GST_TIME_ARGS (r.sent.begin ()->first),
          GST_TIME_ARGS (r.decoded.begin ()->first));
    g_free (str);
    gst_structure_free (st);
    gst_object_unref (t);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (r.enc);
  gst_object_unref (p);

  std::vector<double> psnr;
  std::vector<double> chroma_psnr;
  for (auto &kv : r.sent) {
    auto it = r.decoded.find (kv.first);
    if (it != r.decoded.end () && it->second.size () == kv.second.size ()) {
      Psnr q = psnr_of (kv.second, it->second);
      psnr.push_back (q.luma);
      chroma_psnr.push_back (q.chroma);
    }
  }
  std::sort (psnr.begin (), psnr.end ());
  std::sort (chroma_psnr.begin (), chroma_psnr.end ());
  out.compared = psnr.size ();
  out.median = psnr.empty () ? 0 : psnr[psnr.size () / 2];
  out.low = psnr.empty () ? 0 : psnr[psnr.size () / 20];
  out.min = psnr.empty () ? 0 : psnr.front ();
  out.chroma = chroma_psnr.empty () ? 0 : chroma_psnr[chroma_psnr.size () / 2];
  out.bitrate = r.bitrate;
  out.video_frames = r.video_frames;
  out.video_mb = r.video_bytes * 10.0 / seconds / 1e6;
  out.tile_mb = r.tile_bytes * 10.0 / seconds / 1e6;
  return ok && !psnr.empty ();
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  int seconds = argc > 1 ? atoi (argv[1]) : 10;
  if (seconds <= 0)
    seconds = 10;
  wayray::CodecChoice enc = wayray::pick_h264_encoder ();
  if (g_getenv ("WAYRAY_BENCH_ENCODER"))
    enc.launch = g_getenv ("WAYRAY_BENCH_ENCODER");
  wayray::CodecChoice dec = wayray::pick_h264_decoder ();
  if (enc.factory.empty () || dec.factory.empty ()) {
    fprintf (stderr, "bench-video-quality: no usable H.264 encoder or decoder\n");
    return 1;
  }
  printf ("WayRay video path quality: 1280x720 30 fps, %d s, no network; damagetiler, %s, %s, "
      "wayraycompositor as in the default pipelines\n", seconds, enc.launch.c_str (), dec.factory.c_str ());
  printf ("bitrate: what the rate controller gives the atlas on a free link (pixels/s x %.2f bit); "
      "PSNR: of every decoded video frame against the frame the encoder got (the rest of the picture is "
      "lossless), luma median / 5th percentile / min, and chroma (Cb and Cr) median; chroma: what the "
      "encoder gets (${VIDEO_FORMAT}: I420 or Y444, profile high or high-4:4:4)\n\n",
      wayray::RateControl::kBitsPerPixel);
  printf ("%-34s %6s %7s %7s %8s %8s %8s %9s %9s %9s\n", "content", "chroma", "Mbit/s", "frames", "median", "p5",
      "min", "chroma", "video/10s", "tiles/10s");
  /* WAYRAY_BENCH_CHROMA=4:2:0 or 4:4:4: only that one. */
  const char *only = g_getenv ("WAYRAY_BENCH_CHROMA");
  int rc = 0;
  for (const Content &c : kContents) {
    for (const char *chroma : { "4:2:0", "4:4:4" }) {
      if (only && strcmp (only, chroma) != 0)
        continue;
      Result res;
      if (!measure (enc, dec, seconds, c, chroma, res))
        rc = 1;
      printf ("%-34s %6s %7.2f %7" G_GUINT64_FORMAT " %6.2fdB %6.2fdB %6.2fdB %7.2fdB %7.2fMB %7.2fMB\n",
          c.name, chroma, res.bitrate / 1e6, res.video_frames, res.median, res.low, res.min, res.chroma,
          res.video_mb, res.tile_mb);
      fflush (stdout);
    }
  }
  return rc;
}
