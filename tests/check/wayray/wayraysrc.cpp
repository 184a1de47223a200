/* wayraysrc tests: a real wlroots compositor with real Wayland clients.
 *
 * The test client (tests/client/wr-test-client.c) paints what it is told and
 * reports the input it receives; these tests compare the element's frames,
 * damage and events with that.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/navigation.h>
#include <gst/video/video.h>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gstwayraycursor.h"
#include "gstwayraydamagemeta.h"

static gchar *runtime_dir;

/* ---- The test client -------------------------------------------------- */

struct TestClient {
  GPid pid = 0;
  int in = -1, out = -1;
  std::string buf;
  std::vector<std::string> seen;

  explicit TestClient (const std::string & socket) {
    const gchar *exe = g_getenv ("WR_TEST_CLIENT");
    fail_unless (exe != nullptr, "WR_TEST_CLIENT is not set");
    gchar *argv[] = { (gchar *) exe, nullptr };
    gchar **envp = g_environ_setenv (g_get_environ (), "WAYLAND_DISPLAY", socket.c_str (), TRUE);
    GError *err = nullptr;
    gboolean ok = g_spawn_async_with_pipes (nullptr, argv, envp, G_SPAWN_DO_NOT_REAP_CHILD,
        nullptr, nullptr, &pid, &in, &out, nullptr, &err);
    g_strfreev (envp);
    fail_unless (ok, "could not start the test client: %s", err ? err->message : "?");
  }

  ~TestClient () {
    if (in >= 0)
      close (in);               /* EOF: the client exits */
    if (pid > 0) {
      for (int i = 0; i < 200 && waitpid (pid, nullptr, WNOHANG) != pid; i++)
        g_usleep (10000);
      kill (pid, SIGKILL);
      waitpid (pid, nullptr, WNOHANG);
    }
    if (out >= 0)
      close (out);
  }

  void send (const std::string & line) {
    std::string l = line + "\n";
    fail_unless (write (in, l.data (), l.size ()) == (ssize_t) l.size ());
  }

  /* Next line from the client, or "" after timeout_ms. */
  std::string read_line (int timeout_ms) {
    gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;
    for (;;) {
      size_t nl = buf.find ('\n');
      if (nl != std::string::npos) {
        std::string line = buf.substr (0, nl);
        buf.erase (0, nl + 1);
        seen.push_back (line);
        return line;
      }
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      if (left <= 0)
        return "";
      struct pollfd p = { out, POLLIN, 0 };
      if (poll (&p, 1, (int) left) <= 0)
        continue;
      char tmp[512];
      ssize_t n = read (out, tmp, sizeof tmp);
      if (n <= 0)
        return "";
      buf.append (tmp, n);
    }
  }

  /* Waits for a line starting with `prefix`; fails the test if none. */
  std::string expect (const std::string & prefix, int timeout_ms = 5000) {
    gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;
    for (;;) {
      int left = (int) ((deadline - g_get_monotonic_time ()) / 1000);
      std::string line = left > 0 ? read_line (left) : "";
      if (line.empty ()) {
        std::string all;
        for (auto &s : seen)
          all += "\n  " + s;
        fail ("test client never reported '%s'; it reported:%s", prefix.c_str (), all.c_str ());
        return "";
      }
      if (line.rfind (prefix, 0) == 0)
        return line;
    }
  }
};

/* The next report starting with `prefix` must be `expected` exactly. */
static void
expect_line (TestClient * client, const char *prefix, const char *expected)
{
  std::string line = client->expect (prefix);
  fail_unless (line == expected, "test client reported '%s', expected '%s'", line.c_str (), expected);
}

/* ---- Harness helpers -------------------------------------------------- */

static GstHarness *
start_src (const gchar * props, int width = 640, int height = 480)
{
  /* The element under test is named "src" inside the harness' bin. */
  gchar *desc = g_strdup_printf ("%s name=src", props);
  GstHarness *h = gst_harness_new_parse (desc);
  g_free (desc);
  gchar *caps = g_strdup_printf ("video/x-raw,format=BGRx,width=%d,height=%d,framerate=30/1",
      width, height);
  gst_harness_set_sink_caps_str (h, caps);
  g_free (caps);
  gst_harness_play (h);
  return h;
}

static GstElement *
src_of (GstHarness * h)
{
  GstElement *src = gst_bin_get_by_name (GST_BIN (h->element), "src");
  gst_object_unref (src);       /* the bin keeps it alive */
  return src;
}

static std::string
socket_name (GstHarness * h)
{
  gchar *name = nullptr;
  g_object_get (src_of (h), "socket-name", &name, nullptr);
  std::string s = name ? name : "";
  g_free (name);
  return s;
}

static GstBuffer *
pull_within (GstHarness * h, int timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;
  while (g_get_monotonic_time () < deadline) {
    GstBuffer *b = gst_harness_try_pull (h);
    if (b)
      return b;
    g_usleep (2000);
  }
  return nullptr;
}

/* Pulls frames until none comes for quiet_ms; returns the last one. */
static GstBuffer *
drain (GstHarness * h, int quiet_ms = 400)
{
  GstBuffer *last = nullptr, *b;
  while ((b = pull_within (h, quiet_ms))) {
    gst_clear_buffer (&last);
    last = b;
  }
  return last;
}

static void
discard (GstBuffer * b)
{
  if (b)
    gst_buffer_unref (b);
}

static guint32
pixel (GstBuffer * buf, int width, int x, int y)
{
  guint32 v = 0;
  gst_buffer_extract (buf, ((gsize) y * width + x) * 4, &v, 4);
  return v & 0xffffff;          /* BGRx in memory: 0x00RRGGBB as a native word */
}

static GstBuffer *
pull_until_pixel (GstHarness * h, int width, int x, int y, guint32 rgb, int timeout_ms = 5000)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;
  while (g_get_monotonic_time () < deadline) {
    GstBuffer *b = pull_within (h, 200);
    if (b && pixel (b, width, x, y) == rgb)
      return b;
    gst_clear_buffer (&b);
  }
  fail ("no frame with pixel (%d,%d) = %06x arrived", x, y, rgb);
  return nullptr;
}

static bool
has_rect (GstWayrayDamageMeta * m, int x, int y, int w, int h)
{
  for (guint i = 0; i < m->n_rects; i++)
    if (m->rects[i].x == x && m->rects[i].y == y && m->rects[i].w == w && m->rects[i].h == h)
      return true;
  return false;
}

/* Starts a 640x480 session with the test client mapped and focused. */
struct Session {
  GstHarness *h;
  TestClient *client;

  explicit Session (const gchar * props = "wayraysrc") {
    h = start_src (props);
    /* Caps first, so the client maps at the negotiated size. */
    for (int i = 0; i < 500 && !gst_pad_has_current_caps (h->sinkpad); i++)
      g_usleep (10000);
    fail_unless (gst_pad_has_current_caps (h->sinkpad), "wayraysrc did not negotiate");
    client = new TestClient (socket_name (h));
    client->expect ("ready 640 480");
    client->expect ("keyboard-enter");
  }
  ~Session () {
    delete client;
    gst_harness_teardown (h);
  }
};

/* ---- Tests ------------------------------------------------------------ */

GST_START_TEST (test_damage_and_pixels)
{
  for (const gchar *renderer : { "pixman", "pixman-readback" }) {
    gchar *desc = g_strdup_printf ("wayraysrc renderer=%s", renderer);
    Session s (desc);
    g_free (desc);

    s.client->send ("fill ff0000");
    s.client->send ("commit");
    s.client->expect ("committed");
    GstBuffer *b = pull_until_pixel (s.h, 640, 320, 240, 0xff0000);
    fail_unless_equals_int (gst_buffer_get_size (b), 640 * 480 * 4);
    fail_unless (gst_buffer_get_wayray_damage_meta (b) != nullptr);
    gst_buffer_unref (b);
    discard (drain (s.h));

    /* One rectangle: exactly it is damaged, exactly it changed. */
    s.client->send ("rect 10 20 30 40 00ff00");
    s.client->send ("commit");
    b = pull_within (s.h, 3000);
    fail_unless (b != nullptr, "no frame after a commit (%s)", renderer);
    GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (b);
    fail_unless (m != nullptr);
    fail_unless_equals_int (m->n_rects, 1);
    fail_unless (has_rect (m, 10, 20, 30, 40), "damage is %d,%d %dx%d", m->rects[0].x,
        m->rects[0].y, m->rects[0].w, m->rects[0].h);
    fail_unless_equals_int (pixel (b, 640, 10, 20), 0x00ff00);
    fail_unless_equals_int (pixel (b, 640, 39, 59), 0x00ff00);
    fail_unless_equals_int (pixel (b, 640, 40, 59), 0xff0000);
    fail_unless_equals_int (pixel (b, 640, 39, 60), 0xff0000);
    fail_unless_equals_int (pixel (b, 640, 9, 20), 0xff0000);
    gst_buffer_unref (b);

    /* Two separate rectangles in one commit. */
    s.client->send ("rect 100 100 10 10 0000ff");
    s.client->send ("rect 300 200 20 5 ffffff");
    s.client->send ("commit");
    b = pull_within (s.h, 3000);
    fail_unless (b != nullptr);
    m = gst_buffer_get_wayray_damage_meta (b);
    fail_unless_equals_int (m->n_rects, 2);
    fail_unless (has_rect (m, 100, 100, 10, 10));
    fail_unless (has_rect (m, 300, 200, 20, 5));
    fail_unless_equals_int (pixel (b, 640, 105, 105), 0x0000ff);
    fail_unless_equals_int (pixel (b, 640, 319, 204), 0xffffff);
    /* Earlier content is still there (the frame is whole, not just damage). */
    fail_unless_equals_int (pixel (b, 640, 10, 20), 0x00ff00);
    fail_unless_equals_int (pixel (b, 640, 600, 400), 0xff0000);
    gst_buffer_unref (b);

    /* Many frames in a row with buffers held downstream: every frame
     * stays whole and right while slots are reused by age. */
    std::vector<GstBuffer *> held;
    for (int i = 0; i < 12; i++) {
      gchar *cmd = g_strdup_printf ("rect %d 300 8 8 %06x", i * 10, 0x010101 * (i + 1));
      s.client->send (cmd);
      g_free (cmd);
      s.client->send ("commit");
      s.client->expect ("committed");
      b = pull_within (s.h, 3000);
      fail_unless (b != nullptr);
      for (int j = 0; j <= i; j++) {
        /* A frame may merge commits; those after it are not in it yet. */
        guint32 v = pixel (b, 640, j * 10 + 4, 304);
        if (v != 0x010101u * (j + 1)) {
          fail_unless (j > 0 && v == 0xff0000, "frame %d: square %d is %06x", i, j, v);
          break;
        }
      }
      if (i % 3 == 0)
        held.push_back (b);
      else
        gst_buffer_unref (b);
    }
    b = drain (s.h, 300);
    if (b) {
      for (int j = 0; j < 12; j++)
        fail_unless_equals_int (pixel (b, 640, j * 10 + 4, 304), 0x010101 * (j + 1));
      gst_buffer_unref (b);
    }
    /* Held frames were not painted over. */
    fail_unless_equals_int (pixel (held[0], 640, 4, 304), 0x010101);
    fail_unless_equals_int (pixel (held[0], 640, 14, 304), 0xff0000);
    for (GstBuffer *hb : held)
      gst_buffer_unref (hb);
  }
}
GST_END_TEST;

GST_START_TEST (test_idle_pushes_nothing)
{
  Session s;
  s.client->send ("pattern");
  s.client->send ("commit");
  GstBuffer *b = drain (s.h);
  fail_unless (b != nullptr);
  gst_buffer_unref (b);

  guint64 before = 0, after = 0;
  g_object_get (src_of (s.h), "frames-pushed", &before, nullptr);
  g_usleep (G_USEC_PER_SEC);
  g_object_get (src_of (s.h), "frames-pushed", &after, nullptr);
  fail_unless_equals_int (gst_harness_buffers_in_queue (s.h), 0);
  fail_unless_equals_uint64 (before, after);

  /* And it wakes up on the next change. */
  s.client->send ("rect 1 1 2 2 123456");
  s.client->send ("commit");
  b = pull_within (s.h, 3000);
  fail_unless (b != nullptr);
  fail_unless_equals_int (pixel (b, 640, 1, 1), 0x123456);
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_force_key_unit_full_damage)
{
  Session s;
  s.client->send ("pattern");
  s.client->send ("commit");
  GstBuffer *b = drain (s.h);
  gst_clear_buffer (&b);

  fail_unless (gst_harness_push_upstream_event (s.h,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1)));
  b = pull_within (s.h, 3000);
  fail_unless (b != nullptr, "no frame after force-key-unit");
  GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (b);
  fail_unless (m != nullptr);
  fail_unless_equals_int (m->n_rects, 1);
  fail_unless (has_rect (m, 0, 0, 640, 480));
  /* The pattern: (x & 0xff) << 16 | (y & 0xff) << 8 | (x + y) & 0xff. */
  for (int y = 0; y < 480; y += 37)
    for (int x = 0; x < 640; x += 29)
      fail_unless_equals_int (pixel (b, 640, x, y),
          ((x & 0xff) << 16) | ((y & 0xff) << 8) | ((x + y) & 0xff));
  gst_buffer_unref (b);
}
GST_END_TEST;

static void
push_nav (GstHarness * h, GstEvent * ev)
{
  fail_unless (gst_harness_push_upstream_event (h, ev));
}

GST_START_TEST (test_navigation_reaches_client)
{
  Session s;

  push_nav (s.h, gst_navigation_event_new_mouse_move (100.0, 50.0, (GstNavigationModifierType) 0));
  s.client->expect ("motion 100.00 50.00");
  push_nav (s.h, gst_navigation_event_new_mouse_move (200.5, 60.0, (GstNavigationModifierType) 0));
  s.client->expect ("motion 200.50 60.00");

  push_nav (s.h, gst_navigation_event_new_mouse_button_press (1, 200.5, 60.0,
          (GstNavigationModifierType) 0));
  expect_line (s.client, "button", "button 272 1");
  push_nav (s.h, gst_navigation_event_new_mouse_button_release (1, 200.5, 60.0,
          (GstNavigationModifierType) 0));
  expect_line (s.client, "button", "button 272 0");
  push_nav (s.h, gst_navigation_event_new_mouse_button_press (3, 200.5, 60.0,
          (GstNavigationModifierType) 0));
  expect_line (s.client, "button", "button 273 1");

  /* GStreamer scrolls up with positive delta_y; Wayland's axis is positive
   * down. One step down is 15 pixels on the vertical axis (0). */
  push_nav (s.h, gst_navigation_event_new_mouse_scroll (200.5, 60.0, 0.0, -1.0,
          (GstNavigationModifierType) 0));
  expect_line (s.client, "axis", "axis 0 15.00");

  /* Keys by keysym name, as stock sinks send them. */
  push_nav (s.h, gst_navigation_event_new_key_press ("a", (GstNavigationModifierType) 0));
  expect_line (s.client, "key", "key 30 1");
  push_nav (s.h, gst_navigation_event_new_key_release ("a", (GstNavigationModifierType) 0));
  expect_line (s.client, "key", "key 30 0");
  push_nav (s.h, gst_navigation_event_new_key_press ("Return", (GstNavigationModifierType) 0));
  expect_line (s.client, "key", "key 28 1");
  push_nav (s.h, gst_navigation_event_new_key_release ("Return", (GstNavigationModifierType) 0));
  expect_line (s.client, "key", "key 28 0");

  /* A shifted symbol typed without Shift: Shift is held around it. */
  push_nav (s.h, gst_navigation_event_new_key_press ("A", (GstNavigationModifierType) 0));
  expect_line (s.client, "key", "key 42 1");
  expect_line (s.client, "key", "key 30 1");
  expect_line (s.client, "key", "key 42 0");
  push_nav (s.h, gst_navigation_event_new_key_release ("A", (GstNavigationModifierType) 0));
  expect_line (s.client, "key", "key 30 0");

  /* Malformed input from a peer is dropped; the seat keeps working. */
  GstEvent *ev;
  size_t seen_before = s.client->seen.size ();
  push_nav (s.h, gst_navigation_event_new_mouse_move (NAN, 50.0, (GstNavigationModifierType) 0));
  push_nav (s.h, gst_navigation_event_new_mouse_move (1e300, -1e300, (GstNavigationModifierType) 0));
  push_nav (s.h, gst_navigation_event_new_mouse_scroll (10.0, 10.0, INFINITY, 1e9, (GstNavigationModifierType) 0));
  ev = gst_navigation_event_new_key_press ("no-such-key-name", (GstNavigationModifierType) 0);
  push_nav (s.h, ev);
  ev = gst_navigation_event_new_key_press ("a", (GstNavigationModifierType) 0);
  gst_structure_set (gst_event_writable_structure (ev), "keycode", G_TYPE_UINT, 0xffffffu, nullptr);
  push_nav (s.h, ev);
  push_nav (s.h, gst_navigation_event_new_mouse_move (12.0, 34.0, (GstNavigationModifierType) 0));
  /* (1e300, -1e300) is clamped to the output's corner; nothing else came. */
  expect_line (s.client, "motion", "motion 639.00 0.00");
  expect_line (s.client, "motion", "motion 12.00 34.00");
  for (size_t i = seen_before; i < s.client->seen.size (); i++)
    fail_if (s.client->seen[i].rfind ("key ", 0) == 0, "a malformed key event reached the client: %s",
        s.client->seen[i].c_str ());

  /* The evdev keycode field wins over the name. */
  ev = gst_navigation_event_new_key_press ("a", (GstNavigationModifierType) 0);
  gst_structure_set (gst_event_writable_structure (ev), "keycode", G_TYPE_UINT, 44, nullptr);
  push_nav (s.h, ev);
  expect_line (s.client, "key", "key 44 1");
  ev = gst_navigation_event_new_key_release ("a", (GstNavigationModifierType) 0);
  gst_structure_set (gst_event_writable_structure (ev), "keycode", G_TYPE_UINT, 44, nullptr);
  push_nav (s.h, ev);
  expect_line (s.client, "key", "key 44 0");
}
GST_END_TEST;

GST_START_TEST (test_alt_tab_switches_windows)
{
  Session s;
  s.client->send ("fill ff0000");
  s.client->send ("commit");
  discard (pull_until_pixel (s.h, 640, 100, 100, 0xff0000));
  TestClient second (socket_name (s.h));
  second.expect ("ready 640 480");
  second.expect ("keyboard-enter");
  second.send ("fill 0000ff");
  second.send ("commit");
  discard (pull_until_pixel (s.h, 640, 100, 100, 0x0000ff));     /* newest on top */

  auto alt_tab = [&] () {
    GstEvent *ev;
    for (auto [code, down] : { std::pair<guint, bool> {56, true}, {15, true}, {15, false}, {56, false} }) {
      ev = down ? gst_navigation_event_new_key_press ("x", (GstNavigationModifierType) 0)
                : gst_navigation_event_new_key_release ("x", (GstNavigationModifierType) 0);
      gst_structure_set (gst_event_writable_structure (ev), "keycode", G_TYPE_UINT, code, nullptr);
      push_nav (s.h, ev);
    }
  };
  alt_tab ();
  s.client->expect ("keyboard-enter");
  discard (pull_until_pixel (s.h, 640, 100, 100, 0xff0000));
  alt_tab ();
  second.expect ("keyboard-enter");
  discard (pull_until_pixel (s.h, 640, 100, 100, 0x0000ff));
  /* The compositor kept Tab for itself: no client saw key 15. */
  for (auto *c : { s.client, &second })
    for (auto &line : c->seen)
      fail_if (line.rfind ("key 15 ", 0) == 0, "Tab reached a client: %s", line.c_str ());
}
GST_END_TEST;

GST_START_TEST (test_keymap_layout)
{
  /* On a German layout the "z" keysym sits where "y" is on US keyboards. */
  Session s ("wayraysrc keymap-layout=de");
  push_nav (s.h, gst_navigation_event_new_key_press ("z", (GstNavigationModifierType) 0));
  expect_line (s.client, "key", "key 21 1");
}
GST_END_TEST;

GST_START_TEST (test_bad_keymap_is_refused)
{
  GstElement *src = gst_element_factory_make ("wayraysrc", nullptr);
  g_object_set (src, "keymap-layout", "no-such-layout", nullptr);
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (src, bus);
  fail_unless_equals_int (gst_element_set_state (src, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != nullptr);
  GError *err = nullptr;
  gst_message_parse_error (msg, &err, nullptr);
  fail_unless (strstr (err->message, "keymap") != nullptr, "unclear error: %s", err->message);
  fail_unless (strstr (err->message, "no-such-layout") != nullptr, "unclear error: %s", err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_element_set_state (src, GST_STATE_NULL);
  gst_element_set_bus (src, nullptr);
  gst_object_unref (bus);
  gst_object_unref (src);
}
GST_END_TEST;

GST_START_TEST (test_renegotiation_resizes)
{
  Session s;
  s.client->send ("fill 00ffff");
  s.client->send ("commit");
  GstBuffer *b = pull_until_pixel (s.h, 640, 5, 5, 0x00ffff);
  gst_buffer_unref (b);
  discard (drain (s.h));

  gst_harness_set_sink_caps_str (s.h, "video/x-raw,format=BGRx,width=320,height=240,framerate=30/1");
  fail_unless (gst_harness_push_upstream_event (s.h, gst_event_new_reconfigure ()));
  s.client->expect ("configured 320 240");

  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  bool resized = false;
  while (!resized && g_get_monotonic_time () < deadline) {
    b = pull_within (s.h, 200);
    if (b && gst_buffer_get_size (b) == 320 * 240 * 4) {
      resized = true;
      GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (b);
      fail_unless (m != nullptr);
      for (guint i = 0; i < m->n_rects; i++)
        fail_unless (m->rects[i].x + m->rects[i].w <= 320 && m->rects[i].y + m->rects[i].h <= 240);
    }
    gst_clear_buffer (&b);
  }
  fail_unless (resized, "no 320x240 frame after renegotiation");
  GstCaps *caps = gst_pad_get_current_caps (s.h->sinkpad);
  GstVideoInfo info;
  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless_equals_int (info.width, 320);
  fail_unless_equals_int (info.height, 240);
  gst_caps_unref (caps);

  /* The resized client still draws where it should. */
  s.client->send ("rect 300 220 10 10 ff00ff");
  s.client->send ("commit");
  b = pull_until_pixel (s.h, 320, 305, 225, 0xff00ff);
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_grim_screenshot)
{
  Session s;
  s.client->send ("pattern");
  s.client->send ("commit");
  s.client->send ("rect 50 60 70 80 abcdef");
  s.client->send ("commit");
  GstBuffer *b = pull_until_pixel (s.h, 640, 60, 70, 0xabcdef);
  GstBuffer *last = drain (s.h);
  if (last) {
    gst_buffer_unref (b);
    b = last;
  }

  gchar *path = g_build_filename (runtime_dir, "shot.ppm", nullptr);
  gchar *cmd = g_strdup_printf ("env WAYLAND_DISPLAY=%s grim -t ppm %s", socket_name (s.h).c_str (), path);
  gint status = -1;
  gchar *err = nullptr;
  fail_unless (g_spawn_command_line_sync (cmd, nullptr, &err, &status, nullptr));
  fail_unless (g_spawn_check_wait_status (status, nullptr), "grim failed: %s", err);
  g_free (err);
  g_free (cmd);

  gchar *data = nullptr;
  gsize len = 0;
  fail_unless (g_file_get_contents (path, &data, &len, nullptr));
  int w = 0, h = 0, maxval = 0, off = 0;
  fail_unless (sscanf (data, "P6 %d %d %d%n", &w, &h, &maxval, &off) == 3, "not a PPM");
  off++;                        /* the single whitespace after maxval */
  fail_unless_equals_int (w, 640);
  fail_unless_equals_int (h, 480);
  fail_unless ((gsize) off + (gsize) w * h * 3 <= len);
  int mismatches = 0;
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      const guint8 *p = (const guint8 *) data + off + ((gsize) y * w + x) * 3;
      guint32 rgb = (p[0] << 16) | (p[1] << 8) | p[2];
      if (rgb != pixel (b, 640, x, y))
        mismatches++;
    }
  }
  fail_unless_equals_int (mismatches, 0);
  g_free (data);
  unlink (path);
  g_free (path);
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_cursor_published)
{
  Session s;
  s.client->send ("fill 000000");
  s.client->send ("commit");
  discard (drain (s.h));

  s.client->send ("cursor 16 8 ff00ff00 2 3");
  push_nav (s.h, gst_navigation_event_new_mouse_move (100.0, 50.0, (GstNavigationModifierType) 0));
  s.client->expect ("pointer-enter");
  s.client->send ("sync");
  s.client->expect ("synced");

  /* Cursor events are serialized with frames; they come out even while
   * idle. Find the newest image and position. */
  GstWayrayCursor found = { };
  bool have_image = false;
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < deadline && !(have_image && found.x == 100)) {
    GstEvent *ev = gst_harness_try_pull_event (s.h);
    if (!ev) {
      g_usleep (5000);
      continue;
    }
    GstWayrayCursor c;
    if (gst_wayray_cursor_event_parse (ev, &c)) {
      if (c.image && c.width == 16) {
        gst_clear_buffer (&found.image);
        found = c;
        have_image = true;
      } else {
        found.x = c.x;
        found.y = c.y;
        gst_clear_buffer (&c.image);
      }
    }
    gst_event_unref (ev);
  }
  fail_unless (have_image, "no cursor image event");
  fail_unless_equals_int (found.width, 16);
  fail_unless_equals_int (found.height, 8);
  fail_unless_equals_int (found.hotspot_x, 2);
  fail_unless_equals_int (found.hotspot_y, 3);
  fail_unless (found.visible);
  fail_unless_equals_int (found.x, 100);
  fail_unless_equals_int (found.y, 50);
  guint32 px = 0;
  gst_buffer_extract (found.image, 4 * 21, &px, 4);
  fail_unless_equals_int (px, 0xff00ff00);      /* opaque green, ARGB word */
  gst_buffer_unref (found.image);

  /* Frames never contain the cursor. */
  fail_unless (gst_harness_push_upstream_event (s.h,
          gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1)));
  GstBuffer *b = pull_within (s.h, 3000);
  fail_unless (b != nullptr);
  fail_unless_equals_int (pixel (b, 640, 100, 50), 0x000000);
  gst_buffer_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_real_application)
{
  GstHarness *h = start_src ("wayraysrc exec=weston-simple-shm");
  /* weston-simple-shm animates: frames keep coming, each damaged, and the
   * picture changes between them. */
  std::vector<GstBuffer *> frames;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (frames.size () < 10 && g_get_monotonic_time () < deadline) {
    GstBuffer *b = pull_within (h, 500);
    if (b)
      frames.push_back (b);
  }
  fail_unless (frames.size () >= 10, "only %zu frames from weston-simple-shm", frames.size ());
  int non_black = 0, changed = 0;
  for (size_t i = 0; i < frames.size (); i++) {
    GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (frames[i]);
    fail_unless (m != nullptr && m->n_rects > 0);
    GstMapInfo a;
    gst_buffer_map (frames[i], &a, GST_MAP_READ);
    for (gsize o = 0; o < a.size; o += 4 * 97)
      if (a.data[o] || a.data[o + 1] || a.data[o + 2]) {
        non_black++;
        break;
      }
    if (i > 0) {
      GstMapInfo p;
      gst_buffer_map (frames[i - 1], &p, GST_MAP_READ);
      if (memcmp (a.data, p.data, a.size) != 0)
        changed++;
      gst_buffer_unmap (frames[i - 1], &p);
    }
    gst_buffer_unmap (frames[i], &a);
  }
  fail_unless (non_black >= 9, "the application drew nothing");
  fail_unless (changed >= 5, "the animation did not show");
  for (auto b : frames)
    gst_buffer_unref (b);
  gst_harness_teardown (h);
}
GST_END_TEST;

static int
count_fds ()
{
  int n = 0;
  DIR *d = opendir ("/proc/self/fd");
  while (readdir (d))
    n++;
  closedir (d);
  return n;
}

static int
count_children ()
{
  int n = 0;
  DIR *d = opendir ("/proc");
  struct dirent *e;
  pid_t self = getpid ();
  while ((e = readdir (d))) {
    if (!g_ascii_isdigit (e->d_name[0]))
      continue;
    gchar *path = g_strdup_printf ("/proc/%s/stat", e->d_name);
    gchar *stat = nullptr;
    if (g_file_get_contents (path, &stat, nullptr, nullptr)) {
      const gchar *rp = strrchr (stat, ')');
      int ppid = 0;
      if (rp && sscanf (rp + 2, "%*c %d", &ppid) == 1 && ppid == self)
        n++;
      g_free (stat);
    }
    g_free (path);
  }
  closedir (d);
  return n;
}

static int
count_runtime_entries ()
{
  int n = 0;
  DIR *d = opendir (runtime_dir);
  struct dirent *e;
  while ((e = readdir (d)))
    if (e->d_name[0] != '.')
      n++;
  closedir (d);
  return n;
}

/* Nobody takes frames (downstream blocked): the compositor draws nothing
 * it would throw away, and the application waits for its frame callback;
 * once frames are taken again, both go on. */
GST_START_TEST (test_no_frames_nobody_takes)
{
  GstHarness *h = start_src ("wayraysrc exec=weston-simple-shm");
  gst_harness_set_blocking_push_mode (h);
  GstElement *src = src_of (h);
  /* Frames pulled within @seconds, up to @want. */
  auto pull_frames = [h] (int want, int seconds) {
    int got = 0;
    gint64 deadline = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
    while (got < want && g_get_monotonic_time () < deadline) {
      GstBuffer *b = gst_harness_try_pull (h);
      if (b) {
        got++;
        gst_buffer_unref (b);
      } else {
        g_usleep (5000);
      }
    }
    return got;
  };
  int got = pull_frames (10, 10);
  fail_unless (got >= 10, "only %d frames from weston-simple-shm", got);

  /* Blocked: one push waits in the harness, one frame waits in the
   * element; then nothing more is drawn. */
  g_usleep (300 * 1000);
  guint64 before = 0, after = 0;
  g_object_get (src, "frames-rendered", &before, nullptr);
  g_usleep (G_USEC_PER_SEC);
  g_object_get (src, "frames-rendered", &after, nullptr);
  fail_unless (after - before <= 1, "%" G_GUINT64_FORMAT " frames drawn in 1 s that nobody took",
      after - before);

  /* Taken again: the animation goes on. */
  got = pull_frames (20, 5);
  fail_unless (got >= 20, "only %d frames after the block", got);
  g_object_get (src, "frames-rendered", &after, nullptr);
  fail_unless (after > before + 15);
  /* Release the push that may wait in the harness before tearing down. */
  while (GstBuffer *b = gst_harness_try_pull (h))
    gst_buffer_unref (b);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_first_frame_full_and_pacing)
{
  /* At 20 fps an application drawing as fast as it is allowed gets 20
   * frame callbacks a second: frames never come faster than that. */
  GstHarness *h = start_src ("wayraysrc exec=weston-simple-shm");
  gst_harness_set_sink_caps_str (h, "video/x-raw,format=BGRx,width=640,height=480,framerate=20/1");
  fail_unless (gst_harness_push_upstream_event (h, gst_event_new_reconfigure ()));
  GstBuffer *first = pull_within (h, 5000);
  fail_unless (first != nullptr);
  GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (first);
  fail_unless (m != nullptr);
  fail_unless_equals_int (m->n_rects, 1);
  fail_unless (has_rect (m, 0, 0, 640, 480));
  gst_buffer_unref (first);

  discard (pull_within (h, 1000));
  while (GstBuffer *b = gst_harness_try_pull (h))
    gst_buffer_unref (b);
  gint64 start = g_get_monotonic_time ();
  int frames = 0;
  while (g_get_monotonic_time () - start < 2 * G_USEC_PER_SEC) {
    GstBuffer *b = pull_within (h, 100);
    if (b) {
      frames++;
      gst_buffer_unref (b);
    }
  }
  fail_unless (frames <= 2 * 20 + 3, "%d frames in 2 s at 20 fps", frames);
  fail_unless (frames >= 5, "the animation stalled: %d frames in 2 s", frames);
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_resize_storm)
{
  /* Renegotiation while an application animates, over and over: every
   * size takes effect and frames keep coming at it. */
  GstHarness *h = start_src ("wayraysrc exec=weston-simple-shm");
  GstBuffer *first = pull_within (h, 5000);
  fail_unless (first != nullptr);
  gst_buffer_unref (first);
  const int sizes[][2] = { {320, 240}, {1280, 720}, {64, 64}, {800, 600}, {1920, 1080}, {640, 480} };
  for (int round = 0; round < 18; round++) {
    int w = sizes[round % 6][0], hh = sizes[round % 6][1];
    gchar *caps = g_strdup_printf ("video/x-raw,format=BGRx,width=%d,height=%d,framerate=60/1", w, hh);
    gst_harness_set_sink_caps_str (h, caps);
    g_free (caps);
    fail_unless (gst_harness_push_upstream_event (h, gst_event_new_reconfigure ()));
    gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
    bool got = false;
    while (!got && g_get_monotonic_time () < deadline) {
      GstBuffer *b = pull_within (h, 200);
      if (b && gst_buffer_get_size (b) == (gsize) w * hh * 4) {
        GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (b);
        fail_unless (m != nullptr);
        for (guint i = 0; i < m->n_rects; i++)
          fail_unless (m->rects[i].x + m->rects[i].w <= w && m->rects[i].y + m->rects[i].h <= hh);
        got = true;
      }
      discard (b);
    }
    fail_unless (got, "round %d: no %dx%d frame", round, w, hh);
  }
  gst_harness_teardown (h);
}
GST_END_TEST;

GST_START_TEST (test_resize_race)
{
  /* The daemon sets a new size on a capsfilter from its main thread while
   * the source negotiates in its streaming thread: sizes changed again and
   * again, at any moment, never end the stream, and the last one wins. */
  GError *err = nullptr;
  GstElement *p = gst_parse_launch ("wayraysrc exec=weston-simple-shm ! capsfilter name=size "
      "caps=video/x-raw,width=640,height=480,framerate=60/1 ! fakesink name=sink sync=false", &err);
  fail_unless (p != nullptr, "%s", err ? err->message : "?");
  GstElement *size = gst_bin_get_by_name (GST_BIN (p), "size"), *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  GstBus *bus = gst_element_get_bus (p);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  GRand *rnd = g_rand_new_with_seed (7);
  for (int i = 0; i < 80; i++) {
    const int w = i % 2 ? 800 : 640, h = i % 2 ? 600 : 480;
    gchar *str = g_strdup_printf ("video/x-raw,width=%d,height=%d,framerate=60/1", w, h);
    GstCaps *caps = gst_caps_from_string (str);
    g_object_set (size, "caps", caps, nullptr);
    gst_caps_unref (caps);
    g_free (str);
    g_usleep (g_rand_int_range (rnd, 0, 15000));
    GstMessage *m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    if (m) {
      GError *e = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error (m, &e, &dbg);
      fail ("round %d: %s (%s)", i, e->message, dbg ? dbg : "");
    }
  }
  g_rand_free (rnd);
  GstCaps *last = gst_caps_from_string ("video/x-raw,width=1024,height=768,framerate=60/1");
  g_object_set (size, "caps", last, nullptr);
  gst_caps_unref (last);
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  int width = 0;
  while (width != 1024 && g_get_monotonic_time () < deadline) {
    g_usleep (20000);
    GstCaps *c = gst_pad_get_current_caps (pad);
    if (c) {
      gst_structure_get_int (gst_caps_get_structure (c, 0), "width", &width);
      gst_caps_unref (c);
    }
  }
  fail_unless_equals_int (width, 1024);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR) == nullptr);
  gst_object_unref (pad);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (size);
  gst_object_unref (sink);
  gst_object_unref (p);
}
GST_END_TEST;

GST_START_TEST (test_start_stop_cycles)
{
  auto cycle = [] () {
    GstHarness *h = start_src ("wayraysrc exec=weston-simple-shm");
    GstBuffer *b = pull_within (h, 5000);
    fail_unless (b != nullptr);
    gst_buffer_unref (b);
    gst_harness_teardown (h);
  };
  cycle ();                     /* warm-up: lazily opened things stay open */
  int fds = count_fds ();
  int entries = count_runtime_entries ();
  for (int i = 0; i < 20; i++)
    cycle ();
  fail_unless_equals_int (count_fds (), fds);
  fail_unless_equals_int (count_children (), 0);
  fail_unless_equals_int (count_runtime_entries (), entries);

  /* The same element through NULL->PLAYING->NULL repeatedly. */
  GstHarness *h = start_src ("wayraysrc exec=weston-simple-shm");
  for (int i = 0; i < 5; i++) {
    GstBuffer *b = pull_within (h, 5000);
    fail_unless (b != nullptr, "cycle %d gave no frame", i);
    gst_buffer_unref (b);
    gst_element_set_state (h->element, GST_STATE_NULL);
    fail_unless_equals_int (count_children (), 0);
    gst_harness_play (h);
  }
  gst_harness_teardown (h);
  fail_unless_equals_int (count_fds (), fds);
  fail_unless_equals_int (count_children (), 0);
}
GST_END_TEST;

/* exec-environment: the command gets exactly the environment given (what
 * wayrayd makes a login's), plus its Wayland display; nothing of this
 * process's. */
GST_START_TEST (test_exec_environment)
{
  gchar *dir = g_dir_make_tmp ("wayray-env-XXXXXX", nullptr);
  std::string out = std::string (dir) + "/env.txt";
  g_setenv ("WAYRAY_TEST_PARENT_ONLY", "1", TRUE);
  std::string desc = "wayraysrc name=src exec=\"sh -c 'env > " + out + "'\"";
  GstHarness *h = gst_harness_new_parse (desc.c_str ());
  const gchar *env[] = { "HOME=/nonexistent-home", "WAYRAY_TEST_GIVEN=yes", "PATH=/usr/bin:/bin", nullptr };
  g_object_set (src_of (h), "exec-environment", env, nullptr);
  gchar **back = nullptr;
  g_object_get (src_of (h), "exec-environment", &back, nullptr);
  fail_unless (back && g_strv_length (back) == 3 && g_strcmp0 (back[1], "WAYRAY_TEST_GIVEN=yes") == 0);
  g_strfreev (back);
  gst_harness_set_sink_caps_str (h, "video/x-raw,format=BGRx,width=320,height=240,framerate=30/1");
  gst_harness_play (h);
  std::string socket = socket_name (h);
  gchar *text = nullptr;
  for (int i = 0; i < 100 && !text; i++) {
    g_usleep (50000);
    if (!g_file_get_contents (out.c_str (), &text, nullptr, nullptr) || !strstr (text, "\n"))
      g_clear_pointer (&text, g_free);
  }
  gst_harness_teardown (h);
  g_unsetenv ("WAYRAY_TEST_PARENT_ONLY");
  fail_unless (text != nullptr, "the command wrote no environment");
  std::string e = std::string ("\n") + text;
  fail_unless (e.find ("\nWAYRAY_TEST_GIVEN=yes\n") != std::string::npos, "%s", text);
  fail_unless (e.find ("\nHOME=/nonexistent-home\n") != std::string::npos, "%s", text);
  fail_unless (e.find ("\nXDG_SESSION_TYPE=wayland\n") != std::string::npos, "%s", text);
  fail_unless (e.find ("\nWAYLAND_DISPLAY=" + socket + "\n") != std::string::npos, "%s", text);
  fail_unless (e.find ("WAYRAY_TEST_PARENT_ONLY") == std::string::npos, "%s", text);
  fail_unless (e.find ("GST_PLUGIN_PATH") == std::string::npos, "%s", text);
  g_free (text);
  unlink (out.c_str ());
  rmdir (dir);
  g_free (dir);
}
GST_END_TEST;

static Suite *
wayraysrc_suite (void)
{
  Suite *s = suite_create ("wayraysrc");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_damage_and_pixels);
  tcase_add_test (tc, test_idle_pushes_nothing);
  tcase_add_test (tc, test_force_key_unit_full_damage);
  tcase_add_test (tc, test_navigation_reaches_client);
  tcase_add_test (tc, test_alt_tab_switches_windows);
  tcase_add_test (tc, test_keymap_layout);
  tcase_add_test (tc, test_bad_keymap_is_refused);
  tcase_add_test (tc, test_renegotiation_resizes);
  tcase_add_test (tc, test_grim_screenshot);
  tcase_add_test (tc, test_cursor_published);
  tcase_add_test (tc, test_real_application);
  tcase_add_test (tc, test_first_frame_full_and_pacing);
  tcase_add_test (tc, test_no_frames_nobody_takes);
  tcase_add_test (tc, test_resize_storm);
  tcase_add_test (tc, test_resize_race);
  tcase_add_test (tc, test_start_stop_cycles);
  tcase_add_test (tc, test_exec_environment);
  return s;
}

int
main (int argc, char **argv)
{
  /* A private runtime directory: sockets of this test only. */
  runtime_dir = g_dir_make_tmp ("wayray-check-XXXXXX", nullptr);
  g_setenv ("XDG_RUNTIME_DIR", runtime_dir, TRUE);
  g_unsetenv ("WAYLAND_DISPLAY");
  /* The Wayland socket must not die with a client that goes away early. */
  signal (SIGPIPE, SIG_IGN);

  gst_check_init (&argc, &argv);
  int failed = gst_check_run_suite (wayraysrc_suite (), "wayraysrc", __FILE__);

  gchar *cmd = g_strdup_printf ("rm -rf %s", runtime_dir);
  if (system (cmd) != 0)
    g_printerr ("could not remove %s\n", runtime_dir);
  g_free (cmd);
  g_free (runtime_dir);
  return failed;
}
