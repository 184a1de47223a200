/* bench-quic-transport: quicsink/quicsrc on loopback next to plain TCP.
 *
 *  1. throughput of one stream (1 MiB buffers, as fast as they go);
 *  2. one-way latency of a small message on an idle connection: the input
 *     path (a navigation event sent upstream into the client's quicsrc until
 *     it leaves the server's quicsink) and the cursor path (a 64-byte buffer
 *     on the server's cursor pad until the client's pad pushes it);
 *  3. the same latencies while a display stream saturates the connection.
 * Plain TCP (TCP_NODELAY, no TLS) does the same: one bulk connection for
 * throughput; a 64-byte message alone; a 64-byte message behind bulk data on
 * the same connection (what a single-stream TCP transport suffers), and on a
 * second connection beside a saturated one.
 *
 * Both ends run in this process, so one monotonic clock times both sides.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/app/app.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

const double kThroughputSeconds = 4.0;
const int kSamples = 300;
const gsize kBulkChunk = 1024 * 1024;

gint64
now_us ()
{
  return g_get_monotonic_time ();
}

struct Percentiles {
  double median, p90, p99;
};

Percentiles
percentiles (std::vector<double> v)
{
  if (v.empty ())
    return { -1, -1, -1 };
  std::sort (v.begin (), v.end ());
  auto at = [&] (double q) { return v[std::min (v.size () - 1, (size_t) (q * (v.size () - 1) + 0.5))]; };
  return { at (0.5), at (0.9), at (0.99) };
}

void
print_latency (const char *what, const std::vector<double> & us)
{
  Percentiles p = percentiles (us);
  printf ("  %-58s median %8.3f ms   p90 %8.3f ms   p99 %8.3f ms   (n=%zu)\n", what,
      p.median / 1000.0, p.p90 / 1000.0, p.p99 / 1000.0, us.size ());
}

/* ------------------------------------------------------------------ QUIC */

struct QuicRig {
  GstElement *srv = nullptr, *cli = nullptr;
  GstElement *disp = nullptr, *cur = nullptr;
  GstPad *disp_src = nullptr;      /* server: where upstream input arrives */
  GstPad *dout_sink = nullptr;     /* client: where input is sent upstream */
  GstPad *cout_sink = nullptr;
  std::atomic<guint64> display_bytes { 0 };
  std::atomic<gint64> first_us { 0 }, last_us { 0 };
  std::mutex lock;
  std::vector<double> input_lat, cursor_lat;
  std::atomic<bool> measure_input { false }, measure_cursor { false };
  gchar *dir = nullptr;

  static GstPadProbeReturn on_display (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    auto *r = static_cast<QuicRig *> (data);
    gint64 t = now_us ();
    if (r->first_us == 0)
      r->first_us = t;
    r->last_us = t;
    r->display_bytes += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn on_input (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    auto *r = static_cast<QuicRig *> (data);
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
    if (GST_EVENT_TYPE (ev) != GST_EVENT_NAVIGATION)
      return GST_PAD_PROBE_OK;
    gdouble sent = 0;
    const GstStructure *s = gst_event_get_structure (ev);
    if (gst_structure_get_double (s, "pointer_x", &sent) && r->measure_input) {
      std::lock_guard<std::mutex> lk (r->lock);
      r->input_lat.push_back ((double) now_us () - sent);
    }
    return GST_PAD_PROBE_DROP;
  }
  static GstPadProbeReturn on_cursor (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    auto *r = static_cast<QuicRig *> (data);
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
    gint64 sent = 0;
    if (gst_buffer_extract (b, 0, &sent, sizeof sent) == sizeof sent && r->measure_cursor) {
      std::lock_guard<std::mutex> lk (r->lock);
      r->cursor_lat.push_back ((double) (now_us () - sent));
    }
    return GST_PAD_PROBE_OK;
  }

  bool setup (guint port, const char *extra)
  {
    dir = g_dir_make_tmp ("wayray-bench-XXXXXX", nullptr);
    gchar *srv_desc = g_strdup_printf (
        "appsrc name=disp format=time block=true max-bytes=%u caps=application/x-bench ! s.display "
        "appsrc name=cur format=time caps=application/x-cursor-bench ! s.cursor "
        "quicsink name=s mode=server host=127.0.0.1 port=%u certificate-file=%s/c.pem private-key-file=%s/k.pem "
        "stats-interval=0 %s", (guint) (4 * kBulkChunk), port, dir, dir, extra);
    gchar *cli_desc = g_strdup_printf (
        "quicsrc name=c mode=client host=127.0.0.1 port=%u known-hosts-file=%s/known stats-interval=0 %s "
        "c.display ! fakesink name=dout sync=false async=false  c.cursor ! fakesink name=cout sync=false async=false",
        port, dir, extra);
    GError *err = nullptr;
    srv = gst_parse_launch (srv_desc, &err);
    cli = srv ? gst_parse_launch (cli_desc, &err) : nullptr;
    g_free (srv_desc);
    g_free (cli_desc);
    if (!srv || !cli) {
      fprintf (stderr, "pipeline: %s\n", err ? err->message : "?");
      return false;
    }
    disp = gst_bin_get_by_name (GST_BIN (srv), "disp");
    cur = gst_bin_get_by_name (GST_BIN (srv), "cur");
    disp_src = gst_element_get_static_pad (disp, "src");
    gst_pad_add_probe (disp_src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_input, this, nullptr);
    GstElement *dout = gst_bin_get_by_name (GST_BIN (cli), "dout");
    GstElement *cout = gst_bin_get_by_name (GST_BIN (cli), "cout");
    dout_sink = gst_element_get_static_pad (dout, "sink");
    cout_sink = gst_element_get_static_pad (cout, "sink");
    gst_object_unref (dout);
    gst_object_unref (cout);
    gst_pad_add_probe (dout_sink, GST_PAD_PROBE_TYPE_BUFFER, on_display, this, nullptr);
    gst_pad_add_probe (cout_sink, GST_PAD_PROBE_TYPE_BUFFER, on_cursor, this, nullptr);
    gst_element_set_state (srv, GST_STATE_PLAYING);
    gst_element_set_state (cli, GST_STATE_PLAYING);
    /* Wait for the connection and both pads. */
    for (int i = 0; i < 500; i++) {
      GstBuffer *b = gst_buffer_new_allocate (nullptr, 16, nullptr);
      gst_app_src_push_buffer (GST_APP_SRC (disp), b);
      GstBuffer *c = gst_buffer_new_allocate (nullptr, 64, nullptr);
      gst_buffer_memset (c, 0, 0, 64);
      gst_app_src_push_buffer (GST_APP_SRC (cur), c);
      g_usleep (10000);
      if (display_bytes > 0 && gst_pad_is_linked (cout_sink))
        return true;
    }
    fprintf (stderr, "QUIC rig did not connect\n");
    return false;
  }

  void teardown ()
  {
    gst_element_set_state (cli, GST_STATE_NULL);
    gst_element_set_state (srv, GST_STATE_NULL);
    gst_object_unref (disp_src);
    gst_object_unref (dout_sink);
    gst_object_unref (cout_sink);
    gst_object_unref (disp);
    gst_object_unref (cur);
    gst_object_unref (cli);
    gst_object_unref (srv);
    for (const char *f : { "c.pem", "k.pem", "known" }) {
      gchar *p = g_build_filename (dir, f, nullptr);
      g_unlink (p);
      g_free (p);
    }
    g_rmdir (dir);
    g_free (dir);
  }

  /* Pushes 1 MiB buffers until @stop; the memory is shared, not copied. */
  void flood (std::atomic<bool> & stop_flag)
  {
    GstBuffer *chunk = gst_buffer_new_allocate (nullptr, kBulkChunk, nullptr);
    gst_buffer_memset (chunk, 0, 0xa5, kBulkChunk);
    guint64 i = 0;
    while (!stop_flag) {
      GstBuffer *b = gst_buffer_copy (chunk);   /* shallow: shares memory */
      GST_BUFFER_PTS (b) = i++ * GST_MSECOND;
      if (gst_app_src_push_buffer (GST_APP_SRC (disp), b) != GST_FLOW_OK)
        break;
    }
    gst_buffer_unref (chunk);
  }

  void send_input ()
  {
    GstStructure *s = gst_structure_new ("application/x-gst-navigation",
        "event", G_TYPE_STRING, "mouse-move",
        "pointer_x", G_TYPE_DOUBLE, (double) now_us (),
        "pointer_y", G_TYPE_DOUBLE, 0.0, nullptr);
    gst_pad_push_event (dout_sink, gst_event_new_navigation (s));
  }

  void send_cursor ()
  {
    GstBuffer *b = gst_buffer_new_allocate (nullptr, 64, nullptr);
    gst_buffer_memset (b, 0, 0, 64);
    gint64 t = now_us ();
    gst_buffer_fill (b, 0, &t, sizeof t);
    gst_app_src_push_buffer (GST_APP_SRC (cur), b);
  }

  void measure_latency (bool input)
  {
    {
      std::lock_guard<std::mutex> lk (lock);
      (input ? input_lat : cursor_lat).clear ();
    }
    (input ? measure_input : measure_cursor) = true;
    for (int i = 0; i < kSamples; i++) {
      input ? send_input () : send_cursor ();
      g_usleep (5000);
    }
    g_usleep (200000);
    (input ? measure_input : measure_cursor) = false;
  }
};

/* ------------------------------------------------------------------- TCP */

struct TcpPair {
  int a = -1, b = -1;
  bool open ()
  {
    int l = socket (AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind (l, (sockaddr *) &addr, sizeof addr) != 0 || listen (l, 1) != 0)
      return false;
    getsockname (l, (sockaddr *) &addr, &len);
    a = socket (AF_INET, SOCK_STREAM, 0);
    if (connect (a, (sockaddr *) &addr, sizeof addr) != 0)
      return false;
    b = accept (l, nullptr, nullptr);
    close (l);
    int on = 1;
    setsockopt (a, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    setsockopt (b, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    return b >= 0;
  }
  ~TcpPair ()
  {
    if (a >= 0)
      close (a);
    if (b >= 0)
      close (b);
  }
};

bool
write_all (int fd, const void *data, size_t len)
{
  const char *p = (const char *) data;
  while (len) {
    ssize_t n = write (fd, p, len);
    if (n <= 0)
      return false;
    p += n;
    len -= n;
  }
  return true;
}

bool
read_all (int fd, void *data, size_t len)
{
  char *p = (char *) data;
  while (len) {
    ssize_t n = read (fd, p, len);
    if (n <= 0)
      return false;
    p += n;
    len -= n;
  }
  return true;
}

/* Records: u32 length, u8 kind (0 bulk, 1 message with a timestamp). */
void
tcp_reader (int fd, std::atomic<guint64> * bulk, std::vector<double> * lat, std::atomic<bool> * measuring)
{
  std::vector<char> buf (kBulkChunk);
  for (;;) {
    guint8 h[5];
    if (!read_all (fd, h, 5))
      return;
    guint32 len;
    memcpy (&len, h, 4);
    if (len > buf.size ())
      return;
    if (!read_all (fd, buf.data (), len))
      return;
    if (h[4] == 1) {
      gint64 sent;
      memcpy (&sent, buf.data (), sizeof sent);
      if (*measuring)
        lat->push_back ((double) (now_us () - sent));
    } else if (bulk) {
      *bulk += len;
    }
  }
}

bool
tcp_send (int fd, guint8 kind, const void *data, guint32 len, std::mutex * m)
{
  guint8 h[5];
  memcpy (h, &len, 4);
  h[4] = kind;
  std::lock_guard<std::mutex> lk (*m);
  return write_all (fd, h, 5) && write_all (fd, data, len);
}

void
tcp_message_latency (int fd, std::mutex * m, std::atomic<bool> * measuring)
{
  *measuring = true;
  char msg[64] = { 0 };
  for (int i = 0; i < kSamples; i++) {
    gint64 t = now_us ();
    memcpy (msg, &t, sizeof t);
    tcp_send (fd, 1, msg, sizeof msg, m);
    g_usleep (5000);
  }
  g_usleep (200000);
  *measuring = false;
}

}  // namespace

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (!gst_element_factory_find ("quicsink")) {
    fprintf (stderr, "quicsink not found: set GST_PLUGIN_PATH_1_0 to the built plugin\n");
    return 1;
  }
  const char *extra = argc > 1 ? argv[1] : "";
  guint port = 40000 + getpid () % 20000;

  printf ("bench-quic-transport: loopback, both ends in one process, %d cores\n", (int) g_get_num_processors ());
  printf ("QUIC: quicsink -> quicsrc, ngtcp2 %s + GnuTLS, options '%s'\n", "0.12", extra);
  printf ("TCP:  plain sockets, TCP_NODELAY, no TLS\n\n");

  /* --- QUIC --- */
  QuicRig q;
  if (!q.setup (port, extra))
    return 1;

  q.measure_latency (true);
  q.measure_latency (false);
  std::vector<double> q_in_idle = q.input_lat, q_cur_idle = q.cursor_lat;

  std::atomic<bool> stop_flood { false };
  q.first_us = 0;
  q.display_bytes = 0;
  std::thread flood ([&] { q.flood (stop_flood); });
  g_usleep ((gulong) (kThroughputSeconds * G_USEC_PER_SEC));
  double q_secs = (q.last_us - q.first_us) / 1e6;
  double q_gbit = q.display_bytes * 8 / q_secs / 1e9;
  /* Still flooding: latency under saturation. */
  guint64 before = q.display_bytes;
  gint64 t0 = now_us ();
  q.measure_latency (true);
  q.measure_latency (false);
  double q_busy_gbit = (q.display_bytes - before) * 8 / ((now_us () - t0) / 1e6) / 1e9;
  std::vector<double> q_in_busy = q.input_lat, q_cur_busy = q.cursor_lat;
  GstElement *s = gst_bin_get_by_name (GST_BIN (q.srv), "s");
  GstStructure *st = nullptr;
  g_object_get (s, "stats", &st, nullptr);
  gchar *stats = gst_structure_to_string (st);
  gst_structure_free (st);
  gst_object_unref (s);
  stop_flood = true;
  q.teardown ();
  flood.join ();

  /* --- TCP --- */
  double t_gbit = 0;
  std::vector<double> t_idle, t_same, t_beside;
  {
    TcpPair bulk;
    if (!bulk.open ())
      return 1;
    std::atomic<guint64> bytes { 0 };
    std::atomic<bool> measuring { false };
    std::vector<double> lat;
    std::thread reader (tcp_reader, bulk.b, &bytes, &lat, &measuring);
    std::mutex m;
    tcp_message_latency (bulk.a, &m, &measuring);
    t_idle = lat;
    lat.clear ();

    std::vector<char> chunk (kBulkChunk, 0x5a);
    std::atomic<bool> stop { false };
    std::thread writer ([&] {
      while (!stop && tcp_send (bulk.a, 0, chunk.data (), chunk.size (), &m)) {
      }
    });
    bytes = 0;
    gint64 start = now_us ();
    g_usleep ((gulong) (kThroughputSeconds * G_USEC_PER_SEC));
    t_gbit = bytes * 8 / ((now_us () - start) / 1e6) / 1e9;
    /* Same connection: each message waits behind the bulk data queued
     * before it. */
    tcp_message_latency (bulk.a, &m, &measuring);
    t_same = lat;
    lat.clear ();
    /* A second connection beside the saturated one. */
    TcpPair side;
    side.open ();
    std::vector<double> lat2;
    std::atomic<bool> measuring2 { false };
    std::thread reader2 (tcp_reader, side.b, nullptr, &lat2, &measuring2);
    std::mutex m2;
    tcp_message_latency (side.a, &m2, &measuring2);
    t_beside = lat2;
    stop = true;
    writer.join ();
    shutdown (bulk.a, SHUT_RDWR);
    shutdown (side.a, SHUT_RDWR);
    reader.join ();
    reader2.join ();
  }

  printf ("Throughput, one stream (1 MiB buffers, %.0f s)\n", kThroughputSeconds);
  printf ("  %-58s %8.2f Gbit/s\n", "QUIC  quicsink -> quicsrc (display stream)", q_gbit);
  printf ("  %-58s %8.2f Gbit/s\n", "TCP   plain socket", t_gbit);
  printf ("\nSmall-message latency, idle connection (one way, %d samples, 5 ms apart)\n", kSamples);
  print_latency ("QUIC  input: navigation event upstream, client -> server", q_in_idle);
  print_latency ("QUIC  cursor: 64-byte buffer, server -> client", q_cur_idle);
  print_latency ("TCP   64-byte message", t_idle);
  printf ("\nSmall-message latency while a display stream saturates the connection\n");
  printf ("  (QUIC display stream meanwhile: %.2f Gbit/s)\n", q_busy_gbit);
  print_latency ("QUIC  input: navigation event upstream, client -> server", q_in_busy);
  print_latency ("QUIC  cursor: 64-byte buffer, server -> client", q_cur_busy);
  print_latency ("TCP   64-byte message behind bulk data, same connection", t_same);
  print_latency ("TCP   64-byte message on a second connection", t_beside);
  printf ("\nQUIC sender statistics at the end of the saturated run:\n  %s\n", stats);
  g_free (stats);
  return 0;
}
