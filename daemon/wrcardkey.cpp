/* Smart cards with a key, through PKCS#11.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcardkey.h"

#include <dlfcn.h>
#include <glib.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <p11-kit/pkcs11.h>

#include <map>
#include <vector>

namespace wayray {

const char *const DEFAULT_PKCS11_MODULE = "opensc-pkcs11.so";

std::string
card_key_id (const std::string &spki)
{
  std::string in = "wayray-card-key:" + spki;
  gchar *hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) in.data (), in.size ());
  std::string id (hex, 32);
  g_free (hex);
  return id;
}

/* The SubjectPublicKeyInfo of @pub, DER. */
static std::string
export_spki (gnutls_pubkey_t pub)
{
  gnutls_datum_t out = { nullptr, 0 };
  std::string spki;
  if (gnutls_pubkey_export2 (pub, GNUTLS_X509_FMT_DER, &out) == 0)
    spki.assign ((const char *) out.data, out.size);
  gnutls_free (out.data);
  return spki;
}

/* A certificate's public key, or "" when @der is none. */
static std::string
spki_of_certificate (const std::string &data, gnutls_x509_crt_fmt_t fmt)
{
  gnutls_x509_crt_t crt;
  gnutls_pubkey_t pub;
  std::string spki;
  gnutls_x509_crt_init (&crt);
  gnutls_pubkey_init (&pub);
  gnutls_datum_t d = { (unsigned char *) data.data (), (unsigned) data.size () };
  if (gnutls_x509_crt_import (crt, &d, fmt) == 0 && gnutls_pubkey_import_x509 (pub, crt, 0) == 0)
    spki = export_spki (pub);
  gnutls_pubkey_deinit (pub);
  gnutls_x509_crt_deinit (crt);
  return spki;
}

std::string
card_key_spki_from_file (const std::string &path, std::string *why)
{
  gchar *text = nullptr;
  gsize len = 0;
  GError *err = nullptr;
  if (!g_file_get_contents (path.c_str (), &text, &len, &err)) {
    *why = err->message;
    g_error_free (err);
    return "";
  }
  std::string data (text, len);
  g_free (text);
  for (gnutls_x509_crt_fmt_t fmt : { GNUTLS_X509_FMT_PEM, GNUTLS_X509_FMT_DER }) {
    std::string spki = spki_of_certificate (data, fmt);
    if (!spki.empty ())
      return spki;
    gnutls_pubkey_t pub;
    gnutls_pubkey_init (&pub);
    gnutls_datum_t d = { (unsigned char *) data.data (), (unsigned) data.size () };
    if (gnutls_pubkey_import (pub, &d, fmt) == 0)
      spki = export_spki (pub);
    gnutls_pubkey_deinit (pub);
    if (!spki.empty ())
      return spki;
  }
  *why = path + " holds neither a certificate nor a public key (PEM or DER)";
  return "";
}

bool
card_key_verify (const std::string &spki, const std::string &data, const std::string &signature, std::string *why)
{
  gnutls_pubkey_t pub;
  gnutls_pubkey_init (&pub);
  gnutls_datum_t k = { (unsigned char *) spki.data (), (unsigned) spki.size () };
  bool ok = false;
  if (gnutls_pubkey_import (pub, &k, GNUTLS_X509_FMT_DER) != 0) {
    *why = "the stored public key is unreadable";
  } else {
    int pk = gnutls_pubkey_get_pk_algorithm (pub, nullptr);
    gnutls_sign_algorithm_t algo = pk == GNUTLS_PK_RSA ? GNUTLS_SIGN_RSA_SHA256
        : pk == GNUTLS_PK_ECDSA ? GNUTLS_SIGN_ECDSA_SHA256 : GNUTLS_SIGN_UNKNOWN;
    gnutls_datum_t d = { (unsigned char *) data.data (), (unsigned) data.size () };
    gnutls_datum_t s = { (unsigned char *) signature.data (), (unsigned) signature.size () };
    if (algo == GNUTLS_SIGN_UNKNOWN)
      *why = "the stored key is neither RSA nor ECDSA";
    else if (gnutls_pubkey_verify_data2 (pub, algo, 0, &d, &s) < 0)
      *why = "the card's signature does not verify";
    else
      ok = true;
  }
  gnutls_pubkey_deinit (pub);
  return ok;
}

/* ---- The module ---------------------------------------------------------- */

using Pkcs11Sessions = std::map<CK_SLOT_ID, CK_SESSION_HANDLE>;

struct Pkcs11::Impl {
  void *handle = nullptr;
  CK_FUNCTION_LIST_PTR f = nullptr;
  Pkcs11Sessions sessions;      /* open, maybe logged in */
};

static std::string
ck_error (CK_RV rv)
{
  switch (rv) {
    case CKR_TOKEN_NOT_PRESENT: case CKR_DEVICE_REMOVED: return "the card was taken out";
    case CKR_PIN_LOCKED: return "the card's PIN is blocked";
    case CKR_DEVICE_ERROR: return "the card or reader failed";
    default: break;
  }
  char s[32];
  g_snprintf (s, sizeof s, "PKCS#11 error 0x%lx", (unsigned long) rv);
  return s;
}

Pkcs11::~Pkcs11 ()
{
  if (!impl)
    return;
  for (auto &kv : impl->sessions)
    impl->f->C_CloseSession (kv.second);
  impl->f->C_Finalize (nullptr);
  dlclose (impl->handle);
  delete impl;
}

bool
Pkcs11::load (const std::string &module, std::string *why)
{
  std::lock_guard<std::mutex> g (lock);
  if (impl)
    return true;
  void *h = dlopen (module.c_str (), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    *why = "the PKCS#11 module " + module + " cannot be loaded (" + dlerror () + ")";
    return false;
  }
  auto get = (CK_C_GetFunctionList) dlsym (h, "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR f = nullptr;
  if (!get || get (&f) != CKR_OK || !f) {
    *why = module + " is not a PKCS#11 module";
    dlclose (h);
    return false;
  }
  CK_C_INITIALIZE_ARGS args = {};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = f->C_Initialize (&args);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    *why = module + " would not start (" + ck_error (rv) + ")";
    dlclose (h);
    return false;
  }
  impl = new Impl;
  impl->handle = h;
  impl->f = f;
  return true;
}

/* The slot whose description is @reader's name (PKCS#11 cuts it at 64). */
static bool
slot_of_reader (CK_FUNCTION_LIST_PTR f, const std::string &reader, CK_SLOT_ID *slot, std::string *why)
{
  CK_ULONG n = 0;
  if (f->C_GetSlotList (CK_TRUE, nullptr, &n) != CKR_OK) {
    *why = "the PKCS#11 module lists no slots";
    return false;
  }
  std::vector<CK_SLOT_ID> slots (n);
  if (n && f->C_GetSlotList (CK_TRUE, slots.data (), &n) != CKR_OK)
    n = 0;
  for (CK_ULONG i = 0; i < n; i++) {
    CK_SLOT_INFO info;
    if (f->C_GetSlotInfo (slots[i], &info) != CKR_OK)
      continue;
    std::string desc ((const char *) info.slotDescription, sizeof info.slotDescription);
    desc.erase (desc.find_last_not_of (' ') + 1);
    if (!desc.empty () && reader.compare (0, desc.size (), desc) == 0) {
      *slot = slots[i];
      return true;
    }
  }
  *why = "the card in '" + reader + "' has no token the PKCS#11 module knows";
  return false;
}

static std::string
attribute (CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
  CK_ATTRIBUTE a = { type, nullptr, 0 };
  if (f->C_GetAttributeValue (s, o, &a, 1) != CKR_OK || a.ulValueLen == (CK_ULONG) -1 || a.ulValueLen > 65536)
    return "";
  std::string v (a.ulValueLen, '\0');
  a.pValue = &v[0];
  if (f->C_GetAttributeValue (s, o, &a, 1) != CKR_OK)
    return "";
  return v;
}

/* The objects of @cls (with the CKA_ID @id, when given). */
static std::vector<CK_OBJECT_HANDLE>
objects (CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const std::string *id = nullptr)
{
  CK_ATTRIBUTE tmpl[2] = { { CKA_CLASS, &cls, sizeof cls }, { CKA_ID, nullptr, 0 } };
  if (id) {
    tmpl[1].pValue = (void *) id->data ();
    tmpl[1].ulValueLen = id->size ();
  }
  std::vector<CK_OBJECT_HANDLE> out;
  if (f->C_FindObjectsInit (s, tmpl, id ? 2 : 1) != CKR_OK)
    return out;
  CK_OBJECT_HANDLE o[16];
  CK_ULONG n = 0;
  while (out.size () < 64 && f->C_FindObjects (s, o, 16, &n) == CKR_OK && n > 0)
    out.insert (out.end (), o, o + n);
  f->C_FindObjectsFinal (s);
  return out;
}

bool
Pkcs11::find_key (const std::string &reader, CardKey *key, std::string *why)
{
  std::lock_guard<std::mutex> g (lock);
  if (!impl) {
    *why = "no PKCS#11 module";
    return false;
  }
  CK_FUNCTION_LIST_PTR f = impl->f;
  CK_SLOT_ID slot;
  if (!slot_of_reader (f, reader, &slot, why))
    return false;
  CK_TOKEN_INFO token;
  CK_RV rv = f->C_GetTokenInfo (slot, &token);
  if (rv != CKR_OK) {
    *why = "the card's token cannot be read (" + ck_error (rv) + ")";
    return false;
  }
  CK_SESSION_HANDLE s;
  rv = f->C_OpenSession (slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s);
  if (rv != CKR_OK) {
    *why = "the card's token cannot be opened (" + ck_error (rv) + ")";
    return false;
  }
  bool found = false;
  for (CK_OBJECT_HANDLE crt : objects (f, s, CKO_CERTIFICATE)) {
    std::string id = attribute (f, s, crt, CKA_ID);
    std::string spki = spki_of_certificate (attribute (f, s, crt, CKA_VALUE), GNUTLS_X509_FMT_DER);
    if (id.empty () || spki.empty ())
      continue;
    /* A private key listed before any login signs without a PIN. */
    bool open_key = !objects (f, s, CKO_PRIVATE_KEY, &id).empty ();
    if (found && (!open_key || !key->needs_pin))
      continue;
    gnutls_pubkey_t pub;
    gnutls_pubkey_init (&pub);
    gnutls_datum_t d = { (unsigned char *) spki.data (), (unsigned) spki.size () };
    int pk = gnutls_pubkey_import (pub, &d, GNUTLS_X509_FMT_DER) == 0 ? gnutls_pubkey_get_pk_algorithm (pub, nullptr)
                                                                       : -1;
    gnutls_pubkey_deinit (pub);
    if (pk != GNUTLS_PK_RSA && pk != GNUTLS_PK_ECDSA)
      continue;
    key->slot = slot;
    key->id = id;
    key->label = attribute (f, s, crt, CKA_LABEL);
    key->spki = spki;
    key->rsa = pk == GNUTLS_PK_RSA;
    key->needs_pin = !open_key && (token.flags & CKF_LOGIN_REQUIRED);
    found = true;
  }
  f->C_CloseSession (s);
  if (!found)
    *why = "the card has no certificate with an RSA or ECDSA key";
  return found;
}

void
Pkcs11::forget (unsigned long slot)
{
  std::lock_guard<std::mutex> g (lock);
  if (!impl)
    return;
  auto it = impl->sessions.find (slot);
  if (it == impl->sessions.end ())
    return;
  impl->f->C_CloseSession (it->second);
  impl->sessions.erase (it);
}

/* The open session on @slot, opened when there is none (under lock). */
static bool
session_of (Pkcs11Sessions &sessions, CK_FUNCTION_LIST_PTR f, CK_SLOT_ID slot, CK_SESSION_HANDLE *s,
    std::string *why)
{
  auto it = sessions.find (slot);
  if (it != sessions.end ()) {
    *s = it->second;
    return true;
  }
  CK_RV rv = f->C_OpenSession (slot, CKF_SERIAL_SESSION, nullptr, nullptr, s);
  if (rv != CKR_OK) {
    *why = "the card's token cannot be opened (" + ck_error (rv) + ")";
    return false;
  }
  sessions[slot] = *s;
  return true;
}

bool
Pkcs11::login (const CardKey &key, const std::string &pin, bool *pin_wrong, std::string *why)
{
  std::lock_guard<std::mutex> g (lock);
  *pin_wrong = false;
  CK_SESSION_HANDLE s;
  if (!impl) {
    *why = "no PKCS#11 module";
    return false;
  }
  if (!session_of (impl->sessions, impl->f, key.slot, &s, why))
    return false;
  CK_RV rv = impl->f->C_Login (s, CKU_USER, (CK_UTF8CHAR_PTR) pin.data (), pin.size ());
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
    return true;
  if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE) {
    *pin_wrong = true;
    *why = "wrong PIN";
    return false;
  }
  *why = "the card refused the PIN (" + ck_error (rv) + ")";
  return false;
}

bool
Pkcs11::sign (const CardKey &key, const std::string &data, std::string *signature, std::string *why)
{
  std::lock_guard<std::mutex> g (lock);
  if (!impl) {
    *why = "no PKCS#11 module";
    return false;
  }
  CK_FUNCTION_LIST_PTR f = impl->f;
  CK_SESSION_HANDLE s;
  CK_RV rv;
  if (!session_of (impl->sessions, f, key.slot, &s, why))
    return false;
  auto drop = [&] {
    f->C_CloseSession (s);
    impl->sessions.erase (key.slot);
  };
  std::vector<CK_OBJECT_HANDLE> keys = objects (f, s, CKO_PRIVATE_KEY, &key.id);
  if (keys.empty ()) {
    *why = "the card's private key is not there";
    drop ();
    return false;
  }
  std::string input = data;
  CK_MECHANISM mech = { key.rsa ? CKM_SHA256_RSA_PKCS : CKM_ECDSA, nullptr, 0 };
  if (!key.rsa) {
    /* CKM_ECDSA signs a hash it is given. */
    GChecksum *sum = g_checksum_new (G_CHECKSUM_SHA256);
    g_checksum_update (sum, (const guchar *) data.data (), data.size ());
    guint8 digest[32];
    gsize n = sizeof digest;
    g_checksum_get_digest (sum, digest, &n);
    g_checksum_free (sum);
    input.assign ((const char *) digest, n);
  }
  rv = f->C_SignInit (s, &mech, keys[0]);
  CK_ULONG len = 0;
  if (rv == CKR_OK)
    rv = f->C_Sign (s, (CK_BYTE_PTR) input.data (), input.size (), nullptr, &len);
  std::string sig (len, '\0');
  if (rv == CKR_OK && len > 0 && len <= 1024)
    rv = f->C_Sign (s, (CK_BYTE_PTR) input.data (), input.size (), (CK_BYTE_PTR) &sig[0], &len);
  else if (rv == CKR_OK)
    rv = CKR_GENERAL_ERROR;
  if (rv == CKR_USER_NOT_LOGGED_IN) {
    *why = "the card wants its PIN";
    return false;
  }
  if (rv != CKR_OK) {
    *why = "the card did not sign (" + ck_error (rv) + ")";
    drop ();
    return false;
  }
  sig.resize (len);
  if (key.rsa) {
    *signature = sig;
    return true;
  }
  /* r || s, each half the length: DER, as GnuTLS verifies ECDSA. */
  gnutls_datum_t r = { (unsigned char *) sig.data (), (unsigned) len / 2 };
  gnutls_datum_t sv = { (unsigned char *) sig.data () + len / 2, (unsigned) len / 2 };
  gnutls_datum_t der = { nullptr, 0 };
  if (len % 2 || gnutls_encode_rs_value (&der, &r, &sv) != 0) {
    *why = "the card's ECDSA signature is malformed";
    return false;
  }
  signature->assign ((const char *) der.data, der.size);
  gnutls_free (der.data);
  return true;
}

}  // namespace wayray
