/* Registered smart cards: a card's identity through PC/SC.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcard.h"

#include <glib.h>

#include <cstring>

namespace wayray {

std::string
pcsc_error (LONG rc)
{
  return pcsc_stringify_error (rc);
}

/* One command APDU and its answer, the status word apart. A card that
 * asks for GET RESPONSE (61xx) or for another Le (6Cxx) is answered, a
 * few times at most. */
static bool
transmit (SCARDHANDLE card, DWORD protocol, std::vector<BYTE> apdu, std::vector<BYTE> *data, unsigned *sw,
    std::string *why, bool *lost)
{
  const SCARD_IO_REQUEST *pci = protocol == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
  data->clear ();
  for (int round = 0; round < 8; round++) {
    BYTE buf[MAX_BUFFER_SIZE + 2];
    DWORD len = sizeof buf;
    LONG rc = SCardTransmit (card, pci, apdu.data (), apdu.size (), nullptr, buf, &len);
    if (rc != SCARD_S_SUCCESS) {
      *why = "the card did not answer (" + pcsc_error (rc) + ")";
      *lost = true;
      return false;
    }
    if (len < 2) {
      *why = "the card's answer was malformed";
      return false;
    }
    *sw = buf[len - 2] << 8 | buf[len - 1];
    data->insert (data->end (), buf, buf + len - 2);
    if (data->size () > 1024) {
      *why = "the card's answer was too long";
      return false;
    }
    if ((*sw & 0xff00) == 0x6100)          /* more: GET RESPONSE */
      apdu = { 0x00, 0xC0, 0x00, 0x00, (BYTE) (*sw & 0xff) };
    else if ((*sw & 0xff00) == 0x6c00 && apdu.size () >= 5) {   /* wrong Le: this one */
      apdu.back () = (BYTE) (*sw & 0xff);
      data->clear ();
    } else
      return true;
  }
  *why = "the card kept asking for more exchanges";
  return false;
}

/* EF.ICCID: ten BCD bytes, each low digit first, padded with F. */
static bool
read_iccid (SCARDHANDLE card, DWORD protocol, std::string *digits, std::string *why, bool *lost)
{
  std::vector<BYTE> data;
  unsigned sw = 0;
  bool selected = false;
  /* By file ID in the current DF (the MF after a reset), else by path
   * from the MF; no FCI wanted (P2 0C). */
  for (BYTE p1 : { 0x00, 0x08 }) {
    if (!transmit (card, protocol, { 0x00, 0xA4, p1, 0x0C, 0x02, 0x2F, 0xE2 }, &data, &sw, why, lost))
      return false;
    if (sw == 0x9000) {
      selected = true;
      break;
    }
  }
  if (!selected) {
    *why = "it has no EF.ICCID";
    return false;
  }
  if (!transmit (card, protocol, { 0x00, 0xB0, 0x00, 0x00, 0x0A }, &data, &sw, why, lost))
    return false;
  /* 6282: the file ended before Le; what came is the file. */
  if ((sw != 0x9000 && sw != 0x6282) || data.empty ()) {
    char s[8];
    g_snprintf (s, sizeof s, "%04X", sw);
    *why = std::string ("its EF.ICCID could not be read (status ") + s + ")";
    return false;
  }
  return card_iccid_from_bcd (data, digits, why);
}

static bool
read_uid (SCARDHANDLE card, DWORD protocol, std::string *hex, std::string *why, bool *lost)
{
  std::vector<BYTE> data;
  unsigned sw = 0;
  if (!transmit (card, protocol, { 0xFF, 0xCA, 0x00, 0x00, 0x00 }, &data, &sw, why, lost))
    return false;
  if (sw != 0x9000) {
    *why = "the reader gives no UID for it";
    return false;
  }
  return card_uid_from_bytes (data, hex, why);
}

bool
card_identity_read (SCARDHANDLE card, DWORD protocol, CardIdentity *id, std::string *why, bool *lost)
{
  std::string value, why_iccid, why_uid;
  bool gone = false;
  if (lost)
    *lost = false;
  if (read_iccid (card, protocol, &value, &why_iccid, &gone)) {
    *id = { "iccid", value };
    return true;
  }
  if (!gone && read_uid (card, protocol, &value, &why_uid, &gone)) {
    *id = { "uid", value };
    return true;
  }
  if (lost)
    *lost = gone;
  *why = gone ? why_iccid.empty () ? why_uid : why_iccid
              : "this card has no ID WayRay can read (" + why_iccid + "; " + why_uid + ")";
  return false;
}

bool
card_readers (SCARDCONTEXT ctx, std::vector<std::string> *readers, std::string *why)
{
  readers->clear ();
  DWORD len = 0;
  LONG rc = SCardListReaders (ctx, nullptr, nullptr, &len);
  if (rc == SCARD_E_NO_READERS_AVAILABLE)
    return true;
  if (rc != SCARD_S_SUCCESS) {
    *why = "the readers could not be listed (" + pcsc_error (rc) + ")";
    return false;
  }
  std::vector<char> buf (len + 1, '\0');
  rc = SCardListReaders (ctx, nullptr, buf.data (), &len);
  if (rc == SCARD_E_NO_READERS_AVAILABLE)
    return true;
  if (rc != SCARD_S_SUCCESS) {
    *why = "the readers could not be listed (" + pcsc_error (rc) + ")";
    return false;
  }
  /* A multi-string: names each ending in NUL, an empty one last. */
  for (const char *p = buf.data (); *p; p += strlen (p) + 1)
    readers->push_back (p);
  return true;
}

std::string
card_pick_reader (const std::vector<std::string> &readers, const std::string &wanted)
{
  for (const std::string &r : readers)
    if (wanted.empty () || r == wanted)
      return r;
  for (const std::string &r : readers)
    if (r.rfind (wanted, 0) == 0)
      return r;
  return "";
}

bool
card_read_in_reader (const std::string &reader, CardIdentity *id, std::string *reader_used, std::string *why)
{
  SCARDCONTEXT ctx = 0;
  LONG rc = SCardEstablishContext (SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx);
  if (rc != SCARD_S_SUCCESS) {
    *why = "the smart card service is not reachable (" + pcsc_error (rc) + "; is pcscd running?)";
    return false;
  }
  std::vector<std::string> readers;
  bool ok = card_readers (ctx, &readers, why);
  std::string name = ok ? card_pick_reader (readers, reader) : "";
  if (ok && name.empty ()) {
    *why = readers.empty () ? "there is no smart card reader" : "there is no reader named '" + reader + "'";
    ok = false;
  }
  SCARDHANDLE card = 0;
  DWORD protocol = 0;
  if (ok) {
    rc = SCardConnect (ctx, name.c_str (), SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card,
        &protocol);
    if (rc != SCARD_S_SUCCESS) {
      *why = rc == SCARD_E_NO_SMARTCARD || rc == SCARD_W_REMOVED_CARD ? "there is no card in '" + name + "'"
                                                                       : "the card in '" + name + "' could not be "
                                                                             "reached (" + pcsc_error (rc) + ")";
      ok = false;
    }
  }
  if (ok) {
    *reader_used = name;
    ok = card_identity_read (card, protocol, id, why);
    SCardDisconnect (card, SCARD_LEAVE_CARD);
  }
  SCardReleaseContext (ctx);
  return ok;
}

}  // namespace wayray
