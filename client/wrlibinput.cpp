/* Console input through libinput.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrlibinput.h"

#include <gst/video/navigation.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <libinput.h>
#include <libudev.h>
#include <linux/input-event-codes.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace wayray {

struct ConsoleInput::Impl {
  GstElement *sink = nullptr;
  std::function<void (unsigned)> key;   /* start_keys (): the client's own keys */
  udev *ud = nullptr;
  libinput *li = nullptr;
  guint watch = 0;
  double x = 0, y = 0;
  int width = 0, height = 0;

  void send (GstEvent *ev) {
    if (sink)
      gst_element_send_event (sink, ev);
    else
      gst_event_unref (ev);
  }
  void dispatch ();
  bool open (const char *seat, GError **error);
};

static int
open_restricted (const char *path, int flags, void *)
{
  int fd = open (path, flags | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

static void
close_restricted (int fd, void *)
{
  close (fd);
}

static const libinput_interface interface = { open_restricted, close_restricted };

/* Linux button codes to the X11-style numbers of navigation events. */
static int
nav_button (uint32_t code)
{
  switch (code) {
    case BTN_LEFT: return 1;
    case BTN_MIDDLE: return 2;
    case BTN_RIGHT: return 3;
    case BTN_SIDE: return 8;
    case BTN_EXTRA: return 9;
    default: return 0;
  }
}

void
ConsoleInput::Impl::dispatch ()
{
  libinput_dispatch (li);
  while (libinput_event *ev = libinput_get_event (li)) {
    const auto mods = (GstNavigationModifierType) 0;
    switch (libinput_event_get_type (ev)) {
      case LIBINPUT_EVENT_KEYBOARD_KEY: {
        auto *k = libinput_event_get_keyboard_event (ev);
        guint code = libinput_event_keyboard_get_key (k);
        bool pressed = libinput_event_keyboard_get_key_state (k) == LIBINPUT_KEY_STATE_PRESSED;
        if (key) {
          if (pressed)
            key (code);
          break;
        }
        /* The evdev code travels as is; wayraysrc prefers it to the name,
         * so the session's keymap decides what the key means. */
        std::string name = "evdev-" + std::to_string (code);
        GstEvent *e = pressed ? gst_navigation_event_new_key_press (name.c_str (), mods)
                              : gst_navigation_event_new_key_release (name.c_str (), mods);
        gst_structure_set (gst_event_writable_structure (e), "keycode", G_TYPE_UINT, code, nullptr);
        send (e);
        break;
      }
      case LIBINPUT_EVENT_POINTER_MOTION: {
        auto *p = libinput_event_get_pointer_event (ev);
        x = std::clamp (x + libinput_event_pointer_get_dx (p), 0.0, (double) width - 1);
        y = std::clamp (y + libinput_event_pointer_get_dy (p), 0.0, (double) height - 1);
        send (gst_navigation_event_new_mouse_move (x, y, mods));
        break;
      }
      case LIBINPUT_EVENT_POINTER_MOTION_ABSOLUTE: {
        auto *p = libinput_event_get_pointer_event (ev);
        x = libinput_event_pointer_get_absolute_x_transformed (p, width);
        y = libinput_event_pointer_get_absolute_y_transformed (p, height);
        send (gst_navigation_event_new_mouse_move (x, y, mods));
        break;
      }
      case LIBINPUT_EVENT_POINTER_BUTTON: {
        auto *p = libinput_event_get_pointer_event (ev);
        int b = nav_button (libinput_event_pointer_get_button (p));
        if (!b)
          break;
        bool pressed = libinput_event_pointer_get_button_state (p) == LIBINPUT_BUTTON_STATE_PRESSED;
        send (pressed ? gst_navigation_event_new_mouse_button_press (b, x, y, mods)
                      : gst_navigation_event_new_mouse_button_release (b, x, y, mods));
        break;
      }
      case LIBINPUT_EVENT_POINTER_SCROLL_WHEEL: {
        auto *p = libinput_event_get_pointer_event (ev);
        double dx = 0, dy = 0;
        if (libinput_event_pointer_has_axis (p, LIBINPUT_POINTER_AXIS_SCROLL_VERTICAL))
          dy = -libinput_event_pointer_get_scroll_value_v120 (p, LIBINPUT_POINTER_AXIS_SCROLL_VERTICAL) / 120.0;
        if (libinput_event_pointer_has_axis (p, LIBINPUT_POINTER_AXIS_SCROLL_HORIZONTAL))
          dx = -libinput_event_pointer_get_scroll_value_v120 (p, LIBINPUT_POINTER_AXIS_SCROLL_HORIZONTAL) / 120.0;
        /* Navigation scroll deltas are positive up and left. */
        send (gst_navigation_event_new_mouse_scroll (x, y, dx, dy, mods));
        break;
      }
      default:
        break;
    }
    libinput_event_destroy (ev);
  }
}

ConsoleInput::ConsoleInput () : impl_ (new Impl) {}

ConsoleInput::~ConsoleInput ()
{
  stop ();
}

bool
ConsoleInput::Impl::open (const char *seat, GError **error)
{
  ud = udev_new ();
  li = ud ? libinput_udev_create_context (&interface, nullptr, ud) : nullptr;
  if (!li || libinput_udev_assign_seat (li, seat) != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
        "cannot read input devices of seat %s with libinput (run as root or in the 'input' group)", seat);
    return false;
  }
  GIOChannel *ch = g_io_channel_unix_new (libinput_get_fd (li));
  watch = g_io_add_watch (ch, G_IO_IN, [] (GIOChannel *, GIOCondition, gpointer data) -> gboolean {
        static_cast<Impl *> (data)->dispatch ();
        return G_SOURCE_CONTINUE;
      }, this);
  g_io_channel_unref (ch);
  dispatch ();                  /* device-added events */
  return true;
}

bool
ConsoleInput::start (GstElement *sink, int width, int height, const char *seat, GError **error)
{
  Impl *p = impl_.get ();
  stop ();
  p->sink = GST_ELEMENT (gst_object_ref (sink));
  p->width = width;
  p->height = height;
  p->x = width / 2.0;
  p->y = height / 2.0;
  if (p->open (seat, error))
    return true;
  stop ();
  return false;
}

bool
ConsoleInput::start_keys (std::function<void (unsigned code)> key, const char *seat, GError **error)
{
  Impl *p = impl_.get ();
  stop ();
  p->key = std::move (key);
  if (p->open (seat, error))
    return true;
  stop ();
  return false;
}

void
ConsoleInput::stop ()
{
  Impl *p = impl_.get ();
  if (p->watch)
    g_source_remove (p->watch);
  p->watch = 0;
  if (p->li)
    libinput_unref (p->li);
  p->li = nullptr;
  if (p->ud)
    udev_unref (p->ud);
  p->ud = nullptr;
  if (p->sink)
    gst_object_unref (p->sink);
  p->sink = nullptr;
  p->key = nullptr;
}

}  // namespace wayray
