/* The session compositor behind wayraysrc: a headless wlroots compositor in a
 * thread of its own. The element talks to it only through this interface;
 * nothing here exposes wlroots types.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include "wrmonitors.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wayray {

struct CompositorConfig {
  std::string socket_name;      /* empty: pick wayland-N */
  std::string exec;             /* command started inside the session */
  /* The command's whole environment ("NAME=value" each); empty: this
   * process's own. WAYLAND_DISPLAY and XDG_SESSION_TYPE are set either way. */
  std::vector<std::string> exec_env;
  std::string xkb_rules, xkb_model, xkb_layout, xkb_variant, xkb_options;
  /* pixman renders straight into pushed buffers; otherwise wlroots picks
   * (GLES2 on a GPU) and frames are read back once. */
  bool use_pixman = true;
  bool read_back = false;       /* read back even with pixman (tests that path) */
  int width = 1920, height = 1080;
  int scale = 1;                /* the output's scale: applications draw at it (HiDPI) */
  /* The client's monitors: one output each while their bounding box is
   * the picture's size (else one output fills the picture). */
  MonitorLayout monitors;
  bool xwayland = true;         /* X11 windows through Xwayland (started on first use) */
  int fps_n = 60, fps_d = 1;
};

/* A rendered frame: a read-only buffer holding the whole picture (BGRx) with
 * the damage meta, and when it was rendered (CLOCK_MONOTONIC, ns). */
struct CompositorFrame {
  GstBuffer *buffer = nullptr;
  int width = 0, height = 0;
  gint64 rendered_ns = 0;
};

struct CompositorCursor {
  bool visible = false;
  int x = 0, y = 0;
  guint serial = 0;
  int hotspot_x = 0, hotspot_y = 0;
  int width = 0, height = 0;
  GstBuffer *image = nullptr;    /* set only when the image changed */
};

struct CompositorCallbacks {
  /* All called on the compositor thread; ownership of buffers passes. */
  std::function<void (CompositorFrame &&)> frame;
  std::function<void (CompositorCursor &&)> cursor;
  std::function<void (const std::string &)> error;
  std::function<void (int pid, int status)> exec_exited;
  /* Whether the last frame handed over is still waiting to be taken:
   * the compositor then draws nothing new and holds the applications'
   * frame callbacks (they draw nothing either) until frame_taken (). */
  std::function<bool ()> busy;
  /* The selections (0: clipboard, 1: primary; see wrselection.h): an
   * application set one offering @types (empty: none); a read finished
   * (@data owned by the callee, or @error); an application pastes the
   * outside's offer as @type (answer with provide_selection). */
  std::function<void (int sel, const std::vector<std::string> &types)> selection_changed;
  std::function<void (guint request, GBytes *data, const std::string &error)> selection_read;
  std::function<void (int sel, const std::string &type, guint request)> selection_wanted;
};

class Compositor {
 public:
  Compositor (GstObject *owner, CompositorConfig config, CompositorCallbacks callbacks);
  ~Compositor ();

  /* Creates the display, backend, output and socket in the compositor
   * thread, starts the exec command. Blocks until it serves or failed. */
  bool start (GError **error);
  /* Disconnects clients, ends the exec command, joins the thread. */
  void stop ();

  std::string socket_name () const;
  /* The exec command's process id while it runs, else 0. */
  int exec_pid () const;
  std::string socket_path () const;

  /* Thread-safe requests, carried out on the compositor thread. */
  void resize (int width, int height, int fps_n, int fps_d);
  /* The output's scale (1..4): applications get it as wl_output's scale
   * and draw that many pixels per logical one; the picture's size stays. */
  void set_scale (int scale);
  /* The client's monitors (wrmonitors.h): the session gets one output per
   * monitor, laid out the same, whenever the picture is their bounding
   * box; empty or another picture size: one output. */
  void set_monitors (const MonitorLayout &monitors);
  void request_full_frame ();
  /* The frame handed over last was taken (or dropped): drawing goes on. */
  void frame_taken ();
  /* Frames drawn since start. */
  guint64 frames_rendered () const;
  void pointer_motion (double x, double y);
  void pointer_button (guint32 evdev_button, bool pressed);
  void pointer_axis (double dx, double dy);
  void key (guint32 evdev_keycode, bool pressed);
  void key_by_name (const std::string &keysym_name, bool pressed);
  /* Selections, carried out on the compositor thread: the outside offers
   * @types as selection @sel (empty: nothing); read the applications'
   * selection (the answer comes to selection_read with the id returned);
   * the bytes for a paste (NULL: it failed). */
  void offer_selection (int sel, const std::vector<std::string> &types);
  guint read_selection (int sel, const std::string &type);
  void provide_selection (guint request, GBytes *data);
  /* A new keymap for the session keyboard (the client's layout); a
   * keymap that does not compile is logged and the old one stays. */
  void set_keymap (const std::string &layout, const std::string &variant, const std::string &options,
      const std::string &model);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wayray
