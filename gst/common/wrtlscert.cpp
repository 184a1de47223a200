/* Keys and certificates shared by the quic elements and wayrayd (see
 * wrtlscert.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrtlscert.h"

#include <glib.h>
#include <gnutls/crypto.h>

namespace wrtls {

std::string
config_file (const char *leaf)
{
  gchar *p = g_build_filename (g_get_user_config_dir (), "wayray", leaf, nullptr);
  std::string s = p;
  g_free (p);
  return s;
}

std::string
default_certificate_file ()
{
  return config_file ("server-cert.pem");
}

std::string
default_private_key_file ()
{
  return config_file ("server-key.pem");
}

std::string
fingerprint_of_der (const unsigned char *der, size_t len)
{
  unsigned char digest[32];
  gnutls_hash_fast (GNUTLS_DIG_SHA256, der, len, digest);
  static const char hex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : digest) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

std::string
normalize_fingerprint (const std::string &in)
{
  std::string s = in;
  if (g_ascii_strncasecmp (s.c_str (), "sha256:", 7) == 0)
    s = s.substr (7);
  std::string out;
  for (char c : s) {
    if (c == ':' || c == ' ')
      continue;
    if (!g_ascii_isxdigit (c))
      return "";
    out += g_ascii_tolower (c);
  }
  return out.size () == 64 ? out : "";
}

std::string
certificate_file_fingerprint (const std::string &path, std::string *error)
{
  gnutls_datum_t pem = { nullptr, 0 };
  int rv = gnutls_load_file (path.c_str (), &pem);
  if (rv < 0) {
    *error = "cannot read " + path + ": " + gnutls_strerror (rv);
    return "";
  }
  gnutls_x509_crt_t crt = nullptr;
  gnutls_datum_t der = { nullptr, 0 };
  std::string fp;
  if ((rv = gnutls_x509_crt_init (&crt)) < 0 || (rv = gnutls_x509_crt_import (crt, &pem, GNUTLS_X509_FMT_PEM)) < 0 ||
      (rv = gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_DER, &der)) < 0)
    *error = path + " holds no certificate: " + gnutls_strerror (rv);
  else
    fp = fingerprint_of_der (der.data, der.size);
  gnutls_free (der.data);
  if (crt)
    gnutls_x509_crt_deinit (crt);
  gnutls_free (pem.data);
  return fp;
}

int
new_key_and_certificate (const std::string &common_name, time_t not_before, time_t not_after, bool ca,
    gnutls_x509_privkey_t *key, gnutls_x509_crt_t *crt)
{
  unsigned char serial[16];
  unsigned char key_id[64];
  size_t key_id_size = sizeof key_id;
  unsigned usage = GNUTLS_KEY_DIGITAL_SIGNATURE | (ca ? GNUTLS_KEY_KEY_CERT_SIGN : 0);
  int rv;

  *key = nullptr;
  *crt = nullptr;
  gnutls_rnd (GNUTLS_RND_NONCE, serial, sizeof serial);
  serial[0] &= 0x7f;   /* positive */
  serial[0] |= 0x01;   /* and of full length */
  if ((rv = gnutls_x509_privkey_init (key)) < 0
      || (rv = gnutls_x509_privkey_generate (*key, GNUTLS_PK_ECDSA,
              GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0
      || (rv = gnutls_x509_crt_init (crt)) < 0
      || (rv = gnutls_x509_crt_set_version (*crt, 3)) < 0
      || (rv = gnutls_x509_crt_set_serial (*crt, serial, sizeof serial)) < 0
      || (rv = gnutls_x509_crt_set_activation_time (*crt, not_before)) < 0
      || (rv = gnutls_x509_crt_set_expiration_time (*crt, not_after)) < 0
      || (rv = gnutls_x509_crt_set_dn_by_oid (*crt, GNUTLS_OID_X520_COMMON_NAME, 0, common_name.data (),
              common_name.size ())) < 0
      || (rv = gnutls_x509_crt_set_key (*crt, *key)) < 0
      || (rv = gnutls_x509_crt_set_basic_constraints (*crt, ca ? 1 : 0, -1)) < 0
      || (rv = gnutls_x509_crt_set_key_usage (*crt, usage)) < 0
      || (rv = gnutls_x509_crt_get_key_id (*crt, 0, key_id, &key_id_size)) < 0
      || (rv = gnutls_x509_crt_set_subject_key_id (*crt, key_id, key_id_size)) < 0) {
    if (*crt)
      gnutls_x509_crt_deinit (*crt);
    if (*key)
      gnutls_x509_privkey_deinit (*key);
    *key = nullptr;
    *crt = nullptr;
    return rv;
  }
  return 0;
}

}  // namespace wrtls
