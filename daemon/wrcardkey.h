/* Smart cards with a key: the card signs, through a PKCS#11 module
 * (OpenSC's opensc-pkcs11.so by default: PIV, OpenPGP, PKCS#15 cards).
 *
 * The card's key is found by its certificate (a public object, no PIN):
 * the first certificate on the token in the reader whose private key the
 * module also lists, preferring a key usable without a PIN. The server
 * stores the certificate's public key (wayrayctl card-add --key); a login
 * is the card's signature over the login's AuthMessage, which is bound to
 * the TLS connection (docs/session-protocol.md, "Cards with a key").
 *
 * The signature: ECDSA with SHA-256 (CKM_ECDSA over our SHA-256, the
 * module's r||s turned into DER) or RSA PKCS#1 v1.5 with SHA-256
 * (CKM_SHA256_RSA_PKCS), as GnuTLS verifies them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <mutex>
#include <string>

namespace wayray {

/* The default module: OpenSC's. */
extern const char *const DEFAULT_PKCS11_MODULE;

struct CardKey {
  unsigned long slot = 0;
  std::string id;          /* the key's CKA_ID */
  std::string label;       /* its certificate's label, for people */
  std::string spki;        /* the public key, SubjectPublicKeyInfo DER */
  bool needs_pin = false;  /* the token wants a login before signing */
  bool rsa = false;        /* else ECDSA */
};

/* The key's id in the store and in hellos: the first 16 bytes of
 * SHA-256("wayray-card-key:" ‖ SPKI), hex. */
std::string card_key_id (const std::string &spki);

/* The public key of a certificate or public key file (PEM or DER), as
 * SubjectPublicKeyInfo DER; empty with @why. */
std::string card_key_spki_from_file (const std::string &path, std::string *why);

/* Checks @signature (as card_key_sign makes it) of @data by @spki. */
bool card_key_verify (const std::string &spki, const std::string &data, const std::string &signature,
    std::string *why);

/* A PKCS#11 module, loaded once. Its calls are serialized. */
class Pkcs11 {
public:
  Pkcs11 () = default;
  ~Pkcs11 ();
  Pkcs11 (const Pkcs11 &) = delete;
  Pkcs11 &operator= (const Pkcs11 &) = delete;

  bool load (const std::string &module, std::string *why);

  /* The key on the card in @reader (the slot whose description is the
   * reader's name). FALSE with @why when there is none. */
  bool find_key (const std::string &reader, CardKey *key, std::string *why);

  /* Logs in to @key's token with @pin (the card checks it): a wrong PIN
   * sets *pin_wrong. The login stays until forget () (the card came out). */
  bool login (const CardKey &key, const std::string &pin, bool *pin_wrong, std::string *why);

  /* Signs @data with @key (after login () when key.needs_pin). */
  bool sign (const CardKey &key, const std::string &data, std::string *signature, std::string *why);

  /* Ends the sessions (and their login) of @slot. */
  void forget (unsigned long slot);

private:
  struct Impl;
  Impl *impl = nullptr;
  std::mutex lock;
};

}  // namespace wayray
