/* The shell: xdg-shell toplevels and popups as views in the scene, their
 * decorations, and the kiosk policy (every toplevel fills a monitor's
 * output, the newest mapped one has the focus, a click focuses another
 * monitor's window, Alt+Tab cycles).
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

/* The monitor a view fills: the first one no other window holds, else
 * the one under the pointer (so a desktop's windows, one per output, land
 * one per monitor, and a new program opens where the user is). */
void
Compositor::Impl::choose_screen (View *view)
{
  std::vector<bool> held (screens.size (), false);
  for (View *v : views)
    if (v != view && v->screen >= 0 && v->screen < (int) screens.size () && (v->mapped || !v->was_mapped))
      held[v->screen] = true;
  for (size_t i = 0; i < screens.size (); i++)
    if (!held[i]) {
      view->screen = (int) i;
      return;
    }
  view->screen = std::max (0, screen_at (px, py));
}

int
Compositor::Impl::view_screen (View *view)
{
  if (view->screen < 0 || view->screen >= (int) screens.size ())
    choose_screen (view);
  return view->screen;
}

void
Compositor::Impl::configure_view (View *view)
{
  /* Toplevels fill their monitor's output. The scene node already offsets
   * the surface by its window geometry, so the window (not a shadow around
   * it) lines up with the output's corner. */
  wlr_box box = screen_box (view_screen (view));
  if (view->xsurface) {
    wlr_xwayland_surface_configure (view->xsurface, box.x, box.y, box.width, box.height);
    wlr_xwayland_surface_set_maximized (view->xsurface, true);
    if (view->node)
      wlr_scene_node_set_position (view->node, box.x, box.y);
    return;
  }
  if (view->node)
    wlr_scene_node_set_position (view->node, box.x, box.y);
  wlr_xdg_toplevel_set_size (view->xdg, box.width, box.height);
  wlr_xdg_toplevel_set_maximized (view->xdg, true);
}

/* New monitors take windows from crowded ones: the lowest window of a
 * monitor that shows several moves to each empty monitor (so a desktop's
 * second output, or a second terminal, fills a monitor that just came). */
void
Compositor::Impl::spread_views ()
{
  for (size_t i = 0; i < screens.size (); i++) {
    std::vector<int> count (screens.size (), 0);
    for (View *v : views)
      if (v->mapped && v->screen >= 0 && v->screen < (int) screens.size ())
        count[v->screen]++;
    if (count[i] > 0)
      continue;
    View *lowest = nullptr;
    for (View *v : views)           /* newest first: the last match is the lowest */
      if (v->mapped && v->screen >= 0 && v->screen < (int) screens.size () && count[v->screen] > 1)
        lowest = v;
    if (!lowest)
      return;
    lowest->screen = (int) i;
  }
}

/* A click on another monitor gives the keyboard to the window on top
 * there. */
void
Compositor::Impl::focus_screen_at_pointer ()
{
  int at = screen_at (px, py);
  View *top = top_view ();
  if (at < 0 || screens.size () < 2 || (top && top->screen == at))
    return;
  for (View *v : views)
    if (v->mapped && v->screen == at) {
      focus_view (v);
      return;
    }
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
     * its output's corner. */
    wlr_box box = { 0, 0, 1, 1 };
    for (View *v : views)
      if (v->xdg && v->xdg->surface == xdg->popup->parent) {
        wlr_box sb = screen_box (view_screen (v));
        box.width = sb.width;
        box.height = sb.height;
      }
    if (box.width == 1) {
      wlr_box sb = screen_box (0);
      box.width = sb.width;
      box.height = sb.height;
    }
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
    /* Mapped again (a desktop's output turned back on): to a free
     * monitor if its own is taken meanwhile. */
    if (view->was_mapped)
      choose_screen (view);
    view->mapped = true;
    view->was_mapped = true;
    configure_view (view);
    focus_view (view);
  });
  /* Full screen on a given output: the window moves to that monitor. */
  view->request_fullscreen.connect (&xdg->toplevel->events.request_fullscreen, [this, view] (void *data) {
    auto ev = static_cast<wlr_xdg_toplevel_set_fullscreen_event *> (data);
    for (size_t i = 0; ev->fullscreen && ev->output && i < screens.size (); i++)
      if (screens[i]->output == ev->output && view->screen != (int) i) {
        view->screen = (int) i;
        GST_INFO_OBJECT (owner, "a window moves to monitor %zu", i + 1);
      }
    configure_view (view);
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
