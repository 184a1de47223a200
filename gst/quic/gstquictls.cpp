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
  char host[256] = "wayray";
  bool ok = false;
  int rv;

  gethostname (host, sizeof host - 1);
  std::string cn = std::string ("WayRay server ") + host;
  time_t now = time (nullptr);

  /* A self-signed root: the seat daemon serves with it and signs each
   * session's short-lived certificate with its key. */
  if ((rv = wrtls::new_key_and_certificate (cn, now - 3600, now + 10L * 365 * 24 * 3600, true, &key, &crt)) < 0
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

/* Certificates in a PEM file (0 when unreadable). */
unsigned
count_certificates (const std::string & file)
{
  gchar *text = nullptr;
  gsize len = 0;
  if (!g_file_get_contents (file.c_str (), &text, &len, nullptr))
    return 0;
  gnutls_datum_t d = { (unsigned char *) text, (unsigned) len };
  gnutls_x509_crt_t *crts = nullptr;
  unsigned n = 0;
  if (gnutls_x509_crt_list_import2 (&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0) < 0)
    n = 0;
  for (unsigned i = 0; i < n; i++)
    gnutls_x509_crt_deinit (crts[i]);
  gnutls_free (crts);
  g_free (text);
  return n;
}

}  // namespace

std::string
default_known_hosts_file ()
{
  return wrtls::config_file ("known_hosts");
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
  /* GnuTLS keeps (and sends) of a chain only what links up from the first
   * certificate, each issued by the next (subject name, key identifier),
   * and silently drops the rest. A session chain cut short that way would
   * only show as a fingerprint mismatch at the client: refuse it here. */
  unsigned in_file = count_certificates (cert_file);
  if (in_file > ncrts) {
    error = "certificate file " + cert_file + " holds " + std::to_string (in_file) + " certificates, but only "
        "the first " + std::to_string (ncrts) + " form a chain (each issued by the next one); the others "
        "would not be sent";
    gnutls_certificate_free_credentials (*cred);
    *cred = nullptr;
    return false;
  }
  return true;
}

namespace {

std::string
utc_time (time_t t)
{
  GDateTime *dt = g_date_time_new_from_unix_utc (t);
  if (!dt)
    return std::to_string ((long long) t);
  gchar *s = g_date_time_format (dt, "%Y-%m-%d %H:%M:%S UTC");
  std::string r = s;
  g_free (s);
  g_date_time_unref (dt);
  return r;
}

}  // namespace

std::string
identity_fingerprint (const gnutls_datum_t * certs, unsigned n)
{
  if (n == 0)
    return "";
  const gnutls_datum_t &id = n == 2 ? certs[1] : certs[0];
  return fingerprint_of_der (id.data, id.size);
}

/* The chain rule. The leaf must carry a valid signature by the trusted
 * second certificate's key and be within its validity period; nothing else
 * of PKIX applies: no authorities, names or key purposes are involved, the
 * pinned fingerprint is the whole trust decision (as for a single
 * certificate). gnutls_x509_crt_verify checks the issuer's name and the
 * signature (and refuses insecure signature algorithms); it runs with
 * GNUTLS_VERIFY_DISABLE_CA_SIGN because seat certificates generated before
 * they became CA roots carry neither CA:TRUE nor keyCertSign, and with its
 * time checks off, because the leaf's period is checked here (to say which
 * bound failed) and the pinned certificate's own period never mattered. */
PeerTrust
check_peer_certificates (const gnutls_datum_t * certs, unsigned n, const std::string & trusted,
    const std::string & name, std::string & detail)
{
  if (n == 0)
    return PeerTrust::MISMATCH;
  if (fingerprint_of_der (certs[0].data, certs[0].size) == trusted)
    return PeerTrust::LEAF;
  if (n < 2 || fingerprint_of_der (certs[1].data, certs[1].size) != trusted)
    return PeerTrust::MISMATCH;

  gnutls_x509_crt_t leaf = nullptr, issuer = nullptr;
  PeerTrust result = PeerTrust::BAD_SIGNATURE;
  unsigned status = 0;
  int rv;
  if ((rv = gnutls_x509_crt_init (&leaf)) < 0 || (rv = gnutls_x509_crt_init (&issuer)) < 0
      || (rv = gnutls_x509_crt_import (leaf, &certs[0], GNUTLS_X509_FMT_DER)) < 0
      || (rv = gnutls_x509_crt_import (issuer, &certs[1], GNUTLS_X509_FMT_DER)) < 0) {
    detail = std::string ("the certificates cannot be parsed: ") + gnutls_strerror (rv);
  } else if ((rv = gnutls_x509_crt_verify (leaf, &issuer, 1,
              GNUTLS_VERIFY_DISABLE_CA_SIGN | GNUTLS_VERIFY_DISABLE_TIME_CHECKS
              | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS, &status)) < 0) {
    detail = std::string ("verifying its signature failed: ") + gnutls_strerror (rv);
  } else if (status & GNUTLS_CERT_SIGNATURE_FAILURE) {
    detail = "its signature does not verify with that key";
  } else if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
    detail = "it names another issuer";
  } else if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
    detail = "it is signed with an insecure algorithm";
  } else if (status != 0) {
    gnutls_datum_t text = { nullptr, 0 };
    if (gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509, &text, 0) >= 0) {
      detail = std::string ((const char *) text.data, text.size);
      gnutls_free (text.data);
      while (!detail.empty () && (detail.back () == ' ' || detail.back () == '.'))
        detail.pop_back ();
    } else {
      detail = "verification status " + std::to_string (status);
    }
  } else {
    time_t now = time (nullptr);
    time_t not_before = gnutls_x509_crt_get_activation_time (leaf);
    time_t not_after = gnutls_x509_crt_get_expiration_time (leaf);
    if (not_before == (time_t) -1 || not_after == (time_t) -1) {
      detail = "its validity period cannot be read";
    } else if (now < not_before) {
      result = PeerTrust::NOT_YET_VALID;
      detail = "valid from " + utc_time (not_before) + ", now is " + utc_time (now);
    } else if (now > not_after) {
      result = PeerTrust::EXPIRED;
      detail = "valid until " + utc_time (not_after) + ", now is " + utc_time (now);
    } else {
      /* Every session certificate is signed by the same seat key, and each
       * session's user can read their own session's key: a chain proves
       * only the session it names. */
      char cn[256] = "";
      size_t cn_len = sizeof cn - 1;
      if (gnutls_x509_crt_get_dn_by_oid (leaf, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len) < 0)
        cn[0] = '\0';
      if (name.empty ()) {
        result = PeerTrust::WRONG_NAME;
        detail = std::string ("it names '") + cn + "', and no certificate-name says which session to expect";
      } else if (name != cn) {
        result = PeerTrust::WRONG_NAME;
        detail = std::string ("it names '") + cn + "', not '" + name + "' (certificate-name)";
      } else {
        result = PeerTrust::CHAIN;
      }
    }
  }
  if (leaf)
    gnutls_x509_crt_deinit (leaf);
  if (issuer)
    gnutls_x509_crt_deinit (issuer);
  return result;
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
