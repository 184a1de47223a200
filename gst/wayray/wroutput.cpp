/* The output: the mode, rendering the scene into slots when it has
 * damage, the damage history that brings old slots up to date, committing
 * pictures (screencopy) and handing frames to GStreamer.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositorimpl.h"

#include "gstwayraydamagemeta.h"
#include "wrslots.h"

#include <ctime>
#include <string>
#include <vector>

namespace wayray {

namespace {

/* How many past frames' damage is remembered to bring an old slot up to
 * date; an older slot is repainted whole. */
constexpr size_t DAMAGE_HISTORY = 8;

}  // namespace

/* ---- Output, rendering ------------------------------------------------ */

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
Compositor::Impl::apply_scale (int scale)
{
  scale = std::clamp (scale, 1, 4);
  config.scale = scale;
  wlr_output_set_scale (output, (float) scale);
  if (!wlr_output_commit (output)) {
    GST_WARNING_OBJECT (owner, "could not set the output scale to %d", scale);
    return;
  }
  /* The default cursor at the scale's size too. */
  wlr_xcursor_manager_load (xcursor_manager, (float) scale);
  history.clear ();
  full_damage = true;
  for (View *v : views)
    configure_view (v);
  wlr_output_schedule_frame (output);
  GST_INFO_OBJECT (owner, "output scale %d (%dx%d logical)", scale, logical_width (), logical_height ());
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

}  // namespace wayray
