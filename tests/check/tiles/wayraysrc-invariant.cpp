/* The invariant with real applications: wayraysrc runs foot (text output
 * scrolling) or weston-simple-shm (animation), its frames go through
 * damagetiler ! wayraytileenc ! wayraytiledec ! wayraycompositor, and after
 * every frame the client's picture must equal the session's frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "tiletest.h"

#include <gst/video/navigation.h>

#include <cstring>
#include <mutex>

struct Check {
  std::mutex lock;
  GstBuffer *server = nullptr;  /* the last frame that entered damagetiler */
  GstBuffer *client = nullptr;  /* the compositor's last output */
  int frames = 0, compared = 0, mismatches = 0;
  int first_bad = -1;

  void compare ()
  {
    if (!server || !client)
      return;
    GstMapInfo a, b;
    gst_buffer_map (server, &a, GST_MAP_READ);
    gst_buffer_map (client, &b, GST_MAP_READ);
    /* BGRx: the padding byte is not part of the picture */
    bool eq = a.size == b.size;
    for (gsize i = 0; eq && i < a.size; i += 4)
      eq = memcmp (a.data + i, b.data + i, 3) == 0;
    gst_buffer_unmap (server, &a);
    gst_buffer_unmap (client, &b);
    compared++;
    if (!eq) {
      mismatches++;
      if (first_bad < 0)
        first_bad = frames;
    }
  }
};

static GstPadProbeReturn
server_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Check *c = (Check *) user_data;
  std::lock_guard<std::mutex> lk (c->lock);
  /* The previous frame is fully through the (synchronous) path by now. */
  c->compare ();
  if (c->server)
    gst_buffer_unref (c->server);
  c->server = gst_buffer_ref (GST_PAD_PROBE_INFO_BUFFER (info));
  c->frames++;
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
client_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Check *c = (Check *) user_data;
  std::lock_guard<std::mutex> lk (c->lock);
  if (c->client)
    gst_buffer_unref (c->client);
  c->client = gst_buffer_ref (GST_PAD_PROBE_INFO_BUFFER (info));
  return GST_PAD_PROBE_OK;
}

static void
run_app (const char *exec, const char *extra, int min_frames, int seconds,
    const char *type_text = nullptr)
{
  gchar *desc = g_strdup_printf ("wayraysrc name=src exec=\"%s\" ! "
      "video/x-raw,width=1280,height=720,framerate=60/1 ! damagetiler name=t ! "
      "wayraytileenc name=e ! wayraytiledec ! wayraycompositor name=c draw-cursor=false ! "
      "fakesink name=sink sync=false %s", exec, extra);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err);
  fail_unless (pipe != NULL, "%s: %s", desc, err ? err->message : "?");
  g_free (desc);
  Check check;
  GstElement *t = gst_bin_get_by_name (GST_BIN (pipe), "t");
  GstElement *c = gst_bin_get_by_name (GST_BIN (pipe), "c");
  GstPad *tsink = gst_element_get_static_pad (t, "sink");
  GstPad *csrc = gst_element_get_static_pad (c, "src");
  gst_pad_add_probe (tsink, GST_PAD_PROBE_TYPE_BUFFER, server_probe, &check, NULL);
  gst_pad_add_probe (csrc, GST_PAD_PROBE_TYPE_BUFFER, client_probe, &check, NULL);

  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  GstBus *bus = gst_element_get_bus (pipe);
  gint64 start = g_get_monotonic_time ();
  gint64 end = start + seconds * G_USEC_PER_SEC;
  bool exited = false;
  /* Typing goes the way a client's input goes: navigation events sent
   * upstream from the sink, through wayraycompositor, wayraytiledec,
   * wayraytileenc and damagetiler into wayraysrc's seat. */
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  const char *next_key = type_text;
  int frames_before_typing = -1;
  while (g_get_monotonic_time () < end && !exited) {
    if (next_key && *next_key && g_get_monotonic_time () > start + 1500 * 1000) {
      if (frames_before_typing < 0) {
        std::lock_guard<std::mutex> lk (check.lock);
        frames_before_typing = check.frames;
      }
      char name[16];
      if (*next_key == ' ')
        g_strlcpy (name, "space", sizeof name);
      else
        g_snprintf (name, sizeof name, "%c", *next_key);
      fail_unless (gst_element_send_event (sink, gst_navigation_event_new_key_press (name,
                  (GstNavigationModifierType) 0)));
      fail_unless (gst_element_send_event (sink, gst_navigation_event_new_key_release (name,
                  (GstNavigationModifierType) 0)));
      next_key++;
    }
    GstMessage *m = gst_bus_timed_pop (bus, 50 * GST_MSECOND);
    if (!m)
      continue;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
      GError *e = NULL;
      gchar *dbg = NULL;
      gst_message_parse_error (m, &e, &dbg);
      fail ("pipeline error: %s (%s)", e->message, dbg ? dbg : "");
    }
    const GstStructure *s = gst_message_get_structure (m);
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT && s &&
        gst_structure_has_name (s, "wayraysrc-exec-exited"))
      exited = true;
    gst_message_unref (m);
  }
  /* Drain: after EOS the last frame has gone all the way through. */
  gst_element_send_event (pipe, gst_event_new_eos ());
  GstMessage *m = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND,
      (GstMessageType) (GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  fail_unless (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS, "no EOS after draining");
  gst_message_unref (m);
  {
    std::lock_guard<std::mutex> lk (check.lock);
    check.compare ();           /* the last frame */
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  GstStructure *stats = NULL;
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipe), "e");
  g_object_get (e, "stats", &stats, NULL);
  gchar *str = gst_structure_to_string (stats);
  GST_INFO ("%s: %d frames compared, %s", exec, check.compared, str);
  g_free (str);
  gst_structure_free (stats);

  fail_unless (check.frames >= min_frames, "%s: only %d frames", exec, check.frames);
  if (type_text) {
    /* foot echoed the keys: frames came after the typing started */
    fail_unless (frames_before_typing >= 0 && check.frames - frames_before_typing >=
        (int) strlen (type_text) / 2, "%s: %d frames before typing, %d in all", exec,
        frames_before_typing, check.frames);
  }
  gst_object_unref (sink);
  fail_unless (check.mismatches == 0, "%s: %d of %d frames differ, the first at frame %d", exec,
      check.mismatches, check.compared, check.first_bad);
  if (check.server)
    gst_buffer_unref (check.server);
  if (check.client)
    gst_buffer_unref (check.client);
  gst_object_unref (e);
  gst_object_unref (tsink);
  gst_object_unref (csrc);
  gst_object_unref (t);
  gst_object_unref (c);
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

static gchar *runtime_dir;

GST_START_TEST (test_foot_scrolling)
{
  /* a terminal printing lines at a readable pace (so that most lines get
   * a frame of their own), then a burst, then a listing */
  gchar *script = g_build_filename (runtime_dir, "scroll.sh", NULL);
  const char *text =
      "i=0\n"
      "while [ $i -lt 300 ]; do\n"
      "  i=$((i+1))\n"
      "  echo \"line $i: the quick brown fox jumps over the lazy dog $((i*i))\"\n"
      "  sleep 0.004\n"
      "done\n"
      "seq 1 2000\n"
      "ls -l /usr/bin | head -200\n"
      "sleep 0.3\n";
  fail_unless (g_file_set_contents (script, text, -1, NULL));
  gchar *exec = g_strdup_printf ("foot sh %s", script);
  run_app (exec, "", 50, 40);
  g_free (exec);
  g_free (script);
}
GST_END_TEST;

GST_START_TEST (test_foot_typing_through_the_path)
{
  run_app ("foot cat", "", 10, 5, "typed through the whole path 0123456789");
}
GST_END_TEST;

GST_START_TEST (test_simple_shm_with_video_path)
{
  /* an animation: the transient region goes to the video pad (raw here, so
   * exact) and the rest stays lossless */
  run_app ("timeout 3 weston-simple-shm", "t.video ! c.video", 60, 30);
}
GST_END_TEST;

static void
setup_runtime_dir (void)
{
  runtime_dir = g_dir_make_tmp ("wayray-tiles-XXXXXX", NULL);
  g_setenv ("XDG_RUNTIME_DIR", runtime_dir, TRUE);
}

static void
remove_runtime_dir (void)
{
  gchar *cmd = g_strdup_printf ("rm -rf %s", runtime_dir);
  if (system (cmd) != 0)
    g_printerr ("could not remove %s\n", runtime_dir);
  g_free (cmd);
  g_free (runtime_dir);
}

static Suite *
wayraysrc_invariant_suite (void)
{
  Suite *s = suite_create ("tiles-wayraysrc");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  tcase_add_unchecked_fixture (tc, setup_runtime_dir, remove_runtime_dir);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_foot_scrolling);
  tcase_add_test (tc, test_foot_typing_through_the_path);
  tcase_add_test (tc, test_simple_shm_with_video_path);
  return s;
}

GST_CHECK_MAIN (wayraysrc_invariant);
