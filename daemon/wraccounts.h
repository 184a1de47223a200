/* Unix accounts: who a token's sessions run as, and who may manage what.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include <string>

namespace wayray {

struct Account {
  std::string name, home, shell;
  uid_t uid = 0;
  gid_t gid = 0;
};

/* TRUE when @user is an account of this system. */
bool account_exists (const std::string &user);

/* The account a session of @user runs as, if it may log in at all: it
 * exists, its shell is a login shell (not nologin or false), and it is not
 * root unless @allow_root. FALSE with the reason otherwise. */
bool session_account (const std::string &user, bool allow_root, Account *out, GError **error);

/* TRUE when @uid is a member (primary or supplementary) of @group. */
bool uid_in_group (uid_t uid, const std::string &group);

/* The name of @uid, or the number when it has none. */
std::string user_name (uid_t uid);

}  // namespace wayray
