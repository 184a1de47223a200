/* Unix accounts.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wraccounts.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <vector>

namespace wayray {

bool
account_exists (const std::string &user)
{
  return getpwnam (user.c_str ()) != nullptr;
}

bool
session_account (const std::string &user, bool allow_root, Account *out, GError **error)
{
  struct passwd *pw = getpwnam (user.c_str ());
  if (!pw) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "the account '%s' does not exist", user.c_str ());
    return false;
  }
  std::string shell = pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh";
  gchar *base = g_path_get_basename (shell.c_str ());
  bool no_login = g_strcmp0 (base, "nologin") == 0 || g_strcmp0 (base, "false") == 0 ||
      access (shell.c_str (), X_OK) != 0;
  g_free (base);
  if (no_login) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "the account '%s' has no login shell (%s)",
        user.c_str (), shell.c_str ());
    return false;
  }
  if (pw->pw_uid == 0 && !allow_root) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
        "sessions as root are not allowed (see [session] allow-root)");
    return false;
  }
  out->name = pw->pw_name;
  out->uid = pw->pw_uid;
  out->gid = pw->pw_gid;
  out->home = pw->pw_dir ? pw->pw_dir : "/";
  out->shell = shell;
  return true;
}

bool
uid_in_group (uid_t uid, const std::string &group)
{
  if (group.empty ())
    return false;
  struct group *gr = getgrnam (group.c_str ());
  struct passwd *pw = getpwuid (uid);
  if (!gr || !pw)
    return false;
  gid_t wanted = gr->gr_gid;
  int n = 64;
  std::vector<gid_t> groups (n);
  if (getgrouplist (pw->pw_name, pw->pw_gid, groups.data (), &n) < 0) {
    groups.resize (n);
    if (getgrouplist (pw->pw_name, pw->pw_gid, groups.data (), &n) < 0)
      return false;
  }
  for (int i = 0; i < n; i++)
    if (groups[i] == wanted)
      return true;
  return false;
}

std::string
user_name (uid_t uid)
{
  struct passwd *pw = getpwuid (uid);
  return pw ? pw->pw_name : std::to_string (uid);
}

}  // namespace wayray
