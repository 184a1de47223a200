/* Buffer slots: the memory frames are rendered into.
 *
 * Frame buffers ("slots") are shared by three owners: wlroots (render target,
 * then the output's front buffer, which screencopy reads), GStreamer (the
 * pushed buffer's memory) and this compositor (its pool). A slot is reused
 * only when none of the first two hold it; its content is then brought up to
 * date by repainting the damage of the frames it missed (buffer age).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrwlroots.h"

#include <gst/gst.h>

#include <atomic>
#include <vector>

namespace wayray {

struct Slot {
  wlr_buffer base;              /* first: a wlr_buffer* is a Slot* */
  std::atomic<int> refs;        /* the compositor's pool + each pushed GstMemory */
  std::atomic<bool> in_gst;
  guint8 *data;
  size_t stride;
  size_t size;
  guint64 seq;                  /* the frame whose picture it holds; 0: none */
  uint32_t format;              /* XRGB8888 for frames, ARGB8888 for cursors */
  /* With several monitors: a buffer over each one's part of the picture
   * (by screen index; NULL until used), each holding a reference. */
  std::vector<wlr_buffer *> parts;
};

Slot *slot_new (int width, int height, uint32_t format = DRM_FORMAT_XRGB8888);
/* A buffer over the @width x @height part of @slot at (@x, @y): the
 * renderer draws into it and the output shows it, as if it were a picture
 * of its own. */
wlr_buffer *slot_part_new (Slot *slot, int x, int y, int width, int height);
/* Whether wlroots holds the slot or one of its parts. */
bool slot_locked (const Slot *slot);
/* Drops the slot's parts (wlroots may hold them a little longer). */
void slot_drop_parts (Slot *slot);
/* The GDestroyNotify of a pushed GstMemory wrapping a slot's data. */
void slot_memory_released (gpointer data);

}  // namespace wayray
