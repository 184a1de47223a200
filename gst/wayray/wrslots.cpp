/* Buffer slots: the wlr_buffer implementation over our own memory, the
 * pool of frame slots and the read-back render target.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrslots.h"

#include "wrcompositorimpl.h"

#include <cstdlib>
#include <cstring>

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

/* A part of a slot: the same memory from an offset, with the slot's
 * stride. */
struct SlotPart {
  wlr_buffer base;              /* first: a wlr_buffer* is a SlotPart* */
  Slot *slot;
  size_t offset;
};

void
part_buffer_destroy (wlr_buffer *buffer)
{
  SlotPart *part = reinterpret_cast<SlotPart *> (buffer);
  slot_unref (part->slot);
  delete part;
}

bool
part_begin_data_ptr_access (wlr_buffer *buffer, uint32_t flags, void **data, uint32_t *format, size_t *stride)
{
  SlotPart *part = reinterpret_cast<SlotPart *> (buffer);
  *data = part->slot->data + part->offset;
  *format = part->slot->format;
  *stride = part->slot->stride;
  return true;
}

const wlr_buffer_impl part_impl = {
  .destroy = part_buffer_destroy,
  .get_dmabuf = nullptr,
  .get_shm = nullptr,
  .begin_data_ptr_access = part_begin_data_ptr_access,
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

wlr_buffer *
slot_part_new (Slot *slot, int x, int y, int width, int height)
{
  SlotPart *part = new SlotPart ();
  part->slot = slot;
  part->offset = (size_t) y * slot->stride + (size_t) x * 4;
  slot->refs++;
  wlr_buffer_init (&part->base, &part_impl, width, height);
  return &part->base;
}

bool
slot_locked (const Slot *slot)
{
  if (slot->base.n_locks > 0)
    return true;
  for (wlr_buffer *p : slot->parts)
    if (p && p->n_locks > 0)
      return true;
  return false;
}

void
slot_drop_parts (Slot *slot)
{
  for (wlr_buffer *p : slot->parts)
    if (p)
      wlr_buffer_drop (p);
  slot->parts.clear ();
}

wlr_buffer *
Compositor::Impl::screen_target (Slot *slot, size_t index)
{
  const MonitorRect &r = screens[index]->rect;
  if (screens.size () == 1 && r.x == 0 && r.y == 0 && r.width == config.width && r.height == config.height)
    return &slot->base;
  if (slot->parts.size () <= index)
    slot->parts.resize (index + 1, nullptr);
  if (!slot->parts[index])
    slot->parts[index] = slot_part_new (slot, r.x, r.y, r.width, r.height);
  return slot->parts[index];
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
  for (Slot *s : slots) {
    slot_drop_parts (s);
    wlr_buffer_drop (&s->base);
  }
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
    if (s->in_gst || slot_locked (s))
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
      if (!s->in_gst && !slot_locked (s) && slots.size () > MAX_IDLE_SLOTS) {
        slot_drop_parts (s);
        wlr_buffer_drop (&s->base);
        it = slots.erase (it);
      } else {
        ++it;
      }
    }
  }
  Slot *s = slot_new (config.width, config.height);
  if (!s)
    return nullptr;
  /* Where no monitor is (monitors of unequal heights), the picture
   * stays black. */
  if (screens.size () > 1)
    memset (s->data, 0, s->size);
  slots.push_back (s);
  return s;
}

bool
Compositor::Impl::ensure_copy_target (Screen &screen)
{
  wlr_buffer *&copy_target = screen.copy_target;
  if (copy_target)
    return true;
  const int width = screen.rect.width, height = screen.rect.height;
  if (pixman) {
    Slot *s = slot_new (width, height);
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
    copy_target = wlr_allocator_create_buffer (allocator, width, height, fmt);
    free (fmt);
  }
  return copy_target != nullptr;
}

}  // namespace wayray
