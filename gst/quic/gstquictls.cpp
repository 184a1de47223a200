/* WayRay transport security (see gstquictls.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquictls.h"

#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <ctime>
#include <fstream>
#include <sstream>

namespace wrq {

namespace {

std::string
config_path (const char *leaf)
{
  gchar *p = g_build_filename (g_get_user_config_dir (), "wayray", leaf, nullptr);
  std::string s = p;
  g_free (p);
  return s;
}

bool
write_file (const std::string & path, const gnutls_datum_t & d, int mode, std::string & error)
{
  gchar *dir = g_path_get_dirname (path.c_str ());
  g_mkdir_with_parents (dir, 0700);
  g_free (dir);
  GError *err = nullptr;
  if (!g_file_set_contents_full (path.c_str (), (const gchar *) d.data, d.size,
          G_FILE_SET_CONTENTS_CONSISTENT, mode, &err)) {
    error = std::string ("cannot write ") + path + ": " + err->message;
    g_error_free (err);
    return false;
  }
  return true;
}

bool
generate (const std::string & cert_file, const std::string & key_file, std::string & error)
{
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  gnutls_datum_t kpem = { nullptr, 0 }, cpem = { nullptr, 0 };
  unsigned char serial[16];
  char host[256] = "wayray";
  bool ok = false;
  int rv;

  gnutls_rnd (GNUTLS_RND_NONCE, serial, sizeof serial);
  serial[0] &= 0x7f;   /* positive */
  gethostname (host, sizeof host - 1);
  std::string cn = std::string ("WayRay server ") + host;
  time_t now = time (nullptr);

  if ((rv = gnutls_x509_privkey_init (&key)) < 0
      || (rv = gnutls_x509_privkey_generate (key, GNUTLS_PK_ECDSA,
              GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0
      || (rv = gnutls_x509_crt_init (&crt)) < 0
      || (rv = gnutls_x509_crt_set_version (crt, 3)) < 0
      || (rv = gnutls_x509_crt_set_serial (crt, serial, sizeof serial)) < 0
      || (rv = gnutls_x509_crt_set_activation_time (crt, now - 3600)) < 0
      || (rv = gnutls_x509_crt_set_expiration_time (crt, now + 10L * 365 * 24 * 3600)) < 0
      || (rv = gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0,
              cn.c_str (), cn.size ())) < 0
      || (rv = gnutls_x509_crt_set_key (crt, key)) < 0
      || (rv = gnutls_x509_crt_set_key_usage (crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0
      || (rv = gnutls_x509_crt_sign2 (crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0
      || (rv = gnutls_x509_privkey_export2 (key, GNUTLS_X509_FMT_PEM, &kpem)) < 0
      || (rv = gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_PEM, &cpem)) < 0) {
    error = std::string ("generating the server key and certificate failed: ") + gnutls_strerror (rv);
  } else {
    ok = write_file (key_file, kpem, 0600, error) && write_file (cert_file, cpem, 0644, error);
  }
  gnutls_free (kpem.data);
  gnutls_free (cpem.data);
  if (crt)
    gnutls_x509_crt_deinit (crt);
  if (key)
    gnutls_x509_privkey_deinit (key);
  return ok;
}

}  // namespace

std::string
default_certificate_file ()
{
  return config_path ("server-cert.pem");
}

std::string
default_private_key_file ()
{
  return config_path ("server-key.pem");
}

std::string
default_known_hosts_file ()
{
  return config_path ("known_hosts");
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
normalize_fingerprint (const std::string & in)
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

bool
load_server_credentials (const std::string & cert_file, const std::string & key_file,
    gnutls_certificate_credentials_t * cred, std::string & fingerprint, std::string & error)
{
  bool have_cert = g_file_test (cert_file.c_str (), G_FILE_TEST_EXISTS);
  bool have_key = g_file_test (key_file.c_str (), G_FILE_TEST_EXISTS);
  if (have_cert != have_key) {
    error = "only one of certificate " + cert_file + " and private key " + key_file
        + " exists; provide both or neither (then both are generated)";
    return false;
  }
  if (!have_cert && !generate (cert_file, key_file, error))
    return false;

  gnutls_certificate_allocate_credentials (cred);
  int rv = gnutls_certificate_set_x509_key_file (*cred, cert_file.c_str (), key_file.c_str (),
      GNUTLS_X509_FMT_PEM);
  if (rv < 0) {
    error = "cannot load certificate " + cert_file + " / key " + key_file + ": " + gnutls_strerror (rv);
    gnutls_certificate_free_credentials (*cred);
    *cred = nullptr;
    return false;
  }
  gnutls_datum_t der = { nullptr, 0 };
  gnutls_x509_crt_t *crts = nullptr;
  unsigned ncrts = 0;
  if (gnutls_certificate_get_x509_crt (*cred, 0, &crts, &ncrts) >= 0 && ncrts > 0) {
    if (gnutls_x509_crt_export2 (crts[0], GNUTLS_X509_FMT_DER, &der) >= 0) {
      fingerprint = fingerprint_of_der (der.data, der.size);
      gnutls_free (der.data);
    }
    for (unsigned i = 0; i < ncrts; i++)
      gnutls_x509_crt_deinit (crts[i]);
    gnutls_free (crts);
  }
  return true;
}

std::string
KnownHosts::lookup (const std::string & file, const std::string & host_port)
{
  std::ifstream in (file);
  std::string line;
  while (std::getline (in, line)) {
    std::istringstream ls (line);
    std::string h, fp;
    if (!(ls >> h) || h[0] == '#' || !(ls >> fp))
      continue;
    if (h == host_port)
      return normalize_fingerprint (fp);
  }
  return "";
}

bool
KnownHosts::add (const std::string & file, const std::string & host_port,
    const std::string & fingerprint, std::string & error)
{
  gchar *dir = g_path_get_dirname (file.c_str ());
  g_mkdir_with_parents (dir, 0700);
  g_free (dir);
  std::ofstream out (file, std::ios::app);
  if (!out) {
    error = "cannot append to known-hosts file " + file;
    return false;
  }
  out << host_port << " " << fingerprint << "\n";
  return bool (out);
}

}  // namespace wrq
