/* wayray-tiles-record: records a bench-tiles workload from a real session.
 * It runs wayraysrc (1920x1080) with an application, drives it (keys for
 * typing), and writes every frame with its damage (see recording.h).
 *
 *   wayray-tiles-record OUT.wrrec typing|scrolling|fast-scrolling|text-1000|switching|windows|animation
 *
 * Needs the wayray plugin on GST_PLUGIN_PATH, XDG_RUNTIME_DIR, and for a
 * machine without a GPU: WLR_BACKENDS=headless WLR_RENDERER=pixman
 * WLR_LIBINPUT_NO_DEVICES=1.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "recording.h"

#include "gstwayraydamagemeta.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/navigation.h>
#include <gst/video/video.h>

#include <atomic>
#include <string>
#include <thread>

static const int W = 1920, H = 1080;

static std::string
write_script (const std::string &name, const std::string &body)
{
  const char *dir = g_getenv ("XDG_RUNTIME_DIR");
  std::string path = std::string (dir ? dir : "/tmp") + "/" + name;
  g_file_set_contents (path.c_str (), body.c_str (), -1, NULL);
  return path;
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc != 3) {
    g_printerr ("usage: %s OUT.wrrec typing|scrolling|fast-scrolling|text-1000|switching|windows|animation\n",
        argv[0]);
    return 2;
  }
  std::string workload = argv[2];
  std::string exec;
  double seconds = 4;
  if (workload == "typing") {
    exec = "foot cat";
    seconds = 9;
  } else if (workload == "scrolling" || workload == "fast-scrolling") {
    /* 60 lines/s (about one per frame) or about 1000 lines/s */
    const char *pause = workload == "scrolling" ? "0.016" : "0.001";
    std::string s = write_script (workload + ".sh",
        std::string ("i=0\nwhile [ $i -lt 100000 ]; do\n  i=$((i+1))\n"
            "  echo \"$i: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
            "eiusmod tempor incididunt $((i*7919))\"\n  sleep ") + pause + "\ndone\n");
    exec = "foot sh " + s;
    seconds = workload == "scrolling" ? 4 : 2;
  } else if (workload == "text-1000") {
    /* a real text file scrolling by at 1000 lines/s, paced by python */
    std::string py = write_script ("pace.py",
        "import sys, time\n"
        "lines = open('/usr/share/common-licenses/GPL-3').read().splitlines() * 20\n"
        "start = time.monotonic()\n"
        "for i, l in enumerate(lines):\n"
        "    sys.stdout.write('%6d  %s\\n' % (i, l))\n"
        "    if i % 10 == 9:\n"
        "        sys.stdout.flush()\n"
        "        delay = start + (i + 1) / 1000.0 - time.monotonic()\n"
        "        if delay > 0:\n"
        "            time.sleep(delay)\n");
    exec = "foot python3 " + py;
    seconds = 3;
  } else if (workload == "switching") {
    /* two full screens of text shown in turn, four times a second */
    std::string s = write_script ("switching.sh",
        "ls -l /usr/bin | head -70 > $XDG_RUNTIME_DIR/a.txt\n"
        "ls -l /usr/lib/x86_64-linux-gnu | tail -70 > $XDG_RUNTIME_DIR/b.txt\n"
        "while true; do\n  clear; cat $XDG_RUNTIME_DIR/a.txt; sleep 0.25\n"
        "  clear; cat $XDG_RUNTIME_DIR/b.txt; sleep 0.25\ndone\n");
    exec = "foot sh " + s;
    seconds = 4;
  } else if (workload == "windows") {
    /* two terminal windows full of different text; Alt+Tab between them
     * four times a second */
    std::string a = write_script ("window-a.sh", "ls -l /usr/bin | head -70; exec cat\n");
    std::string b = write_script ("window-b.sh", "ls -l /usr/lib/x86_64-linux-gnu | tail -70; exec cat\n");
    std::string s = write_script ("windows.sh", "foot sh " + a + " &\nsleep 1\nexec foot sh " + b + "\n");
    exec = "sh " + s;
    seconds = 5;
  } else if (workload == "animation") {
    exec = "weston-simple-shm";
    seconds = 1.5;
  } else {
    g_printerr ("unknown workload %s\n", workload.c_str ());
    return 2;
  }

  gchar *desc = g_strdup_printf ("wayraysrc name=src exec=\"%s\" ! "
      "video/x-raw,format=BGRx,width=%d,height=%d,framerate=60/1 ! "
      "appsink name=sink sync=false", exec.c_str (), W, H);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err);
  g_free (desc);
  if (!pipe) {
    g_printerr ("%s\n", err->message);
    return 1;
  }
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipe), "src");
  GstAppSink *sink = GST_APP_SINK (gst_bin_get_by_name (GST_BIN (pipe), "sink"));
  gst_element_set_state (pipe, GST_STATE_PLAYING);

  std::atomic<bool> done { false };
  std::thread typist;
  if (workload == "typing") {
    typist = std::thread ([&] () {
          g_usleep (1500 * 1000);       /* let foot start */
          const char *text = "the quick brown fox jumps over the lazy dog while WayRay "
              "sends every keystroke in a few dozen bytes 0123456789 ";
          for (const char *p = text; *p && !done; p++) {
            char name[16];
            if (*p == ' ')
              g_strlcpy (name, "space", sizeof name);
            else
              g_snprintf (name, sizeof name, "%c", *p);
            gst_element_send_event (src, gst_navigation_event_new_key_press (name,
                    (GstNavigationModifierType) 0));
            gst_element_send_event (src, gst_navigation_event_new_key_release (name,
                    (GstNavigationModifierType) 0));
            g_usleep (60 * 1000);
          }
        });
  }

  if (workload == "windows") {
    typist = std::thread ([&] () {
          g_usleep (2500 * 1000);       /* both windows are up */
          while (!done) {
            for (auto [code, down] : { std::pair<guint, bool> {56, true}, {15, true}, {15, false}, {56, false} }) {
              GstEvent *ev = down ? gst_navigation_event_new_key_press ("x", (GstNavigationModifierType) 0)
                                  : gst_navigation_event_new_key_release ("x", (GstNavigationModifierType) 0);
              gst_structure_set (gst_event_writable_structure (ev), "keycode", G_TYPE_UINT, code, NULL);
              gst_element_send_event (src, ev);
            }
            g_usleep (250 * 1000);
          }
        });
  }

  wayray::tiles::EncoderSettings set;
  wayray::tiles::Encoder enc;
  enc.configure (W, H, set);
  std::vector<uint8_t> out = {'W', 'R', 'R', 'E', 'C', '1', 0, 0,
    (uint8_t) (W & 0xff), (uint8_t) (W >> 8), (uint8_t) (H & 0xff), (uint8_t) (H >> 8)
  };
  gint64 start = g_get_monotonic_time (), end = start + (gint64) (seconds * 1e6);
  /* foot needs a moment to start: the recording begins with its first frame
   * and the typing run ends when the text is typed */
  if (workload == "typing")
    end += 0;
  int n = 0;
  while (g_get_monotonic_time () < end) {
    GstSample *sample = gst_app_sink_try_pull_sample (sink, 100 * GST_MSECOND);
    if (!sample)
      continue;
    GstBuffer *buf = gst_sample_get_buffer (sample);
    GstMapInfo map;
    gst_buffer_map (buf, &map, GST_MAP_READ);
    recording::Frame fr;
    fr.pts = GST_BUFFER_PTS (buf);
    GstWayrayDamageMeta *dm = gst_buffer_get_wayray_damage_meta (buf);
    if (dm) {
      for (guint i = 0; i < dm->n_rects; i++)
        fr.damage.push_back ({dm->rects[i].x, dm->rects[i].y, dm->rects[i].w, dm->rects[i].h});
    } else {
      fr.damage.push_back ({0, 0, W, H});
    }
    /* the frame itself, losslessly; the first message is a full reset */
    wayray::tiles::ConstSurface cs = {map.data, (size_t) W * 4, W, H};
    if (!enc.encode (cs, n == 0 ? nullptr : fr.damage.data (), fr.damage.size (), nullptr, 0,
            fr.message, nullptr))
      fr.message.clear ();
    gst_buffer_unmap (buf, &map);
    gst_sample_unref (sample);
    if (fr.message.empty ())
      continue;                 /* damage without change: nothing to replay */
    recording::append_frame (out, fr);
    n++;
  }
  done = true;
  if (typist.joinable ())
    typist.join ();
  gst_element_set_state (pipe, GST_STATE_NULL);
  if (!g_file_set_contents (argv[1], (const gchar *) out.data (), out.size (), NULL)) {
    g_printerr ("cannot write %s\n", argv[1]);
    return 1;
  }
  g_print ("%s: %d frames, %zu bytes\n", argv[1], n, out.size ());
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return 0;
}
