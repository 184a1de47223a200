/* wr-test-client: a small Wayland client for WayRay's tests.
 *
 * It shows one xdg-shell toplevel drawn with wl_shm, changes exactly the
 * pixels it is told to, and reports what the compositor sends it. Commands
 * come one per line on stdin; reports go one per line to stdout.
 *
 * Commands:
 *   fill RRGGBB               paint the whole window, damage all of it
 *   rect X Y W H RRGGBB       paint a rectangle, damage only it
 *   pattern                   paint a known pattern, damage everything
 *   commit                    attach, damage, commit what was painted
 *   cursor W H AARRGGBB HX HY use a solid-colour cursor image of this size
 *   sync                      round-trip with the compositor, then "synced"
 *   quit                      exit
 * Reports:
 *   ready W H                 the window is mapped at this size
 *   configured W H            a new size was acked, redrawn and committed
 *   committed NS              a commit command was carried out; NS is
 *                             CLOCK_MONOTONIC in ns just before wl_surface_commit
 *   pointer-enter X Y | pointer-leave | motion X Y | button CODE STATE
 *   axis AXIS VALUE | keyboard-enter | keyboard-leave | key CODE STATE
 *   modifiers DEPRESSED LATCHED LOCKED GROUP
 *
 * The pattern's pixel at (x, y) is 0xff000000 | (x & 0xff) << 16 |
 * (y & 0xff) << 8 | ((x + y) & 0xff), so tests can check any pixel.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <wayland-client.h>

#include "xdg-shell-client-protocol.h"

#define MAX_DAMAGE 64

struct buffer {
  struct wl_buffer *wl;
  uint32_t *data;
  size_t size;
  int width, height;
  bool busy;
};

struct client {
  struct wl_display *display;
  struct wl_registry *registry;
  struct wl_compositor *compositor;
  struct wl_shm *shm;
  struct wl_seat *seat;
  struct xdg_wm_base *wm_base;
  struct wl_surface *surface;
  struct xdg_surface *xdg_surface;
  struct xdg_toplevel *toplevel;
  struct wl_pointer *pointer;
  struct wl_keyboard *keyboard;
  struct wl_surface *cursor_surface;
  struct buffer *cursor_buffer;
  int cursor_hx, cursor_hy;
  uint32_t pointer_serial;

  struct buffer *buffers[2];
  uint32_t *model;              /* what the window should show */
  int width, height;
  int pending_w, pending_h;
  uint32_t pending_serial;
  bool configured, mapped;
  int damage[MAX_DAMAGE][4];
  int n_damage;
  bool damage_all;
  bool running;
  long long last_commit_ns;
};

static void
report (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
  fflush (stdout);
}

static void
buffer_release (void *data, struct wl_buffer *wl)
{
  ((struct buffer *) data)->busy = false;
}

static const struct wl_buffer_listener buffer_listener = { buffer_release };

static struct buffer *
buffer_create (struct client *c, int width, int height)
{
  struct buffer *b = calloc (1, sizeof *b);
  int stride = width * 4;
  b->size = (size_t) stride * height;
  b->width = width;
  b->height = height;
  int fd = memfd_create ("wr-test-client", MFD_CLOEXEC);
  if (fd < 0 || ftruncate (fd, b->size) < 0) {
    perror ("shm");
    exit (1);
  }
  b->data = mmap (NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  struct wl_shm_pool *pool = wl_shm_create_pool (c->shm, fd, b->size);
  b->wl = wl_shm_pool_create_buffer (pool, 0, width, height, stride, WL_SHM_FORMAT_XRGB8888);
  wl_shm_pool_destroy (pool);
  close (fd);
  wl_buffer_add_listener (b->wl, &buffer_listener, b);
  return b;
}

static void
buffer_destroy (struct buffer *b)
{
  if (!b)
    return;
  wl_buffer_destroy (b->wl);
  munmap (b->data, b->size);
  free (b);
}

static void
paint_rect (struct client *c, int x, int y, int w, int h, uint32_t color)
{
  for (int j = y; j < y + h; j++) {
    if (j < 0 || j >= c->height)
      continue;
    for (int i = x; i < x + w; i++)
      if (i >= 0 && i < c->width)
        c->model[j * c->width + i] = color | 0xff000000u;
  }
  if (c->n_damage < MAX_DAMAGE) {
    int *d = c->damage[c->n_damage++];
    d[0] = x;
    d[1] = y;
    d[2] = w;
    d[3] = h;
  } else {
    c->damage_all = true;
  }
}

static void
paint_pattern (struct client *c)
{
  for (int y = 0; y < c->height; y++)
    for (int x = 0; x < c->width; x++)
      c->model[y * c->width + x] = 0xff000000u | (uint32_t) (x & 0xff) << 16 |
          (uint32_t) (y & 0xff) << 8 | (uint32_t) ((x + y) & 0xff);
  c->damage_all = true;
}

static void
commit (struct client *c)
{
  struct buffer *b = NULL;
  for (int i = 0; i < 2; i++) {
    if (c->buffers[i] && !c->buffers[i]->busy) {
      b = c->buffers[i];
      break;
    }
  }
  while (!b) {
    /* Both in use: wait for the compositor to release one. */
    if (wl_display_dispatch (c->display) < 0)
      exit (1);
    for (int i = 0; i < 2 && !b; i++)
      if (!c->buffers[i]->busy)
        b = c->buffers[i];
  }
  memcpy (b->data, c->model, b->size);
  b->busy = true;
  wl_surface_attach (c->surface, b->wl, 0, 0);
  if (c->damage_all)
    wl_surface_damage_buffer (c->surface, 0, 0, INT32_MAX, INT32_MAX);
  else
    for (int i = 0; i < c->n_damage; i++)
      wl_surface_damage_buffer (c->surface, c->damage[i][0], c->damage[i][1], c->damage[i][2],
          c->damage[i][3]);
  c->n_damage = 0;
  c->damage_all = false;
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  c->last_commit_ns = (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
  wl_surface_commit (c->surface);
  wl_display_flush (c->display);
}

static void
resize (struct client *c, int width, int height)
{
  uint32_t background = c->model ? c->model[0] : 0xff202020u;
  for (int i = 0; i < 2; i++) {
    buffer_destroy (c->buffers[i]);
    c->buffers[i] = buffer_create (c, width, height);
  }
  free (c->model);
  c->width = width;
  c->height = height;
  c->model = malloc ((size_t) width * height * 4);
  for (int i = 0; i < width * height; i++)
    c->model[i] = background;
  c->damage_all = true;
}

/* ---- xdg-shell ---- */

static void
wm_base_ping (void *data, struct xdg_wm_base *wm, uint32_t serial)
{
  xdg_wm_base_pong (wm, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = { wm_base_ping };

static void
xdg_surface_configure (void *data, struct xdg_surface *xs, uint32_t serial)
{
  struct client *c = data;
  int w = c->pending_w > 0 ? c->pending_w : 640;
  int h = c->pending_h > 0 ? c->pending_h : 480;
  xdg_surface_ack_configure (xs, serial);
  if (w != c->width || h != c->height || !c->configured) {
    resize (c, w, h);
    commit (c);
    if (c->configured)
      report ("configured %d %d", w, h);
  } else {
    wl_surface_commit (c->surface);
  }
  if (!c->configured) {
    c->configured = true;
    report ("ready %d %d", w, h);
  }
}

static const struct xdg_surface_listener xdg_surface_listener = { xdg_surface_configure };

static void
toplevel_configure (void *data, struct xdg_toplevel *t, int32_t w, int32_t h, struct wl_array *states)
{
  struct client *c = data;
  c->pending_w = w;
  c->pending_h = h;
}

static void
toplevel_close (void *data, struct xdg_toplevel *t)
{
  ((struct client *) data)->running = false;
}

static const struct xdg_toplevel_listener toplevel_listener = { toplevel_configure, toplevel_close };

/* ---- input ---- */

static void
set_cursor (struct client *c)
{
  if (c->cursor_surface && c->pointer_serial)
    wl_pointer_set_cursor (c->pointer, c->pointer_serial, c->cursor_surface, c->cursor_hx,
        c->cursor_hy);
}

static void
pointer_enter (void *data, struct wl_pointer *p, uint32_t serial, struct wl_surface *s,
    wl_fixed_t x, wl_fixed_t y)
{
  struct client *c = data;
  c->pointer_serial = serial;
  set_cursor (c);
  report ("pointer-enter %.2f %.2f", wl_fixed_to_double (x), wl_fixed_to_double (y));
}

static void
pointer_leave (void *data, struct wl_pointer *p, uint32_t serial, struct wl_surface *s)
{
  report ("pointer-leave");
}

static void
pointer_motion (void *data, struct wl_pointer *p, uint32_t time, wl_fixed_t x, wl_fixed_t y)
{
  report ("motion %.2f %.2f", wl_fixed_to_double (x), wl_fixed_to_double (y));
}

static void
pointer_button (void *data, struct wl_pointer *p, uint32_t serial, uint32_t time, uint32_t button,
    uint32_t state)
{
  report ("button %u %u", button, state);
}

static void
pointer_axis (void *data, struct wl_pointer *p, uint32_t time, uint32_t axis, wl_fixed_t value)
{
  report ("axis %u %.2f", axis, wl_fixed_to_double (value));
}

static void
pointer_frame (void *data, struct wl_pointer *p)
{
}

static void
pointer_axis_source (void *data, struct wl_pointer *p, uint32_t source)
{
}

static void
pointer_axis_stop (void *data, struct wl_pointer *p, uint32_t time, uint32_t axis)
{
}

static void
pointer_axis_discrete (void *data, struct wl_pointer *p, uint32_t axis, int32_t discrete)
{
}

static const struct wl_pointer_listener pointer_listener = {
  pointer_enter, pointer_leave, pointer_motion, pointer_button, pointer_axis,
  pointer_frame, pointer_axis_source, pointer_axis_stop, pointer_axis_discrete,
};

static void
keyboard_keymap (void *data, struct wl_keyboard *k, uint32_t format, int32_t fd, uint32_t size)
{
  close (fd);
}

static void
keyboard_enter (void *data, struct wl_keyboard *k, uint32_t serial, struct wl_surface *s,
    struct wl_array *keys)
{
  report ("keyboard-enter");
}

static void
keyboard_leave (void *data, struct wl_keyboard *k, uint32_t serial, struct wl_surface *s)
{
  report ("keyboard-leave");
}

static void
keyboard_key (void *data, struct wl_keyboard *k, uint32_t serial, uint32_t time, uint32_t key,
    uint32_t state)
{
  report ("key %u %u", key, state);
}

static void
keyboard_modifiers (void *data, struct wl_keyboard *k, uint32_t serial, uint32_t depressed,
    uint32_t latched, uint32_t locked, uint32_t group)
{
  report ("modifiers %u %u %u %u", depressed, latched, locked, group);
}

static void
keyboard_repeat_info (void *data, struct wl_keyboard *k, int32_t rate, int32_t delay)
{
}

static const struct wl_keyboard_listener keyboard_listener = {
  keyboard_keymap, keyboard_enter, keyboard_leave, keyboard_key, keyboard_modifiers,
  keyboard_repeat_info,
};

static void
seat_capabilities (void *data, struct wl_seat *seat, uint32_t caps)
{
  struct client *c = data;
  if ((caps & WL_SEAT_CAPABILITY_POINTER) && !c->pointer) {
    c->pointer = wl_seat_get_pointer (seat);
    wl_pointer_add_listener (c->pointer, &pointer_listener, c);
  }
  if ((caps & WL_SEAT_CAPABILITY_KEYBOARD) && !c->keyboard) {
    c->keyboard = wl_seat_get_keyboard (seat);
    wl_keyboard_add_listener (c->keyboard, &keyboard_listener, c);
  }
}

static void
seat_name (void *data, struct wl_seat *seat, const char *name)
{
}

static const struct wl_seat_listener seat_listener = { seat_capabilities, seat_name };

static void
registry_global (void *data, struct wl_registry *r, uint32_t name, const char *iface, uint32_t version)
{
  struct client *c = data;
  if (strcmp (iface, wl_compositor_interface.name) == 0)
    c->compositor = wl_registry_bind (r, name, &wl_compositor_interface, 4);
  else if (strcmp (iface, wl_shm_interface.name) == 0)
    c->shm = wl_registry_bind (r, name, &wl_shm_interface, 1);
  else if (strcmp (iface, wl_seat_interface.name) == 0) {
    c->seat = wl_registry_bind (r, name, &wl_seat_interface, version < 5 ? version : 5);
    wl_seat_add_listener (c->seat, &seat_listener, c);
  } else if (strcmp (iface, xdg_wm_base_interface.name) == 0) {
    c->wm_base = wl_registry_bind (r, name, &xdg_wm_base_interface, 1);
    xdg_wm_base_add_listener (c->wm_base, &wm_base_listener, c);
  }
}

static void
registry_global_remove (void *data, struct wl_registry *r, uint32_t name)
{
}

static const struct wl_registry_listener registry_listener = { registry_global, registry_global_remove };

/* ---- commands ---- */

static void
handle_command (struct client *c, char *line)
{
  int x, y, w, h, hx, hy;
  unsigned int color;
  if (sscanf (line, "fill %x", &color) == 1) {
    paint_rect (c, 0, 0, c->width, c->height, color);
  } else if (sscanf (line, "rect %d %d %d %d %x", &x, &y, &w, &h, &color) == 5) {
    paint_rect (c, x, y, w, h, color);
  } else if (strncmp (line, "pattern", 7) == 0) {
    paint_pattern (c);
  } else if (strncmp (line, "commit", 6) == 0) {
    commit (c);
    report ("committed %lld", c->last_commit_ns);
  } else if (sscanf (line, "cursor %d %d %x %d %d", &w, &h, &color, &hx, &hy) == 5) {
    buffer_destroy (c->cursor_buffer);
    c->cursor_buffer = buffer_create (c, w, h);
    for (int i = 0; i < w * h; i++)
      c->cursor_buffer->data[i] = color;
    if (!c->cursor_surface)
      c->cursor_surface = wl_compositor_create_surface (c->compositor);
    c->cursor_hx = hx;
    c->cursor_hy = hy;
    wl_surface_attach (c->cursor_surface, c->cursor_buffer->wl, 0, 0);
    wl_surface_damage_buffer (c->cursor_surface, 0, 0, w, h);
    wl_surface_commit (c->cursor_surface);
    set_cursor (c);
    wl_display_flush (c->display);
  } else if (strncmp (line, "sync", 4) == 0) {
    wl_display_roundtrip (c->display);
    report ("synced");
  } else if (strncmp (line, "quit", 4) == 0) {
    c->running = false;
  } else {
    fprintf (stderr, "wr-test-client: unknown command: %s\n", line);
  }
}

int
main (int argc, char **argv)
{
  struct client c = { 0 };
  c.display = wl_display_connect (NULL);
  if (!c.display) {
    fprintf (stderr, "wr-test-client: cannot connect to the Wayland display\n");
    return 1;
  }
  c.registry = wl_display_get_registry (c.display);
  wl_registry_add_listener (c.registry, &registry_listener, &c);
  wl_display_roundtrip (c.display);
  if (!c.compositor || !c.shm || !c.wm_base) {
    fprintf (stderr, "wr-test-client: compositor lacks wl_compositor, wl_shm or xdg_wm_base\n");
    return 1;
  }
  wl_display_roundtrip (c.display);

  c.surface = wl_compositor_create_surface (c.compositor);
  c.xdg_surface = xdg_wm_base_get_xdg_surface (c.wm_base, c.surface);
  xdg_surface_add_listener (c.xdg_surface, &xdg_surface_listener, &c);
  c.toplevel = xdg_surface_get_toplevel (c.xdg_surface);
  xdg_toplevel_add_listener (c.toplevel, &toplevel_listener, &c);
  xdg_toplevel_set_title (c.toplevel, "wr-test-client");
  wl_surface_commit (c.surface);

  char line[256];
  size_t used = 0;
  c.running = true;
  fcntl (STDIN_FILENO, F_SETFL, fcntl (STDIN_FILENO, F_GETFL) | O_NONBLOCK);
  while (c.running) {
    while (wl_display_prepare_read (c.display) != 0)
      wl_display_dispatch_pending (c.display);
    wl_display_flush (c.display);
    struct pollfd fds[2] = {
      { wl_display_get_fd (c.display), POLLIN, 0 },
      { STDIN_FILENO, POLLIN, 0 },
    };
    if (poll (fds, 2, -1) < 0 && errno != EINTR) {
      wl_display_cancel_read (c.display);
      break;
    }
    if (fds[0].revents & POLLIN) {
      if (wl_display_read_events (c.display) < 0)
        break;
    } else {
      wl_display_cancel_read (c.display);
    }
    if (fds[0].revents & (POLLERR | POLLHUP))
      break;
    if (wl_display_dispatch_pending (c.display) < 0)
      break;
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read (STDIN_FILENO, line + used, sizeof line - 1 - used);
      if (n == 0)
        break;                  /* the test is gone */
      if (n > 0) {
        used += n;
        char *nl;
        while ((nl = memchr (line, '\n', used))) {
          *nl = '\0';
          if (c.configured)
            handle_command (&c, line);
          size_t rest = used - (nl + 1 - line);
          memmove (line, nl + 1, rest);
          used = rest;
        }
        if (used == sizeof line - 1)
          used = 0;
      }
    }
  }
  wl_display_disconnect (c.display);
  return 0;
}
