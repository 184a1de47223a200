/* A registered smart card's identity (wrcard.h reads it from the card):
 * its forms, what a login with it proves, and the reading of the card's
 * answers. No PC/SC here: what the card sent is parsed, nothing more.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wayray {

struct CardIdentity {
  std::string kind;    /* "iccid" or "uid" */
  std::string value;   /* ICCID digits, or the UID in upper-case hex */

  /* "iccid:8949…" or "uid:04A2…", as `wayrayctl card-read` prints it. */
  std::string to_string () const { return kind + ":" + value; }
};

/* Parses what to_string () gives (an administrator's --id). */
bool card_identity_parse (const std::string &text, CardIdentity *id, std::string *why);

/* What a login with the card proves and the store keeps a verifier of. */
std::string card_secret (const CardIdentity &id);

/* EF.ICCID's bytes (BCD, each byte's low digit first, padded with F) as
 * the serial's digits; FALSE with @why for anything else. */
bool card_iccid_from_bcd (const std::vector<uint8_t> &data, std::string *digits, std::string *why);

/* A reader's UID answer (4 to 10 bytes) in upper-case hex. */
bool card_uid_from_bytes (const std::vector<uint8_t> &data, std::string *hex, std::string *why);

}  // namespace wayray
