/* Per-session certificates (see wrsessioncert.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrsessioncert.h"

#include "wrtlscert.h"

#include <gio/gio.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cstring>

namespace wayray {

namespace {

constexpr const char *kSessionDnsName = "wayray-session";

/* Everything the issuing holds, released (and the seat key's bytes wiped)
 * on every path out. */
struct Issue {
  gchar *seat_cert_text = nullptr;
  gsize seat_cert_len = 0;
  gchar *seat_key_text = nullptr;
  gsize seat_key_len = 0;
  gnutls_x509_crt_t *seat_crts = nullptr;
  unsigned n_seat_crts = 0;
  gnutls_x509_privkey_t seat_key = nullptr;
  gnutls_pubkey_t seat_pub = nullptr;
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  gnutls_datum_t crt_pem = { nullptr, 0 }, seat_pem = { nullptr, 0 }, key_pem = { nullptr, 0 };

  ~Issue ()
  {
    g_free (seat_cert_text);
    if (seat_key_text) {
      gnutls_memset (seat_key_text, 0, seat_key_len);
      g_free (seat_key_text);
    }
    for (unsigned i = 0; i < n_seat_crts; i++)
      gnutls_x509_crt_deinit (seat_crts[i]);
    gnutls_free (seat_crts);
    if (seat_key)
      gnutls_x509_privkey_deinit (seat_key);
    if (seat_pub)
      gnutls_pubkey_deinit (seat_pub);
    if (key)
      gnutls_x509_privkey_deinit (key);
    if (crt)
      gnutls_x509_crt_deinit (crt);
    gnutls_free (crt_pem.data);
    gnutls_free (seat_pem.data);
    if (key_pem.data) {
      gnutls_memset (key_pem.data, 0, key_pem.size);
      gnutls_free (key_pem.data);
    }
  }
};

bool
fail (GError **error, const char *what, const std::string &file, int rv)
{
  if (file.empty ())
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", what, gnutls_strerror (rv));
  else
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s %s: %s", what, file.c_str (), gnutls_strerror (rv));
  return false;
}

bool
same_key_id (gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
  unsigned char a[64], b[64];
  size_t alen = sizeof a, blen = sizeof b;
  return gnutls_x509_crt_get_key_id (crt, 0, a, &alen) >= 0 && gnutls_x509_privkey_get_key_id (key, 0, b, &blen) >= 0
      && alen == blen && memcmp (a, b, alen) == 0;
}

}  // namespace

std::string
default_seat_certificate_file ()
{
  return wrtls::default_certificate_file ();
}

std::string
default_seat_key_file ()
{
  return wrtls::default_private_key_file ();
}

bool
issue_session_certificate (const std::string &seat_cert_file, const std::string &seat_key_file,
    const std::string &common_name, guint64 validity_seconds, std::string *chain_pem, std::string *key_pem,
    GError **error)
{
  time_t now = time (nullptr);
  /* Capped so that the end stays a valid time_t (and within X.509's range). */
  guint64 validity = MIN (validity_seconds, (guint64) 100 * 365 * 24 * 3600);
  return issue_session_certificate_for_period (seat_cert_file, seat_key_file, common_name, now - 60,
      now + (time_t) validity, chain_pem, key_pem, error);
}

bool
issue_session_certificate_for_period (const std::string &seat_cert_file, const std::string &seat_key_file,
    const std::string &common_name, time_t not_before, time_t not_after, std::string *chain_pem,
    std::string *key_pem, GError **error)
{
  g_return_val_if_fail (chain_pem != nullptr && key_pem != nullptr, false);
  g_return_val_if_fail (error == nullptr || *error == nullptr, false);
  Issue is;
  GError *err = nullptr;
  int rv;

  /* The seat's certificate (the first of the file) and key. */
  if (!g_file_get_contents (seat_cert_file.c_str (), &is.seat_cert_text, &is.seat_cert_len, &err)) {
    g_propagate_prefixed_error (error, err, "cannot read the seat certificate: ");
    return false;
  }
  if (!g_file_get_contents (seat_key_file.c_str (), &is.seat_key_text, &is.seat_key_len, &err)) {
    g_propagate_prefixed_error (error, err, "cannot read the seat's private key: ");
    return false;
  }
  gnutls_datum_t d = { (unsigned char *) is.seat_cert_text, (unsigned) is.seat_cert_len };
  if ((rv = gnutls_x509_crt_list_import2 (&is.seat_crts, &is.n_seat_crts, &d, GNUTLS_X509_FMT_PEM, 0)) < 0
      || is.n_seat_crts == 0)
    return fail (error, "no usable certificate in seat certificate file", seat_cert_file,
        rv < 0 ? rv : GNUTLS_E_NO_CERTIFICATE_FOUND);
  gnutls_x509_crt_t seat_crt = is.seat_crts[0];
  d = { (unsigned char *) is.seat_key_text, (unsigned) is.seat_key_len };
  if ((rv = gnutls_x509_privkey_init (&is.seat_key)) < 0
      || (rv = gnutls_x509_privkey_import2 (is.seat_key, &d, GNUTLS_X509_FMT_PEM, nullptr, 0)) < 0)
    return fail (error, "unusable seat private key in", seat_key_file, rv);
  if (!same_key_id (seat_crt, is.seat_key)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
        "the seat's private key %s does not belong to the seat certificate %s", seat_key_file.c_str (),
        seat_cert_file.c_str ());
    return false;
  }
  /* The digest the seat's key signs with (SHA-256 for ECDSA P-256 and RSA). */
  gnutls_digest_algorithm_t dig = GNUTLS_DIG_SHA256;
  if ((rv = gnutls_pubkey_init (&is.seat_pub)) < 0 || (rv = gnutls_pubkey_import_x509 (is.seat_pub, seat_crt, 0)) < 0
      || (rv = gnutls_pubkey_get_preferred_hash_algorithm (is.seat_pub, &dig, nullptr)) < 0)
    return fail (error, "unusable public key in seat certificate", seat_cert_file, rv);

  /* The session's key and certificate (not a CA), for a TLS server. */
  unsigned char seat_key_id[64];
  size_t seat_key_id_size = sizeof seat_key_id;
  if ((rv = wrtls::new_key_and_certificate (common_name, not_before, not_after, false, &is.key, &is.crt)) < 0
      || (rv = gnutls_x509_crt_set_key_purpose_oid (is.crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0
      || (rv = gnutls_x509_crt_set_subject_alt_name (is.crt, GNUTLS_SAN_DNSNAME, kSessionDnsName,
              strlen (kSessionDnsName), GNUTLS_FSAN_SET)) < 0)
    return fail (error, "creating the session key and certificate failed", "", rv);
  /* Names the seat's key as the signer when the seat certificate says
   * which key it has (generated ones do). */
  if (gnutls_x509_crt_get_subject_key_id (seat_crt, seat_key_id, &seat_key_id_size, nullptr) >= 0
      && (rv = gnutls_x509_crt_set_authority_key_id (is.crt, seat_key_id, seat_key_id_size)) < 0)
    return fail (error, "creating the session certificate failed", "", rv);
  /* Sets the issuer to the seat certificate's subject. */
  if ((rv = gnutls_x509_crt_sign2 (is.crt, seat_crt, is.seat_key, dig, 0)) < 0)
    return fail (error, "cannot sign the session certificate with the seat's key", seat_key_file, rv);

  if ((rv = gnutls_x509_crt_export2 (is.crt, GNUTLS_X509_FMT_PEM, &is.crt_pem)) < 0
      || (rv = gnutls_x509_crt_export2 (seat_crt, GNUTLS_X509_FMT_PEM, &is.seat_pem)) < 0
      || (rv = gnutls_x509_privkey_export2 (is.key, GNUTLS_X509_FMT_PEM, &is.key_pem)) < 0)
    return fail (error, "exporting the session key and certificate failed", "", rv);
  chain_pem->assign ((const char *) is.crt_pem.data, is.crt_pem.size);
  chain_pem->append ((const char *) is.seat_pem.data, is.seat_pem.size);
  key_pem->assign ((const char *) is.key_pem.data, is.key_pem.size);
  return true;
}

}  // namespace wayray
