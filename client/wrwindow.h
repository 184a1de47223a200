/* The window client's window: a GTK 3 application window around gtksink's
 * widget (docs/wayray-client.md, "The window").
 *
 * GTK gives the window what a viewer needs, on X11 and Wayland alike:
 * keyboard and pointer (gtksink sends them upstream as navigation events,
 * scaled to the picture), the window's size (the session follows it), full
 * screen on F11 with the keyboard grabbed meanwhile (Alt+Tab and the like
 * go to the session), the desktop's clipboard and primary selection both
 * ways, a status overlay over the picture while detached, and the
 * keyboard layout the window system has.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrclipboard.h"
#include "wrkeymap.h"

#include <gst/gst.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wayray {

class ToolkitWindow {
 public:
  struct Callbacks {
    /* The picture area is now @width x @height device pixels. */
    std::function<void (int width, int height)> resized;
    /* The user closed the window. */
    std::function<void ()> closed;
    /* The desktop's selection changed to one offering @types (the
     * clipboard's known types; empty: none of them). */
    std::function<void (Selection, const std::vector<std::string> &types)> offered;
    /* A desktop application pastes the session's selection as @type:
     * fetch it (done is called once, with the bytes or an error). */
    std::function<void (Selection, const std::string &type, ClipboardLink::Done done)> fetch;
  };

  ToolkitWindow ();
  ~ToolkitWindow ();
  ToolkitWindow (const ToolkitWindow &) = delete;
  ToolkitWindow &operator= (const ToolkitWindow &) = delete;

  /* Whether GTK can open the window system's display (again: a display
   * server that is only just starting may refuse the first tries). */
  static bool toolkit_ready ();
  /* The keyboard layout the window system has (X11: the root window's
   * _XKB_RULES_NAMES, which the X server keeps); empty when unknown. */
  static ClientKeymap toolkit_keymap ();

  /* Puts @gtksink's widget in a window of @width x @height titled @title
   * and shows it. */
  bool open (GstElement *gtksink, const std::string &title, int width, int height, Callbacks callbacks);
  /* Shows @text over the picture (empty: hides it). */
  void set_status (const std::string &text);
  /* An entry for a secret (a card's PIN) under the status, with the
   * keyboard: @done gets what was typed on Enter. ask_secret ({}) hides
   * it. */
  void ask_secret (std::function<void (const std::string &)> done);
  void set_fullscreen (bool on);
  bool fullscreen () const;
  /* The session offers @types as @sel: the desktop's selection becomes
   * it, its bytes fetched when a desktop application pastes. */
  void session_offered (Selection sel, const std::vector<std::string> &types);
  /* The session pastes the desktop's selection as @type. */
  void read_desktop (Selection sel, const std::string &type, ClipboardLink::Done done);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wayray
