/* The session compositor behind wayraysrc.
 *
 * A headless wlroots 0.15 compositor running its wl_event_loop in a thread of
 * its own. It renders only when the scene has damage, straight into memory
 * that is then handed to GStreamer (no copy with the pixman renderer), and
 * paces clients' frame callbacks at the negotiated frame rate.
 *
 * This file holds set-up and tear-down, the compositor thread and the public
 * Compositor methods; the rest lives one concern a file (see
 * wrcompositorimpl.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositorimpl.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

GST_DEBUG_CATEGORY (wr_compositor_debug);

namespace wayray {

/* ---- The compositor thread -------------------------------------------- */

/* Wakes the compositor thread. Called with `lock` held: teardown closes
 * the eventfd under the same lock, so the descriptor is never stale. */
void
Compositor::Impl::wake_locked ()
{
  guint64 one = 1;
  if (wake_fd >= 0 && write (wake_fd, &one, sizeof one) < 0)
    GST_WARNING_OBJECT (owner, "could not wake the compositor: %s", g_strerror (errno));
}

void
Compositor::Impl::post (std::function<void ()> fn)
{
  std::lock_guard<std::mutex> g (lock);
  if (!started || stopping)
    return;
  requests.push_back (std::move (fn));
  wake_locked ();
}

int
Compositor::Impl::handle_wake (int fd, uint32_t mask, void *data)
{
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

/* ---- Set-up ----------------------------------------------------------- */

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

  compositor = wlr_compositor_create (display, renderer);    /* also wl_subcompositor */
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
    handle_new_decoration (static_cast<wlr_xdg_toplevel_decoration_v1 *> (data));
  });

  /* The first output (more come with monitors, in apply_mode); its frame
   * events pace rendering for all of them. */
  if (!sync_screens (current_layout (), 60000)) {
    start_error = "could not create the headless output";
    return false;
  }
  output_frame.connect (&primary ()->events.frame, [this] (void *) { handle_output_frame (); });

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
  /* The selections as the element shows them to the outside (and the
   * primary selection protocol for the applications). */
  Selections::Callbacks scb;
  scb.changed = [this] (int sel, const std::vector<std::string> &types) {
    if (cb.selection_changed)
      cb.selection_changed (sel, types);
  };
  scb.read_done = [this] (guint request, GBytes *data, const std::string &error) {
    if (cb.selection_read)
      cb.selection_read (request, data, error);
    else if (data)
      g_bytes_unref (data);
  };
  scb.wanted = [this] (int sel, const std::string &type, guint request) {
    if (cb.selection_wanted)
      cb.selection_wanted (sel, type, request);
    else
      selections->provide (request, nullptr);
  };
  selections = std::make_unique<Selections> (display, seat, std::move (scb));

  if (config.xwayland)
    start_xwayland ();
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
  started_backend = true;
  apply_mode (config.width, config.height, config.fps_n, config.fps_d);
  if (config.scale != 1) {
    int s = config.scale;
    config.scale = 1;
    apply_scale (s);
  }

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
  stop_xwayland ();
  if (display)
    wl_display_destroy_clients (display);
  end_exec ();

  new_xdg_surface.disconnect ();
  new_decoration.disconnect ();
  output_frame.disconnect ();
  request_set_cursor.disconnect ();
  request_set_selection.disconnect ();
  selections.reset ();
  cursor_surface_commit.disconnect ();
  cursor_surface_destroy.disconnect ();
  for (View *v : views)
    delete v;
  views.clear ();

  drop_slots ();
  front = nullptr;
  for (auto &sc : screens)
    if (sc->copy_target)
      wlr_buffer_drop (sc->copy_target);
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
  screens.clear ();
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
    if (p->holding && p->primary ()) {
      p->holding = false;
      wlr_output_schedule_frame (p->primary ());
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
    wlr_output_schedule_frame (p->primary ());
  });
}

void
Compositor::pointer_motion (double x, double y)
{
  Impl *p = impl_.get ();
  p->post ([p, x, y] { p->pointer_motion (x, y); });
}

void
Compositor::pointer_button (guint32 evdev_button, bool pressed)
{
  Impl *p = impl_.get ();
  p->post ([p, evdev_button, pressed] { p->pointer_button (evdev_button, pressed); });
}

void
Compositor::pointer_axis (double dx, double dy)
{
  Impl *p = impl_.get ();
  p->post ([p, dx, dy] { p->pointer_axis (dx, dy); });
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
  p->post ([p, name, pressed] { p->key_by_name (name, pressed); });
}

void
Compositor::offer_selection (int sel, const std::vector<std::string> &types)
{
  Impl *p = impl_.get ();
  p->post ([p, sel, types] {
    if (p->selections)
      p->selections->offer (sel, types);
  });
}

guint
Compositor::read_selection (int sel, const std::string &type)
{
  Impl *p = impl_.get ();
  guint id = p->next_read_id++;
  if (id >= Selections::kWriteIds) {
    p->next_read_id = 1;
    id = p->next_read_id++;
  }
  p->post ([p, id, sel, type] {
    if (p->selections)
      p->selections->read (id, sel, type);
  });
  return id;
}

void
Compositor::provide_selection (guint request, GBytes *data)
{
  Impl *p = impl_.get ();
  GBytes *ref = data ? g_bytes_ref (data) : nullptr;
  p->post ([p, request, ref] {
    if (p->selections)
      p->selections->provide (request, ref);
    if (ref)
      g_bytes_unref (ref);
  });
}

void
Compositor::set_scale (int scale)
{
  Impl *p = impl_.get ();
  p->post ([p, scale] {
    if (p->primary () && scale != p->config.scale)
      p->apply_scale (scale);
  });
}

void
Compositor::set_monitors (const MonitorLayout &monitors)
{
  Impl *p = impl_.get ();
  p->post ([p, monitors] {
    if (monitors == p->monitors)
      return;
    MonitorLayout before = p->current_layout ();
    p->monitors = monitors;
    if (p->primary () && p->current_layout () != before)
      p->apply_mode (p->config.width, p->config.height, p->config.fps_n, p->config.fps_d);
  });
}

}  // namespace wayray
