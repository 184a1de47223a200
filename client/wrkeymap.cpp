/* The client's keyboard layout (see wrkeymap.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrkeymap.h"

#include <glib.h>

#include <cstring>

namespace wayray {

ClientKeymap
system_keymap (const char *path)
{
  ClientKeymap km;
  gchar *text = nullptr;
  if (!g_file_get_contents (path, &text, nullptr, nullptr))
    return km;
  gchar **lines = g_strsplit (text, "\n", -1);
  g_free (text);
  for (gchar **l = lines; *l; l++) {
    const char *line = g_strstrip (*l);
    const char *eq = strchr (line, '=');
    if (line[0] == '#' || !eq)
      continue;
    std::string key (line, eq - line);
    std::string *field = key == "XKBLAYOUT" ? &km.layout : key == "XKBVARIANT" ? &km.variant :
        key == "XKBOPTIONS" ? &km.options : nullptr;
    if (!field)
      continue;
    /* A shell assignment: the value may be quoted. */
    gchar *value = g_shell_unquote (eq + 1, nullptr);
    *field = value ? value : "";
    g_free (value);
  }
  g_strfreev (lines);
  return km;
}

}  // namespace wayray
