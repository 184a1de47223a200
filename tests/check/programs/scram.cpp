/* The login's proof of a token (daemon/wrscram): SCRAM-SHA-256's keys and
 * proofs as RFC 7677 gives them, and what binds a proof to its connection,
 * its nonces and its token.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "wrscram.h"

using namespace wayray;

static std::string
b64_to_hex (const char *b64)
{
  gsize len = 0;
  guchar *raw = g_base64_decode (b64, &len);
  std::string hex;
  for (gsize i = 0; i < len; i++) {
    gchar two[3];
    g_snprintf (two, sizeof two, "%02x", raw[i]);
    hex += two;
  }
  g_free (raw);
  return hex;
}

/* RFC 7677, section 3: user "user", password "pencil". */
GST_START_TEST (test_rfc7677_vector)
{
  ScramKey client_key {}, server_key {};
  fail_unless (scram_keys ("pencil", b64_to_hex ("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096, &client_key, &server_key));
  const std::string auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,"
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  /* (The macros keep pointers: the strings must outlive them.) */
  const std::string proof = scram_client_proof (client_key, auth), signature = scram_server_signature (server_key, auth);
  const std::string want_proof = b64_to_hex ("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  const std::string want_signature = b64_to_hex ("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  fail_unless_equals_string (proof.c_str (), want_proof.c_str ());
  fail_unless_equals_string (signature.c_str (), want_signature.c_str ());
}
GST_END_TEST;

/* A login as wayrayd checks it: the right token's proof verifies and gives
 * the server the ClientKey; anything else does not. */
GST_START_TEST (test_login)
{
  const std::string token = scram_random_hex (24);
  ScramVerifier stored = ScramVerifier::make (token);
  ScramVerifier v;
  fail_unless (ScramVerifier::parse (stored.to_string (), &v), "%s", stored.to_string ().c_str ());
  const std::string id = token_id (token);
  fail_unless_equals_string (v.id.c_str (), id.c_str ());
  fail_unless (v.to_string ().find (token) == std::string::npos, "the store holds the token");

  const std::string cnonce = scram_random_hex (18), nonce = cnonce + scram_random_hex (18);
  const std::string binding = scram_random_hex (32), other_binding = scram_random_hex (32);
  const std::string auth = scram_auth_message (v.id, cnonce, nonce, v.salt, v.iterations, binding);

  ScramKey ck {}, sk {}, recovered {};
  fail_unless (scram_keys (token, v.salt, v.iterations, &ck, &sk));
  const std::string proof = scram_client_proof (ck, auth);
  fail_unless (scram_verify (v, auth, proof, &recovered));
  fail_unless (recovered == ck);
  fail_unless (scram_equal (scram_server_signature (v.server_key, auth), scram_server_signature (sk, auth)));
  fail_unless (scram_equal (ticket_proof (recovered, "t1"), ticket_proof (ck, "t1")));

  /* The same proof over another connection (someone relaying it) */
  fail_if (scram_verify (v, scram_auth_message (v.id, cnonce, nonce, v.salt, v.iterations, other_binding), proof,
      &recovered));
  /* ... or for another challenge (a replay) */
  fail_if (scram_verify (v, scram_auth_message (v.id, cnonce, cnonce + scram_random_hex (18), v.salt, v.iterations,
      binding), proof, &recovered));
  /* Another token */
  ScramKey wrong {}, wrong_sk {};
  fail_unless (scram_keys (scram_random_hex (24), v.salt, v.iterations, &wrong, &wrong_sk));
  fail_if (scram_verify (v, auth, scram_client_proof (wrong, auth), &recovered));
  /* What the store holds is not enough: its StoredKey as a ClientKey */
  fail_if (scram_verify (v, auth, scram_client_proof (v.stored_key, auth), &recovered));
  /* Malformed proofs */
  fail_if (scram_verify (v, auth, "", &recovered));
  fail_if (scram_verify (v, auth, proof.substr (2), &recovered));
  fail_if (scram_verify (v, auth, std::string (64, 'z'), &recovered));
  /* A ticket's proof needs the ClientKey */
  fail_if (scram_equal (ticket_proof (wrong, "t1"), ticket_proof (ck, "t1")));
}
GST_END_TEST;

GST_START_TEST (test_store_lines)
{
  ScramVerifier v;
  fail_if (ScramVerifier::parse ("sha256:00:11", &v));
  fail_if (ScramVerifier::parse ("scram-sha256:short:4096:00:00:00", &v));
  const std::string ok = ScramVerifier::make ("x", 10).to_string ();
  fail_unless (ScramVerifier::parse (ok, &v));
  std::string bad_iter = ok;
  bad_iter.replace (bad_iter.find (":10:"), 4, ":0:");
  fail_if (ScramVerifier::parse (bad_iter, &v));
  ScramKey a {}, b {};
  fail_if (scram_keys ("x", "", 4096, &a, &b), "an empty salt");
  fail_if (scram_keys ("x", "0g", 4096, &a, &b), "a salt that is not hex");
  fail_if (scram_keys ("x", "00", kScramMaxIterations + 1, &a, &b), "too many iterations");
  fail_unless_equals_int ((int) token_id ("x").size (), 32);
}
GST_END_TEST;

static Suite *
scram_suite (void)
{
  Suite *s = suite_create ("scram");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_rfc7677_vector);
  tcase_add_test (tc, test_login);
  tcase_add_test (tc, test_store_lines);
  return s;
}

GST_CHECK_MAIN (scram);
