/* The outputs: one per monitor of the client, laid out as the monitors
 * are in the picture; their modes, rendering the scene into slots when it
 * has damage (each output into its part of the slot), the damage history
 * that brings old slots up to date, committing pictures (screencopy) and
 * handing frames to GStreamer.
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

/* ---- Outputs: one per monitor ---------------------------------------- */

MonitorLayout
Compositor::Impl::current_layout () const
{
  int w = 0, h = 0;
  monitor_layout_bounds (monitors, &w, &h);
  if (!monitors.empty () && w == config.width && h == config.height)
    return monitors;
  MonitorRect whole;
  whole.width = config.width;
  whole.height = config.height;
  return { whole };
}

wlr_box
Compositor::Impl::screen_box (size_t index) const
{
  const MonitorRect &r = screens[index]->rect;
  const int sc = std::max (1, config.scale);
  return { r.x / sc, r.y / sc, std::max (1, r.width / sc), std::max (1, r.height / sc) };
}

int
Compositor::Impl::screen_at (double x, double y) const
{
  for (size_t i = 0; i < screens.size (); i++) {
    const MonitorRect &r = screens[i]->rect;
    if (x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height)
      return (int) i;
  }
  return -1;
}

void
Compositor::Impl::drop_screen (size_t index)
{
  Screen &s = *screens[index];
  if (s.copy_target)
    wlr_buffer_drop (s.copy_target);
  /* Takes its scene output and its place in the layout along. */
  if (s.output)
    wlr_output_destroy (s.output);
  screens.erase (screens.begin () + index);
  for (View *v : views)
    if (v->screen >= (int) index)
      v->screen = -1;
}

/* The layout's positions, in logical pixels (they follow the scale). */
void
Compositor::Impl::place_screens ()
{
  for (size_t i = 0; i < screens.size (); i++) {
    wlr_box b = screen_box (i);
    wlr_output_layout_add (layout, screens[i]->output, b.x, b.y);
  }
}

/* Makes the outputs those of @want: the same number, sizes and places.
 * The first output stays (its frame events pace rendering); others come
 * and go as headless outputs, which applications see appear and leave. */
bool
Compositor::Impl::sync_screens (const MonitorLayout &want, int refresh_mhz)
{
  while (screens.size () > want.size ())
    drop_screen (screens.size () - 1);
  for (size_t i = 0; i < want.size (); i++) {
    if (i == screens.size ()) {
      auto s = std::make_unique<Screen> ();
      s->output = wlr_headless_add_output (backend, want[i].width, want[i].height);
      if (!s->output || !wlr_output_init_render (s->output, allocator, renderer))
        return false;
      /* Into the layout first: the scene's layout helper makes the
       * output's scene output, and destroys those of outputs outside the
       * layout at every layout change. */
      const int sc = std::max (1, config.scale);
      wlr_output_layout_add (layout, s->output, want[i].x / sc, want[i].y / sc);
      s->scene_output = wlr_scene_get_scene_output (scene, s->output);
      if (!s->scene_output)
        s->scene_output = wlr_scene_output_create (scene, s->output);
      screens.push_back (std::move (s));
    }
    Screen &s = *screens[i];
    if (s.rect.width != want[i].width || s.rect.height != want[i].height) {
      if (s.copy_target)
        wlr_buffer_drop (s.copy_target);
      s.copy_target = nullptr;
    }
    s.rect = want[i];
    if (!started_backend)
      continue;
    wlr_output_enable (s.output, true);
    wlr_output_set_custom_mode (s.output, s.rect.width, s.rect.height, refresh_mhz);
    wlr_output_set_scale (s.output, (float) std::max (1, config.scale));
    if (!wlr_output_commit (s.output))
      return false;
  }
  place_screens ();
  return true;
}

void
Compositor::Impl::apply_mode (int width, int height, int fps_n, int fps_d)
{
  int refresh_mhz = fps_d > 0 ? (int) gst_util_uint64_scale_int (1000, fps_n, fps_d) : 60000;
  config.width = width;
  config.height = height;
  config.fps_n = fps_n;
  config.fps_d = fps_d;

  MonitorLayout want = current_layout ();
  /* Windows of monitors that go away join the first, behind what it
   * shows: each monitor left keeps its picture and the keyboard stays
   * where it is, unless it was on a monitor that went. */
  std::vector<View *> homeless;
  for (View *v : views)
    if (v->screen >= (int) want.size ())
      homeless.push_back (v);
  View *top_before = top_view ();
  if (!sync_screens (want, refresh_mhz)) {
    cb.error ("could not set the outputs to " + monitor_layout_format (want));
    return;
  }
  for (View *v : homeless) {
    views.remove (v);
    views.push_back (v);
    if (v->node)
      wlr_scene_node_lower_to_bottom (v->node);
  }
  if (!homeless.empty () && top_view () != top_before) {
    if (top_before)
      view_activate (top_before, false);
    focus_view (top_view ());
  }

  drop_slots ();
  history.clear ();
  full_damage = true;

  spread_views ();
  for (View *v : views)
    configure_view (v);
  wlr_output_schedule_frame (primary ());
  GST_INFO_OBJECT (owner, "%zu output(s) %s, %dx%d at %d/%d fps", screens.size (),
      monitor_layout_format (want).c_str (), width, height, fps_n, fps_d);
}

void
Compositor::Impl::apply_scale (int scale)
{
  scale = std::clamp (scale, 1, 4);
  config.scale = scale;
  for (auto &s : screens) {
    wlr_output_set_scale (s->output, (float) scale);
    if (!wlr_output_commit (s->output))
      GST_WARNING_OBJECT (owner, "could not set the output scale to %d", scale);
  }
  place_screens ();
  /* The default cursor at the scale's size too. */
  wlr_xcursor_manager_load (xcursor_manager, (float) scale);
  history.clear ();
  full_damage = true;
  for (View *v : views)
    configure_view (v);
  wlr_output_schedule_frame (primary ());
  GST_INFO_OBJECT (owner, "output scale %d", scale);
}

bool
Compositor::Impl::screen_busy (const Screen &screen) const
{
  return screen.output != primary () && screen.output->frame_pending;
}

void
Compositor::Impl::recommit_front (size_t index)
{
  /* A screencopy client waits for a committed buffer; give it the current
   * picture without rendering anything new. */
  Screen &s = *screens[index];
  if (screen_busy (s))
    return;
  wlr_buffer *buf = s.copy_target ? s.copy_target : (front ? screen_target (front, index) : nullptr);
  if (!buf)
    return;
  Region none;
  if (!commit_picture (s, buf, none))
    GST_DEBUG_OBJECT (owner, "re-commit for screencopy failed");
}

bool
Compositor::Impl::commit_picture (Screen &screen, wlr_buffer *picture, Region &damage)
{
  wlr_output *output = screen.output;
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
  bool damaged = full_damage;
  for (auto &s : screens)
    damaged = damaged || pixman_region32_not_empty (&s->scene_output->damage->current);
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
  else
    for (size_t i = 0; i < screens.size (); i++)
      if (screens[i]->output->attach_render_locks > 0)
        recommit_front (i);

  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  for (auto &s : screens)
    wlr_scene_output_send_frame_done (s->scene_output, &now);
}

/* Draws the scene inside @region (the screen's own pixels) of the bound
 * render target: black where no surface is, then every surface, clipped
 * to the region. */
void
Compositor::Impl::paint (Screen &screen, Region region)
{
  const float black[4] = { 0.0f, 0.0f, 0.0f, 1.0f };
  int n = 0;
  pixman_box32_t *boxes = region.boxes (&n);
  for (int i = 0; i < n; i++) {
    wlr_box box = { boxes[i].x1, boxes[i].y1, boxes[i].x2 - boxes[i].x1, boxes[i].y2 - boxes[i].y1 };
    wlr_renderer_scissor (renderer, &box);
    wlr_renderer_clear (renderer, black);
  }
  const int sc = std::max (1, config.scale);
  wlr_scene_render_output (scene, screen.output, screen.rect.x / sc, screen.rect.y / sc, &region.r);
}

void
Compositor::Impl::render_frame ()
{
  const int W = config.width, H = config.height;

  /* This frame's damage, in picture pixels: each screen's, moved to its
   * place. */
  Region damage;
  if (full_damage) {
    damage = Region (0, 0, W, H);
  } else {
    for (auto &s : screens) {
      Region d;
      pixman_region32_intersect_rect (&d.r, &s->scene_output->damage->current, 0, 0, s->rect.width,
          s->rect.height);
      pixman_region32_translate (&d.r, s->rect.x, s->rect.y);
      damage.add (d);
    }
  }
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
  /* A region of the picture as @s's own pixels. */
  auto on_screen = [] (const Region &r, const Screen &s) {
    Region local;
    pixman_region32_intersect_rect (&local.r, const_cast<pixman_region32_t *> (&r.r), s.rect.x, s.rect.y,
        s.rect.width, s.rect.height);
    pixman_region32_translate (&local.r, -s.rect.x, -s.rect.y);
    return local;
  };

  for (size_t i = 0; i < screens.size (); i++) {
    Screen &s = *screens[i];
    Region local_repaint = on_screen (repaint, s);
    Region local_damage = on_screen (damage, s);
    wlr_buffer *target = screen_target (slot, i);
    if (!target) {
      cb.error ("out of memory for a frame");
      return;
    }
    if (zero_copy ()) {
      if (!wlr_renderer_begin_with_buffer (renderer, target)) {
        cb.error ("the renderer could not draw into a frame buffer");
        return;
      }
      paint (s, local_repaint);
      wlr_renderer_end (renderer);
    } else {
      /* Render this frame's damage into the screen's persistent render
       * buffer, then read back what the slot missed: the one copy of
       * this path. */
      bool fresh = !s.copy_target;
      if (!ensure_copy_target (s) || !wlr_renderer_begin_with_buffer (renderer, s.copy_target)) {
        cb.error ("the renderer could not draw into its render buffer");
        return;
      }
      /* The render buffer always holds the previous frame, except when new. */
      paint (s, fresh ? Region (0, 0, s.rect.width, s.rect.height) : local_damage);
      int n = 0;
      pixman_box32_t *boxes = local_repaint.boxes (&n);
      bool ok = true;
      for (int b = 0; b < n && ok; b++) {
        uint32_t flags = 0;
        /* Destination offsets go into the pointer: pixman's read_pixels
         * clips them against width x height. */
        ok = wlr_renderer_read_pixels (renderer, DRM_FORMAT_XRGB8888, &flags, slot->stride,
            boxes[b].x2 - boxes[b].x1, boxes[b].y2 - boxes[b].y1, boxes[b].x1, boxes[b].y1, 0, 0,
            slot->data + (size_t) (s.rect.y + boxes[b].y1) * slot->stride + (size_t) (s.rect.x + boxes[b].x1) * 4);
      }
      wlr_renderer_end (renderer);
      if (!ok) {
        cb.error ("could not read the rendered frame back");
        return;
      }
    }

    /* Commit to the output: presentation feedback, screencopy, and
     * wlr_output_damage starts collecting the next frame's damage. The
     * first output paces rendering; another one whose own frame is still
     * pending misses this commit (the picture has what it drew). */
    if (screen_busy (s)) {
      pixman_region32_clear (&s.scene_output->damage->current);
      continue;
    }
    if (!commit_picture (s, s.copy_target ? s.copy_target : target, local_damage)) {
      GST_WARNING_OBJECT (owner, "output commit failed");
      /* Keep the damage for the next frame. */
      pixman_region32_union (&s.scene_output->damage->current, &s.scene_output->damage->current,
          &local_damage.r);
    }
  }
  slot->seq = frame_seq;
  front = slot;

  /* Hand the picture to GStreamer. */
  GstBuffer *buf = gst_buffer_new ();
  slot->refs++;
  slot->in_gst = true;
  gst_buffer_append_memory (buf, gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY,
          slot->data, slot->size, 0, slot->size, slot, slot_memory_released));
  gst_buffer_add_video_meta (buf, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_BGRx, W, H);

  std::vector<GstVideoRectangle> rects;
  int n = 0;
  pixman_box32_t *boxes = damage.boxes (&n);
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
