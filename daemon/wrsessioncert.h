/* Per-session certificates: a session worker runs as the session's user,
 * who can read its memory, so it never gets the seat's private key. Each
 * session gets a fresh key and a short-lived certificate for it, signed by
 * the seat's key; the worker serves the chain (session certificate, then
 * the seat's), and clients that pin the seat's fingerprint accept it (the
 * rule is in docs/transport.md, "Security").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include <ctime>
#include <string>

namespace wayray {

/* A fresh ECDSA P-256 key and a certificate for it, signed by the seat's
 * key, valid from a minute ago (clock skew) until @validity_seconds from
 * now. @chain_pem gets the session certificate followed by the seat
 * certificate (PEM); @key_pem the new key (PEM, SEC1). The certificate:
 * random serial, subject CN=@common_name, issuer the seat certificate's
 * subject, digitalSignature, TLS server, CA:FALSE, DNS "wayray-session".
 * Errors (G_IO_ERROR) name the file and the reason. Takes well under a
 * millisecond of CPU besides reading the two files. */
bool issue_session_certificate (const std::string &seat_cert_file, const std::string &seat_key_file,
    const std::string &common_name, guint64 validity_seconds, std::string *chain_pem, std::string *key_pem,
    GError **error);

/* The same with an explicit validity period (Unix times); for tests, which
 * need certificates that expired or are not valid yet. */
bool issue_session_certificate_for_period (const std::string &seat_cert_file, const std::string &seat_key_file,
    const std::string &common_name, time_t not_before, time_t not_after, std::string *chain_pem,
    std::string *key_pem, GError **error);

/* The seat's certificate and key files when the configuration names none:
 * the quic elements' defaults (wrtls::default_certificate_file and
 * default_private_key_file, gst/common/wrtlscert.h:
 * $XDG_CONFIG_HOME/wayray/server-cert.pem and server-key.pem). */
std::string default_seat_certificate_file ();
std::string default_seat_key_file ();

}  // namespace wayray
