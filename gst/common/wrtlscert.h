/* What the quic elements (gst/quic/gstquictls.cpp) and wayrayd's
 * per-session certificates (daemon/wrsessioncert.cpp) share about keys and
 * certificates: where the server's key and certificate live by default, and
 * how a fresh key and its certificate start out. A small static library of
 * its own (GLib and GnuTLS only), so that wayrayd needs no QUIC.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gnutls/x509.h>

#include <ctime>
#include <string>

namespace wrtls {

/* $XDG_CONFIG_HOME/wayray/@leaf. */
std::string config_file (const char *leaf);

/* The server's (a seat's) key and certificate when none are configured:
 * server-cert.pem and server-key.pem there. quicsink generates them on
 * first use; wayrayd signs session certificates with them. */
std::string default_certificate_file ();
std::string default_private_key_file ();

/* SHA-256 of DER bytes as 64 lowercase hex characters: a certificate's
 * fingerprint, as clients pin it. */
std::string fingerprint_of_der (const unsigned char *der, size_t len);

/* Accepts 64 hex digits with optional ':' separators and an optional
 * "sha256:" prefix; returns "" when @in is not such a fingerprint. */
std::string normalize_fingerprint (const std::string &in);

/* The fingerprint of the (first) certificate in the PEM file @path; ""
 * with @error saying why when it cannot be read. */
std::string certificate_file_fingerprint (const std::string &path, std::string *error);

/* A fresh ECDSA P-256 key and an unsigned certificate for it: version 3,
 * a random positive serial of full length, valid from @not_before to
 * @not_after, subject CN=@common_name, its subject key identifier, and
 * digitalSignature. @ca: a CA (CA:TRUE, keyCertSign too), else CA:FALSE.
 * The caller adds what else it needs, signs, and deinits both. Returns 0,
 * or a GnuTLS error code; then *@key and *@crt are null. */
int new_key_and_certificate (const std::string &common_name, time_t not_before, time_t not_after, bool ca,
    gnutls_x509_privkey_t *key, gnutls_x509_crt_t *crt);

}  // namespace wrtls
