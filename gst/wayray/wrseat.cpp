/* The seat: the session keyboard and its keymap, the pointer, and the
 * input the element injects (keys by evdev code or by keysym name, pointer
 * motion, buttons and wheel).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositorimpl.h"

#include <algorithm>
#include <string>

namespace wayray {

/* ---- Keyboard --------------------------------------------------------- */

/* Compiles an XKB keymap from names (empty: libxkbcommon's defaults,
 * XKB_DEFAULT_* included) and gives it to the session keyboard; the seat
 * sends it to every client. The keyboard keeps its keymap on failure. */
bool
Compositor::Impl::apply_keymap (const std::string &layout, const std::string &variant, const std::string &options,
    const std::string &model, std::string *error)
{
  auto name = [] (const std::string &s) { return s.empty () ? nullptr : s.c_str (); };
  xkb_rule_names names = { name (config.xkb_rules), name (model), name (layout), name (variant), name (options) };
  xkb_context *xkb = xkb_context_new (XKB_CONTEXT_NO_FLAGS);
  xkb_keymap *keymap = xkb ? xkb_keymap_new_from_names (xkb, &names, XKB_KEYMAP_COMPILE_NO_FLAGS) : nullptr;
  if (xkb)
    xkb_context_unref (xkb);
  if (!keymap) {
    *error = "could not compile the keymap (layout '" + layout + "', variant '" + variant + "', options '" +
        options + "'): check the keymap properties";
    return false;
  }
  wlr_keyboard_set_keymap (keyboard_dev->keyboard, keymap);
  xkb_keymap_unref (keymap);
  keysym_cache.clear ();        /* symbols sit on other keys now */
  return true;
}

bool
Compositor::Impl::keysym_to_keycode (xkb_keysym_t sym, guint32 *keycode, guint32 *level)
{
  auto it = keysym_cache.find (sym);
  if (it != keysym_cache.end ()) {
    *keycode = it->second.first;
    *level = it->second.second;
    return true;
  }
  xkb_keymap *keymap = keyboard_dev->keyboard->keymap;
  guint32 best_code = 0, best_level = G_MAXUINT32;
  for (xkb_keycode_t kc = xkb_keymap_min_keycode (keymap); kc <= xkb_keymap_max_keycode (keymap); kc++) {
    xkb_level_index_t levels = xkb_keymap_num_levels_for_key (keymap, kc, 0);
    for (xkb_level_index_t l = 0; l < levels && l < best_level; l++) {
      const xkb_keysym_t *syms;
      int n = xkb_keymap_key_get_syms_by_level (keymap, kc, 0, l, &syms);
      for (int i = 0; i < n; i++) {
        if (syms[i] == sym) {
          best_code = kc;
          best_level = l;
        }
      }
    }
    if (best_level == 0)
      break;
  }
  if (best_level == G_MAXUINT32)
    return false;
  *keycode = best_code - 8;     /* xkb keycodes are evdev codes + 8 */
  *level = best_level;
  keysym_cache[sym] = { *keycode, *level };
  return true;
}

void
Compositor::Impl::inject_key (guint32 keycode, bool pressed)
{
  wlr_keyboard *kb = keyboard_dev->keyboard;
  wlr_event_keyboard_key ev = { };
  ev.time_msec = monotonic_ms ();
  ev.keycode = keycode;
  ev.update_state = true;
  ev.state = pressed ? WL_KEYBOARD_KEY_STATE_PRESSED : WL_KEYBOARD_KEY_STATE_RELEASED;
  wlr_keyboard_notify_key (kb, &ev);

  /* Alt+Tab belongs to the compositor: with every window full screen, it is
   * how a user gets to another one. The Tab press and its release never
   * reach the application. */
  const guint32 KEY_TAB = 15;
  if (keycode == KEY_TAB && (wlr_keyboard_get_modifiers (kb) & WLR_MODIFIER_ALT)) {
    if (pressed) {
      alt_tab_down = true;
      cycle_views ();
    }
    return;
  }
  if (keycode == KEY_TAB && !pressed && alt_tab_down) {
    alt_tab_down = false;       /* Alt was let go first */
    return;
  }
  wlr_seat_keyboard_notify_modifiers (seat, &kb->modifiers);
  wlr_seat_keyboard_notify_key (seat, ev.time_msec, keycode, ev.state);
}

void
Compositor::Impl::key_by_name (const std::string &name, bool pressed)
{
  xkb_keysym_t sym = xkb_keysym_from_name (name.c_str (), XKB_KEYSYM_NO_FLAGS);
  if (sym == XKB_KEY_NoSymbol)
    sym = xkb_keysym_from_name (name.c_str (), XKB_KEYSYM_CASE_INSENSITIVE);
  if (sym == XKB_KEY_NoSymbol && g_utf8_validate (name.c_str (), -1, nullptr) &&
      g_utf8_strlen (name.c_str (), -1) == 1)
    sym = xkb_utf32_to_keysym (g_utf8_get_char (name.c_str ()));
  guint32 keycode, level;
  if (sym == XKB_KEY_NoSymbol || !keysym_to_keycode (sym, &keycode, &level)) {
    GST_WARNING_OBJECT (owner, "key '%s' is not on the session's keymap, dropped", name.c_str ());
    return;
  }
  /* A symbol on another level than the first, typed without the
   * modifiers that reach it: hold them around the key so the
   * application sees the symbol that was asked (level 1: Shift; 2:
   * AltGr, ISO_Level3_Shift; 3: both). */
  wlr_keyboard *kb = keyboard_dev->keyboard;
  bool shift_held = xkb_state_mod_name_is_active (kb->xkb_state, XKB_MOD_NAME_SHIFT,
      XKB_STATE_MODS_EFFECTIVE) > 0;
  const guint32 KEY_LEFTSHIFT = 42;
  bool add_shift = (level == 1 || level == 3) && !shift_held && pressed;
  guint32 level3 = 0, l3_level = 0;
  bool add_level3 = level >= 2 && pressed &&
      keysym_to_keycode (XKB_KEY_ISO_Level3_Shift, &level3, &l3_level) && l3_level == 0;
  if (add_shift)
    inject_key (KEY_LEFTSHIFT, true);
  if (add_level3)
    inject_key (level3, true);
  inject_key (keycode, pressed);
  if (add_level3)
    inject_key (level3, false);
  if (add_shift)
    inject_key (KEY_LEFTSHIFT, false);
}

/* ---- Pointer ---------------------------------------------------------- */

void
Compositor::Impl::process_motion (guint32 time)
{
  double sx = 0, sy = 0;
  /* px, py are the picture's pixels; the scene is in logical ones. */
  wlr_scene_node *node = wlr_scene_node_at (&scene->node, px / config.scale, py / config.scale, &sx, &sy);
  wlr_surface *surface = nullptr;
  if (node && node->type == WLR_SCENE_NODE_SURFACE)
    surface = wlr_scene_surface_from_node (node)->surface;

  if (surface) {
    wlr_seat_pointer_notify_enter (seat, surface, sx, sy);
    wlr_seat_pointer_notify_motion (seat, time, sx, sy);
  } else {
    wlr_seat_pointer_clear_focus (seat);
    show_default_cursor ();
  }
  publish_cursor_position ();
}

void
Compositor::Impl::pointer_motion (double x, double y)
{
  px = std::clamp (x, 0.0, (double) config.width - 1);
  py = std::clamp (y, 0.0, (double) config.height - 1);
  process_motion (monotonic_ms ());
  wlr_seat_pointer_notify_frame (seat);
}

void
Compositor::Impl::pointer_button (guint32 evdev_button, bool pressed)
{
  if (pressed)
    focus_screen_at_pointer ();
  wlr_seat_pointer_notify_button (seat, monotonic_ms (), evdev_button,
      pressed ? WLR_BUTTON_PRESSED : WLR_BUTTON_RELEASED);
  wlr_seat_pointer_notify_frame (seat);
}

void
Compositor::Impl::pointer_axis (double dx, double dy)
{
  /* One wheel step scrolls 15 surface pixels, as libinput reports. */
  guint32 t = monotonic_ms ();
  if (dy != 0)
    wlr_seat_pointer_notify_axis (seat, t, WLR_AXIS_ORIENTATION_VERTICAL, dy * 15.0,
        (int32_t) dy, WLR_AXIS_SOURCE_WHEEL);
  if (dx != 0)
    wlr_seat_pointer_notify_axis (seat, t, WLR_AXIS_ORIENTATION_HORIZONTAL, dx * 15.0,
        (int32_t) dx, WLR_AXIS_SOURCE_WHEEL);
  wlr_seat_pointer_notify_frame (seat);
}

}  // namespace wayray
