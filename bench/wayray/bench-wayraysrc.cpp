/* bench-wayraysrc: time from a Wayland client's wl_surface.commit to
 * wayraysrc pushing the frame, for a keystroke-sized damage (8x16) and for
 * a full 1920x1080 frame; both render paths side by side; and what an idle
 * session costs.
 *
 * The commit time is taken by the test client (CLOCK_MONOTONIC just before
 * wl_surface_commit), the push time by a probe on wayraysrc's source pad.
 * Commits are spaced 25 ms apart, as typing is, so no commit waits for the
 * previous frame's pacing slot.
 *
 *   bench-wayraysrc [ITERATIONS]       (default 300)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/gst.h>

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

static gint64
now_ns ()
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct Pushes {
  std::mutex lock;
  std::condition_variable cond;
  std::deque<gint64> times;
};

static GstPadProbeReturn
on_push (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  auto p = static_cast<Pushes *> (data);
  gint64 t = now_ns ();
  std::lock_guard<std::mutex> g (p->lock);
  p->times.push_back (t);
  p->cond.notify_all ();
  return GST_PAD_PROBE_OK;
}

struct Client {
  GPid pid = 0;
  int in = -1, out = -1;
  std::string buf;

  bool start (const std::string &socket) {
    const gchar *exe = g_getenv ("WR_TEST_CLIENT");
    gchar *argv[] = { (gchar *) (exe ? exe : WR_TEST_CLIENT_PATH), nullptr };
    gchar **envp = g_environ_setenv (g_get_environ (), "WAYLAND_DISPLAY", socket.c_str (), TRUE);
    gboolean ok = g_spawn_async_with_pipes (nullptr, argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, nullptr,
        nullptr, &pid, &in, &out, nullptr, nullptr);
    g_strfreev (envp);
    return ok;
  }
  void send (const std::string &l) {
    std::string s = l + "\n";
    if (write (in, s.data (), s.size ()) < 0)
      g_error ("test client gone");
  }
  std::string expect (const std::string &prefix) {
    for (;;) {
      size_t nl;
      while ((nl = buf.find ('\n')) == std::string::npos) {
        struct pollfd p = { out, POLLIN, 0 };
        if (poll (&p, 1, 10000) <= 0)
          g_error ("test client silent while waiting for '%s'", prefix.c_str ());
        char tmp[512];
        ssize_t n = read (out, tmp, sizeof tmp);
        if (n <= 0)
          g_error ("test client ended");
        buf.append (tmp, n);
      }
      std::string line = buf.substr (0, nl);
      buf.erase (0, nl + 1);
      if (line.rfind (prefix, 0) == 0)
        return line;
    }
  }
  ~Client () {
    if (in >= 0)
      close (in);
    if (pid > 0) {
      kill (pid, SIGTERM);
      waitpid (pid, nullptr, 0);
    }
    if (out >= 0)
      close (out);
  }
};

struct Stats {
  double median, p99, min, max;
};

static Stats
stats (std::vector<double> v)
{
  std::sort (v.begin (), v.end ());
  auto at = [&v] (double q) { return v[std::min (v.size () - 1, (size_t) (q * (v.size () - 1) + 0.5))]; };
  return { at (0.5), at (0.99), v.front (), v.back () };
}

struct Result {
  Stats small, full;
  double idle_cpu_ms;
  guint64 idle_frames;
};

static Result
run (const char *renderer, int iterations)
{
  gchar *desc = g_strdup_printf ("wayraysrc name=src renderer=%s ! "
      "video/x-raw,width=1920,height=1080,framerate=60/1 ! fakesink sync=false", renderer);
  GstElement *pipeline = gst_parse_launch (desc, nullptr);
  g_free (desc);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  Pushes pushes;
  GstPad *pad = gst_element_get_static_pad (src, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_push, &pushes, nullptr);
  gst_object_unref (pad);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  gst_element_get_state (pipeline, nullptr, nullptr, 5 * GST_SECOND);
  g_usleep (200000);            /* caps negotiated, output sized */

  gchar *socket = nullptr;
  g_object_get (src, "socket-name", &socket, nullptr);
  Client client;
  if (!client.start (socket))
    g_error ("could not start the test client");
  g_free (socket);
  client.expect ("ready 1920 1080");

  auto measure = [&] (const std::string &paint) {
    g_usleep (25000);
    {
      std::lock_guard<std::mutex> g (pushes.lock);
      pushes.times.clear ();
    }
    client.send (paint);
    client.send ("commit");
    std::string line = client.expect ("committed");
    gint64 committed = g_ascii_strtoll (line.c_str () + 10, nullptr, 10);
    std::unique_lock<std::mutex> g (pushes.lock);
    if (!pushes.cond.wait_for (g, std::chrono::seconds (5), [&] { return !pushes.times.empty (); }))
      g_error ("no frame after a commit");
    return (pushes.times.front () - committed) / 1e6;
  };

  std::vector<double> small, full;
  for (int i = 0; i < 20; i++)    /* warm-up */
    measure ("fill " + std::to_string (0x101010 * (i % 8)));
  for (int i = 0; i < iterations; i++) {
    char cmd[64];
    snprintf (cmd, sizeof cmd, "rect %d %d 8 16 %06x", 40 + (i % 200) * 8, 100 + (i / 200) * 16,
        0x203040 + i);
    small.push_back (measure (cmd));
  }
  for (int i = 0; i < iterations / 2; i++)
    full.push_back (measure ("fill " + std::to_string (100000 + i * 37)));

  /* Idle: no damage, so nothing rendered or pushed. */
  g_usleep (300000);
  guint64 before = 0, after = 0;
  g_object_get (src, "frames-pushed", &before, nullptr);
  struct rusage r0, r1;
  getrusage (RUSAGE_SELF, &r0);
  g_usleep (3 * G_USEC_PER_SEC);
  getrusage (RUSAGE_SELF, &r1);
  g_object_get (src, "frames-pushed", &after, nullptr);
  auto ms = [] (const struct timeval &t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  double cpu = ms (r1.ru_utime) + ms (r1.ru_stime) - ms (r0.ru_utime) - ms (r0.ru_stime);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (pipeline);
  return { stats (small), stats (full), cpu, after - before };
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  int iterations = argc > 1 ? atoi (argv[1]) : 300;
  gchar *runtime = g_dir_make_tmp ("wayray-bench-XXXXXX", nullptr);
  g_setenv ("XDG_RUNTIME_DIR", runtime, TRUE);
  signal (SIGPIPE, SIG_IGN);

  printf ("wayraysrc: commit -> pushed buffer at 1920x1080, %d keystroke-sized (8x16) and %d full-frame "
      "commits per renderer, spaced 25 ms\n\n", iterations, iterations / 2);
  printf ("%-16s %-12s %10s %10s %10s %10s\n", "renderer", "damage", "median ms", "p99 ms", "min ms", "max ms");
  std::vector<std::pair<const char *, Result>> results;
  for (const char *renderer : { "pixman", "pixman-readback" }) {
    Result r = run (renderer, iterations);
    results.push_back ({ renderer, r });
    printf ("%-16s %-12s %10.3f %10.3f %10.3f %10.3f\n", renderer, "8x16", r.small.median, r.small.p99,
        r.small.min, r.small.max);
    printf ("%-16s %-12s %10.3f %10.3f %10.3f %10.3f\n", renderer, "1920x1080", r.full.median, r.full.p99,
        r.full.min, r.full.max);
  }
  printf ("\nratio readback/zero-copy (median): 8x16 %.2fx, full frame %.2fx\n",
      results[1].second.small.median / results[0].second.small.median,
      results[1].second.full.median / results[0].second.full.median);
  printf ("\nidle session, 3 s without damage:\n");
  for (auto &r : results)
    printf ("  %-16s %" G_GUINT64_FORMAT " frames pushed, %.1f ms CPU (whole process)\n", r.first,
        r.second.idle_frames, r.second.idle_cpu_ms);
  printf ("\ntargets: 8x16 median < 1 ms, full frame median < 8 ms\n");

  gchar *cmd = g_strdup_printf ("rm -rf %s", runtime);
  if (system (cmd) != 0)
    g_printerr ("could not remove %s\n", runtime);
  g_free (cmd);
  g_free (runtime);
  return 0;
}
