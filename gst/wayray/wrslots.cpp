/* Buffer slots: the wlr_buffer implementation over our own memory, the
 * pool of frame slots and the read-back render target.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrslots.h"

#include "wrcompositorimpl.h"

#include <cstdlib>

namespace wayray {

namespace {

/* Slots kept at most; more in use downstream means frames are queued there,
 * and a new slot is made (and later dropped) rather than blocking. */
constexpr size_t MAX_IDLE_SLOTS = 4;

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

}  // namespace

Slot *
slot_new (int width, int height, uint32_t format)
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

}  // namespace wayray
