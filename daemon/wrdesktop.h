/* The session's window management (docs/desktop.md): `[session] desktop`.
 *
 * - kiosk: wayraysrc's own policy, every window full screen, the session
 *   command is what wayraysrc runs;
 * - weston: weston with its desktop shell (a panel with launchers, windows
 *   that move and overlap, Xwayland), nested in wayraysrc as one full-screen
 *   Wayland client; the session command is started in it;
 * - sway: sway (tiling, a bar, Xwayland) nested the same way.
 *
 * A nested desktop is told nothing of WayRay: it sees one output (the
 * session's, resized with it), one keyboard and one pointer, and sets its
 * cursor images on wayraysrc's seat like any client. The worker writes its
 * configuration into the session's private directory
 * (`$XDG_RUNTIME_DIR/wayray-desktop-ID/`) and hands wayraysrc the command
 * line. weston's socket for its applications is
 * `$XDG_RUNTIME_DIR/wayray-SEAT-ID-desktop`; sway picks a free wayland-N.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string>

namespace wayray {

enum class DesktopKind { Kiosk, Weston, Sway };

/* A keyboard layout by XKB names: the client's (its hello), a user's
 * default ([keymaps] in the configuration) or the seat's. */
struct Keymap {
  std::string layout, variant, options;
  bool empty () const { return layout.empty (); }
  bool operator== (const Keymap &o) const {
    return layout == o.layout && variant == o.variant && options == o.options;
  }
  /* "de", "de(nodeadkeys)", "de(nodeadkeys) ctrl:nocaps": for logs. */
  std::string describe () const;
  /* Whether every name is a plain XKB name (xkb_name_ok), variant and
   * options empty or too. */
  bool valid () const;
};

/* "kiosk", "weston", "sway": FALSE for anything else. */
bool parse_desktop (const std::string &name, DesktopKind *kind);
const char *desktop_name (DesktopKind kind);
/* Whether @name is a plain XKB name or list (layouts, variants, options:
 * letters, digits and _-+,:()), safe to write into a configuration. */
bool xkb_name_ok (const std::string &name);
/* The programs @kind runs, found in PATH: empty when all are there, else
 * what is missing. */
std::string desktop_programs_missing (DesktopKind kind);

struct DesktopSetup {
  DesktopKind kind = DesktopKind::Kiosk;
  std::string seat;              /* the session's seat and number */
  int id = 0;
  std::string command;           /* the session command; "" = none */
  Keymap keymap;                 /* for a desktop that keeps its own (sway) */
  int scale = 1;                 /* the output's scale, likewise */
  int outputs = 1;               /* the client's monitors: sway opens one output each */
  std::string parent_socket;     /* wayraysrc's socket (a path), for the clipboard bridge */
  std::string config_file;       /* the operator's own weston.ini or sway config; "" = ours */
};

class Desktop {
 public:
  Desktop () = default;
  Desktop (const Desktop &) = delete;
  Desktop &operator= (const Desktop &) = delete;
  ~Desktop () { remove (); }

  /* Writes what @setup's desktop needs and sets @exec to wayraysrc's exec
   * command line (for kiosk: the session command itself). FALSE with
   * @error saying why. */
  bool prepare (const DesktopSetup &setup, std::string &exec, std::string &error);
  /* Removes the desktop's directory. */
  void remove ();
  const std::string &directory () const { return dir_; }
  /* The socket name a desktop's applications connect to, when known. */
  const std::string &socket_name () const { return socket_; }
  /* A nested desktop that keeps its own keymap, output scale and outputs
   * (sway) is told the new ones through its IPC socket: @outputs of its
   * outputs shown (made when it has fewer; the workspaces of those no
   * longer shown move to the first); @pid is the
   * desktop's process. Weston takes wayraysrc's keymap by itself (and
   * keeps scale 1 and one output). NotYet while the desktop has not
   * started (no pid, no socket yet): ask again later. */
  enum class Told { Done, NotYet, Failed };
  Told configure (const Keymap &keymap, int scale, int outputs, int pid, std::string &error);
  /* The end of the desktop's own log (weston's), at most @max bytes:
   * why it ended, for the daemon's log. */
  std::string log_tail (size_t max) const;

 private:
  std::string dir_, socket_;
  DesktopKind kind_ = DesktopKind::Kiosk;
  int outputs_made_ = 1;         /* sway's outputs (WL-1 ... WL-N) */
  int outputs_on_ = 1;           /* of which shown on a monitor (the first ones) */
};

}  // namespace wayray
