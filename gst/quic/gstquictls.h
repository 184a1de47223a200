/* WayRay transport security: the server's key and certificate, and the
 * client's pinning of the server certificate's SHA-256 fingerprint (trust on
 * first use, remembered in a known-hosts file).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gnutls/gnutls.h>

#include <string>

namespace wrq {

/* The ALPN protocol of WayRay's transport, QUIC and TCP fallback alike. */
constexpr const char *kAlpn = "wayray/1";

/* Default locations under $XDG_CONFIG_HOME/wayray/ (newly allocated). */
std::string default_certificate_file ();
std::string default_private_key_file ();
std::string default_known_hosts_file ();

/* Loads the PEM key + certificate; when neither file exists, generates an
 * ECDSA P-256 key and a self-signed certificate valid for 10 years, writes
 * them (key mode 0600) and loads them. @fingerprint receives the
 * certificate's SHA-256 in lowercase hex. */
bool load_server_credentials (const std::string & cert_file, const std::string & key_file,
    gnutls_certificate_credentials_t * cred, std::string & fingerprint, std::string & error);

/* SHA-256 of DER bytes as 64 lowercase hex characters. */
std::string fingerprint_of_der (const unsigned char *der, size_t len);

/* Accepts 64 hex digits with optional ':' separators and an optional
 * "sha256:" prefix; returns "" when @in is not such a fingerprint. */
std::string normalize_fingerprint (const std::string & in);

/* Known-hosts file: one "HOST:PORT SHA256HEX" per line, '#' comments. */
struct KnownHosts {
  /* "" when the host is not known. */
  static std::string lookup (const std::string & file, const std::string & host_port);
  static bool add (const std::string & file, const std::string & host_port,
      const std::string & fingerprint, std::string & error);
};

}  // namespace wrq
