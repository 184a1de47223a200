/* The shell: xdg-shell toplevels and popups as views in the scene, their
 * decorations, and the kiosk policy (every toplevel fills the output, the
 * newest mapped one has the focus, Alt+Tab cycles).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositorimpl.h"

namespace wayray {

/* A toplevel's decoration object: always server-side, and the server draws
 * none, so windows are content only (as on a kiosk or a thin client). */
struct Decoration {
  wlr_xdg_toplevel_decoration_v1 *deco = nullptr;
  Listener request_mode, destroy;
};

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
  if (view->xsurface) {
    wlr_xwayland_surface_configure (view->xsurface, 0, 0, logical_width (), logical_height ());
    wlr_xwayland_surface_set_maximized (view->xsurface, true);
    return;
  }
  wlr_xdg_toplevel_set_size (view->xdg, logical_width (), logical_height ());
  wlr_xdg_toplevel_set_maximized (view->xdg, true);
}

void
Compositor::Impl::view_activate (View *view, bool on)
{
  if (view->xsurface)
    wlr_xwayland_surface_activate (view->xsurface, on);
  else
    wlr_xdg_toplevel_set_activated (view->xdg, on);
}

void
Compositor::Impl::focus_view (View *view)
{
  View *prev_top = top_view ();
  if (prev_top && prev_top != view)
    view_activate (prev_top, false);
  if (!view) {
    wlr_seat_keyboard_notify_clear_focus (seat);
    process_motion (monotonic_ms ());
    return;
  }
  views.remove (view);
  views.push_front (view);
  if (view->node)
    wlr_scene_node_raise_to_top (view->node);
  view_activate (view, true);
  wlr_keyboard *kb = keyboard_dev->keyboard;
  wlr_seat_keyboard_notify_enter (seat, view->surface (), kb->keycodes, kb->num_keycodes, &kb->modifiers);
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
    wlr_box box = { 0, 0, logical_width (), logical_height () };
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

/* A client asked for a decoration object: server-side it is, now and on
 * every request. */
void
Compositor::Impl::handle_new_decoration (wlr_xdg_toplevel_decoration_v1 *deco)
{
  auto d = new Decoration ();
  d->deco = deco;
  d->request_mode.connect (&d->deco->events.request_mode, [d] (void *) {
    wlr_xdg_toplevel_decoration_v1_set_mode (d->deco, WLR_XDG_TOPLEVEL_DECORATION_V1_MODE_SERVER_SIDE);
  });
  d->destroy.connect (&d->deco->events.destroy, [d] (void *) { delete d; });
  wlr_xdg_toplevel_decoration_v1_set_mode (d->deco, WLR_XDG_TOPLEVEL_DECORATION_V1_MODE_SERVER_SIDE);
}

}  // namespace wayray
