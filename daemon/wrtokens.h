/* The token store: one line per token, "NAME USER sha256:SALT:HASH": the
 * token's name, the Unix account its sessions run as, and SHA-256 of SALT
 * followed by the token (hex). Tokens themselves are never stored. Lines
 * starting with # are comments; a line of the older form "NAME
 * sha256:SALT:HASH" has the account named NAME.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include <string>

namespace wayray {

/* TRUE and the token's NAME and USER when @token matches an entry. FALSE
 * with an error ("unknown token", or why the store could not be read). */
bool token_store_verify (const std::string &store, const std::string &token, std::string *name, std::string *user,
    GError **error);

/* Adds NAME for the account USER with a new random token (returned),
 * replacing an entry of the same name. Creates the file with mode 0600. */
bool token_store_add (const std::string &store, const std::string &name, const std::string &user,
    std::string *token, GError **error);

bool token_store_remove (const std::string &store, const std::string &name, GError **error);

}  // namespace wayray
