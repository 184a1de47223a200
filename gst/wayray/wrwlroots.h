/* The one place WayRay includes wlroots from C++.
 *
 * wlroots 0.15 headers use C99 `[static N]` array parameters, which C++ does
 * not accept, so `static` is defined away while they are included (and
 * `class`, a member name in the Xwayland header); system
 * and C++ headers come first so the define cannot reach them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <cstdlib>
#include <ctime>
#include <drm_fourcc.h>
#include <pixman.h>
#include <wayland-server-core.h>
#include <xcb/xcb.h>
#include <xkbcommon/xkbcommon.h>

extern "C" {
#define static
#include <wlr/backend.h>
#include <wlr/backend/headless.h>
#include <wlr/interfaces/wlr_keyboard.h>
#include <wlr/interfaces/wlr_output.h>
#include <wlr/render/allocator.h>
#include <wlr/render/drm_format_set.h>
#include <wlr/render/pixman.h>
#include <wlr/render/wlr_renderer.h>
#include <wlr/types/wlr_buffer.h>
#include <wlr/types/wlr_compositor.h>
#include <wlr/types/wlr_data_control_v1.h>
#include <wlr/types/wlr_data_device.h>
#include <wlr/types/wlr_input_device.h>
#include <wlr/types/wlr_keyboard.h>
#include <wlr/types/wlr_matrix.h>
#include <wlr/types/wlr_output.h>
#include <wlr/types/wlr_output_damage.h>
#include <wlr/types/wlr_output_layout.h>
#include <wlr/types/wlr_presentation_time.h>
#include <wlr/types/wlr_primary_selection.h>
#include <wlr/types/wlr_primary_selection_v1.h>
#include <wlr/types/wlr_scene.h>
#include <wlr/types/wlr_screencopy_v1.h>
#include <wlr/types/wlr_seat.h>
#include <wlr/types/wlr_surface.h>
#include <wlr/types/wlr_viewporter.h>
#include <wlr/types/wlr_xcursor_manager.h>
#include <wlr/types/wlr_xdg_decoration_v1.h>
#include <wlr/types/wlr_xdg_output_v1.h>
#include <wlr/types/wlr_xdg_shell.h>
#include <wlr/util/box.h>
#include <wlr/util/log.h>
#include <wlr/util/region.h>
#include <wlr/xcursor.h>
/* Its surface has a member named `class`. */
#define class class_
#include <wlr/xwayland.h>
#undef class
#undef static
}

namespace wayray {

/* A wl_listener that removes itself when destroyed, so "disconnect before
 * free" holds for every owner automatically. */
class Listener {
 public:
  using Fn = std::function<void (void *)>;

  Listener () {
    h_.self = this;
    wl_list_init (&h_.l.link);
  }
  ~Listener () { disconnect (); }
  Listener (const Listener &) = delete;
  Listener &operator= (const Listener &) = delete;

  void connect (wl_signal *signal, Fn fn) {
    disconnect ();
    fn_ = std::move (fn);
    h_.l.notify = &Listener::dispatch;
    wl_signal_add (signal, &h_.l);
  }
  void disconnect () {
    wl_list_remove (&h_.l.link);
    wl_list_init (&h_.l.link);
  }

 private:
  struct Holder {
    wl_listener l;
    Listener *self;
  };
  static void dispatch (wl_listener *l, void *data) {
    Holder *h = wl_container_of (l, h, l);
    h->self->fn_ (data);
  }
  Holder h_ {};
  Fn fn_;
};

}  // namespace wayray
