/* The client's keyboard layout, sent in the hello so the session's keyboard
 * means what is printed on the user's keys (docs/desktop.md, "Keyboard").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string>

namespace wayray {

struct ClientKeymap {
  std::string layout, variant, options;
};

/* The machine's keyboard configuration: XKBLAYOUT, XKBVARIANT and
 * XKBOPTIONS of @path (Debian's /etc/default/keyboard, which the console
 * and the X server read too). Empty fields when the file or a key is
 * missing. */
ClientKeymap system_keymap (const char *path = "/etc/default/keyboard");

}  // namespace wayray
