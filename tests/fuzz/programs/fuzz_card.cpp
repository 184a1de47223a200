/* libFuzzer target: what a smart card answers for its identity (wrcardid.h):
 * the bytes of EF.ICCID and a reader's UID, and the card IDs an
 * administrator types (`wayrayctl card-add --id`). The card is not
 * trusted: whatever it sends, an identity read from it must read back the
 * same from its written form, and a refusal must say why.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcardid.h"

#include <cstdint>
#include <string>
#include <vector>

using namespace wayray;

static void
check_identity (const CardIdentity &id)
{
  CardIdentity again;
  std::string why;
  if (!card_identity_parse (id.to_string (), &again, &why) || again.kind != id.kind || again.value != id.value)
    __builtin_trap ();
  if (card_secret (id).find (id.to_string ()) == std::string::npos)
    __builtin_trap ();
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const std::vector<uint8_t> bytes (data, data + size);
  std::string value, why;
  if (card_iccid_from_bcd (bytes, &value, &why))
    check_identity ({ "iccid", value });
  else if (why.empty () || !value.empty ())
    __builtin_trap ();
  why.clear ();
  if (card_uid_from_bytes (bytes, &value, &why))
    check_identity ({ "uid", value });
  else if (why.empty ())
    __builtin_trap ();
  CardIdentity id;
  why.clear ();
  if (card_identity_parse (std::string (reinterpret_cast<const char *> (data), size), &id, &why))
    check_identity (id);
  else if (why.empty ())
    __builtin_trap ();
  return 0;
}
