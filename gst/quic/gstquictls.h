/* WayRay transport security: the server's key and certificate, and the
 * client's pinning of the server certificate's SHA-256 fingerprint (trust on
 * first use, remembered in a known-hosts file).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gnutls/gnutls.h>

#include "wrtlscert.h"

#include <string>

namespace wrq {

/* The ALPN protocol of WayRay's transport, QUIC and TCP fallback alike. */
constexpr const char *kAlpn = "wayray/1";

/* Default locations under $XDG_CONFIG_HOME/wayray/: the key and
 * certificate are the ones wayrayd signs session certificates with. */
using wrtls::default_certificate_file;
using wrtls::default_private_key_file;
std::string default_known_hosts_file ();

/* Loads the PEM key + certificate; when neither file exists, generates an
 * ECDSA P-256 key and a self-signed certificate valid for 10 years, writes
 * them (key mode 0600) and loads them. @fingerprint receives the
 * certificate's SHA-256 in lowercase hex. */
bool load_server_credentials (const std::string & cert_file, const std::string & key_file,
    gnutls_certificate_credentials_t * cred, std::string & fingerprint, std::string & error);

/* Fingerprints: wrtlscert.h. */
using wrtls::fingerprint_of_der;
using wrtls::normalize_fingerprint;

/* How the certificates a server presented (DER, leaf first, @n of them)
 * relate to the fingerprint a client trusts (pinned, or from known-hosts).
 * A server may present its own certificate, or a short-lived session
 * certificate followed by the certificate of the key that signed it (a seat
 * daemon's, see daemon/wrsessioncert.h). The first two results accept. */
enum class PeerTrust {
  LEAF,            /* the first certificate is the trusted one */
  CHAIN,           /* the second is, it signed the first, which is valid now and carries @name */
  MISMATCH,        /* neither the first nor the second is the trusted one */
  BAD_SIGNATURE,   /* the second is, but did not sign the first */
  EXPIRED,         /* the second is and signed the first, whose notAfter has passed */
  NOT_YET_VALID,   /* … whose notBefore has not come yet */
  WRONG_NAME,      /* … valid, but its common name is not @name (or @name is empty) */
};

/* @detail receives the reason in words for the refusals BAD_SIGNATURE,
 * EXPIRED, NOT_YET_VALID and WRONG_NAME. @name is the common name a chained
 * certificate must carry (the certificate-name property): the session a
 * client was sent to. */
PeerTrust check_peer_certificates (const gnutls_datum_t *certs, unsigned n, const std::string &trusted,
    const std::string &name, std::string &detail);

/* The fingerprint that identifies a server presenting @certs, the one trust
 * on first use records: the signer's (second certificate) for a chain of
 * two, the certificate's own otherwise. */
std::string identity_fingerprint (const gnutls_datum_t * certs, unsigned n);

/* Known-hosts file: one "HOST:PORT SHA256HEX" per line, '#' comments. */
struct KnownHosts {
  /* "" when the host is not known. */
  static std::string lookup (const std::string & file, const std::string & host_port);
  static bool add (const std::string & file, const std::string & host_port,
      const std::string & fingerprint, std::string & error);
};

}  // namespace wrq
