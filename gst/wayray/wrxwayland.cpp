/* X11 windows in the session, through Xwayland (wlroots starts it when the
 * first X11 program connects): in the kiosk policy like any toplevel (full
 * screen, the newest mapped has the focus, Alt+Tab); override-redirect
 * windows (menus, tooltips) where they ask to be, above, without the
 * focus.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositorimpl.h"

namespace wayray {

void
Compositor::Impl::start_xwayland ()
{
  xwayland = wlr_xwayland_create (display, compositor, true);
  if (!xwayland) {
    GST_WARNING_OBJECT (owner, "no Xwayland: X11 programs cannot run in this session");
    return;
  }
  wlr_xwayland_set_seat (xwayland, seat);
  new_xwayland_surface.connect (&xwayland->events.new_surface, [this] (void *data) {
    handle_new_xwayland_surface (static_cast<wlr_xwayland_surface *> (data));
  });
  GST_INFO_OBJECT (owner, "X11 programs: DISPLAY=%s", xwayland->display_name);
}

void
Compositor::Impl::stop_xwayland ()
{
  new_xwayland_surface.disconnect ();
  if (xwayland)
    wlr_xwayland_destroy (xwayland);
  xwayland = nullptr;
}

void
Compositor::Impl::handle_new_xwayland_surface (wlr_xwayland_surface *xs)
{
  View *view = new View ();
  view->c = this;
  view->xsurface = xs;

  view->map.connect (&xs->events.map, [this, view] (void *) {
    wlr_xwayland_surface *x = view->xsurface;
    view->node = wlr_scene_subsurface_tree_create (&scene->node, x->surface);
    view->mapped = true;
    if (x->override_redirect) {
      /* Menus and tooltips: where they asked, above everything. */
      wlr_scene_node_set_position (view->node, x->x, x->y);
      wlr_scene_node_raise_to_top (view->node);
      return;
    }
    if (view->was_mapped)
      choose_screen (view);
    view->was_mapped = true;
    views.remove (view);
    views.push_front (view);
    configure_view (view);
    focus_view (view);
  });
  view->unmap.connect (&xs->events.unmap, [this, view] (void *) {
    if (view->node)
      wlr_scene_node_destroy (view->node);
    view->node = nullptr;
    bool was_toplevel = !view->xsurface->override_redirect;
    view->mapped = false;
    if (!was_toplevel)
      return;
    views.remove (view);
    views.push_back (view);
    focus_view (top_view ());
  });
  view->destroy.connect (&xs->events.destroy, [this, view] (void *) {
    if (view->node)
      wlr_scene_node_destroy (view->node);
    views.remove (view);
    delete view;
  });
  /* A window may ask for a size and place; the kiosk policy answers with
   * the whole output (override-redirect windows place themselves). */
  view->request_configure.connect (&xs->events.request_configure, [this, view] (void *data) {
    auto ev = static_cast<wlr_xwayland_surface_configure_event *> (data);
    if (view->xsurface->override_redirect)
      wlr_xwayland_surface_configure (view->xsurface, ev->x, ev->y, ev->width, ev->height);
    else
      configure_view (view);
  });
  view->set_geometry.connect (&xs->events.set_geometry, [view] (void *) {
    if (view->node && view->xsurface->override_redirect)
      wlr_scene_node_set_position (view->node, view->xsurface->x, view->xsurface->y);
  });
  /* Override-redirect windows are not views of the policy (no focus, no
   * Alt+Tab): they stay out of the list. */
  if (!xs->override_redirect)
    views.push_back (view);
}

}  // namespace wayray
