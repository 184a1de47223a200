/* wayray-demo: a demo session in wayraysrc, shown in a window when there is
 * a display, otherwise recorded as PNG snapshots and per-frame damage
 * statistics.
 *
 *   wayray-demo [--exec CMD] [--seconds N] [--out DIR] [--headless] [--type TEXT]
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/gst.h>
#include <gst/video/navigation.h>
#include <gst/video/video.h>
#include <glib-unix.h>

#include <cstdio>
#include <string>

#include "gstwayraydamagemeta.h"

struct Demo {
  GMainLoop *loop = nullptr;
  GstElement *pipeline = nullptr;
  GstElement *src = nullptr;
  FILE *csv = nullptr;
  std::string out_dir;
  guint64 frames = 0;
  guint64 damaged_pixels = 0;
  guint snapshots = 0;
  GstClockTime last_snapshot = GST_CLOCK_TIME_NONE;
  std::string to_type;
  size_t typed = 0;
  int exit_code = 0;
  GstSample *last = nullptr;
};

static void
write_snapshot (Demo *d, GstSample *sample)
{
  GError *err = nullptr;
  GstCaps *png = gst_caps_new_empty_simple ("image/png");
  GstSample *converted = gst_video_convert_sample (sample, png, GST_SECOND, &err);
  gst_caps_unref (png);
  if (!converted) {
    g_printerr ("snapshot failed: %s\n", err ? err->message : "?");
    g_clear_error (&err);
    return;
  }
  GstMapInfo map;
  GstBuffer *buf = gst_sample_get_buffer (converted);
  gst_buffer_map (buf, &map, GST_MAP_READ);
  gchar *path = g_strdup_printf ("%s/snapshot-%02u.png", d->out_dir.c_str (), d->snapshots++);
  g_file_set_contents (path, (const gchar *) map.data, map.size, nullptr);
  g_print ("wrote %s\n", path);
  g_free (path);
  gst_buffer_unmap (buf, &map);
  gst_sample_unref (converted);
}

static GstFlowReturn
on_sample (GstElement *sink, gpointer user_data)
{
  Demo *d = static_cast<Demo *> (user_data);
  GstSample *sample = nullptr;
  g_signal_emit_by_name (sink, "pull-sample", &sample);
  if (!sample)
    return GST_FLOW_EOS;
  GstBuffer *buf = gst_sample_get_buffer (sample);
  GstVideoInfo info;
  gst_video_info_from_caps (&info, gst_sample_get_caps (sample));
  GstWayrayDamageMeta *m = gst_buffer_get_wayray_damage_meta (buf);
  guint64 area = m ? gst_wayray_damage_meta_area (m) : (guint64) info.width * info.height;
  d->frames++;
  d->damaged_pixels += area;
  fprintf (d->csv, "%" G_GUINT64_FORMAT ",%.3f,%u,%" G_GUINT64_FORMAT ",%.2f\n", d->frames,
      GST_BUFFER_PTS (buf) / 1e9, m ? m->n_rects : 0, area,
      100.0 * area / ((double) info.width * info.height));
  fflush (d->csv);
  /* A snapshot every two seconds of stream time. */
  if (d->last_snapshot == GST_CLOCK_TIME_NONE || GST_BUFFER_PTS (buf) >= d->last_snapshot + 2 * GST_SECOND) {
    d->last_snapshot = GST_BUFFER_PTS (buf);
    write_snapshot (d, sample);
  }
  if (d->last)
    gst_sample_unref (d->last);
  d->last = sample;
  return GST_FLOW_OK;
}

/* Types the demo text through navigation events, one key every 80 ms, the
 * way a viewer's keyboard would. */
static gboolean
type_next (gpointer user_data)
{
  Demo *d = static_cast<Demo *> (user_data);
  if (d->typed >= d->to_type.size ())
    return G_SOURCE_REMOVE;
  char ch = d->to_type[d->typed++];
  std::string key = ch == '\n' ? "Return" : ch == ' ' ? "space" : ch == '-' ? "minus" :
      ch == '|' ? "bar" : ch == '/' ? "slash" : ch == '.' ? "period" : std::string (1, ch);
  gst_element_send_event (d->src, gst_navigation_event_new_key_press (key.c_str (),
          (GstNavigationModifierType) 0));
  gst_element_send_event (d->src, gst_navigation_event_new_key_release (key.c_str (),
          (GstNavigationModifierType) 0));
  return G_SOURCE_CONTINUE;
}

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer user_data)
{
  Demo *d = static_cast<Demo *> (user_data);
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = nullptr;
      gchar *dbg = nullptr;
      gst_message_parse_error (msg, &err, &dbg);
      g_printerr ("error: %s\n%s\n", err->message, dbg ? dbg : "");
      g_error_free (err);
      g_free (dbg);
      d->exit_code = 1;
      g_main_loop_quit (d->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit (d->loop);
      break;
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure (msg);
      if (gst_structure_has_name (s, "wayraysrc-socket"))
        g_print ("session socket: %s (WAYLAND_DISPLAY=%s)\n",
            gst_structure_get_string (s, "socket-path"), gst_structure_get_string (s, "socket-name"));
      else if (gst_structure_has_name (s, "wayraysrc-exec-exited")) {
        g_print ("the session command ended\n");
        g_main_loop_quit (d->loop);
      }
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_stop (gpointer user_data)
{
  g_main_loop_quit (static_cast<Demo *> (user_data)->loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  gchar *exec = nullptr, *out = nullptr, *type = nullptr;
  gint seconds = -1;
  gboolean headless = FALSE;
  GOptionEntry entries[] = {
    {"exec", 'e', 0, G_OPTION_ARG_STRING, &exec, "Command to run in the session (default: foot)", "CMD"},
    {"seconds", 's', 0, G_OPTION_ARG_INT, &seconds, "Stop after N seconds (headless default: 10)", "N"},
    {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Where headless output goes (default: demo-out)", "DIR"},
    {"headless", 0, 0, G_OPTION_ARG_NONE, &headless, "No window even if a display exists", nullptr},
    {"type", 't', 0, G_OPTION_ARG_STRING, &type, "Text typed into the session through the input path", "TEXT"},
    {nullptr},
  };
  GOptionContext *ctx = g_option_context_new ("- run a WayRay demo session");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  GError *err = nullptr;
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("%s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);

  Demo d;
  bool have_display = g_getenv ("DISPLAY") || g_getenv ("WAYLAND_DISPLAY");
  if (headless)
    have_display = false;
  if (!have_display && seconds < 0)
    seconds = 10;
  d.out_dir = out ? out : "demo-out";
  d.to_type = type ? type : (have_display ? "" : "ls -l /usr/share | head -30\n");
  /* The scripted demo types into a shell that starts at once, whatever the
   * user's shell start-up files do. */
  std::string cmd = exec ? exec : (have_display ? "foot" : "foot bash --norc --noprofile");

  gchar *desc;
  gchar *quoted = g_shell_quote (cmd.c_str ());
  if (have_display)
    desc = g_strdup_printf ("wayraysrc name=src exec=%s ! video/x-raw,width=1280,height=720 ! "
        "videoconvert ! autovideosink", quoted);
  else
    desc = g_strdup_printf ("wayraysrc name=src exec=%s ! video/x-raw,width=1280,height=720 ! "
        "appsink name=sink emit-signals=true sync=false max-buffers=4", quoted);
  g_free (quoted);
  d.pipeline = gst_parse_launch (desc, &err);
  g_free (desc);
  if (!d.pipeline) {
    g_printerr ("could not build the pipeline: %s\n", err->message);
    return 1;
  }
  d.src = gst_bin_get_by_name (GST_BIN (d.pipeline), "src");

  if (!have_display) {
    g_mkdir_with_parents (d.out_dir.c_str (), 0755);
    std::string csv = d.out_dir + "/damage.csv";
    d.csv = fopen (csv.c_str (), "w");
    if (!d.csv) {
      g_printerr ("cannot write %s\n", csv.c_str ());
      return 1;
    }
    fprintf (d.csv, "frame,pts_s,rects,damaged_pixels,damaged_percent\n");
    GstElement *sink = gst_bin_get_by_name (GST_BIN (d.pipeline), "sink");
    g_signal_connect (sink, "new-sample", G_CALLBACK (on_sample), &d);
    gst_object_unref (sink);
    g_print ("no display: recording snapshots and damage statistics to %s/\n", d.out_dir.c_str ());
  }

  d.loop = g_main_loop_new (nullptr, FALSE);
  GstBus *bus = gst_element_get_bus (d.pipeline);
  gst_bus_add_watch (bus, on_bus, &d);
  gst_object_unref (bus);
  g_unix_signal_add (SIGINT, on_stop, &d);
  g_unix_signal_add (SIGTERM, on_stop, &d);
  if (seconds > 0)
    g_timeout_add_seconds (seconds, on_stop, &d);
  if (!d.to_type.empty ())
    g_timeout_add (1500, [] (gpointer p) -> gboolean {
          g_timeout_add (80, type_next, p);
          return G_SOURCE_REMOVE;
        }, &d);

  if (gst_element_set_state (d.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    d.exit_code = 1;
  else
    g_main_loop_run (d.loop);
  gst_element_set_state (d.pipeline, GST_STATE_NULL);

  if (d.last) {
    write_snapshot (&d, d.last);
    gst_sample_unref (d.last);
  }
  if (d.csv) {
    fclose (d.csv);
    g_print ("%" G_GUINT64_FORMAT " frames, %.1f%% of pixels damaged on average; see %s/damage.csv\n",
        d.frames, d.frames ? 100.0 * d.damaged_pixels / (d.frames * 1280.0 * 720.0) : 0.0,
        d.out_dir.c_str ());
  }
  gst_object_unref (d.src);
  gst_object_unref (d.pipeline);
  g_main_loop_unref (d.loop);
  return d.exit_code;
}
