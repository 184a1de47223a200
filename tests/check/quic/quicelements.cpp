/* quicsink + quicsrc over loopback: two pipelines, real QUIC (and TCP)
 * connections between them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/app/app.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "quictestutil.h"

#include "gstquicendpoint.h"
#include "gstquicframing.h"
#include "gstwayraycursor.h"

#include <arpa/inet.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

/* A fresh directory with the server key/certificate and the client's
 * known-hosts file; a port of its own. */
struct Site {
  std::string dir;
  guint port;

  Site ()
  {
    gchar *d = g_dir_make_tmp ("wayray-quic-XXXXXX", nullptr);
    dir = d;
    g_free (d);
    port = free_port ();
  }
  ~Site ()
  {
    for (const char *f : { "cert.pem", "key.pem", "known_hosts", "other-cert.pem", "other-key.pem" })
      g_unlink ((dir + "/" + f).c_str ());
    g_rmdir (dir.c_str ());
  }
  std::string server (const char *extra = "") const
  {
    return "mode=server host=127.0.0.1 port=" + std::to_string (port) + " certificate-file=" + dir
        + "/cert.pem private-key-file=" + dir + "/key.pem " + extra;
  }
  std::string client (const char *extra = "") const
  {
    return "mode=client host=127.0.0.1 port=" + std::to_string (port) + " known-hosts-file=" + dir
        + "/known_hosts " + extra;
  }
};

static bool
wait_connection_message (GstElement * p, gboolean connected, GstClockTime timeout, std::string * reason)
{
  GstBus *bus = gst_element_get_bus (p);
  gint64 end = g_get_monotonic_time () + timeout / 1000;
  bool found = false;
  while (!found && g_get_monotonic_time () < end) {
    GstMessage *m = gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND, GST_MESSAGE_ELEMENT);
    if (!m)
      continue;
    const GstStructure *s = gst_message_get_structure (m);
    gboolean c;
    if (gst_structure_has_name (s, "wayray-quic-connection")
        && gst_structure_get_boolean (s, "connected", &c) && c == connected) {
      found = true;
      if (reason)
        *reason = gst_structure_get_string (s, "reason");
    }
    gst_message_unref (m);
  }
  gst_object_unref (bus);
  return found;
}

static gsize
size_of (guint i)
{
  /* From empty to 2 MiB, frame-sized and tiny ones mixed. */
  static const gsize sizes[] = { 0, 1, 13, 1200, 65536, 300000, 2 * 1024 * 1024, 777, 1000000 };
  return sizes[i % G_N_ELEMENTS (sizes)] + i;
}

/* Every byte of many buffers arrives, in order, with caps (also changed
 * midway), timestamps, duration and flags. */
GST_START_TEST (test_large_data_in_order)
{
  Site site;
  const guint n = 120;
  GstElement *srv = launch ("appsrc name=src format=time caps=application/x-wayray-test,n=(int)1 "
      "! s.display quicsink name=s " + site.server ());
  GstElement *cli = launch ("quicsrc name=c " + site.client ()
      + " c.display ! appsink name=out sync=false max-buffers=0");
  play (srv);
  play (cli);

  GstElement *src = by_name (srv, "src");
  std::vector<std::vector<guint8>> sent;
  for (guint i = 0; i < n; i++) {
    if (i == n / 2) {
      GstCaps *caps = gst_caps_from_string ("application/x-wayray-test,n=(int)2");
      g_object_set (src, "caps", caps, nullptr);
      gst_caps_unref (caps);
    }
    GstBuffer *b = pattern_buffer (i, size_of (i));
    GST_BUFFER_PTS (b) = i * 10 * GST_MSECOND;
    GST_BUFFER_DTS (b) = i == 3 ? GST_CLOCK_TIME_NONE : i * 10 * GST_MSECOND - GST_MSECOND;
    GST_BUFFER_DURATION (b) = i == 4 ? GST_CLOCK_TIME_NONE : 10 * GST_MSECOND;
    if (i % 5)
      GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DELTA_UNIT);
    if (i == 0)
      GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DISCONT);
    if (i == 1)
      GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_HEADER);
    std::vector<guint8> copy (gst_buffer_get_size (b));
    if (!copy.empty ())
      gst_buffer_extract (b, 0, copy.data (), copy.size ());
    sent.push_back (std::move (copy));
    fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (src), b), GST_FLOW_OK);
  }
  gst_app_src_end_of_stream (GST_APP_SRC (src));

  GstElement *out = by_name (cli, "out");
  for (guint i = 0; i < n; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (s != nullptr, "buffer %u did not arrive", i);
    GstBuffer *b = gst_sample_get_buffer (s);
    fail_unless_equals_int (gst_buffer_get_size (b), sent[i].size ());
    fail_unless (sent[i].empty () || gst_buffer_memcmp (b, 0, sent[i].data (), sent[i].size ()) == 0,
        "buffer %u differs", i);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), i * 10 * GST_MSECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DTS (b), i == 3 ? GST_CLOCK_TIME_NONE : i * 10 * GST_MSECOND - GST_MSECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (b), i == 4 ? GST_CLOCK_TIME_NONE : 10 * GST_MSECOND);
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DELTA_UNIT), (i % 5) != 0);
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT), i == 0);
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_HEADER), i == 1);
    const GstStructure *cs = gst_caps_get_structure (gst_sample_get_caps (s), 0);
    gint capsn = 0;
    fail_unless (gst_structure_get_int (cs, "n", &capsn));
    fail_unless_equals_int (capsn, i < n / 2 ? 1 : 2);
    gst_sample_unref (s);
  }
  /* The sender's EOS arrives after the data; the server's EOS message
   * means the client acknowledged everything. */
  fail_unless (gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND) == nullptr);
  fail_unless (gst_app_sink_is_eos (GST_APP_SINK (out)));
  GstBus *bus = gst_element_get_bus (srv);
  GstMessage *eos = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_EOS);
  fail_unless (eos != nullptr);
  gst_message_unref (eos);
  gst_object_unref (bus);

  /* Statistics are readable. */
  GstElement *s = by_name (srv, "s");
  GstStructure *st = nullptr;
  g_object_get (s, "stats", &st, nullptr);
  fail_unless (st != nullptr);
  guint64 sent_bytes = 0, min_rtt = 0, cwnd = 0;
  fail_unless (gst_structure_get_uint64 (st, "bytes-sent", &sent_bytes));
  fail_unless (gst_structure_get_uint64 (st, "min-rtt", &min_rtt));
  fail_unless (gst_structure_get_uint64 (st, "cwnd", &cwnd));
  gsize total = 0;
  for (auto &v : sent)
    total += v.size ();
  fail_unless (sent_bytes > total, "bytes-sent %" G_GUINT64_FORMAT " < payload %zu", sent_bytes, total);
  fail_unless (min_rtt > 0 && min_rtt < GST_SECOND);
  fail_unless (cwnd > 0);
  gst_structure_free (st);
  assert_no_error (srv);
  assert_no_error (cli);
  gst_object_unref (s);
  gst_object_unref (out);
  gst_object_unref (src);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* Collects events that pass a pad in one direction. */
struct EventLog {
  std::mutex lock;
  std::vector<GstEvent *> events;
  ~EventLog ()
  {
    for (auto *e : events)
      gst_event_unref (e);
  }
  static GstPadProbeReturn probe (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    auto *log = static_cast<EventLog *> (data);
    std::lock_guard<std::mutex> lk (log->lock);
    log->events.push_back (gst_event_ref (GST_PAD_PROBE_INFO_EVENT (info)));
    return GST_PAD_PROBE_OK;
  }
  GstEvent *wait_for (bool (*match) (GstEvent *), guint timeout_ms)
  {
    for (guint t = 0; t < timeout_ms; t += 10) {
      {
        std::lock_guard<std::mutex> lk (lock);
        for (auto *e : events)
          if (match (e))
            return e;
      }
      g_usleep (10000);
    }
    return nullptr;
  }
};

static bool
is_nav_key_a (GstEvent * e)
{
  const gchar *key;
  return GST_EVENT_TYPE (e) == GST_EVENT_NAVIGATION
      && gst_navigation_event_get_type (e) == GST_NAVIGATION_EVENT_KEY_PRESS
      && gst_navigation_event_parse_key_event (e, &key) && g_str_equal (key, "a");
}

static bool
is_fku (GstEvent * e)
{
  guint count = 0;
  return gst_video_event_is_force_key_unit (e)
      && gst_video_event_parse_upstream_force_key_unit (e, nullptr, nullptr, &count) && count == 77;
}

static bool
is_cursor (GstEvent * e)
{
  return gst_wayray_cursor_event_is (e);
}

/* Several streams, downstream custom events (the cursor) and upstream
 * events in both directions; the client's quicsink shares the client's
 * connection through the endpoint context. */
GST_START_TEST (test_streams_and_events_both_ways)
{
  Site site;
  GstElement *srv = launch ("appsrc name=disp format=time caps=video/x-raw,format=BGRx,width=64,height=64,framerate=0/1 "
      "! s.display quicsink name=s " + site.server () + " "
      "appsrc name=cur format=time caps=application/x-wayray-cursor ! s.cursor "
      "quicsrc name=sr " + site.server () + " sr.mic ! appsink name=micout sync=false");
  GstElement *cli = launch ("quicsrc name=c " + site.client () + " "
      "c.display ! appsink name=dout sync=false  c.cursor ! appsink name=cout sync=false "
      "appsrc name=mic format=time caps=audio/x-opus ! k.mic quicsink name=k " + site.client ());
  play (srv);
  play (cli);

  GstElement *disp = by_name (srv, "disp"), *cur = by_name (srv, "cur"), *mic = by_name (cli, "mic");
  GstPad *disp_pad = gst_element_get_static_pad (disp, "src");
  GstPad *mic_pad = gst_element_get_static_pad (mic, "src");
  EventLog server_up, client_up, cursor_down;
  gst_pad_add_probe (disp_pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, EventLog::probe, &server_up, nullptr);
  gst_pad_add_probe (mic_pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, EventLog::probe, &client_up, nullptr);

  /* Server → client: display frames and a cursor event with its image. */
  GstBuffer *img = gst_buffer_new_allocate (nullptr, 16 * 16 * 4, nullptr);
  gst_buffer_memset (img, 0, 0xc3, 16 * 16 * 4);
  GstWayrayCursor cursor = { TRUE, 100, 200, 9, 3, 4, 16, 16, img };
  fail_unless (gst_element_send_event (cur, gst_wayray_cursor_event_new (&cursor)));
  gst_buffer_unref (img);
  gst_app_src_push_buffer (GST_APP_SRC (cur), gst_buffer_new_allocate (nullptr, 8, nullptr));
  for (int i = 0; i < 3; i++) {
    GstBuffer *b = pattern_buffer (i, 64 * 64 * 4);
    GST_BUFFER_PTS (b) = i * GST_MSECOND;
    gst_app_src_push_buffer (GST_APP_SRC (disp), b);
  }
  /* Client → server on the shared client connection. */
  GstBuffer *mb = pattern_buffer (99, 321);
  GST_BUFFER_PTS (mb) = 5 * GST_SECOND;
  gst_app_src_push_buffer (GST_APP_SRC (mic), mb);

  GstElement *dout = by_name (cli, "dout"), *cout = by_name (cli, "cout"), *micout = by_name (srv, "micout");
  for (int i = 0; i < 3; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (dout), 10 * GST_SECOND);
    fail_unless (s != nullptr);
    GstVideoInfo vi;
    fail_unless (gst_video_info_from_caps (&vi, gst_sample_get_caps (s)));
    fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&vi), 64);
    fail_unless_equals_int (gst_buffer_get_size (gst_sample_get_buffer (s)), 64 * 64 * 4);
    gst_sample_unref (s);
  }
  GstPad *cout_pad = gst_element_get_static_pad (cout, "sink");
  gst_pad_add_probe (cout_pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, EventLog::probe, &cursor_down, nullptr);
  GstSample *cs = gst_app_sink_try_pull_sample (GST_APP_SINK (cout), 10 * GST_SECOND);
  fail_unless (cs != nullptr);
  gst_sample_unref (cs);
  /* The cursor event went before its buffer: it is sticky-free, so look at
   * what the pad saw via appsink's object queue instead. */
  GstSample *ms = gst_app_sink_try_pull_sample (GST_APP_SINK (micout), 10 * GST_SECOND);
  fail_unless (ms != nullptr, "client→server stream on the shared connection did not arrive");
  fail_unless_equals_uint64 (GST_BUFFER_PTS (gst_sample_get_buffer (ms)), 5 * GST_SECOND);
  fail_unless_equals_int (gst_buffer_get_size (gst_sample_get_buffer (ms)), 321);
  gst_sample_unref (ms);

  /* Upstream, client → server: navigation and force-key-unit sent into
   * the client's quicsrc pad leave the server's quicsink pad upstream. */
  GstPad *dout_pad = gst_element_get_static_pad (dout, "sink");
  fail_unless (gst_pad_push_event (dout_pad, gst_navigation_event_new_key_press ("a", GST_NAVIGATION_MODIFIER_NONE)));
  fail_unless (gst_pad_push_event (dout_pad, gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 77)));
  fail_unless (server_up.wait_for (is_nav_key_a, 5000) != nullptr, "navigation did not reach the server");
  fail_unless (server_up.wait_for (is_fku, 5000) != nullptr, "force-key-unit did not reach the server");

  /* Upstream, server → client: into the server's quicsrc pad, out of the
   * client's quicsink pad. */
  GstPad *micout_pad = gst_element_get_static_pad (micout, "sink");
  fail_unless (gst_pad_push_event (micout_pad, gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 77)));
  fail_unless (gst_pad_push_event (micout_pad, gst_navigation_event_new_key_press ("a", GST_NAVIGATION_MODIFIER_NONE)));
  fail_unless (client_up.wait_for (is_fku, 5000) != nullptr, "force-key-unit did not reach the client");
  fail_unless (client_up.wait_for (is_nav_key_a, 5000) != nullptr, "navigation did not reach the client");

  /* A second cursor event arrives with its image intact. */
  GstBuffer *img2 = gst_buffer_new_allocate (nullptr, 2 * 2 * 4, nullptr);
  gst_buffer_memset (img2, 0, 0x11, 16);
  GstWayrayCursor cursor2 = { TRUE, 5, 6, 10, 0, 0, 2, 2, img2 };
  fail_unless (gst_element_send_event (cur, gst_wayray_cursor_event_new (&cursor2)));
  gst_buffer_unref (img2);
  gst_app_src_push_buffer (GST_APP_SRC (cur), gst_buffer_new_allocate (nullptr, 8, nullptr));
  GstEvent *ce = cursor_down.wait_for (is_cursor, 5000);
  fail_unless (ce != nullptr, "cursor event did not cross");
  GstWayrayCursor got;
  fail_unless (gst_wayray_cursor_event_parse (ce, &got));
  fail_unless_equals_int (got.x, 5);
  fail_unless_equals_int (got.serial, 10);
  fail_unless (got.image != nullptr);
  guint8 px = 0;
  gst_buffer_extract (got.image, 15, &px, 1);
  fail_unless_equals_int (px, 0x11);
  gst_buffer_unref (got.image);

  assert_no_error (srv);
  assert_no_error (cli);
  for (GstPad *p : { disp_pad, mic_pad, dout_pad, micout_pad, cout_pad })
    gst_object_unref (p);
  for (GstElement *e : { disp, cur, mic, dout, cout, micout })
    gst_object_unref (e);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* Trust on first use records the fingerprint; a server with another key is
 * refused with a message naming both fingerprints; a wrong pin is refused. */
GST_START_TEST (test_fingerprint_pinning)
{
  Site site;
  std::string fp = server_fingerprint (site.server ());
  fail_unless (fp.size () == 64);
  const std::string caps = " caps=application/x-wayray-test";

  /* First use: accepted and recorded. */
  GstElement *srv = launch ("appsrc name=src format=time" + caps + " ! quicsink " + site.server ());
  GstElement *cli = launch ("quicsrc name=c " + site.client () + " ! appsink name=out sync=false");
  play (srv);
  play (cli);
  GstElement *src = by_name (srv, "src");
  gst_app_src_push_buffer (GST_APP_SRC (src), gst_buffer_new_allocate (nullptr, 10, nullptr));
  GstElement *out = by_name (cli, "out");
  GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
  fail_unless (s != nullptr);
  gst_sample_unref (s);
  gchar *known = nullptr;
  fail_unless (g_file_get_contents ((site.dir + "/known_hosts").c_str (), &known, nullptr, nullptr));
  std::string want = "127.0.0.1:" + std::to_string (site.port) + " " + fp;
  fail_unless (strstr (known, want.c_str ()) != nullptr, "known_hosts: %s", known);
  g_free (known);
  /* The client shows what it accepted. */
  GstElement *c = by_name (cli, "c");
  gchar *seen = nullptr;
  g_object_get (c, "certificate-fingerprint", &seen, nullptr);
  fail_unless_equals_string (seen, fp.c_str ());
  g_free (seen);
  gst_object_unref (c);
  gst_object_unref (out);
  gst_object_unref (src);
  stop (cli);
  stop (srv);

  /* Same port, another key: the client refuses. */
  std::string other = "mode=server host=127.0.0.1 port=" + std::to_string (site.port) + " certificate-file="
      + site.dir + "/other-cert.pem private-key-file=" + site.dir + "/other-key.pem";
  srv = launch ("appsrc name=src format=time" + caps + " ! quicsink " + other);
  cli = launch ("quicsrc " + site.client () + " ! fakesink");
  play (srv);
  play (cli);
  std::string err = wait_error (cli, 10 * GST_SECOND);
  fail_unless (err.find ("refusing") != std::string::npos, "error: '%s'", err.c_str ());
  fail_unless (err.find (fp) != std::string::npos, "error does not name the known fingerprint: '%s'", err.c_str ());
  fail_unless (err.find ("known_hosts") != std::string::npos, "error does not name the file: '%s'", err.c_str ());
  stop (cli);
  stop (srv);

  /* A pin that does not match is refused; the right pin is accepted. */
  srv = launch ("appsrc name=src format=time" + caps + " ! quicsink " + site.server ());
  play (srv);
  cli = launch ("quicsrc " + site.client (("pinned-fingerprint=" + std::string (64, 'a')).c_str ()) + " ! fakesink");
  play (cli);
  err = wait_error (cli, 10 * GST_SECOND);
  fail_unless (err.find ("pinned-fingerprint") != std::string::npos, "error: '%s'", err.c_str ());
  stop (cli);

  std::string colon_fp;
  for (size_t i = 0; i < fp.size (); i += 2)
    colon_fp += (i ? ":" : "") + fp.substr (i, 2);
  cli = launch ("quicsrc " + site.client (("pinned-fingerprint=SHA256:" + colon_fp).c_str ()) + " ! appsink name=out sync=false");
  play (cli);
  src = by_name (srv, "src");
  gst_app_src_push_buffer (GST_APP_SRC (src), gst_buffer_new_allocate (nullptr, 10, nullptr));
  out = by_name (cli, "out");
  s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
  fail_unless (s != nullptr, "the right pin was refused");
  gst_sample_unref (s);
  assert_no_error (cli);
  gst_object_unref (out);
  gst_object_unref (src);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* A server process killed mid-stream: the client reports the peer as gone
 * (error naming the idle timeout) instead of hanging. */
GST_START_TEST (test_peer_killed)
{
  Site site;
  std::string desc = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! quicsink "
      + site.server ("idle-timeout=1000 keepalive-interval=200");
  /* The server runs in a child process of this one (no GStreamer threads
   * exist here yet), so that it can be killed outright. */
  pid_t pid = fork ();
  fail_if (pid < 0);
  if (pid == 0) {
    GstElement *p = gst_parse_launch (desc.c_str (), nullptr);
    if (!p || gst_element_set_state (p, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
      _exit (1);
    for (;;)
      g_usleep (G_USEC_PER_SEC);
  }
  /* The child needs a moment to listen (and maybe to generate its key). */
  g_usleep (1500 * 1000);

  GstElement *cli = launch ("quicsrc name=c " + site.client ("idle-timeout=1000 keepalive-interval=200")
      + " ! appsink name=out sync=false max-buffers=2 drop=true");
  play (cli);
  GstElement *out = by_name (cli, "out");
  GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
  fail_unless (s != nullptr, "no video from the server process");
  gst_sample_unref (s);

  gint64 killed = g_get_monotonic_time ();
  kill (pid, SIGKILL);
  waitpid (pid, nullptr, 0);

  std::string e = wait_error (cli, 10 * GST_SECOND);
  gint64 after = g_get_monotonic_time () - killed;
  fail_unless (e.find ("peer is gone") != std::string::npos, "error: '%s'", e.c_str ());
  fail_unless (after < 5 * G_USEC_PER_SEC, "noticed only after %" G_GINT64_FORMAT " us", after);
  GstElement *c = by_name (cli, "c");
  gboolean connected = TRUE;
  g_object_get (c, "connected", &connected, nullptr);
  fail_if (connected);
  gst_object_unref (c);
  gst_object_unref (out);
  stop (cli);
}
GST_END_TEST;

/* A client that went away is a bus message on the server, which then
 * serves the next client. */
GST_START_TEST (test_server_survives_client)
{
  Site site;
  GstElement *srv = launch ("videotestsrc is-live=true ! video/x-raw,width=64,height=64,framerate=30/1 ! quicsink name=s "
      + site.server ("idle-timeout=1000 keepalive-interval=200"));
  play (srv);
  for (int round = 0; round < 2; round++) {
    GstElement *cli = launch ("quicsrc " + site.client ("idle-timeout=1000 keepalive-interval=200")
        + " ! appsink name=out sync=false max-buffers=2 drop=true");
    play (cli);
    GstElement *out = by_name (cli, "out");
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
    fail_unless (s != nullptr, "round %d: no video", round);
    gst_sample_unref (s);
    fail_unless (wait_connection_message (srv, TRUE, 5 * GST_SECOND, nullptr));
    gst_object_unref (out);
    /* Stopped but not freed: the pipeline still holds the endpoint in its
     * cached context, yet the connection must end with the last element. */
    gst_element_set_state (cli, GST_STATE_NULL);
    std::string reason;
    fail_unless (wait_connection_message (srv, FALSE, 500 * GST_MSECOND, &reason),
        "round %d: no prompt disconnect message", round);
    gst_object_unref (cli);
    /* A client that shuts down says so; the server does not wait for its
     * idle timeout. */
    fail_unless (reason.find ("the peer closed the connection (the endpoint shut down)") != std::string::npos,
        "reason: %s", reason.c_str ());
  }
  assert_no_error (srv);
  stop (srv);
}
GST_END_TEST;

/* With UDP blocked — the server listens on TCP only, and its UDP port
 * silently swallows datagrams, as a firewall would — the client falls back
 * to TCP+TLS with the same framing. */
GST_START_TEST (test_tcp_fallback)
{
  Site site;
  int blackhole = udp_blackhole (site.port);
  GstElement *srv = launch ("appsrc name=src format=time caps=application/x-wayray-test ! s.display quicsink name=s "
      + site.server ("transport=tcp"));
  GstElement *cli = launch ("quicsrc name=c " + site.client ("transport=auto handshake-timeout=500")
      + " c.display ! appsink name=out sync=false");
  play (srv);
  play (cli);
  GstElement *src = by_name (srv, "src");
  std::vector<std::vector<guint8>> sent;
  for (guint i = 0; i < 20; i++) {
    GstBuffer *b = pattern_buffer (i, size_of (i));
    GST_BUFFER_PTS (b) = i * GST_SECOND;
    std::vector<guint8> copy (gst_buffer_get_size (b));
    if (!copy.empty ())
      gst_buffer_extract (b, 0, copy.data (), copy.size ());
    sent.push_back (std::move (copy));
    gst_app_src_push_buffer (GST_APP_SRC (src), b);
  }
  GstElement *out = by_name (cli, "out");
  for (guint i = 0; i < 20; i++) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 15 * GST_SECOND);
    fail_unless (s != nullptr, "buffer %u did not arrive over TCP", i);
    GstBuffer *b = gst_sample_get_buffer (s);
    fail_unless_equals_int (gst_buffer_get_size (b), sent[i].size ());
    fail_unless (sent[i].empty () || gst_buffer_memcmp (b, 0, sent[i].data (), sent[i].size ()) == 0);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), i * GST_SECOND);
    gst_sample_unref (s);
  }
  GstElement *c = by_name (cli, "c");
  GstStructure *st = nullptr;
  g_object_get (c, "stats", &st, nullptr);
  fail_unless_equals_string (gst_structure_get_string (st, "transport"), "tcp");
  gst_structure_free (st);

  /* Upstream events use the same control stream over TCP. */
  EventLog up;
  GstPad *src_pad = gst_element_get_static_pad (src, "src");
  gst_pad_add_probe (src_pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, EventLog::probe, &up, nullptr);
  GstPad *out_pad = gst_element_get_static_pad (out, "sink");
  fail_unless (gst_pad_push_event (out_pad, gst_navigation_event_new_key_press ("a", GST_NAVIGATION_MODIFIER_NONE)));
  fail_unless (up.wait_for (is_nav_key_a, 5000) != nullptr);
  assert_no_error (srv);
  assert_no_error (cli);
  gst_object_unref (src_pad);
  gst_object_unref (out_pad);
  gst_object_unref (c);
  gst_object_unref (out);
  gst_object_unref (src);
  stop (cli);
  stop (srv);
  close (blackhole);
}
GST_END_TEST;

/* While a display stream saturates the connection, input (navigation sent
 * upstream, on the control stream) and the cursor stream stay fast: they are
 * scheduled before display data and never wait behind it. */
struct Saturation {
  std::atomic<guint64> display_bytes { 0 };
  std::mutex lock;
  std::vector<gint64> input_lat, cursor_lat;

  static GstPadProbeReturn on_display (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    static_cast<Saturation *> (data)->display_bytes += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn on_input (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    auto *self = static_cast<Saturation *> (data);
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
    gdouble sent;
    if (GST_EVENT_TYPE (ev) == GST_EVENT_NAVIGATION
        && gst_structure_get_double (gst_event_get_structure (ev), "pointer_x", &sent)) {
      std::lock_guard<std::mutex> lk (self->lock);
      self->input_lat.push_back (g_get_monotonic_time () - (gint64) sent);
    }
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn on_cursor (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    auto *self = static_cast<Saturation *> (data);
    gint64 sent;
    if (gst_buffer_extract (GST_PAD_PROBE_INFO_BUFFER (info), 0, &sent, sizeof sent) == sizeof sent) {
      std::lock_guard<std::mutex> lk (self->lock);
      self->cursor_lat.push_back (g_get_monotonic_time () - sent);
    }
    return GST_PAD_PROBE_OK;
  }
};

static gint64
median (std::vector<gint64> v)
{
  std::sort (v.begin (), v.end ());
  return v.empty () ? G_MAXINT64 : v[v.size () / 2];
}

GST_START_TEST (test_input_fast_while_display_saturated)
{
  Site site;
  GstElement *srv = launch ("appsrc name=disp format=time block=true max-bytes=4000000 caps=application/x-display "
      "! s.display appsrc name=cur format=time caps=application/x-cursor ! s.cursor quicsink name=s " + site.server ());
  GstElement *cli = launch ("quicsrc name=c " + site.client ()
      + " c.display ! fakesink name=dout sync=false async=false c.cursor ! fakesink name=cout sync=false async=false");
  Saturation sat;
  GstElement *disp = by_name (srv, "disp"), *cur = by_name (srv, "cur");
  GstElement *dout = by_name (cli, "dout"), *cout = by_name (cli, "cout");
  GstPad *disp_src = gst_element_get_static_pad (disp, "src");
  GstPad *dout_sink = gst_element_get_static_pad (dout, "sink");
  GstPad *cout_sink = gst_element_get_static_pad (cout, "sink");
  gst_pad_add_probe (disp_src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, Saturation::on_input, &sat, nullptr);
  gst_pad_add_probe (dout_sink, GST_PAD_PROBE_TYPE_BUFFER, Saturation::on_display, &sat, nullptr);
  gst_pad_add_probe (cout_sink, GST_PAD_PROBE_TYPE_BUFFER, Saturation::on_cursor, &sat, nullptr);
  play (srv);
  play (cli);

  std::atomic<bool> stop_flood { false };
  std::thread flood ([&] {
    GstBuffer *chunk = gst_buffer_new_allocate (nullptr, 1024 * 1024, nullptr);
    gst_buffer_memset (chunk, 0, 0x42, 1024 * 1024);
    while (!stop_flood)
      if (gst_app_src_push_buffer (GST_APP_SRC (disp), gst_buffer_copy (chunk)) != GST_FLOW_OK)
        break;
    gst_buffer_unref (chunk);
  });
  /* Until the display stream runs and the cursor pad exists. */
  for (int i = 0; i < 1000 && (sat.display_bytes < 20 * 1024 * 1024 || !gst_pad_is_linked (cout_sink)); i++) {
    GstBuffer *c = gst_buffer_new_allocate (nullptr, 64, nullptr);
    gst_buffer_memset (c, 0, 0, 64);
    gst_app_src_push_buffer (GST_APP_SRC (cur), c);
    g_usleep (10000);
  }
  {
    std::lock_guard<std::mutex> lk (sat.lock);
    sat.cursor_lat.clear ();
  }
  guint64 before = sat.display_bytes;
  for (int i = 0; i < 100; i++) {
    gint64 t = g_get_monotonic_time ();
    GstStructure *st = gst_structure_new ("application/x-gst-navigation", "event", G_TYPE_STRING, "mouse-move",
        "pointer_x", G_TYPE_DOUBLE, (gdouble) t, "pointer_y", G_TYPE_DOUBLE, 0.0, nullptr);
    gst_pad_push_event (dout_sink, gst_event_new_navigation (st));
    GstBuffer *c = gst_buffer_new_allocate (nullptr, 64, nullptr);
    gst_buffer_memset (c, 0, 0, 64);
    gst_buffer_fill (c, 0, &t, sizeof t);
    gst_app_src_push_buffer (GST_APP_SRC (cur), c);
    g_usleep (10000);
  }
  g_usleep (300000);
  guint64 during = sat.display_bytes - before;
  stop_flood = true;
  {
    std::lock_guard<std::mutex> lk (sat.lock);
    fail_unless (sat.input_lat.size () >= 95, "only %zu of 100 input events arrived", sat.input_lat.size ());
    fail_unless (sat.cursor_lat.size () >= 95, "only %zu of 100 cursor buffers arrived", sat.cursor_lat.size ());
    gint64 mi = median (sat.input_lat), mc = median (sat.cursor_lat);
    GST_INFO ("display moved %" G_GUINT64_FORMAT " bytes; median input %" G_GINT64_FORMAT
        " us, cursor %" G_GINT64_FORMAT " us", during, mi, mc);
    /* The display stream really was busy (more than 100 Mbit/s)... */
    fail_unless (during > 12 * 1024 * 1024, "display moved only %" G_GUINT64_FORMAT " bytes", during);
    /* ...and input and cursor did not queue behind it. The benchmark
     * measures well under 1 ms; this bound leaves room for a loaded CI. */
    fail_unless (mi < 20000, "median input latency %" G_GINT64_FORMAT " us", mi);
    fail_unless (mc < 20000, "median cursor latency %" G_GINT64_FORMAT " us", mc);
  }
  gst_element_set_state (cli, GST_STATE_NULL);
  gst_element_set_state (srv, GST_STATE_NULL);
  flood.join ();
  for (GstPad *p : { disp_src, dout_sink, cout_sink })
    gst_object_unref (p);
  for (GstElement *e : { disp, cur, dout, cout })
    gst_object_unref (e);
  gst_object_unref (cli);
  gst_object_unref (srv);
}
GST_END_TEST;

/* Bad data from a peer: a malformed frame closes that stream with a warning
 * naming the problem while the connection lives on; a protocol violation
 * on the connection level (a second control stream) closes the connection
 * with that reason. The peer here is the endpoint API itself, writing raw
 * bytes. */
struct RawPeer : public wrq::EndpointUser {
  std::mutex lock;
  bool lost = false;
  std::string reason;
  void on_connection_state (bool up, guint64, const std::string &, const std::string &, const std::string & r, bool) override
  {
    std::lock_guard<std::mutex> lk (lock);
    if (!up) {
      lost = true;
      reason = r;
    }
  }
};

/* A client endpoint of the test's own, to write raw stream bytes with. */
static std::shared_ptr<wrq::Endpoint>
raw_client (const Site & site, wrq::TransportChoice transport)
{
  wrq::Config cfg;
  cfg.mode = wrq::Mode::Client;
  cfg.host = "127.0.0.1";
  cfg.port = site.port;
  cfg.known_hosts_file = site.dir + "/known_hosts";
  cfg.transport = transport;
  return wrq::Endpoint::obtain (cfg);
}

GST_START_TEST (test_malformed_peer)
{
  Site site;
  /* out2 gets data only later: async=false, else the live pipeline would
   * wait for it to preroll before any sink plays (GstBin semantics). */
  GstElement *srv = launch ("quicsrc name=sr " + site.server ()
      + " sr.display ! appsink name=out sync=false sr.cursor ! appsink name=out2 sync=false async=false");
  play (srv);

  auto ep = raw_client (site, wrq::TransportChoice::Quic);
  RawPeer peer;
  std::string error;
  fail_unless (ep->add_user (&peer, error), "%s", error.c_str ());
  std::atomic<bool> cancel { false };
  fail_unless (ep->wait_connected (cancel, 10000));

  wrq::Preamble pre;
  pre.purpose = wrq::Purpose::Display;
  pre.name = "display";
  auto display = ep->open_stream (pre);
  std::vector<guint8> bytes;
  GstCaps *caps = gst_caps_from_string ("application/x-raw-test");
  wrq::encode_caps (bytes, caps);
  gst_caps_unref (caps);
  GstBuffer *b = pattern_buffer (1, 1000);
  wrq::encode_buffer (bytes, b);
  gst_buffer_unref (b);
  fail_unless (ep->write (*display, std::move (bytes), 1 << 20, true, cancel) == wrq::Endpoint::WriteResult::Ok);
  GstElement *out = by_name (srv, "out");
  GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
  fail_unless (smp != nullptr);
  gst_sample_unref (smp);

  /* A frame of unknown type: the stream is closed, with a warning. */
  std::vector<guint8> garbage = { 99, 0, 0, 0, 0 };
  ep->write (*display, std::move (garbage), 1 << 20, true, cancel);
  std::string w = wait_warning (srv, 10 * GST_SECOND);
  fail_unless (w.find ("unknown frame type 99") != std::string::npos, "warning: '%s'", w.c_str ());
  fail_unless (w.find ("'display'") != std::string::npos, "warning does not name the stream: '%s'", w.c_str ());
  fail_unless (w.find ("stream closed") != std::string::npos, "warning: '%s'", w.c_str ());

  /* The connection still carries other streams. */
  pre.purpose = wrq::Purpose::Cursor;
  pre.name = "cursor";
  auto cursor = ep->open_stream (pre);
  bytes.clear ();
  caps = gst_caps_from_string ("application/x-cursor-test");
  wrq::encode_caps (bytes, caps);
  gst_caps_unref (caps);
  b = pattern_buffer (2, 64);
  wrq::encode_buffer (bytes, b);
  gst_buffer_unref (b);
  fail_unless (ep->write (*cursor, std::move (bytes), 1 << 20, true, cancel) == wrq::Endpoint::WriteResult::Ok);
  GstElement *out2 = by_name (srv, "out2");
  smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out2), 10 * GST_SECOND);
  fail_unless (smp != nullptr, "the connection did not survive a bad stream");
  gst_sample_unref (smp);

  /* A second control stream: the server closes the connection and says why. */
  pre.purpose = wrq::Purpose::Control;
  pre.name = "control";
  auto ctl = ep->open_stream (pre);
  fail_unless (ctl != nullptr);
  std::vector<guint8> nothing;
  ep->write (*ctl, std::move (nothing), 1 << 20, true, cancel);
  bool lost = false;
  std::string reason;
  for (int i = 0; i < 500 && !lost; i++) {
    g_usleep (20000);
    std::lock_guard<std::mutex> lk (peer.lock);
    lost = peer.lost;
    reason = peer.reason;
  }
  fail_unless (lost, "the server kept a connection with two control streams");
  fail_unless (reason.find ("a second control stream") != std::string::npos, "reason: '%s'", reason.c_str ());
  ep->remove_user (&peer);
  display.reset ();
  cursor.reset ();
  ctl.reset ();
  ep.reset ();
  gst_object_unref (out);
  gst_object_unref (out2);
  stop (srv);
}
GST_END_TEST;

static guint64
stats_u64 (GstElement * e, const char *field)
{
  GstStructure *st = nullptr;
  g_object_get (e, "stats", &st, nullptr);
  guint64 v = 0;
  if (st)
    gst_structure_get_uint64 (st, field, &v);
  if (st)
    gst_structure_free (st);
  return v;
}

/* Buffers of an audio pad go as QUIC datagrams (once the peer has the
 * stream's caps), both ways; one too large for a
 * datagram goes on the stream. Every buffer arrives intact with its
 * times. */
GST_START_TEST (test_audio_as_datagrams)
{
  Site site;
  GstElement *srv = launch ("appsrc name=snd format=time caps=audio/x-opus ! s.audio quicsink name=s "
      + site.server () + " quicsrc name=sr " + site.server () + " sr.microphone ! appsink name=micout sync=false");
  GstElement *cli = launch ("quicsrc name=c " + site.client () + " c.audio ! appsink name=out sync=false "
      "appsrc name=mic format=time caps=audio/x-opus ! k.microphone quicsink name=k " + site.client ());
  play (srv);
  play (cli);
  GstElement *snd = by_name (srv, "snd"), *mic = by_name (cli, "mic");
  GstElement *out = by_name (cli, "out"), *micout = by_name (srv, "micout");
  const int n = 60;
  for (int i = 0; i < n; i++) {
    for (GstElement *src : { snd, mic }) {
      GstBuffer *b = pattern_buffer (i, i == 30 ? 5000 : 120);
      GST_BUFFER_PTS (b) = i * 10 * GST_MSECOND;
      GST_BUFFER_DURATION (b) = 10 * GST_MSECOND;
      gst_app_src_push_buffer (GST_APP_SRC (src), b);
    }
    g_usleep (2000);
  }
  for (GstElement *sink : { out, micout }) {
    std::vector<bool> seen (n, false);
    for (int i = 0; i < n; i++) {
      GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), 10 * GST_SECOND);
      fail_unless (smp != nullptr, "%d of %d buffers arrived", i, n);
      GstBuffer *b = gst_sample_get_buffer (smp);
      guint k = (guint) (GST_BUFFER_PTS (b) / (10 * GST_MSECOND));
      fail_unless (k < (guint) n && !seen[k]);
      seen[k] = true;
      fail_unless_equals_uint64 (GST_BUFFER_DURATION (b), 10 * GST_MSECOND);
      GstBuffer *want = pattern_buffer (k, k == 30 ? 5000 : 120);
      fail_unless_equals_int (gst_buffer_get_size (b), gst_buffer_get_size (want));
      GstMapInfo m;
      gst_buffer_map (want, &m, GST_MAP_READ);
      fail_unless (gst_buffer_memcmp (b, 0, m.data, m.size) == 0, "buffer %u differs", k);
      gst_buffer_unmap (want, &m);
      gst_buffer_unref (want);
      gst_sample_unref (smp);
    }
  }
  GstElement *s = by_name (srv, "s"), *k = by_name (cli, "k");
  /* Once the peer acknowledged the caps (the first round trip's buffers go
   * on the stream), all but the one too large went as datagrams. */
  fail_unless (stats_u64 (s, "datagrams-sent") >= 40, "%" G_GUINT64_FORMAT, stats_u64 (s, "datagrams-sent"));
  fail_unless (stats_u64 (k, "datagrams-sent") >= 40, "%" G_GUINT64_FORMAT, stats_u64 (k, "datagrams-sent"));
  fail_unless_equals_uint64 (stats_u64 (s, "datagrams-dropped"), 0);
  assert_no_error (srv);
  assert_no_error (cli);
  for (GstElement *e : { snd, mic, out, micout, s, k })
    gst_object_unref (e);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* What this process has in memory now, in bytes. */
static guint64
resident_bytes ()
{
  gchar *text = nullptr;
  guint64 kib = 0;
  if (g_file_get_contents ("/proc/self/status", &text, nullptr, nullptr)) {
    const char *p = strstr (text, "VmRSS:");
    if (p)
      kib = g_ascii_strtoull (p + 6, nullptr, 10);
    g_free (text);
  }
  return kib * 1024;
}

/* A hostile peer opens 200 streams, announces a 60 MiB buffer on each and
 * streams junk into them as fast as the receiver lets it, never finishing a
 * frame: the receiver's memory stays within its receive budget
 * (docs/transport.md: 64 MiB not yet credited + 72 MiB of unfinished frames
 * + one frame), instead of growing with what the peer sends. */
static void
hostile_streams (wrq::TransportChoice transport)
{
  Site site;
  bool tcp = transport == wrq::TransportChoice::Tcp;
  GstElement *srv = launch ("quicsrc name=sr " + site.server (tcp ? "transport=tcp" : "")
      + " sr.display ! fakesink sync=false async=false");
  play (srv);
  g_usleep (200000);
  guint64 before = resident_bytes ();

  auto ep = raw_client (site, transport);
  RawPeer peer;
  std::string error;
  fail_unless (ep->add_user (&peer, error), "%s", error.c_str ());
  std::atomic<bool> cancel { false };
  fail_unless (ep->wait_connected (cancel, 10000));

  std::vector<std::shared_ptr<wrq::SendStream>> streams;
  GstBuffer *huge = gst_buffer_new_allocate (nullptr, 60 * 1024 * 1024, nullptr);  /* never touched */
  for (int k = 0; k < 200; k++) {
    wrq::Preamble pre;
    pre.purpose = wrq::Purpose::Display;
    pre.name = "display";
    auto st = ep->open_stream (pre);
    std::vector<guint8> bytes;
    wrq::encode_buffer_header (bytes, huge);
    ep->write (*st, std::move (bytes), 1 << 16, false, cancel);
    streams.push_back (st);
  }
  gst_buffer_unref (huge);
  std::vector<guint8> junk (64 * 1024, 0x5a);
  guint64 offered = 0, peak = before;
  gint64 end = g_get_monotonic_time () + 6 * G_USEC_PER_SEC;
  bool lost = false;
  while (g_get_monotonic_time () < end && !lost) {
    bool any = false;
    for (auto &st : streams) {
      std::vector<guint8> chunk = junk;
      if (ep->write (*st, std::move (chunk), 1 << 17, false, cancel) == wrq::Endpoint::WriteResult::Ok) {
        offered += junk.size ();
        any = true;
      }
    }
    peak = MAX (peak, resident_bytes ());
    if (!any)
      g_usleep (2000);
    std::lock_guard<std::mutex> lk (peer.lock);
    lost = peer.lost;
  }
  guint64 grown = peak > before ? peak - before : 0;
  GST_INFO ("%s: the peer queued %" G_GUINT64_FORMAT " MiB; the process grew by %" G_GUINT64_FORMAT " MiB%s",
      tcp ? "tcp" : "quic", offered >> 20, grown >> 20, lost ? " (the receiver closed the connection)" : "");
  /* The budget (200 MiB for QUIC; for TCP 136 MiB of unfinished frames,
   * then the connection is closed), plus the sender's own queues (128 KiB
   * per stream) and the allocator's slack; without the budget this grew by
   * 4 MiB per announced frame and then with everything sent. Under the
   * sanitizers, freed memory is held in quarantine. */
#if defined(__SANITIZE_ADDRESS__)
  const guint64 bound = 1024ull << 20;
#else
  const guint64 bound = 300ull << 20;
#endif
  fail_unless (grown <= bound, "the receiver grew by %" G_GUINT64_FORMAT " MiB (bound %" G_GUINT64_FORMAT " MiB)",
      grown >> 20, bound >> 20);
  cancel = true;
  streams.clear ();
  ep->remove_user (&peer);
  ep.reset ();
  stop (srv);
}

GST_START_TEST (test_hostile_streams_bounded_quic)
{
  hostile_streams (wrq::TransportChoice::Quic);
}
GST_END_TEST;

GST_START_TEST (test_hostile_streams_bounded_tcp)
{
  hostile_streams (wrq::TransportChoice::Tcp);
}
GST_END_TEST;

/* A receiver that stops reading: flow control stops the sender, whose pad
 * then blocks with at most max-queue-bytes (plus one buffer) queued; nothing
 * grows without bound, and everything arrives once reading resumes. */
GST_START_TEST (test_bounded_queues)
{
  Site site;
  const guint64 limit = 2 * 1024 * 1024;
  const gsize chunk = 256 * 1024;
  const guint n = 120;
  GstElement *srv = launch ("appsrc name=src format=time block=true max-bytes=300000 caps=application/x-bulk ! s.display "
      "quicsink name=s max-queue-bytes=" + std::to_string (limit) + " " + site.server ());
  GstElement *cli = launch ("quicsrc name=c max-receive-bytes=1000000 " + site.client ()
      + " c.display ! appsink name=out sync=false max-buffers=1");
  play (srv);
  play (cli);
  GstElement *src = by_name (srv, "src"), *out = by_name (cli, "out"), *s = by_name (srv, "s");
  std::atomic<guint> pushed { 0 };
  std::thread pusher ([&] {
    for (guint i = 0; i < n; i++) {
      GstBuffer *b = gst_buffer_new_allocate (nullptr, chunk, nullptr);
      gst_buffer_memset (b, 0, (guint8) i, chunk);
      if (gst_app_src_push_buffer (GST_APP_SRC (src), b) != GST_FLOW_OK)
        break;
      pushed++;
    }
  });
  g_usleep (3 * G_USEC_PER_SEC);
  guint stalled_at = pushed;
  GstStructure *st = nullptr;
  g_object_get (s, "stats", &st, nullptr);
  guint64 queued = 0;
  gst_structure_get_uint64 (st, "send-queue-bytes", &queued);
  gst_structure_free (st);
  GST_INFO ("sender stalled after %u of %u buffers with %" G_GUINT64_FORMAT " bytes queued", stalled_at, n, queued);
  fail_unless (stalled_at < n / 2, "the sender did not stall (%u buffers pushed)", stalled_at);
  fail_unless (queued <= limit + chunk + 4096, "%" G_GUINT64_FORMAT " bytes queued, bound %" G_GUINT64_FORMAT,
      queued, limit);
  g_usleep (G_USEC_PER_SEC);
  fail_unless_equals_int (pushed.load (), stalled_at);

  for (guint i = 0; i < n; i++) {
    GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 20 * GST_SECOND);
    fail_unless (smp != nullptr, "buffer %u missing after resuming", i);
    GstBuffer *b = gst_sample_get_buffer (smp);
    /* (fail_unless_equals_int declares locals named first and second.) */
    guint8 head = 0xff, tail = 0xff;
    gst_buffer_extract (b, 0, &head, 1);
    gst_buffer_extract (b, chunk - 1, &tail, 1);
    fail_unless_equals_int (gst_buffer_get_size (b), chunk);
    fail_unless_equals_int (head, (guint8) i);
    fail_unless_equals_int (tail, (guint8) i);
    gst_sample_unref (smp);
  }
  pusher.join ();
  assert_no_error (srv);
  assert_no_error (cli);
  gst_object_unref (s);
  gst_object_unref (src);
  gst_object_unref (out);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* One client at a time: a second client takes the server over (the token
 * moved to another thin client); the first is told why. */
GST_START_TEST (test_new_client_replaces_old)
{
  Site site;
  GstElement *srv = launch ("videotestsrc is-live=true ! video/x-raw,width=64,height=64,framerate=30/1 ! quicsink name=s "
      + site.server ());
  play (srv);
  GstElement *a = launch ("quicsrc " + site.client () + " ! appsink name=out sync=false max-buffers=2 drop=true");
  play (a);
  GstElement *aout = by_name (a, "out");
  GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (aout), 10 * GST_SECOND);
  fail_unless (smp != nullptr);
  gst_sample_unref (smp);

  /* Another process would have its own endpoint; in this one another
   * spelling of the address (127.1) gives client B an endpoint of its own. */
  std::string b_desc = "quicsrc mode=client host=127.1 port=" + std::to_string (site.port)
      + " known-hosts-file=" + site.dir + "/known_hosts_b ! appsink name=out sync=false max-buffers=2 drop=true";
  GstElement *b = launch (b_desc);
  play (b);
  GstElement *bout = by_name (b, "out");
  smp = gst_app_sink_try_pull_sample (GST_APP_SINK (bout), 10 * GST_SECOND);
  fail_unless (smp != nullptr, "the new client gets no video");
  gst_sample_unref (smp);
  std::string err = wait_error (a, 10 * GST_SECOND);
  fail_unless (err.find ("replaced by a new client") != std::string::npos, "error: '%s'", err.c_str ());
  assert_no_error (b);
  assert_no_error (srv);
  gst_object_unref (aout);
  gst_object_unref (bout);
  stop (b);
  stop (a);
  stop (srv);
  g_unlink ((site.dir + "/known_hosts_b").c_str ());
}
GST_END_TEST;

/* Junk datagrams at the server's port — random bytes and truncated QUIC
 * long headers — change nothing for the connected client. */
GST_START_TEST (test_junk_datagrams)
{
  Site site;
  GstElement *srv = launch ("videotestsrc is-live=true ! video/x-raw,width=64,height=64,framerate=30/1 ! quicsink name=s "
      + site.server ());
  GstElement *cli = launch ("quicsrc " + site.client () + " ! appsink name=out sync=false max-buffers=2 drop=true");
  play (srv);
  play (cli);
  GstElement *out = by_name (cli, "out");
  GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
  fail_unless (smp != nullptr);
  gst_sample_unref (smp);

  int fd = socket (AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to {};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  to.sin_port = htons (site.port);
  GRand *rand = g_rand_new_with_seed (1234);
  guint8 pkt[1500];
  for (int i = 0; i < 3000; i++) {
    size_t len = g_rand_int_range (rand, 1, sizeof pkt);
    for (size_t k = 0; k < len; k++)
      pkt[k] = (guint8) g_rand_int (rand);
    if (i % 3 == 0) {
      /* A QUIC v1 Initial header with garbage after it. */
      pkt[0] = 0xc0;
      pkt[1] = 0;
      pkt[2] = 0;
      pkt[3] = 0;
      pkt[4] = 1;
      len = MAX (len, (size_t) 1200);
    }
    sendto (fd, pkt, len, 0, (sockaddr *) &to, sizeof to);
    if (i % 100 == 0)
      g_usleep (1000);
  }
  g_rand_free (rand);
  close (fd);

  /* Still connected, still streaming. */
  g_usleep (200000);
  for (int i = 0; i < 10; i++) {
    smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 5 * GST_SECOND);
    fail_unless (smp != nullptr, "video stopped after junk datagrams");
    gst_sample_unref (smp);
  }
  assert_no_error (cli);
  assert_no_error (srv);
  gst_object_unref (out);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* A client that connects to a running display stream gets a key unit
 * first: delta units are held back and the source is asked for a key unit
 * (with wait-for-connection=false, as a session server runs). */
static GstPadProbeReturn
note_key_request (GstPad *, GstPadProbeInfo * info, gpointer data)
{
  if (gst_video_event_is_force_key_unit (GST_PAD_PROBE_INFO_EVENT (info)))
    static_cast<std::atomic<int> *> (data)->fetch_add (1);
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_late_client_starts_with_key_unit)
{
  Site site;
  GstElement *srv = launch ("appsrc name=src format=time caps=application/x-wayray-tiles ! s.display quicsink name=s "
      "wait-for-connection=false " + site.server ());
  play (srv);
  GstElement *src = by_name (srv, "src");
  GstPad *src_pad = gst_element_get_static_pad (src, "src");
  std::atomic<int> requests { 0 };
  gst_pad_add_probe (src_pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, note_key_request, &requests, nullptr);
  std::atomic<bool> stop_pushing { false };
  std::thread pusher ([&] {
    int answered = 0, noticed = 0;
    guint due = 0;
    for (guint i = 0; !stop_pushing; i++) {
      GstBuffer *b = pattern_buffer (i, 100);
      GST_BUFFER_PTS (b) = i * 10 * GST_MSECOND;
      /* A key unit at the start, and five buffers (50 ms) after one was
       * asked for, as an encoder would. */
      int r = requests.load ();
      if (r != noticed) {
        noticed = r;
        due = i + 5;
      }
      if (i > 0 && !(answered != noticed && i >= due))
        GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DELTA_UNIT);
      else
        answered = noticed;
      gst_app_src_push_buffer (GST_APP_SRC (src), b);
      g_usleep (10000);
    }
  });
  g_usleep (300000);
  GstElement *cli = launch ("quicsrc " + site.client () + " ! appsink name=out sync=false");
  play (cli);
  GstElement *out = by_name (cli, "out");
  GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
  fail_unless (smp != nullptr);
  fail_if (GST_BUFFER_FLAG_IS_SET (gst_sample_get_buffer (smp), GST_BUFFER_FLAG_DELTA_UNIT),
      "the first buffer a new client got was a delta unit");
  gst_sample_unref (smp);
  fail_unless (requests.load () > 0, "no key unit was requested");
  stop_pushing = true;
  pusher.join ();
  assert_no_error (srv);
  assert_no_error (cli);
  gst_object_unref (out);
  gst_object_unref (src_pad);
  gst_object_unref (src);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* Every group of pictures travels on a stream of its own, and the receiver
 * gives each stream back when it ends: far more groups than the receiver
 * allows streams at once (kMaxIncomingStreams, 256) all arrive. Noise, or a
 * scene cut per frame, makes every frame a key unit; with ngtcp2 0.12 the
 * 257th group used to wait for ever (gstquicconn.cpp, give_back_stream):
 * 255 of them arrived. */
GST_START_TEST (test_many_groups_of_pictures)
{
  const guint n = 700;
  Site site;
  GstElement *srv = launch ("appsrc name=src format=time caps=video/x-h264 ! s.video quicsink name=s "
      "gop-reset-threshold=100000000 max-queue-time=0 " + site.server ());
  play (srv);
  GstElement *cli = launch ("quicsrc " + site.client ("transport=quic") + " ! appsink name=out sync=false");
  play (cli);
  GstElement *src = by_name (srv, "src");
  /* Each group's one frame says which it is in its first 4 bytes. */
  auto frame = [] (guint i) {
    GstBuffer *b = pattern_buffer (i, 600);
    gst_buffer_fill (b, 0, &i, sizeof i);
    return b;
  };
  for (guint i = 0; i < n; i++) {
    GstBuffer *b = frame (i);
    GST_BUFFER_PTS (b) = i * 3 * GST_MSECOND;
    gst_app_src_push_buffer (GST_APP_SRC (src), b);
    /* Paced, as an encoder's frames are: a group's bytes leave before the
     * next key unit ends it, so its end comes on its own. */
    g_usleep (3000);
  }
  GstElement *out = by_name (cli, "out");
  /* A group whose first packet was lost can arrive after the next one
   * started, and is then skipped by design (older than the current
   * group); what matters is that the groups keep coming, far beyond 256,
   * in order and intact. */
  guint got = 0, last = 0;
  bool first = true;
  while (last + 1 < n) {
    GstSample *smp = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
    if (!smp)
      break;
    GstBuffer *b = gst_sample_get_buffer (smp);
    guint idx = 0;
    gst_buffer_extract (b, 0, &idx, sizeof idx);
    fail_unless (idx < n && (first || idx > last), "group %u arrived after group %u", idx, last);
    GstBuffer *want = frame (idx);
    GstMapInfo map;
    gst_buffer_map (want, &map, GST_MAP_READ);
    fail_unless (gst_buffer_get_size (b) == 600 && gst_buffer_memcmp (b, 0, map.data, 600) == 0,
        "group %u arrived with other bytes", idx);
    gst_buffer_unmap (want, &map);
    gst_buffer_unref (want);
    gst_sample_unref (smp);
    last = idx;
    first = false;
    got++;
  }
  GST_INFO ("%u of %u groups arrived, the last %u", got, n, last);
  fail_unless_equals_int (last, n - 1);
  fail_unless (got > 600, "only %u of %u groups arrived", got, n);
  assert_no_error (srv);
  assert_no_error (cli);
  gst_object_unref (out);
  gst_object_unref (src);
  stop (cli);
  stop (srv);
}
GST_END_TEST;

/* A peer cannot make a quicsrc create pads (and threads) without bound. */
GST_START_TEST (test_pad_limit)
{
  Site site;
  GstElement *srv = launch ("quicsrc name=sr " + site.server () + " ! fakesink async=false");
  play (srv);
  auto ep = raw_client (site, wrq::TransportChoice::Quic);
  RawPeer peer;
  std::string error;
  fail_unless (ep->add_user (&peer, error), "%s", error.c_str ());
  std::atomic<bool> cancel { false };
  fail_unless (ep->wait_connected (cancel, 10000));
  std::vector<std::shared_ptr<wrq::SendStream>> streams;
  for (int i = 0; i < 40; i++) {
    wrq::Preamble pre;
    pre.purpose = wrq::Purpose::Bulk;
    pre.name = "bulk" + std::to_string (i);
    auto st = ep->open_stream (pre);
    std::vector<guint8> bytes;
    GstBuffer *b = pattern_buffer (i, 10);
    wrq::encode_buffer (bytes, b);
    gst_buffer_unref (b);
    ep->write (*st, std::move (bytes), 1 << 20, true, cancel);
    streams.push_back (st);
  }
  std::string w = wait_warning (srv, 10 * GST_SECOND);
  fail_unless (w.find ("more than 32 differently named streams") != std::string::npos, "warning: '%s'", w.c_str ());
  GstElement *sr = by_name (srv, "sr");
  guint pads = 0;
  for (int i = 0; i < 100 && pads < 32; i++) {
    g_usleep (20000);
    GST_OBJECT_LOCK (sr);
    pads = GST_ELEMENT (sr)->numsrcpads;
    GST_OBJECT_UNLOCK (sr);
  }
  g_usleep (200000);
  GST_OBJECT_LOCK (sr);
  pads = GST_ELEMENT (sr)->numsrcpads;
  GST_OBJECT_UNLOCK (sr);
  fail_unless_equals_int (pads, 32);
  ep->remove_user (&peer);
  streams.clear ();
  ep.reset ();
  gst_object_unref (sr);
  stop (srv);
}
GST_END_TEST;

static Suite *
quicelements_suite (void)
{
  Suite *s = suite_create ("quicelements");
  TCase *tc = tcase_create ("loopback");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_large_data_in_order);
  tcase_add_test (tc, test_streams_and_events_both_ways);
  tcase_add_test (tc, test_audio_as_datagrams);
  tcase_add_test (tc, test_fingerprint_pinning);
  tcase_add_test (tc, test_peer_killed);
  tcase_add_test (tc, test_server_survives_client);
  tcase_add_test (tc, test_tcp_fallback);
  tcase_add_test (tc, test_input_fast_while_display_saturated);
  tcase_add_test (tc, test_malformed_peer);
  tcase_add_test (tc, test_bounded_queues);
  tcase_add_test (tc, test_hostile_streams_bounded_quic);
  tcase_add_test (tc, test_hostile_streams_bounded_tcp);
  tcase_add_test (tc, test_new_client_replaces_old);
  tcase_add_test (tc, test_junk_datagrams);
  tcase_add_test (tc, test_late_client_starts_with_key_unit);
  tcase_add_test (tc, test_pad_limit);
  tcase_add_test (tc, test_many_groups_of_pictures);
  return s;
}

GST_CHECK_MAIN (quicelements);
