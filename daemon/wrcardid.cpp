/* A registered smart card's identity (wrcardid.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcardid.h"

#include <glib.h>

namespace wayray {

std::string
card_secret (const CardIdentity &id)
{
  return "wayray-card:" + id.to_string ();
}

bool
card_identity_parse (const std::string &text, CardIdentity *id, std::string *why)
{
  size_t colon = text.find (':');
  std::string kind = colon == std::string::npos ? "" : text.substr (0, colon);
  std::string value = colon == std::string::npos ? "" : text.substr (colon + 1);
  bool ok = false;
  if (kind == "iccid") {
    ok = value.size () >= 8 && value.size () <= 20;
    for (char c : value)
      ok = ok && g_ascii_isdigit (c);
  } else if (kind == "uid") {
    ok = value.size () >= 8 && value.size () <= 20 && value.size () % 2 == 0;
    for (char &c : value) {
      ok = ok && g_ascii_isxdigit (c);
      c = g_ascii_toupper (c);
    }
  }
  if (!ok) {
    *why = "'" + text + "' is not a card ID (iccid:8 to 20 digits, or uid:8 to 20 hex digits, "
        "as wayrayctl card-read prints it)";
    return false;
  }
  id->kind = kind;
  id->value = value;
  return true;
}

bool
card_iccid_from_bcd (const std::vector<uint8_t> &data, std::string *digits, std::string *why)
{
  digits->clear ();
  bool ended = false;
  for (uint8_t b : data) {
    for (int nibble : { b & 0x0f, b >> 4 }) {
      if (nibble == 0x0f) {
        ended = true;
        continue;
      }
      if (nibble > 9 || ended) {
        *why = "its EF.ICCID is not a serial number";
        digits->clear ();
        return false;
      }
      digits->push_back ('0' + nibble);
    }
  }
  if (digits->size () < 8 || digits->size () > 20) {
    *why = digits->size () < 8 ? "its EF.ICCID is too short to name a card" : "its EF.ICCID is too long";
    digits->clear ();
    return false;
  }
  return true;
}

bool
card_uid_from_bytes (const std::vector<uint8_t> &data, std::string *hex, std::string *why)
{
  if (data.size () < 4 || data.size () > 10) {
    *why = "the reader gives no UID for it";
    return false;
  }
  hex->clear ();
  for (uint8_t b : data) {
    char s[3];
    g_snprintf (s, sizeof s, "%02X", b);
    *hex += s;
  }
  return true;
}

}  // namespace wayray
