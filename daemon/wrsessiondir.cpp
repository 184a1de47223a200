/* A session's private directory (see wrsessiondir.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrsessiondir.h"

#include <glib.h>
#include <glib/gstdio.h>

#include <sys/stat.h>

#include <cerrno>

namespace wayray {

std::string
make_session_directory (const char *kind, int id, std::string &error)
{
  const char *xdg = g_getenv ("XDG_RUNTIME_DIR");
  if (!xdg || !*xdg) {
    error = "XDG_RUNTIME_DIR is not set";
    return "";
  }
  std::string dir = std::string (xdg) + "/wayray-" + kind + "-" + std::to_string (id);
  remove_tree (dir);
  if (g_mkdir (dir.c_str (), 0700) != 0) {
    error = "cannot create " + dir + ": " + g_strerror (errno);
    return "";
  }
  return dir;
}

bool
write_session_file (const std::string &path, const std::string &text, std::string &error)
{
  GError *err = nullptr;
  gchar *dir = g_path_get_dirname (path.c_str ());
  int made = g_mkdir_with_parents (dir, 0700);
  g_free (dir);
  if (made != 0 || !g_file_set_contents (path.c_str (), text.data (), (gssize) text.size (), &err)) {
    error = "cannot write " + path + ": " + (err ? err->message : g_strerror (errno));
    g_clear_error (&err);
    return false;
  }
  return true;
}

void
remove_tree (const std::string &path)
{
  GDir *d = g_dir_open (path.c_str (), 0, nullptr);
  if (d) {
    while (const gchar *name = g_dir_read_name (d)) {
      std::string child = path + "/" + name;
      struct stat st;
      if (lstat (child.c_str (), &st) == 0 && S_ISDIR (st.st_mode))
        remove_tree (child);
      else
        g_unlink (child.c_str ());
    }
    g_dir_close (d);
  }
  g_rmdir (path.c_str ());
}

}  // namespace wayray
