/* The session compositor's insides, shared by the files that implement it:
 * the Impl struct behind wrcompositor.h, the types it holds (regions of
 * damage, views) and small helpers (the monotonic clock, the debug
 * category). The Listener wrapper lives in wrwlroots.h.
 *
 * Which file holds what, one concern each (as the wlroots compositor cage
 * does):
 *   wrcompositor.cpp  set-up, tear-down, the compositor thread, the public
 *                     Compositor methods
 *   wrslots.cpp       frame buffers ("slots") and the read-back target
 *   wroutput.cpp      the outputs (one per monitor): rendering, damage
 *                     history, mode and layout
 *   wrviews.cpp       xdg-shell views, decorations and the kiosk policy
 *   wrseat.cpp        keyboard, keymap, pointer, input injection
 *   wrcursor.cpp      cursor images
 *   wrexec.cpp        the session command's process group
 *   wrxwayland.cpp    X11 windows (Xwayland) in the kiosk policy
 *   wrselection.cpp   the clipboard and primary selection (its own class)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrcompositor.h"

#include "wrmonitors.h"
#include "wrselection.h"
#include "wrwlroots.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

GST_DEBUG_CATEGORY_EXTERN (wr_compositor_debug);
#define GST_CAT_DEFAULT wr_compositor_debug

namespace wayray {

inline gint64
monotonic_ns ()
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

inline guint32
monotonic_ms ()
{
  return (guint32) (monotonic_ns () / 1000000);
}

/* ---- Regions ---------------------------------------------------------- */

struct Region {
  pixman_region32_t r;
  Region () { pixman_region32_init (&r); }
  Region (int x, int y, int w, int h) { pixman_region32_init_rect (&r, x, y, w, h); }
  Region (const Region &o) {
    pixman_region32_init (&r);
    pixman_region32_copy (&r, const_cast<pixman_region32_t *> (&o.r));
  }
  Region &operator= (const Region &o) {
    pixman_region32_copy (&r, const_cast<pixman_region32_t *> (&o.r));
    return *this;
  }
  ~Region () { pixman_region32_fini (&r); }
  void add (const Region &o) { pixman_region32_union (&r, &r, const_cast<pixman_region32_t *> (&o.r)); }
  bool empty () const { return !pixman_region32_not_empty (const_cast<pixman_region32_t *> (&r)); }
  pixman_box32_t *boxes (int *n) { return pixman_region32_rectangles (&r, n); }
};

struct Slot;                    /* wrslots.h */

/* One monitor of the client: an output of the session, showing the part
 * @rect (picture pixels) of the picture. The first one's frame events pace
 * rendering for all. */
struct Screen {
  wlr_output *output = nullptr;
  wlr_scene_output *scene_output = nullptr;
  MonitorRect rect;
  wlr_buffer *copy_target = nullptr;    /* read-back path: its render buffer */
};

/* ---- The compositor --------------------------------------------------- */

/* A toplevel window: an xdg-shell toplevel, or an X11 window through
 * Xwayland (wrxwayland.cpp). */
struct View {
  Compositor::Impl *c = nullptr;
  wlr_xdg_surface *xdg = nullptr;
  wlr_xwayland_surface *xsurface = nullptr;
  wlr_scene_node *node = nullptr;
  bool mapped = false;
  bool was_mapped = false;
  int screen = -1;                /* the monitor it fills; -1: none chosen yet */
  Listener map, unmap, destroy, request_configure, set_geometry, request_fullscreen;
  wlr_surface *surface () const { return xdg ? xdg->surface : xsurface ? xsurface->surface : nullptr; }
};

struct Compositor::Impl {
  GstObject *owner;
  CompositorConfig config;
  CompositorCallbacks cb;

  /* Set up by start(), used only on the compositor thread afterwards. */
  wl_display *display = nullptr;
  wl_event_loop *loop = nullptr;
  wlr_backend *backend = nullptr;
  wlr_renderer *renderer = nullptr;
  wlr_allocator *allocator = nullptr;
  /* One per monitor, the first always there (wroutput.cpp). */
  std::vector<std::unique_ptr<Screen>> screens;
  wlr_output *primary () const { return screens.empty () ? nullptr : screens[0]->output; }
  /* The monitors asked for; used while their bounding box is the
   * picture's size, else the picture is one monitor. */
  MonitorLayout monitors;
  wlr_output_layout *layout = nullptr;
  wlr_scene *scene = nullptr;
  wlr_xdg_shell *xdg_shell = nullptr;
  wlr_compositor *compositor = nullptr;
  wlr_xwayland *xwayland = nullptr;     /* wrxwayland.cpp; NULL: none */
  wlr_seat *seat = nullptr;
  std::unique_ptr<Selections> selections;   /* wrselection.cpp */
  std::atomic<guint> next_read_id { 1 };
  wlr_input_device *keyboard_dev = nullptr;
  wlr_xcursor_manager *xcursor_manager = nullptr;
  wlr_presentation *presentation = nullptr;
  bool pixman = false;
  bool started_backend = false;   /* outputs take modes only after it */
  bool zero_copy () const { return pixman && !config.read_back; }

  Listener output_frame, new_xdg_surface, request_set_cursor, request_set_selection;
  Listener new_decoration, new_xwayland_surface;
  Listener cursor_surface_commit, cursor_surface_destroy;

  std::list<View *> views;        /* toplevels, newest first */

  /* Rendering state. */
  std::vector<Slot *> slots;      /* the pool, all of the current size */
  Slot *front = nullptr;          /* last committed to the output */
  guint64 seq = 0;                /* frames rendered */
  std::atomic<guint64> rendered { 0 };  /* the same, for other threads */
  bool holding = false;           /* a frame was due but the last one is not taken */
  std::deque<std::pair<guint64, Region>> history;  /* damage of frame seq */
  bool full_damage = true;

  /* Pointer and cursor. */
  double px = 0, py = 0;
  wlr_surface *cursor_surface = nullptr;
  int cursor_hx = 0, cursor_hy = 0;
  bool cursor_visible = true;
  bool cursor_default = false;    /* showing the compositor's own arrow */
  guint cursor_serial = 0;
  bool cursor_published = false;
  int cursor_w = 0, cursor_h = 0, cursor_pub_hx = 0, cursor_pub_hy = 0;

  /* Keys by keysym name. */
  std::unordered_map<xkb_keysym_t, std::pair<guint32, guint32>> keysym_cache;

  /* Exec'd command. */
  GPid exec_pid = 0;
  std::atomic<int> exec_pid_public { 0 };
  bool exec_started = false;
  int exec_pidfd = -1;
  wl_event_source *exec_source = nullptr;

  /* Cross-thread requests. */
  std::thread thread;
  int wake_fd = -1;
  wl_event_source *wake_source = nullptr;
  std::mutex lock;
  std::vector<std::function<void ()>> requests;
  std::condition_variable started_cond;
  bool started = false;
  bool stopping = false;
  std::string start_error;
  std::string socket;
  std::string runtime_dir;

  Impl (GstObject *o, CompositorConfig c, CompositorCallbacks callbacks)
      : owner (o), config (std::move (c)), cb (std::move (callbacks)) { monitors = config.monitors; }

  /* -- the compositor thread (wrcompositor.cpp) -- */
  void wake_locked ();           /* with `lock` held */
  void post (std::function<void ()> fn);
  static int handle_wake (int fd, uint32_t mask, void *data);

  /* -- set-up and tear-down, on the compositor thread (wrcompositor.cpp) -- */

  bool setup ();
  void apply_scale (int scale);   /* wroutput.cpp */
  void teardown ();
  void run ();

  /* -- buffer slots (wrslots.cpp) -- */
  Slot *acquire_slot ();
  void drop_slots ();
  bool ensure_copy_target (Screen &screen);
  /* What @screen renders into: the slot itself when the screen is the
   * whole picture, else a buffer over the screen's part of it. */
  wlr_buffer *screen_target (Slot *slot, size_t index);

  /* -- output and rendering (wroutput.cpp) -- */
  void handle_output_frame ();
  void render_frame ();
  void paint (Screen &screen, Region region);
  void apply_mode (int width, int height, int fps_n, int fps_d);
  /* The screens of the current picture size (monitors, or one). */
  MonitorLayout current_layout () const;
  bool sync_screens (const MonitorLayout &want, int refresh_mhz);
  void drop_screen (size_t index);
  void place_screens ();
  /* A screen's box in the layout (logical pixels). */
  wlr_box screen_box (size_t index) const;
  int screen_at (double x, double y) const;   /* picture pixels; -1: none */
  void recommit_front (size_t index);
  /* A monitor other than the first whose output has a frame pending:
   * it cannot take a commit now. */
  bool screen_busy (const Screen &screen) const;
  bool commit_picture (Screen &screen, wlr_buffer *picture, Region &damage);

  /* -- views (wrviews.cpp) -- */
  void handle_new_xdg_surface (wlr_xdg_surface *xdg);
  static void handle_new_decoration (wlr_xdg_toplevel_decoration_v1 *deco);
  void focus_view (View *view);
  void configure_view (View *view);
  /* Chooses the view's monitor: an empty one first, else the pointer's. */
  void choose_screen (View *view);
  int view_screen (View *view);
  void focus_screen_at_pointer ();
  void spread_views ();
  View *top_view ();
  void start_xwayland ();        /* wrxwayland.cpp */
  void stop_xwayland ();
  void handle_new_xwayland_surface (wlr_xwayland_surface *xs);
  void view_activate (View *view, bool on);
  void cycle_views ();

  /* -- input (wrseat.cpp) -- */
  bool apply_keymap (const std::string &layout, const std::string &variant, const std::string &options,
      const std::string &model, std::string *error);
  void process_motion (guint32 time);
  void pointer_motion (double x, double y);
  void pointer_button (guint32 evdev_button, bool pressed);
  void pointer_axis (double dx, double dy);
  void inject_key (guint32 keycode, bool pressed);
  void key_by_name (const std::string &name, bool pressed);
  bool alt_tab_down = false;
  bool keysym_to_keycode (xkb_keysym_t sym, guint32 *keycode, guint32 *level);

  /* -- cursor (wrcursor.cpp) -- */
  void set_cursor_surface (wlr_surface *surface, int hx, int hy);
  void show_default_cursor ();
  void publish_cursor (GstBuffer *image, int w, int h, int hx, int hy);
  void publish_cursor_position ();
  CompositorCursor cursor_state () const;
  GstBuffer *read_surface_image (wlr_surface *surface, int *w, int *h);

  /* -- exec (wrexec.cpp) -- */
  bool spawn_exec (std::string *err);
  void end_exec ();
  static int handle_exec_exit (int fd, uint32_t mask, void *data);
};

}  // namespace wayray
