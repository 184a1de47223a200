/* The cursor: the image a client set on its surface, or the compositor's
 * own arrow, read into buffers and published with the pointer position.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositorimpl.h"

#include "wrslots.h"

namespace wayray {

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

  wlr_xcursor *xc = wlr_xcursor_manager_get_xcursor (xcursor_manager, "left_ptr", (float) config.scale);
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

}  // namespace wayray
