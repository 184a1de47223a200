/* The token store: one line per token, "NAME USER VERIFIER [card]": the
 * token's name, the Unix account its sessions run as, and what a login is
 * checked against (wrscram.h: "scram-sha256:ID:ITERATIONS:SALT:STOREDKEY:
 * SERVERKEY"); "card" marks a registered smart card, whose secret is read
 * from the card (wrcard.h) instead of handed out. A card with a key has
 * "pubkey:ID:SPKI-HEX" instead of a verifier (wrcardkey.h: the key's id
 * and its public key).
 * Neither tokens nor anything a client could log in with are stored.
 * Lines starting with # are comments. Entries of the form "NAME [USER]
 * sha256:SALT:HASH" were written before logins stopped carrying the token:
 * they can no longer log in (token_store_old_entries names them).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

#include "wrscram.h"

#include <string>
#include <vector>

namespace wayray {

struct TokenEntry {
  std::string name, user;
  ScramVerifier verifier;   /* for a card with a key, only its id is set */
  bool card = false;
  std::string public_key;   /* a card with a key: its SubjectPublicKeyInfo (DER) */
};

/* The entry whose token has the id @id (token_id ()). FALSE with an
 * error: "unknown token", or why the store could not be read. */
bool token_store_find (const std::string &store, const std::string &id, TokenEntry *entry, GError **error);

/* The names of entries in the old form (not usable any more). */
std::vector<std::string> token_store_old_entries (const std::string &store);

/* Adds NAME for the account USER with a new random token (returned),
 * replacing an entry of the same name. Creates the file with mode 0600. */
bool token_store_add (const std::string &store, const std::string &name, const std::string &user,
    std::string *token, GError **error);

/* Adds NAME for the account USER with the secret @secret (a registered
 * card's, wrcard.h: card_secret ()), replacing an entry of the same name.
 * A card already registered under another name is refused. */
bool token_store_add_card (const std::string &store, const std::string &name, const std::string &user,
    const std::string &secret, GError **error);

/* Adds NAME for the account USER: the card whose public key is @spki
 * (DER), replacing an entry of the same name. */
bool token_store_add_card_key (const std::string &store, const std::string &name, const std::string &user,
    const std::string &spki, GError **error);

bool token_store_remove (const std::string &store, const std::string &name, GError **error);

}  // namespace wayray
