/* Proof of a token without sending it (docs/session-protocol.md, "Proving
 * the token"), in the manner of SCRAM-SHA-256 (RFC 5802, RFC 7677) with
 * channel binding to the TLS connection (tls-exporter, RFC 9266).
 *
 * What the server keeps for a token (the token store): its id, a salt,
 * an iteration count, StoredKey = SHA-256(ClientKey) and ServerKey, where
 *   SaltedToken = PBKDF2-HMAC-SHA-256(token, salt, iterations)
 *   ClientKey   = HMAC(SaltedToken, "Client Key")
 *   ServerKey   = HMAC(SaltedToken, "Server Key").
 * A login: the client names the token's id and a nonce; the server answers
 * with the salt, the iterations and its nonce; the client sends
 *   ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)
 * and the server, having checked SHA-256(ClientProof XOR HMAC(StoredKey,
 * AuthMessage)) == StoredKey, answers with HMAC(ServerKey, AuthMessage).
 * AuthMessage holds both nonces, the salt, the iterations and the
 * connection's channel binding: a proof made on one TLS connection (to
 * someone posing as the server) is worth nothing on another, and neither
 * the wire nor the store holds enough to log in.
 *
 * A card's identity (docs/smartcards.md) is a token like any other here.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include <array>
#include <string>

namespace wayray {

using ScramKey = std::array<guint8, 32>;

constexpr guint kScramIterations = 4096;
constexpr guint kScramMaxIterations = 1000000;
/* The TLS exporter label of RFC 9266. */
constexpr const char *kChannelBindingLabel = "EXPORTER-Channel-Binding";

/* The token's public name: 32 hex digits of SHA-256("wayray-token-id:" +
 * token). It tells the server which entry to use and nothing of the
 * token. */
std::string token_id (const std::string &token);

struct ScramVerifier {
  std::string id;               /* token_id () */
  guint iterations = 0;
  std::string salt;             /* hex */
  ScramKey stored_key {}, server_key {};

  /* "scram-sha256:ID:ITERATIONS:SALT:STOREDKEY:SERVERKEY" (hex). */
  std::string to_string () const;
  static bool parse (const std::string &text, ScramVerifier *out);
  /* A new verifier for @token with a random salt. */
  static ScramVerifier make (const std::string &token, guint iterations = kScramIterations);
};

/* ClientKey and ServerKey of @token for @salt_hex and @iterations. FALSE
 * when the salt is not hex or the iterations are out of range. */
bool scram_keys (const std::string &token, const std::string &salt_hex, guint iterations, ScramKey *client_key,
    ScramKey *server_key);

/* What both sides sign. @channel_binding: the connection's exporter value
 * (hex). */
std::string scram_auth_message (const std::string &id, const std::string &client_nonce, const std::string &nonce,
    const std::string &salt_hex, guint iterations, const std::string &channel_binding);

/* The client's proof (hex). */
std::string scram_client_proof (const ScramKey &client_key, const std::string &auth_message);
/* The server's signature (hex). */
std::string scram_server_signature (const ScramKey &server_key, const std::string &auth_message);

/* The server's check of @proof_hex; on success, the ClientKey it recovered
 * (for the session ticket's proof) in @client_key. */
bool scram_verify (const ScramVerifier &v, const std::string &auth_message, const std::string &proof_hex,
    ScramKey *client_key);

/* Whether two hex strings are equal, in constant time for equal lengths. */
bool scram_equal (const std::string &a, const std::string &b);

/* What the client presents on the session's connection for @ticket:
 * HMAC(ClientKey, "wayray-ticket:" + ticket), hex. The daemon computes it
 * from the ClientKey the login recovered; the ticket alone is not enough. */
std::string ticket_proof (const ScramKey &client_key, const std::string &ticket);

/* Random bytes as hex (2 * @n digits). */
std::string scram_random_hex (size_t n);

/* Bytes as lower-case hex, and back (FALSE: not hex of whole bytes). */
std::string hex_of (const std::string &bytes);
bool bytes_of_hex (const std::string &hex, std::string *bytes);

/* A card with a key (wrcardkey.h) logs in with its signature of this:
 * the key's id, both nonces and the connection's exporter value (hex). */
std::string card_key_auth_message (const std::string &key_id, const std::string &client_nonce,
    const std::string &nonce, const std::string &channel_binding);

/* The key a card's login gives the session ticket's proof (ticket_proof),
 * from the signature both ends have seen: SHA-256("wayray-card-key-ticket:"
 * ‖ signature). */
ScramKey card_key_ticket_key (const std::string &signature);

}  // namespace wayray
