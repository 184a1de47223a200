/* Registered smart cards: which card is in a reader, through PC/SC
 * (pcsc-lite's pcscd).
 *
 * A registered card (any card, as Sun Ray allowed) is known by an
 * identity read from it, in this order:
 *  - "iccid": EF.ICCID, file 2FE2 under the MF (ISO 7816-4): the card's
 *    serial, the number printed on most cards, BCD;
 *  - "uid": the UID a PC/SC reader answers to GET DATA (FF CA 00 00 00,
 *    PC/SC part 3), which contactless cards have.
 * A card with neither is refused with that reason: its ATR alone is the
 * same for every card of its make and names no card.
 *
 * The identity is a password, not a key: the client proves it holds it
 * exactly as it proves a token (wrscram.h, with card_secret ()), and the
 * store keeps only a verifier. Anyone who can read the card can read its
 * identity, which docs/smartcards.md says plainly.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrcardid.h"

#include <PCSC/winscard.h>

#include <string>
#include <vector>

namespace wayray {

/* pcsc-lite's text for a PC/SC return code. */
std::string pcsc_error (LONG rc);

/* Reads the identity of the connected card @card (no exclusive access
 * needed: it selects EF.ICCID and reads it, or asks the reader's UID).
 * *lost (when given) tells an exchange that failed (a card only just in,
 * or already out) from a card that has no ID. */
bool card_identity_read (SCARDHANDLE card, DWORD protocol, CardIdentity *id, std::string *why,
    bool *lost = nullptr);

/* The readers pcscd knows, in its order. */
bool card_readers (SCARDCONTEXT ctx, std::vector<std::string> *readers, std::string *why);

/* The reader @wanted names (its whole name, or the start of it); empty
 * @wanted: the first. Empty when there is none. */
std::string card_pick_reader (const std::vector<std::string> &readers, const std::string &wanted);

/* Connects to the card in @reader (see card_pick_reader) and reads its
 * identity: for an administrator enrolling a card at a reader. */
bool card_read_in_reader (const std::string &reader, CardIdentity *id, std::string *reader_used, std::string *why);

}  // namespace wayray
