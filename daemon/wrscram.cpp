/* Proof of a token without sending it (see wrscram.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrscram.h"

#include <sys/random.h>

#include <cstring>
#include <vector>

namespace wayray {

namespace {

std::string
to_hex (const guint8 *data, size_t len)
{
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < len; i++) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

bool
from_hex (const std::string &hex, std::vector<guint8> *out)
{
  if (hex.size () % 2 != 0)
    return false;
  out->clear ();
  for (size_t i = 0; i < hex.size (); i += 2) {
    int hi = g_ascii_xdigit_value (hex[i]), lo = g_ascii_xdigit_value (hex[i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out->push_back ((guint8) (hi << 4 | lo));
  }
  return true;
}

ScramKey
hmac (const guint8 *key, size_t key_len, const guint8 *data, size_t len)
{
  GHmac *h = g_hmac_new (G_CHECKSUM_SHA256, key, key_len);
  g_hmac_update (h, data, len);
  ScramKey out {};
  gsize n = out.size ();
  g_hmac_get_digest (h, out.data (), &n);
  g_hmac_unref (h);
  return out;
}

ScramKey
hmac (const ScramKey &key, const std::string &data)
{
  return hmac (key.data (), key.size (), (const guint8 *) data.data (), data.size ());
}

ScramKey
sha256 (const guint8 *data, size_t len)
{
  GChecksum *c = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (c, data, len);
  ScramKey out {};
  gsize n = out.size ();
  g_checksum_get_digest (c, out.data (), &n);
  g_checksum_free (c);
  return out;
}

/* PBKDF2-HMAC-SHA-256 with one block: the 32 bytes SCRAM uses. */
ScramKey
pbkdf2 (const std::string &secret, const std::vector<guint8> &salt, guint iterations)
{
  std::vector<guint8> first (salt);
  const guint8 one[4] = { 0, 0, 0, 1 };
  first.insert (first.end (), one, one + 4);
  const guint8 *key = (const guint8 *) secret.data ();
  ScramKey u = hmac (key, secret.size (), first.data (), first.size ());
  ScramKey out = u;
  for (guint i = 1; i < iterations; i++) {
    u = hmac (key, secret.size (), u.data (), u.size ());
    for (size_t b = 0; b < out.size (); b++)
      out[b] ^= u[b];
  }
  return out;
}

bool
key_from_hex (const std::string &hex, ScramKey *key)
{
  std::vector<guint8> v;
  if (!from_hex (hex, &v) || v.size () != key->size ())
    return false;
  memcpy (key->data (), v.data (), key->size ());
  return true;
}

}  // namespace

std::string
token_id (const std::string &token)
{
  std::string text = "wayray-token-id:" + token;
  ScramKey d = sha256 ((const guint8 *) text.data (), text.size ());
  return to_hex (d.data (), 16);
}

std::string
ScramVerifier::to_string () const
{
  return "scram-sha256:" + id + ":" + std::to_string (iterations) + ":" + salt + ":" +
      to_hex (stored_key.data (), stored_key.size ()) + ":" + to_hex (server_key.data (), server_key.size ());
}

bool
ScramVerifier::parse (const std::string &text, ScramVerifier *out)
{
  gchar **f = g_strsplit (text.c_str (), ":", 7);
  bool ok = g_strv_length (f) == 6 && g_strcmp0 (f[0], "scram-sha256") == 0;
  ScramVerifier v;
  if (ok) {
    v.id = f[1];
    guint64 it = 0;
    std::vector<guint8> salt;
    ok = g_ascii_string_to_unsigned (f[2], 10, 1, kScramMaxIterations, &it, nullptr) && v.id.size () == 32 &&
        from_hex (v.id, &salt) && from_hex (f[3], &salt) && !salt.empty () && key_from_hex (f[4], &v.stored_key) &&
        key_from_hex (f[5], &v.server_key);
    v.iterations = (guint) it;
    v.salt = f[3];
  }
  g_strfreev (f);
  if (ok)
    *out = v;
  return ok;
}

ScramVerifier
ScramVerifier::make (const std::string &token, guint iterations)
{
  ScramVerifier v;
  v.id = token_id (token);
  v.iterations = iterations;
  v.salt = scram_random_hex (16);
  ScramKey client_key {};
  scram_keys (token, v.salt, iterations, &client_key, &v.server_key);
  v.stored_key = sha256 (client_key.data (), client_key.size ());
  return v;
}

bool
scram_keys (const std::string &token, const std::string &salt_hex, guint iterations, ScramKey *client_key,
    ScramKey *server_key)
{
  std::vector<guint8> salt;
  if (!from_hex (salt_hex, &salt) || salt.empty () || salt.size () > 64 || iterations < 1 ||
      iterations > kScramMaxIterations)
    return false;
  ScramKey salted = pbkdf2 (token, salt, iterations);
  *client_key = hmac (salted, "Client Key");
  *server_key = hmac (salted, "Server Key");
  return true;
}

std::string
scram_auth_message (const std::string &id, const std::string &client_nonce, const std::string &nonce,
    const std::string &salt_hex, guint iterations, const std::string &channel_binding)
{
  return "n=" + id + ",r=" + client_nonce + ",r=" + nonce + ",s=" + salt_hex + ",i=" + std::to_string (iterations) +
      ",c=" + channel_binding;
}

std::string
scram_client_proof (const ScramKey &client_key, const std::string &auth_message)
{
  ScramKey stored = sha256 (client_key.data (), client_key.size ());
  ScramKey sig = hmac (stored, auth_message);
  for (size_t i = 0; i < sig.size (); i++)
    sig[i] ^= client_key[i];
  return to_hex (sig.data (), sig.size ());
}

std::string
scram_server_signature (const ScramKey &server_key, const std::string &auth_message)
{
  ScramKey sig = hmac (server_key, auth_message);
  return to_hex (sig.data (), sig.size ());
}

bool
scram_verify (const ScramVerifier &v, const std::string &auth_message, const std::string &proof_hex,
    ScramKey *client_key)
{
  ScramKey proof {};
  if (!key_from_hex (proof_hex, &proof))
    return false;
  ScramKey sig = hmac (v.stored_key, auth_message);
  ScramKey key {};
  for (size_t i = 0; i < key.size (); i++)
    key[i] = proof[i] ^ sig[i];
  ScramKey stored = sha256 (key.data (), key.size ());
  guint8 diff = 0;
  for (size_t i = 0; i < stored.size (); i++)
    diff |= stored[i] ^ v.stored_key[i];
  if (diff != 0)
    return false;
  *client_key = key;
  return true;
}

bool
scram_equal (const std::string &a, const std::string &b)
{
  guint8 diff = a.size () != b.size ();
  for (size_t i = 0; i < a.size () && i < b.size (); i++)
    diff |= (guint8) (a[i] ^ b[i]);
  return diff == 0;
}

std::string
ticket_proof (const ScramKey &client_key, const std::string &ticket)
{
  ScramKey p = hmac (client_key, "wayray-ticket:" + ticket);
  return to_hex (p.data (), p.size ());
}

std::string
scram_random_hex (size_t n)
{
  std::vector<guint8> bytes (n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom (bytes.data () + got, n - got, 0);
    if (r > 0)
      got += (size_t) r;
  }
  return to_hex (bytes.data (), n);
}

std::string
hex_of (const std::string &bytes)
{
  return to_hex ((const guint8 *) bytes.data (), bytes.size ());
}

bool
bytes_of_hex (const std::string &hex, std::string *bytes)
{
  std::vector<guint8> v;
  if (!from_hex (hex, &v))
    return false;
  bytes->assign (v.begin (), v.end ());
  return true;
}

std::string
card_key_auth_message (const std::string &key_id, const std::string &client_nonce, const std::string &nonce,
    const std::string &channel_binding)
{
  return "wayray-card-key,n=" + key_id + ",r=" + client_nonce + ",r=" + nonce + ",c=" + channel_binding;
}

ScramKey
card_key_ticket_key (const std::string &signature)
{
  std::string in = "wayray-card-key-ticket:" + signature;
  return sha256 ((const guint8 *) in.data (), in.size ());
}

}  // namespace wayray
