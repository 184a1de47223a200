/* The session compositor behind wayraysrc.
 *
 * A headless wlroots 0.15 compositor running its wl_event_loop in a thread of
 * its own. It renders only when the scene has damage, straight into memory
 * that is then handed to GStreamer (no copy with the pixman renderer), and
 * paces clients' frame callbacks at the negotiated frame rate.
 *
 * Frame buffers ("slots") are shared by three owners: wlroots (render target,
 * then the output's front buffer, which screencopy reads), GStreamer (the
 * pushed buffer's memory) and this compositor (its pool). A slot is reused
 * only when none of the first two hold it; its content is then brought up to
 * date by repainting the damage of the frames it missed (buffer age).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositor.h"

#include "gstwayraydamagemeta.h"
#include "wrwlroots.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

GST_DEBUG_CATEGORY_STATIC (wr_compositor_debug);
#define GST_CAT_DEFAULT wr_compositor_debug

namespace wayray {

namespace {

/* How many past frames' damage is remembered to bring an old slot up to
 * date; an older slot is repainted whole. */
constexpr size_t DAMAGE_HISTORY = 8;
/* Slots kept at most; more in use downstream means frames are queued there,
 * and a new slot is made (and later dropped) rather than blocking. */
constexpr size_t MAX_IDLE_SLOTS = 4;

gint64
monotonic_ns ()
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

guint32
monotonic_ms ()
{
  return (guint32) (monotonic_ns () / 1000000);
}

/* ---- Slots ------------------------------------------------------------ */

struct Slot {
  wlr_buffer base;              /* first: a wlr_buffer* is a Slot* */
  std::atomic<int> refs;        /* the compositor's pool + each pushed GstMemory */
  std::atomic<bool> in_gst;
  guint8 *data;
  size_t stride;
  size_t size;
  guint64 seq;                  /* the frame whose picture it holds; 0: none */
  uint32_t format;              /* XRGB8888 for frames, ARGB8888 for cursors */
};

void
slot_unref (Slot *slot)
{
  if (slot->refs.fetch_sub (1) == 1) {
    free (slot->data);
    delete slot;
  }
}

void
slot_buffer_destroy (wlr_buffer *buffer)
{
  /* wlroots has dropped the buffer and no lock is left: the pool's
   * reference ends here. */
  slot_unref (reinterpret_cast<Slot *> (buffer));
}

bool
slot_begin_data_ptr_access (wlr_buffer *buffer, uint32_t flags, void **data,
    uint32_t *format, size_t *stride)
{
  Slot *slot = reinterpret_cast<Slot *> (buffer);
  *data = slot->data;
  *format = slot->format;
  *stride = slot->stride;
  return true;
}

void
slot_end_data_ptr_access (wlr_buffer *buffer)
{
}

const wlr_buffer_impl slot_impl = {
  .destroy = slot_buffer_destroy,
  .get_dmabuf = nullptr,
  .get_shm = nullptr,
  .begin_data_ptr_access = slot_begin_data_ptr_access,
  .end_data_ptr_access = slot_end_data_ptr_access,
};

Slot *
slot_new (int width, int height, uint32_t format = DRM_FORMAT_XRGB8888)
{
  Slot *slot = new Slot ();
  slot->format = format;
  slot->refs = 1;
  slot->in_gst = false;
  slot->stride = (size_t) width * 4;
  slot->size = slot->stride * height;
  slot->seq = 0;
  if (posix_memalign ((void **) &slot->data, 64, slot->size) != 0) {
    delete slot;
    return nullptr;
  }
  wlr_buffer_init (&slot->base, &slot_impl, width, height);
  return slot;
}

void
slot_memory_released (gpointer data)
{
  Slot *slot = static_cast<Slot *> (data);
  slot->in_gst = false;
  slot_unref (slot);
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

}  // namespace

/* ---- The compositor --------------------------------------------------- */

struct View {
  Compositor::Impl *c = nullptr;
  wlr_xdg_surface *xdg = nullptr;
  wlr_scene_node *node = nullptr;
  bool mapped = false;
  Listener map, unmap, destroy;
};

/* A toplevel's decoration object: always server-side, and the server draws
 * none, so windows are content only (as on a kiosk or a thin client). */
struct Decoration {
  wlr_xdg_toplevel_decoration_v1 *deco = nullptr;
  Listener request_mode, destroy;
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
  wlr_output *output = nullptr;
  wlr_output_layout *layout = nullptr;
  wlr_scene *scene = nullptr;
  wlr_scene_output *scene_output = nullptr;
  wlr_xdg_shell *xdg_shell = nullptr;
  wlr_seat *seat = nullptr;
  wlr_input_device *keyboard_dev = nullptr;
  wlr_xcursor_manager *xcursor_manager = nullptr;
  wlr_presentation *presentation = nullptr;
  bool pixman = false;
  bool zero_copy () const { return pixman && !config.read_back; }

  Listener output_frame, new_xdg_surface, request_set_cursor, request_set_selection;
  Listener new_decoration;
  Listener cursor_surface_commit, cursor_surface_destroy;

  std::list<View *> views;        /* toplevels, newest first */

  /* Rendering state. */
  std::vector<Slot *> slots;      /* the pool, all of the current size */
  Slot *front = nullptr;          /* last committed to the output */
  wlr_buffer *copy_target = nullptr;  /* zero-copy off: the render buffer */
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
      : owner (o), config (std::move (c)), cb (std::move (callbacks)) {}

  /* Wakes the compositor thread. Called with `lock` held: teardown closes
   * the eventfd under the same lock, so the descriptor is never stale. */
  void wake_locked () {
    guint64 one = 1;
    if (wake_fd >= 0 && write (wake_fd, &one, sizeof one) < 0)
      GST_WARNING_OBJECT (owner, "could not wake the compositor: %s", g_strerror (errno));
  }

  void post (std::function<void ()> fn) {
    std::lock_guard<std::mutex> g (lock);
    if (!started || stopping)
      return;
    requests.push_back (std::move (fn));
    wake_locked ();
  }

  static int handle_wake (int fd, uint32_t mask, void *data) {
    auto self = static_cast<Impl *> (data);
    guint64 n;
    if (read (fd, &n, sizeof n) < 0 && errno != EAGAIN)
      GST_WARNING_OBJECT (self->owner, "eventfd read failed: %s", g_strerror (errno));
    std::vector<std::function<void ()>> todo;
    {
      std::lock_guard<std::mutex> g (self->lock);
      todo.swap (self->requests);
      if (self->stopping) {
        wl_display_terminate (self->display);
        return 0;
      }
    }
    for (auto &fn : todo)
      fn ();
    return 0;
  }

  /* -- set-up and tear-down, on the compositor thread -- */

  bool setup ();
  bool apply_keymap (const std::string &layout, const std::string &variant, const std::string &options,
      const std::string &model, std::string *error);
  void teardown ();
  void run ();

  /* -- output and rendering -- */
  void handle_output_frame ();
  void render_frame ();
  void paint (Region region);
  Slot *acquire_slot ();
  void drop_slots ();
  bool ensure_copy_target ();
  void apply_mode (int width, int height, int fps_n, int fps_d);
  void recommit_front ();
  bool commit_picture (wlr_buffer *picture, Region &damage);

  /* -- views -- */
  void handle_new_xdg_surface (wlr_xdg_surface *xdg);
  void focus_view (View *view);
  void configure_view (View *view);
  View *top_view ();

  /* -- input -- */
  void process_motion (guint32 time);
  void inject_key (guint32 keycode, bool pressed);
  void cycle_views ();
  bool alt_tab_down = false;
  bool keysym_to_keycode (xkb_keysym_t sym, guint32 *keycode, guint32 *level);

  /* -- cursor -- */
  void set_cursor_surface (wlr_surface *surface, int hx, int hy);
  void show_default_cursor ();
  void publish_cursor (GstBuffer *image, int w, int h, int hx, int hy);
  void publish_cursor_position ();
  CompositorCursor cursor_state () const;
  GstBuffer *read_surface_image (wlr_surface *surface, int *w, int *h);

  /* -- exec -- */
  bool spawn_exec (std::string *err);
  void end_exec ();
  static int handle_exec_exit (int fd, uint32_t mask, void *data);
};

/* ---- Set-up ----------------------------------------------------------- */

/* Compiles an XKB keymap from names (empty: libxkbcommon's defaults,
 * XKB_DEFAULT_* included) and gives it to the session keyboard; the seat
 * sends it to every client. The keyboard keeps its keymap on failure. */
bool
Compositor::Impl::apply_keymap (const std::string &layout, const std::string &variant, const std::string &options,
    const std::string &model, std::string *error)
{
  auto name = [] (const std::string &s) { return s.empty () ? nullptr : s.c_str (); };
  xkb_rule_names names = { name (config.xkb_rules), name (model), name (layout), name (variant), name (options) };
  xkb_context *xkb = xkb_context_new (XKB_CONTEXT_NO_FLAGS);
  xkb_keymap *keymap = xkb ? xkb_keymap_new_from_names (xkb, &names, XKB_KEYMAP_COMPILE_NO_FLAGS) : nullptr;
  if (xkb)
    xkb_context_unref (xkb);
  if (!keymap) {
    *error = "could not compile the keymap (layout '" + layout + "', variant '" + variant + "', options '" +
        options + "'): check the keymap properties";
    return false;
  }
  wlr_keyboard_set_keymap (keyboard_dev->keyboard, keymap);
  xkb_keymap_unref (keymap);
  keysym_cache.clear ();        /* symbols sit on other keys now */
  return true;
}

bool
Compositor::Impl::setup ()
{
  const char *xdg_runtime = g_getenv ("XDG_RUNTIME_DIR");
  if (!xdg_runtime || !*xdg_runtime) {
    start_error = "XDG_RUNTIME_DIR is not set: the Wayland socket has nowhere to go";
    return false;
  }
  runtime_dir = xdg_runtime;

  display = wl_display_create ();
  if (!display) {
    start_error = "could not create a Wayland display";
    return false;
  }
  loop = wl_display_get_event_loop (display);

  wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  wake_source = wl_event_loop_add_fd (loop, wake_fd, WL_EVENT_READABLE, handle_wake, this);

  backend = wlr_headless_backend_create (display);
  if (!backend) {
    start_error = "could not create the headless wlroots backend";
    return false;
  }

  /* Without a GPU (and always when buffers go straight to GStreamer) the
   * pixman renderer draws into our own memory; with a render node wlroots
   * picks GLES2 and frames are read back once. */
  renderer = config.use_pixman ? wlr_pixman_renderer_create () : wlr_renderer_autocreate (backend);
  if (!renderer) {
    start_error = "could not create a wlroots renderer";
    return false;
  }
  pixman = wlr_renderer_is_pixman (renderer);
  wlr_renderer_init_wl_display (renderer, display);   /* wl_shm, linux-dmabuf when supported */

  allocator = wlr_allocator_autocreate (backend, renderer);
  if (!allocator) {
    start_error = "could not create a wlroots buffer allocator";
    return false;
  }

  wlr_compositor_create (display, renderer);    /* also wl_subcompositor */
  wlr_data_device_manager_create (display);
  wlr_viewporter_create (display);
  wlr_screencopy_manager_v1_create (display);

  layout = wlr_output_layout_create ();
  wlr_xdg_output_manager_v1_create (display, layout);

  scene = wlr_scene_create ();
  wlr_scene_attach_output_layout (scene, layout);
  presentation = wlr_presentation_create (display, backend);
  wlr_scene_set_presentation (scene, presentation);

  xdg_shell = wlr_xdg_shell_create (display);
  new_xdg_surface.connect (&xdg_shell->events.new_surface, [this] (void *data) {
    handle_new_xdg_surface (static_cast<wlr_xdg_surface *> (data));
  });

  auto decoration_manager = wlr_xdg_decoration_manager_v1_create (display);
  new_decoration.connect (&decoration_manager->events.new_toplevel_decoration, [] (void *data) {
    auto d = new Decoration ();
    d->deco = static_cast<wlr_xdg_toplevel_decoration_v1 *> (data);
    d->request_mode.connect (&d->deco->events.request_mode, [d] (void *) {
      wlr_xdg_toplevel_decoration_v1_set_mode (d->deco, WLR_XDG_TOPLEVEL_DECORATION_V1_MODE_SERVER_SIDE);
    });
    d->destroy.connect (&d->deco->events.destroy, [d] (void *) { delete d; });
    wlr_xdg_toplevel_decoration_v1_set_mode (d->deco, WLR_XDG_TOPLEVEL_DECORATION_V1_MODE_SERVER_SIDE);
  });

  output = wlr_headless_add_output (backend, config.width, config.height);
  if (!output || !wlr_output_init_render (output, allocator, renderer)) {
    start_error = "could not create the headless output";
    return false;
  }
  output_frame.connect (&output->events.frame, [this] (void *) { handle_output_frame (); });
  wlr_output_layout_add_auto (layout, output);
  scene_output = wlr_scene_get_scene_output (scene, output);
  if (!scene_output)
    scene_output = wlr_scene_output_create (scene, output);

  /* Seat: a keyboard with the configured keymap and a pointer. */
  seat = wlr_seat_create (display, "seat0");
  keyboard_dev = wlr_headless_add_input_device (backend, WLR_INPUT_DEVICE_KEYBOARD);
  if (!apply_keymap (config.xkb_layout, config.xkb_variant, config.xkb_options, config.xkb_model, &start_error))
    return false;
  wlr_keyboard_set_repeat_info (keyboard_dev->keyboard, 25, 600);
  wlr_seat_set_keyboard (seat, keyboard_dev);
  wlr_seat_set_capabilities (seat, WL_SEAT_CAPABILITY_POINTER | WL_SEAT_CAPABILITY_KEYBOARD);

  request_set_cursor.connect (&seat->events.request_set_cursor, [this] (void *data) {
    auto ev = static_cast<wlr_seat_pointer_request_set_cursor_event *> (data);
    /* Only the client under the pointer may choose its image. */
    if (ev->seat_client == seat->pointer_state.focused_client)
      set_cursor_surface (ev->surface, ev->hotspot_x, ev->hotspot_y);
  });
  request_set_selection.connect (&seat->events.request_set_selection, [this] (void *data) {
    auto ev = static_cast<wlr_seat_request_set_selection_event *> (data);
    wlr_seat_set_selection (seat, ev->source, ev->serial);
  });

  xcursor_manager = wlr_xcursor_manager_create (nullptr, 24);
  wlr_xcursor_manager_load (xcursor_manager, 1);

  /* The socket, then the backend, then the session's command. */
  int rc = config.socket_name.empty () ? -1 : wl_display_add_socket (display, config.socket_name.c_str ());
  if (config.socket_name.empty ()) {
    const char *name = wl_display_add_socket_auto (display);
    if (name)
      socket = name;
    else
      start_error = "could not create a Wayland socket in " + runtime_dir;
  } else if (rc == 0) {
    socket = config.socket_name;
  } else {
    start_error = "could not create Wayland socket '" + config.socket_name + "' in " + runtime_dir +
        " (already in use?)";
  }
  if (socket.empty ())
    return false;

  if (!wlr_backend_start (backend)) {
    start_error = "could not start the headless backend";
    return false;
  }
  apply_mode (config.width, config.height, config.fps_n, config.fps_d);

  /* The session command starts once the output has its negotiated size
   * (the first resize()), so applications start at the right size. Its
   * command line is checked now, to fail early. */
  if (!config.exec.empty ()) {
    gchar **argv = nullptr;
    GError *error = nullptr;
    if (!g_shell_parse_argv (config.exec.c_str (), nullptr, &argv, &error)) {
      start_error = std::string ("could not parse exec command: ") + error->message;
      g_error_free (error);
      return false;
    }
    g_strfreev (argv);
  }

  GST_INFO_OBJECT (owner, "serving on %s/%s (%s renderer, %s)", runtime_dir.c_str (),
      socket.c_str (), pixman ? "pixman" : "GPU", zero_copy () ? "zero-copy" : "read-back");
  return true;
}

void
Compositor::Impl::teardown ()
{
  if (display)
    wl_display_destroy_clients (display);
  end_exec ();

  new_xdg_surface.disconnect ();
  new_decoration.disconnect ();
  output_frame.disconnect ();
  request_set_cursor.disconnect ();
  request_set_selection.disconnect ();
  cursor_surface_commit.disconnect ();
  cursor_surface_destroy.disconnect ();
  for (View *v : views)
    delete v;
  views.clear ();

  drop_slots ();
  front = nullptr;
  if (copy_target) {
    wlr_buffer_drop (copy_target);
    copy_target = nullptr;
  }
  history.clear ();

  if (xcursor_manager)
    wlr_xcursor_manager_destroy (xcursor_manager);
  xcursor_manager = nullptr;
  if (wake_source)
    wl_event_source_remove (wake_source);
  wake_source = nullptr;
  if (backend)
    wlr_backend_destroy (backend);      /* outputs and input devices */
  backend = nullptr;
  output = nullptr;
  /* The layout before the scene: wlroots 0.15's scene/layout helper only
   * unhooks itself when the layout goes. */
  if (layout)
    wlr_output_layout_destroy (layout);
  layout = nullptr;
  if (scene)
    wlr_scene_node_destroy (&scene->node);
  scene = nullptr;
  if (display)
    wl_display_destroy (display);       /* globals: seat, shells, managers */
  display = nullptr;
  if (allocator)
    wlr_allocator_destroy (allocator);
  allocator = nullptr;
  if (renderer)
    wlr_renderer_destroy (renderer);
  renderer = nullptr;
  std::lock_guard<std::mutex> g (lock);
  if (wake_fd >= 0)
    close (wake_fd);
  wake_fd = -1;
}

void
Compositor::Impl::run ()
{
  bool ok = setup ();
  {
    std::lock_guard<std::mutex> g (lock);
    started = ok;
    if (!ok && start_error.empty ())
      start_error = "the compositor could not start";
  }
  if (!ok) {
    teardown ();
    std::lock_guard<std::mutex> g (lock);
    stopping = true;          /* start() sees a failure */
    started_cond.notify_all ();
    return;
  }
  {
    std::lock_guard<std::mutex> g (lock);
    started_cond.notify_all ();
  }
  wl_display_run (display);
  teardown ();
}

/* ---- Output, slots, rendering ----------------------------------------- */

void
Compositor::Impl::apply_mode (int width, int height, int fps_n, int fps_d)
{
  int refresh_mhz = fps_d > 0 ? (int) gst_util_uint64_scale_int (1000, fps_n, fps_d) : 60000;
  config.width = width;
  config.height = height;
  config.fps_n = fps_n;
  config.fps_d = fps_d;

  wlr_output_enable (output, true);
  wlr_output_set_custom_mode (output, width, height, refresh_mhz);
  if (!wlr_output_commit (output)) {
    cb.error ("could not set the output mode to " + std::to_string (width) + "x" + std::to_string (height));
    return;
  }
  wlr_output_layout_add (layout, output, 0, 0);

  drop_slots ();
  if (copy_target) {
    wlr_buffer_drop (copy_target);
    copy_target = nullptr;
  }
  history.clear ();
  full_damage = true;

  for (View *v : views)
    configure_view (v);
  wlr_output_schedule_frame (output);
  GST_INFO_OBJECT (owner, "output is %dx%d at %d/%d fps", width, height, fps_n, fps_d);
}

void
Compositor::Impl::drop_slots ()
{
  for (Slot *s : slots)
    wlr_buffer_drop (&s->base);
  slots.clear ();
}

Slot *
Compositor::Impl::acquire_slot ()
{
  /* A slot is free when no pushed buffer holds its memory and wlroots holds
   * no lock on it (it is not the output's front buffer). Prefer the one
   * with the newest picture: it needs the least repainting. */
  Slot *best = nullptr;
  for (Slot *s : slots) {
    if (s->in_gst || s->base.n_locks > 0)
      continue;
    if (!best || s->seq > best->seq)
      best = s;
  }
  if (best)
    return best;

  /* Drop idle extras made while downstream held many frames. */
  if (slots.size () > MAX_IDLE_SLOTS) {
    for (auto it = slots.begin (); it != slots.end ();) {
      Slot *s = *it;
      if (!s->in_gst && s->base.n_locks == 0 && slots.size () > MAX_IDLE_SLOTS) {
        wlr_buffer_drop (&s->base);
        it = slots.erase (it);
      } else {
        ++it;
      }
    }
  }
  Slot *s = slot_new (config.width, config.height);
  if (s)
    slots.push_back (s);
  return s;
}

bool
Compositor::Impl::ensure_copy_target ()
{
  if (copy_target)
    return true;
  if (pixman) {
    Slot *s = slot_new (config.width, config.height);
    copy_target = s ? &s->base : nullptr;
  } else {
    /* A GPU buffer from the output's allocator, linear so it reads back
     * cheaply. */
    wlr_drm_format *fmt = static_cast<wlr_drm_format *> (
        calloc (1, sizeof (wlr_drm_format) + 2 * sizeof (uint64_t)));
    fmt->format = DRM_FORMAT_XRGB8888;
    fmt->len = 2;
    fmt->capacity = 2;
    fmt->modifiers[0] = DRM_FORMAT_MOD_LINEAR;
    fmt->modifiers[1] = DRM_FORMAT_MOD_INVALID;
    copy_target = wlr_allocator_create_buffer (allocator, config.width, config.height, fmt);
    free (fmt);
  }
  return copy_target != nullptr;
}

void
Compositor::Impl::recommit_front ()
{
  /* A screencopy client waits for a committed buffer; give it the current
   * picture without rendering anything new. */
  wlr_buffer *buf = copy_target ? copy_target : (front ? &front->base : nullptr);
  if (!buf)
    return;
  Region none;
  if (!commit_picture (buf, none))
    GST_DEBUG_OBJECT (owner, "re-commit for screencopy failed");
}

bool
Compositor::Impl::commit_picture (wlr_buffer *picture, Region &damage)
{
  if (output->attach_render_locks > 0) {
    /* Screencopy (grim) is waiting. In wlroots 0.15 it reads only buffers
     * committed through the output's own swapchain, so this commit draws
     * the picture into one: a full copy, paid only while someone takes a
     * screenshot. */
    if (!wlr_output_attach_render (output, nullptr))
      return false;
    wlr_texture *tex = wlr_texture_from_buffer (renderer, picture);
    if (!tex) {
      wlr_output_rollback (output);
      return false;
    }
    wlr_renderer_begin (renderer, output->width, output->height);
    wlr_render_texture (renderer, tex, output->transform_matrix, 0, 0, 1.0f);
    wlr_renderer_end (renderer);
    wlr_texture_destroy (tex);
  } else {
    wlr_output_attach_buffer (output, picture);
  }
  wlr_output_set_damage (output, &damage.r);
  return wlr_output_commit (output);
}

void
Compositor::Impl::handle_output_frame ()
{
  bool damaged = full_damage || pixman_region32_not_empty (&scene_output->damage->current);
  if (damaged && cb.busy && cb.busy ()) {
    /* Nobody took the last frame yet (downstream is slow or blocked):
     * drawing another would be thrown away. The damage stays with the
     * scene; the applications get no frame callback, so they wait too,
     * until frame_taken () asks for the next output frame. */
    holding = true;
    return;
  }
  if (damaged)
    render_frame ();
  else if (output->attach_render_locks > 0)
    recommit_front ();

  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  wlr_scene_output_send_frame_done (scene_output, &now);
}

/* Draws the scene inside @region of the bound render target: black where
 * no surface is, then every surface, clipped to the region. */
void
Compositor::Impl::paint (Region region)
{
  const float black[4] = { 0.0f, 0.0f, 0.0f, 1.0f };
  int n = 0;
  pixman_box32_t *boxes = region.boxes (&n);
  for (int i = 0; i < n; i++) {
    wlr_box box = { boxes[i].x1, boxes[i].y1, boxes[i].x2 - boxes[i].x1, boxes[i].y2 - boxes[i].y1 };
    wlr_renderer_scissor (renderer, &box);
    wlr_renderer_clear (renderer, black);
  }
  wlr_scene_render_output (scene, output, 0, 0, &region.r);
}

void
Compositor::Impl::render_frame ()
{
  const int W = config.width, H = config.height;

  /* This frame's damage, in output pixels. */
  Region damage;
  if (full_damage)
    damage = Region (0, 0, W, H);
  else
    pixman_region32_intersect_rect (&damage.r, &scene_output->damage->current, 0, 0, W, H);
  full_damage = false;
  const guint64 frame_seq = ++seq;
  rendered = frame_seq;
  history.emplace_back (frame_seq, damage);
  while (history.size () > DAMAGE_HISTORY)
    history.pop_front ();

  Slot *slot = acquire_slot ();
  if (!slot) {
    cb.error ("out of memory for a " + std::to_string (W) + "x" + std::to_string (H) + " frame");
    return;
  }

  /* What the slot must repaint: every frame's damage since the picture it
   * holds, or everything when that is too old. */
  auto missed_since = [this, frame_seq] (guint64 held) {
    Region r;
    if (held == 0 || frame_seq - held > history.size ())
      return Region (0, 0, config.width, config.height);
    for (auto &h : history)
      if (h.first > held)
        r.add (h.second);
    return r;
  };
  Region repaint = missed_since (slot->seq);

  int n = 0;
  pixman_box32_t *boxes;

  if (zero_copy ()) {
    if (!wlr_renderer_begin_with_buffer (renderer, &slot->base)) {
      cb.error ("the renderer could not draw into a frame buffer");
      return;
    }
    paint (repaint);
    wlr_renderer_end (renderer);
  } else {
    /* Render this frame's damage into the persistent render buffer, then
     * read back what the slot missed: the one copy of this path. */
    bool fresh = !copy_target;
    if (!ensure_copy_target () || !wlr_renderer_begin_with_buffer (renderer, copy_target)) {
      cb.error ("the renderer could not draw into its render buffer");
      return;
    }
    /* The render buffer always holds the previous frame, except when new. */
    paint (fresh ? Region (0, 0, W, H) : damage);
    boxes = repaint.boxes (&n);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
      uint32_t flags = 0;
      /* Destination offsets go into the pointer: pixman's read_pixels
       * clips them against width x height. */
      ok = wlr_renderer_read_pixels (renderer, DRM_FORMAT_XRGB8888, &flags, slot->stride,
          boxes[i].x2 - boxes[i].x1, boxes[i].y2 - boxes[i].y1, boxes[i].x1, boxes[i].y1, 0, 0,
          slot->data + (size_t) boxes[i].y1 * slot->stride + (size_t) boxes[i].x1 * 4);
    }
    wlr_renderer_end (renderer);
    if (!ok) {
      cb.error ("could not read the rendered frame back");
      return;
    }
  }
  slot->seq = frame_seq;

  /* Commit to the output: presentation feedback, screencopy, and
   * wlr_output_damage starts collecting the next frame's damage. */
  if (!commit_picture (copy_target ? copy_target : &slot->base, damage)) {
    GST_WARNING_OBJECT (owner, "output commit failed");
    /* Keep the damage for the next frame. */
    pixman_region32_union (&scene_output->damage->current, &scene_output->damage->current, &damage.r);
  }
  front = slot;

  /* Hand the picture to GStreamer. */
  GstBuffer *buf = gst_buffer_new ();
  slot->refs++;
  slot->in_gst = true;
  gst_buffer_append_memory (buf, gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY,
          slot->data, slot->size, 0, slot->size, slot, slot_memory_released));
  gst_buffer_add_video_meta (buf, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_BGRx, W, H);

  std::vector<GstVideoRectangle> rects;
  boxes = damage.boxes (&n);
  rects.reserve (n);
  for (int i = 0; i < n; i++)
    rects.push_back ({ boxes[i].x1, boxes[i].y1, boxes[i].x2 - boxes[i].x1, boxes[i].y2 - boxes[i].y1 });
  gst_buffer_add_wayray_damage_meta (buf, rects.data (), rects.size (), W, H);

  CompositorFrame frame;
  frame.buffer = buf;
  frame.width = W;
  frame.height = H;
  frame.rendered_ns = monotonic_ns ();
  cb.frame (std::move (frame));
}

/* ---- Views: kiosk policy ---------------------------------------------- */

View *
Compositor::Impl::top_view ()
{
  for (View *v : views)
    if (v->mapped)
      return v;
  return nullptr;
}

void
Compositor::Impl::configure_view (View *view)
{
  /* Toplevels fill the output. The scene node already offsets the surface
   * by its window geometry, so the window (not a shadow around it) lines up
   * with the output's corner at (0, 0). */
  wlr_xdg_toplevel_set_size (view->xdg, config.width, config.height);
  wlr_xdg_toplevel_set_maximized (view->xdg, true);
}

void
Compositor::Impl::focus_view (View *view)
{
  View *prev_top = top_view ();
  if (prev_top && prev_top != view)
    wlr_xdg_toplevel_set_activated (prev_top->xdg, false);
  if (!view) {
    wlr_seat_keyboard_notify_clear_focus (seat);
    process_motion (monotonic_ms ());
    return;
  }
  views.remove (view);
  views.push_front (view);
  wlr_scene_node_raise_to_top (view->node);
  wlr_xdg_toplevel_set_activated (view->xdg, true);
  wlr_keyboard *kb = keyboard_dev->keyboard;
  wlr_seat_keyboard_notify_enter (seat, view->xdg->surface, kb->keycodes, kb->num_keycodes, &kb->modifiers);
  process_motion (monotonic_ms ());
}

void
Compositor::Impl::handle_new_xdg_surface (wlr_xdg_surface *xdg)
{
  if (xdg->role == WLR_XDG_SURFACE_ROLE_POPUP) {
    /* Popups join their parent's scene tree, kept inside the output. */
    wlr_xdg_surface *parent = wlr_xdg_surface_from_wlr_surface (xdg->popup->parent);
    auto parent_node = static_cast<wlr_scene_node *> (parent->data);
    xdg->data = wlr_scene_xdg_surface_create (parent_node, xdg);

    /* The box is in the toplevel's window-geometry space, whose origin is
     * the output's corner. */
    wlr_box box = { 0, 0, config.width, config.height };
    wlr_xdg_popup_unconstrain_from_box (xdg->popup, &box);
    return;
  }
  if (xdg->role != WLR_XDG_SURFACE_ROLE_TOPLEVEL)
    return;

  View *view = new View ();
  view->c = this;
  view->xdg = xdg;
  view->node = wlr_scene_xdg_surface_create (&scene->node, xdg);
  xdg->data = view->node;
  views.push_back (view);

  view->map.connect (&xdg->events.map, [this, view] (void *) {
    view->mapped = true;
    configure_view (view);
    focus_view (view);
  });
  view->unmap.connect (&xdg->events.unmap, [this, view] (void *) {
    view->mapped = false;
    views.remove (view);
    views.push_back (view);
    focus_view (top_view ());
  });
  view->destroy.connect (&xdg->events.destroy, [this, view] (void *) {
    views.remove (view);
    delete view;
  });
  configure_view (view);
}

/* ---- Input ------------------------------------------------------------ */

void
Compositor::Impl::process_motion (guint32 time)
{
  double sx = 0, sy = 0;
  wlr_scene_node *node = wlr_scene_node_at (&scene->node, px, py, &sx, &sy);
  wlr_surface *surface = nullptr;
  if (node && node->type == WLR_SCENE_NODE_SURFACE)
    surface = wlr_scene_surface_from_node (node)->surface;

  if (surface) {
    wlr_seat_pointer_notify_enter (seat, surface, sx, sy);
    wlr_seat_pointer_notify_motion (seat, time, sx, sy);
  } else {
    wlr_seat_pointer_clear_focus (seat);
    show_default_cursor ();
  }
  publish_cursor_position ();
}

bool
Compositor::Impl::keysym_to_keycode (xkb_keysym_t sym, guint32 *keycode, guint32 *level)
{
  auto it = keysym_cache.find (sym);
  if (it != keysym_cache.end ()) {
    *keycode = it->second.first;
    *level = it->second.second;
    return true;
  }
  xkb_keymap *keymap = keyboard_dev->keyboard->keymap;
  guint32 best_code = 0, best_level = G_MAXUINT32;
  for (xkb_keycode_t kc = xkb_keymap_min_keycode (keymap); kc <= xkb_keymap_max_keycode (keymap); kc++) {
    xkb_level_index_t levels = xkb_keymap_num_levels_for_key (keymap, kc, 0);
    for (xkb_level_index_t l = 0; l < levels && l < best_level; l++) {
      const xkb_keysym_t *syms;
      int n = xkb_keymap_key_get_syms_by_level (keymap, kc, 0, l, &syms);
      for (int i = 0; i < n; i++) {
        if (syms[i] == sym) {
          best_code = kc;
          best_level = l;
        }
      }
    }
    if (best_level == 0)
      break;
  }
  if (best_level == G_MAXUINT32)
    return false;
  *keycode = best_code - 8;     /* xkb keycodes are evdev codes + 8 */
  *level = best_level;
  keysym_cache[sym] = { *keycode, *level };
  return true;
}

void
Compositor::Impl::inject_key (guint32 keycode, bool pressed)
{
  wlr_keyboard *kb = keyboard_dev->keyboard;
  wlr_event_keyboard_key ev = { };
  ev.time_msec = monotonic_ms ();
  ev.keycode = keycode;
  ev.update_state = true;
  ev.state = pressed ? WL_KEYBOARD_KEY_STATE_PRESSED : WL_KEYBOARD_KEY_STATE_RELEASED;
  wlr_keyboard_notify_key (kb, &ev);

  /* Alt+Tab belongs to the compositor: with every window full screen, it is
   * how a user gets to another one. The Tab press and its release never
   * reach the application. */
  const guint32 KEY_TAB = 15;
  if (keycode == KEY_TAB && (wlr_keyboard_get_modifiers (kb) & WLR_MODIFIER_ALT)) {
    if (pressed) {
      alt_tab_down = true;
      cycle_views ();
    }
    return;
  }
  if (keycode == KEY_TAB && !pressed && alt_tab_down) {
    alt_tab_down = false;       /* Alt was let go first */
    return;
  }
  wlr_seat_keyboard_notify_modifiers (seat, &kb->modifiers);
  wlr_seat_keyboard_notify_key (seat, ev.time_msec, keycode, ev.state);
}

void
Compositor::Impl::cycle_views ()
{
  /* The bottom-most mapped window comes to the top, so repeated presses
   * walk through all of them. */
  View *next = nullptr;
  for (View *v : views)
    if (v->mapped)
      next = v;
  if (next && next != top_view ())
    focus_view (next);
}

/* ---- Cursor ----------------------------------------------------------- */

GstBuffer *
Compositor::Impl::read_surface_image (wlr_surface *surface, int *w, int *h)
{
  wlr_texture *tex = wlr_surface_get_texture (surface);
  if (!tex || tex->width == 0 || tex->height == 0 || tex->width > 256 || tex->height > 256)
    return nullptr;
  *w = tex->width;
  *h = tex->height;

  Slot *tmp = slot_new (*w, *h, DRM_FORMAT_ARGB8888);
  if (!tmp)
    return nullptr;
  GstBuffer *image = nullptr;
  if (wlr_renderer_begin_with_buffer (renderer, &tmp->base)) {
    const float clear[4] = { 0, 0, 0, 0 };
    float identity[9];
    wlr_matrix_identity (identity);
    wlr_renderer_clear (renderer, clear);
    wlr_render_texture (renderer, tex, identity, 0, 0, 1.0f);
    bool ok = true;
    if (!pixman) {
      uint32_t flags = 0;
      ok = wlr_renderer_read_pixels (renderer, DRM_FORMAT_ARGB8888, &flags, tmp->stride,
          *w, *h, 0, 0, 0, 0, tmp->data);
    }
    wlr_renderer_end (renderer);
    if (ok)
      image = gst_buffer_new_memdup (tmp->data, tmp->size);
  }
  wlr_buffer_drop (&tmp->base);
  return image;
}

CompositorCursor
Compositor::Impl::cursor_state () const
{
  CompositorCursor c;
  c.visible = cursor_visible;
  c.x = (int) px;
  c.y = (int) py;
  c.serial = cursor_serial;
  c.hotspot_x = cursor_pub_hx;
  c.hotspot_y = cursor_pub_hy;
  c.width = cursor_w;
  c.height = cursor_h;
  return c;
}

void
Compositor::Impl::publish_cursor (GstBuffer *image, int w, int h, int hx, int hy)
{
  cursor_serial++;
  cursor_w = w;
  cursor_h = h;
  cursor_pub_hx = hx;
  cursor_pub_hy = hy;
  cursor_published = true;
  CompositorCursor c = cursor_state ();
  c.image = image;
  cb.cursor (std::move (c));
}

void
Compositor::Impl::publish_cursor_position ()
{
  if (cursor_published)
    cb.cursor (cursor_state ());
}

void
Compositor::Impl::show_default_cursor ()
{
  if (cursor_default)
    return;
  cursor_surface_commit.disconnect ();
  cursor_surface_destroy.disconnect ();
  cursor_surface = nullptr;
  cursor_default = true;
  cursor_visible = true;

  wlr_xcursor *xc = wlr_xcursor_manager_get_xcursor (xcursor_manager, "left_ptr", 1);
  if (!xc || xc->image_count == 0) {
    cursor_visible = false;
    publish_cursor (nullptr, 0, 0, 0, 0);
    return;
  }
  wlr_xcursor_image *img = xc->images[0];
  GstBuffer *image = gst_buffer_new_memdup (img->buffer, (gsize) img->width * img->height * 4);
  publish_cursor (image, img->width, img->height, img->hotspot_x, img->hotspot_y);
}

void
Compositor::Impl::set_cursor_surface (wlr_surface *surface, int hx, int hy)
{
  cursor_surface_commit.disconnect ();
  cursor_surface_destroy.disconnect ();
  cursor_default = false;
  cursor_surface = surface;
  cursor_hx = hx;
  cursor_hy = hy;

  auto update = [this] () {
    int w = 0, h = 0;
    GstBuffer *image = cursor_surface ? read_surface_image (cursor_surface, &w, &h) : nullptr;
    cursor_visible = image != nullptr;
    publish_cursor (image, w, h, cursor_hx, cursor_hy);
  };
  if (surface) {
    cursor_surface_commit.connect (&surface->events.commit, [this, update] (void *) {
      /* Hotspot moves come as the surface's buffer offset. */
      cursor_hx -= cursor_surface->current.dx;
      cursor_hy -= cursor_surface->current.dy;
      update ();
    });
    cursor_surface_destroy.connect (&surface->events.destroy, [this] (void *) {
      cursor_surface_commit.disconnect ();
      cursor_surface_destroy.disconnect ();
      cursor_surface = nullptr;
    });
  }
  update ();
}

/* ---- Exec ------------------------------------------------------------- */

static void
exec_child_setup (gpointer)
{
  /* Its own process group, so stopping ends everything it started; and
   * if this process dies without stopping (a crash), it gets SIGTERM. */
  setpgid (0, 0);
  prctl (PR_SET_PDEATHSIG, SIGTERM);
  signal (SIGPIPE, SIG_DFL);
}

bool
Compositor::Impl::spawn_exec (std::string *err)
{
  GError *error = nullptr;
  gchar **argv = nullptr;
  if (!g_shell_parse_argv (config.exec.c_str (), nullptr, &argv, &error)) {
    *err = std::string ("could not parse exec command: ") + error->message;
    g_error_free (error);
    return false;
  }
  gchar **envp;
  if (config.exec_env.empty ()) {
    envp = g_get_environ ();
  } else {
    envp = g_new0 (gchar *, config.exec_env.size () + 1);
    for (size_t i = 0; i < config.exec_env.size (); i++)
      envp[i] = g_strdup (config.exec_env[i].c_str ());
  }
  envp = g_environ_setenv (envp, "WAYLAND_DISPLAY", socket.c_str (), TRUE);
  envp = g_environ_unsetenv (envp, "DISPLAY");
  envp = g_environ_setenv (envp, "XDG_SESSION_TYPE", "wayland", TRUE);

  gboolean ok = g_spawn_async (nullptr, argv, envp,
      (GSpawnFlags) (G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD), exec_child_setup, nullptr,
      &exec_pid, &error);
  g_strfreev (argv);
  g_strfreev (envp);
  if (!ok) {
    *err = std::string ("could not start '") + config.exec + "': " + error->message;
    g_error_free (error);
    return false;
  }
  GST_INFO_OBJECT (owner, "started '%s' as pid %d", config.exec.c_str (), exec_pid);
  exec_pid_public = exec_pid;

  /* Learn of its exit without a main loop or SIGCHLD handler. */
  exec_pidfd = (int) syscall (SYS_pidfd_open, exec_pid, 0);
  if (exec_pidfd >= 0)
    exec_source = wl_event_loop_add_fd (loop, exec_pidfd, WL_EVENT_READABLE, handle_exec_exit, this);
  return true;
}

int
Compositor::Impl::handle_exec_exit (int fd, uint32_t mask, void *data)
{
  auto self = static_cast<Impl *> (data);
  int status = 0;
  if (waitpid (self->exec_pid, &status, WNOHANG) == self->exec_pid) {
    GPid pid = self->exec_pid;
    self->exec_pid = 0;
    self->exec_pid_public = 0;
    wl_event_source_remove (self->exec_source);
    self->exec_source = nullptr;
    close (self->exec_pidfd);
    self->exec_pidfd = -1;
    if (self->cb.exec_exited)
      self->cb.exec_exited (pid, status);
  }
  return 0;
}

void
Compositor::Impl::end_exec ()
{
  if (exec_source)
    wl_event_source_remove (exec_source);
  exec_source = nullptr;
  if (exec_pidfd >= 0)
    close (exec_pidfd);
  exec_pidfd = -1;
  exec_pid_public = 0;
  if (exec_pid <= 0)
    return;

  /* The clients are already disconnected; most exit on their own. Ask the
   * whole group, then insist; stragglers of the group go last. */
  const GPid group = exec_pid;
  kill (-group, SIGTERM);
  for (int i = 0; i < 200 && exec_pid > 0; i++) {
    if (waitpid (exec_pid, nullptr, WNOHANG) == exec_pid)
      exec_pid = 0;
    else
      g_usleep (10000);
  }
  if (exec_pid > 0) {
    GST_WARNING_OBJECT (owner, "'%s' did not exit on SIGTERM, killing it", config.exec.c_str ());
    kill (-group, SIGKILL);
    waitpid (exec_pid, nullptr, 0);
    exec_pid = 0;
  }
  kill (-group, SIGKILL);
}

/* ---- Public interface ------------------------------------------------- */

Compositor::Compositor (GstObject *owner, CompositorConfig config, CompositorCallbacks callbacks)
    : impl_ (new Impl (owner, std::move (config), std::move (callbacks)))
{
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (wr_compositor_debug, "wayraycompositor-core", 0,
        "WayRay session compositor (wlroots)");
    g_once_init_leave (&once, 1);
  }
}

Compositor::~Compositor ()
{
  stop ();
}

bool
Compositor::start (GError **error)
{
  Impl *p = impl_.get ();
  p->thread = std::thread ([p] { p->run (); });
  std::unique_lock<std::mutex> g (p->lock);
  p->started_cond.wait (g, [p] { return p->started || p->stopping; });
  if (!p->started) {
    std::string msg = p->start_error;
    g.unlock ();
    p->thread.join ();
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, "%s", msg.c_str ());
    return false;
  }
  return true;
}

void
Compositor::stop ()
{
  Impl *p = impl_.get ();
  if (!p->thread.joinable ())
    return;
  {
    std::lock_guard<std::mutex> g (p->lock);
    p->stopping = true;
    p->wake_locked ();
  }
  p->thread.join ();
  std::lock_guard<std::mutex> g (p->lock);
  p->started = false;
  p->requests.clear ();
}

std::string
Compositor::socket_name () const
{
  return impl_->socket;
}

int
Compositor::exec_pid () const
{
  return impl_->exec_pid_public;
}

std::string
Compositor::socket_path () const
{
  return impl_->runtime_dir + "/" + impl_->socket;
}

void
Compositor::resize (int width, int height, int fps_n, int fps_d)
{
  Impl *p = impl_.get ();
  p->post ([p, width, height, fps_n, fps_d] {
    if (width != p->config.width || height != p->config.height || fps_n != p->config.fps_n ||
        fps_d != p->config.fps_d)
      p->apply_mode (width, height, fps_n, fps_d);
    std::string err;
    if (!p->exec_started && !p->config.exec.empty ()) {
      p->exec_started = true;
      if (!p->spawn_exec (&err))
        p->cb.error (err);
    }
  });
}

void
Compositor::frame_taken ()
{
  Impl *p = impl_.get ();
  p->post ([p] {
    if (p->holding && p->output) {
      p->holding = false;
      wlr_output_schedule_frame (p->output);
    }
  });
}

guint64
Compositor::frames_rendered () const
{
  return impl_->rendered.load ();
}

void
Compositor::request_full_frame ()
{
  Impl *p = impl_.get ();
  p->post ([p] {
    p->full_damage = true;
    wlr_output_schedule_frame (p->output);
  });
}

void
Compositor::pointer_motion (double x, double y)
{
  Impl *p = impl_.get ();
  p->post ([p, x, y] {
    p->px = std::clamp (x, 0.0, (double) p->config.width - 1);
    p->py = std::clamp (y, 0.0, (double) p->config.height - 1);
    p->process_motion (monotonic_ms ());
    wlr_seat_pointer_notify_frame (p->seat);
  });
}

void
Compositor::pointer_button (guint32 evdev_button, bool pressed)
{
  Impl *p = impl_.get ();
  p->post ([p, evdev_button, pressed] {
    wlr_seat_pointer_notify_button (p->seat, monotonic_ms (), evdev_button,
        pressed ? WLR_BUTTON_PRESSED : WLR_BUTTON_RELEASED);
    wlr_seat_pointer_notify_frame (p->seat);
  });
}

void
Compositor::pointer_axis (double dx, double dy)
{
  Impl *p = impl_.get ();
  p->post ([p, dx, dy] {
    /* One wheel step scrolls 15 surface pixels, as libinput reports. */
    guint32 t = monotonic_ms ();
    if (dy != 0)
      wlr_seat_pointer_notify_axis (p->seat, t, WLR_AXIS_ORIENTATION_VERTICAL, dy * 15.0,
          (int32_t) dy, WLR_AXIS_SOURCE_WHEEL);
    if (dx != 0)
      wlr_seat_pointer_notify_axis (p->seat, t, WLR_AXIS_ORIENTATION_HORIZONTAL, dx * 15.0,
          (int32_t) dx, WLR_AXIS_SOURCE_WHEEL);
    wlr_seat_pointer_notify_frame (p->seat);
  });
}

void
Compositor::key (guint32 evdev_keycode, bool pressed)
{
  Impl *p = impl_.get ();
  p->post ([p, evdev_keycode, pressed] { p->inject_key (evdev_keycode, pressed); });
}

void
Compositor::set_keymap (const std::string &layout, const std::string &variant, const std::string &options,
    const std::string &model)
{
  Impl *p = impl_.get ();
  p->post ([p, layout, variant, options, model] {
    std::string error;
    if (p->apply_keymap (layout, variant, options, model, &error))
      GST_INFO_OBJECT (p->owner, "keymap now layout '%s' variant '%s' options '%s'", layout.c_str (),
          variant.c_str (), options.c_str ());
    else
      GST_WARNING_OBJECT (p->owner, "%s; the keymap stays", error.c_str ());
  });
}

void
Compositor::key_by_name (const std::string &name, bool pressed)
{
  Impl *p = impl_.get ();
  p->post ([p, name, pressed] {
    xkb_keysym_t sym = xkb_keysym_from_name (name.c_str (), XKB_KEYSYM_NO_FLAGS);
    if (sym == XKB_KEY_NoSymbol)
      sym = xkb_keysym_from_name (name.c_str (), XKB_KEYSYM_CASE_INSENSITIVE);
    if (sym == XKB_KEY_NoSymbol && g_utf8_validate (name.c_str (), -1, nullptr) &&
        g_utf8_strlen (name.c_str (), -1) == 1)
      sym = xkb_utf32_to_keysym (g_utf8_get_char (name.c_str ()));
    guint32 keycode, level;
    if (sym == XKB_KEY_NoSymbol || !p->keysym_to_keycode (sym, &keycode, &level)) {
      GST_WARNING_OBJECT (p->owner, "key '%s' is not on the session's keymap, dropped", name.c_str ());
      return;
    }
    /* A symbol on another level than the first, typed without the
     * modifiers that reach it: hold them around the key so the
     * application sees the symbol that was asked (level 1: Shift; 2:
     * AltGr, ISO_Level3_Shift; 3: both). */
    wlr_keyboard *kb = p->keyboard_dev->keyboard;
    bool shift_held = xkb_state_mod_name_is_active (kb->xkb_state, XKB_MOD_NAME_SHIFT,
        XKB_STATE_MODS_EFFECTIVE) > 0;
    const guint32 KEY_LEFTSHIFT = 42;
    bool add_shift = (level == 1 || level == 3) && !shift_held && pressed;
    guint32 level3 = 0, l3_level = 0;
    bool add_level3 = level >= 2 && pressed &&
        p->keysym_to_keycode (XKB_KEY_ISO_Level3_Shift, &level3, &l3_level) && l3_level == 0;
    if (add_shift)
      p->inject_key (KEY_LEFTSHIFT, true);
    if (add_level3)
      p->inject_key (level3, true);
    p->inject_key (keycode, pressed);
    if (add_level3)
      p->inject_key (level3, false);
    if (add_shift)
      p->inject_key (KEY_LEFTSHIFT, false);
  });
}

}  // namespace wayray
