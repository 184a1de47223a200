/* Per-session certificates: wayrayd's issuing (daemon/wrsessioncert.cpp)
 * and quicsink/quicsrc serving and accepting the chain (session
 * certificate, then the seat's) over loopback, QUIC and TCP.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/app/app.h>
#include <gst/check/gstcheck.h>

#include "quictestutil.h"

#include "gstquictls.h"
#include "wrsessioncert.h"
#include "wrtlscert.h"

#include <glib/gstdio.h>
#include <gnutls/x509.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

/* The name of the session certificates the tests issue. */
#define SESSION_NAME "wayray-session-test"

/* A temporary directory with two seats, A and B (key and certificate each,
 * as the quic elements generate them), and a port. */
struct Seats {
  std::string dir;
  guint port;
  std::string fp_a, fp_b;

  Seats ()
  {
    gchar *d = g_dir_make_tmp ("wayray-sessioncert-XXXXXX", nullptr);
    dir = d;
    g_free (d);
    port = free_port ();
    fp_a = generate ("a");
    fp_b = generate ("b");
  }
  ~Seats ()
  {
    GDir *d = g_dir_open (dir.c_str (), 0, nullptr);
    const gchar *name;
    while (d && (name = g_dir_read_name (d)))
      g_unlink (path (name).c_str ());
    if (d)
      g_dir_close (d);
    g_rmdir (dir.c_str ());
  }
  std::string path (const std::string & leaf) const
  {
    return dir + "/" + leaf;
  }
  std::string cert (const char *seat) const
  {
    return path (std::string ("seat-") + seat + "-cert.pem");
  }
  std::string key (const char *seat) const
  {
    return path (std::string ("seat-") + seat + "-key.pem");
  }
  /* Through the elements' own code path: both files missing → generated. */
  std::string generate (const char *seat) const
  {
    gnutls_certificate_credentials_t cred = nullptr;
    std::string fp, err;
    fail_unless (wrq::load_server_credentials (cert (seat), key (seat), &cred, fp, err), "%s", err.c_str ());
    gnutls_certificate_free_credentials (cred);
    return fp;
  }
  /* A session certificate named SESSION_NAME from @seat: chain and key. */
  void issue (const char *seat, std::string * chain_pem, std::string * key_pem, guint64 validity = 3600) const
  {
    GError *err = nullptr;
    fail_unless (wayray::issue_session_certificate (cert (seat), key (seat), SESSION_NAME, validity, chain_pem,
            key_pem, &err), "issuing failed: %s", err ? err->message : "?");
  }
  /* One issued and written as files named @name (session_files); returns
   * the quicsink properties of a server that serves it. @chain_pem, when
   * given, gets its chain. */
  std::string session (const char *seat, const std::string & name, std::string * chain_pem = nullptr) const
  {
    std::string chain, key_pem;
    issue (seat, &chain, &key_pem);
    if (chain_pem)
      *chain_pem = chain;
    return session_files (name, chain, key_pem);
  }
  /* Writes a session chain and key as files; returns the quicsink
   * properties of a server that serves them. */
  std::string session_files (const std::string & name, const std::string & chain, const std::string & key_pem) const
  {
    fail_unless (g_file_set_contents (path (name + "-chain.pem").c_str (), chain.data (), chain.size (), nullptr));
    fail_unless (g_file_set_contents_full (path (name + "-key.pem").c_str (), key_pem.data (), key_pem.size (),
            G_FILE_SET_CONTENTS_CONSISTENT, 0600, nullptr));
    return credentials (path (name + "-chain.pem"), path (name + "-key.pem"));
  }
  /* The quicsink properties of a server that serves @seat's own
   * certificate. */
  std::string credentials (const char *seat) const
  {
    return credentials (cert (seat), key (seat));
  }
  static std::string credentials (const std::string & cert_file, const std::string & key_file)
  {
    return "certificate-file=" + cert_file + " private-key-file=" + key_file;
  }
  std::string server (const std::string & creds, const char *extra = "") const
  {
    return "mode=server host=127.0.0.1 port=" + std::to_string (port) + " " + creds + " " + extra;
  }
  /* A client sent to the session named SESSION_NAME (what wayrayd's
   * welcome says); @extra may name another. */
  std::string client (const std::string & extra) const
  {
    return "mode=client host=127.0.0.1 port=" + std::to_string (port) + " known-hosts-file="
        + path ("known_hosts") + " certificate-name=" SESSION_NAME " " + extra;
  }
};

static std::string
read_text (const std::string & file)
{
  gchar *text = nullptr;
  gsize len = 0;
  fail_unless (g_file_get_contents (file.c_str (), &text, &len, nullptr), "cannot read %s", file.c_str ());
  std::string s (text, len);
  g_free (text);
  return s;
}

/* The PEM blocks of @pem, each with its END line and newline. */
static std::vector<std::string>
pem_blocks (const std::string & pem)
{
  std::vector<std::string> out;
  const std::string end = "-----END CERTIFICATE-----\n";
  size_t pos = 0, e;
  while ((e = pem.find (end, pos)) != std::string::npos) {
    out.push_back (pem.substr (pos, e + end.size () - pos));
    pos = e + end.size ();
  }
  return out;
}

static gnutls_x509_crt_t
parse_crt (const std::string & pem)
{
  gnutls_x509_crt_t crt;
  gnutls_x509_crt_init (&crt);
  gnutls_datum_t d = { (unsigned char *) pem.data (), (unsigned) pem.size () };
  fail_unless (gnutls_x509_crt_import (crt, &d, GNUTLS_X509_FMT_PEM) >= 0);
  return crt;
}

static gnutls_x509_privkey_t
parse_key (const std::string & pem)
{
  gnutls_x509_privkey_t key;
  gnutls_x509_privkey_init (&key);
  gnutls_datum_t d = { (unsigned char *) pem.data (), (unsigned) pem.size () };
  fail_unless (gnutls_x509_privkey_import2 (key, &d, GNUTLS_X509_FMT_PEM, nullptr, 0) >= 0);
  return key;
}

static std::string
pem_of (gnutls_x509_crt_t crt)
{
  gnutls_datum_t pem = { nullptr, 0 };
  fail_unless (gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_PEM, &pem) >= 0);
  std::string s ((const char *) pem.data, pem.size);
  gnutls_free (pem.data);
  return s;
}

static std::string
fingerprint_of_pem (const std::string & pem)
{
  gnutls_x509_crt_t crt = parse_crt (pem);
  gnutls_datum_t der = { nullptr, 0 };
  fail_unless (gnutls_x509_crt_export2 (crt, GNUTLS_X509_FMT_DER, &der) >= 0);
  std::string fp = wrq::fingerprint_of_der (der.data, der.size);
  gnutls_free (der.data);
  gnutls_x509_crt_deinit (crt);
  return fp;
}

static const char *kCaps = " caps=application/x-wayray-test";

/* A server with @server_props, a client with @client_props: buffers of
 * several sizes arrive byte for byte. Returns the fingerprint the client
 * shows as presented; @transport gets the transport it used. */
static std::string
stream_through (const std::string & server_props, const std::string & client_props, std::string * transport)
{
  GstElement *srv = launch (std::string ("appsrc name=src format=time") + kCaps + " ! quicsink " + server_props);
  GstElement *cli = launch ("quicsrc name=c " + client_props + " ! appsink name=out sync=false");
  play (srv);
  play (cli);
  GstElement *src = by_name (srv, "src");
  GstElement *out = by_name (cli, "out");
  const gsize sizes[] = { 1, 1200, 70000, 300000 };
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    GstBuffer *b = pattern_buffer (i, sizes[i]);
    std::vector<guint8> want (sizes[i]);
    gst_buffer_extract (b, 0, want.data (), want.size ());
    gst_app_src_push_buffer (GST_APP_SRC (src), b);
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (out), 15 * GST_SECOND);
    if (!s) {
      std::string e = wait_error (cli, 0);
      fail ("buffer %u did not arrive: %s", i, e.c_str ());
    }
    GstBuffer *got = gst_sample_get_buffer (s);
    fail_unless_equals_int (gst_buffer_get_size (got), want.size ());
    fail_unless (gst_buffer_memcmp (got, 0, want.data (), want.size ()) == 0, "buffer %u differs", i);
    gst_sample_unref (s);
  }
  assert_no_error (srv);
  assert_no_error (cli);
  GstElement *c = by_name (cli, "c");
  gchar *seen = nullptr;
  GstStructure *st = nullptr;
  g_object_get (c, "certificate-fingerprint", &seen, "stats", &st, nullptr);
  std::string fp = seen ? seen : "";
  if (transport)
    *transport = gst_structure_get_string (st, "transport");
  g_free (seen);
  gst_structure_free (st);
  gst_object_unref (c);
  gst_object_unref (out);
  gst_object_unref (src);
  stop (cli);
  stop (srv);
  return fp;
}

/* A server with @server_props, a client with @client_props: the client
 * posts an error, returned. */
static std::string
refused (const std::string & server_props, const std::string & client_props)
{
  GstElement *srv = launch (std::string ("appsrc name=src format=time") + kCaps + " ! quicsink " + server_props);
  GstElement *cli = launch ("quicsrc " + client_props + " ! fakesink");
  play (srv);
  play (cli);
  std::string err = wait_error (cli, 15 * GST_SECOND);
  fail_if (err.empty (), "the client was not refused");
  stop (cli);
  stop (srv);
  return err;
}

/* What issuing produces: a fresh key, a certificate for it signed by the
 * seat's key with the right extensions, the seat certificate unchanged
 * after it; quickly. The generated seat certificate is a CA root. */
GST_START_TEST (test_issue_session_certificate)
{
  Seats seats;
  std::string chain, key;
  seats.issue ("a", &chain, &key, 600);
  std::string seat_cert = read_text (seats.cert ("a"));
  std::string seat_key = read_text (seats.key ("a"));

  /* The session key is not the seat's. */
  fail_unless (key.find ("PRIVATE KEY-----") != std::string::npos, "key: %s", key.c_str ());
  fail_unless (key != seat_key);
  /* Two certificates; the second byte for byte the seat's. */
  std::vector<std::string> blocks = pem_blocks (chain);
  fail_unless_equals_int (blocks.size (), 2);
  fail_unless_equals_string (blocks[1].c_str (), seat_cert.c_str ());
  std::string second_fp = fingerprint_of_pem (blocks[1]);
  fail_unless_equals_string (second_fp.c_str (), seats.fp_a.c_str ());

  gnutls_x509_crt_t leaf = parse_crt (blocks[0]);
  gnutls_x509_crt_t seat = parse_crt (blocks[1]);
  /* Signed by the seat's key; issuer = seat's subject. */
  unsigned status = 1;
  fail_unless (gnutls_x509_crt_verify (leaf, &seat, 1, 0, &status) >= 0);
  fail_unless_equals_int (status, 0);   /* CA checks on: the new seat certificate is a CA */
  fail_unless (gnutls_x509_crt_check_issuer (leaf, seat));
  char buf[256];
  size_t len = sizeof buf;
  fail_unless (gnutls_x509_crt_get_dn_by_oid (leaf, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &len) >= 0);
  fail_unless_equals_string (buf, SESSION_NAME);
  /* Leaf: not a CA, digitalSignature, TLS server, the DNS name. */
  unsigned ca = 1, usage = 0, critical = 0;
  fail_unless (gnutls_x509_crt_get_basic_constraints (leaf, &critical, &ca, nullptr) >= 0);
  fail_if (ca);
  fail_unless (gnutls_x509_crt_get_key_usage (leaf, &usage, &critical) >= 0);
  fail_unless_equals_int (usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
  len = sizeof buf;
  fail_unless (gnutls_x509_crt_get_key_purpose_oid (leaf, 0, buf, &len, nullptr) >= 0);
  fail_unless_equals_string (buf, GNUTLS_KP_TLS_WWW_SERVER);
  len = sizeof buf;
  fail_unless_equals_int (gnutls_x509_crt_get_subject_alt_name (leaf, 0, buf, &len, nullptr), GNUTLS_SAN_DNSNAME);
  fail_unless_equals_string (buf, "wayray-session");
  fail_unless_equals_int (gnutls_x509_crt_get_pk_algorithm (leaf, nullptr), GNUTLS_PK_ECDSA);
  /* Valid from a minute ago for 600 s. */
  time_t now = time (nullptr);
  time_t nb = gnutls_x509_crt_get_activation_time (leaf), na = gnutls_x509_crt_get_expiration_time (leaf);
  fail_unless (nb <= now - 59 && nb >= now - 65, "notBefore %ld, now %ld", (long) nb, (long) now);
  fail_unless (na >= now + 595 && na <= now + 600, "notAfter %ld, now %ld", (long) na, (long) now);
  /* The key is the certificate's. */
  gnutls_x509_privkey_t pk = parse_key (key);
  unsigned char id1[64], id2[64];
  size_t l1 = sizeof id1, l2 = sizeof id2;
  fail_unless (gnutls_x509_privkey_get_key_id (pk, 0, id1, &l1) >= 0);
  fail_unless (gnutls_x509_crt_get_key_id (leaf, 0, id2, &l2) >= 0);
  fail_unless (l1 == l2 && memcmp (id1, id2, l1) == 0);
  gnutls_x509_privkey_deinit (pk);
  /* The generated seat certificate: CA:TRUE, keyCertSign. */
  fail_unless (gnutls_x509_crt_get_basic_constraints (seat, &critical, &ca, nullptr) >= 0);
  fail_unless (ca);
  fail_unless (gnutls_x509_crt_get_key_usage (seat, &usage, &critical) >= 0);
  fail_unless (usage & GNUTLS_KEY_KEY_CERT_SIGN);
  gnutls_x509_crt_deinit (leaf);
  gnutls_x509_crt_deinit (seat);

  /* Every issue is a new key and serial. */
  std::string chain2, key2;
  seats.issue ("a", &chain2, &key2);
  fail_unless (key2 != key);
  fail_unless (pem_blocks (chain2)[0] != blocks[0]);

  /* Fast: the median of 21 issues well under 10 ms (typically 0.2–0.5 ms;
   * under AddressSanitizer 2–5 ms, so only a loose bound there). */
  std::vector<gint64> us;
  for (int i = 0; i < 21; i++) {
    gint64 t0 = g_get_monotonic_time ();
    seats.issue ("a", &chain2, &key2);
    us.push_back (g_get_monotonic_time () - t0);
  }
  std::sort (us.begin (), us.end ());
  GST_INFO ("issuing: median %" G_GINT64_FORMAT " us, max %" G_GINT64_FORMAT " us", us[10], us.back ());
#if defined(__SANITIZE_ADDRESS__)
  const gint64 bound_us = 30000;
#else
  const gint64 bound_us = 5000;
#endif
  fail_unless (us[10] < bound_us, "issuing takes %" G_GINT64_FORMAT " us", us[10]);

  /* Errors name the file and the reason. */
  GError *err = nullptr;
  std::string missing = seats.path ("no-such-key.pem");
  fail_if (wayray::issue_session_certificate (seats.cert ("a"), missing, "x", 60, &chain2, &key2, &err));
  fail_unless (err && strstr (err->message, missing.c_str ()) && strstr (err->message, "seat's private key"),
      "%s", err ? err->message : "no error");
  g_clear_error (&err);
  fail_if (wayray::issue_session_certificate (seats.cert ("a"), seats.key ("b"), "x", 60, &chain2, &key2, &err));
  fail_unless (err && strstr (err->message, "does not belong") && strstr (err->message, seats.key ("b").c_str ()),
      "%s", err ? err->message : "no error");
  g_clear_error (&err);
  fail_if (wayray::issue_session_certificate (seats.key ("a"), seats.key ("a"), "x", 60, &chain2, &key2, &err));
  fail_unless (err && strstr (err->message, seats.key ("a").c_str ()) && strstr (err->message, "certificate"),
      "%s", err ? err->message : "no error");
  g_clear_error (&err);

  fail_unless (wayray::default_seat_certificate_file () == wrq::default_certificate_file ());
  fail_unless (wayray::default_seat_key_file () == wrq::default_private_key_file ());
}
GST_END_TEST;

/* A session server's chain, pinned by the seat's fingerprint: data flows
 * (the client could only accept if both certificates were sent: the leaf's
 * fingerprint is not the pinned one). Another pin is refused. */
GST_START_TEST (test_session_chain_pinned)
{
  Seats seats;
  std::string chain;
  std::string creds = seats.session ("a", "s1", &chain);
  std::string leaf_fp = fingerprint_of_pem (pem_blocks (chain)[0]);
  fail_if (leaf_fp == seats.fp_a);

  /* The server's own fingerprint is the session certificate's. */
  std::string own = server_fingerprint (seats.server (creds));
  fail_unless_equals_string (own.c_str (), leaf_fp.c_str ());

  std::string transport;
  std::string seen = stream_through (seats.server (creds, "transport=quic"),
      seats.client ("transport=quic pinned-fingerprint=" + seats.fp_a), &transport);
  fail_unless_equals_string (transport.c_str (), "quic");
  fail_unless_equals_string (seen.c_str (), leaf_fp.c_str ());
  /* Pinned: nothing recorded. */
  fail_if (g_file_test (seats.path ("known_hosts").c_str (), G_FILE_TEST_EXISTS));

  /* Pinning the leaf itself still works (the single-certificate rule). */
  stream_through (seats.server (creds), seats.client ("pinned-fingerprint=" + leaf_fp), nullptr);

  /* Another seat's fingerprint pinned: refused as a mismatch. */
  std::string err = refused (seats.server (creds), seats.client ("pinned-fingerprint=" + seats.fp_b));
  fail_unless (err.find ("but pinned-fingerprint is SHA256:" + seats.fp_b + "; refusing") != std::string::npos,
      "error: '%s'", err.c_str ());
  fail_unless (err.find ("SHA256:" + seats.fp_a) != std::string::npos, "error: '%s'", err.c_str ());
}
GST_END_TEST;

/* A session certificate that names seat A as its issuer (name and key id)
 * but is signed with seat B's key, as an attacker who holds only B's key
 * would make it; PEM of it, and its key. */
static std::string
forge_leaf (const Seats & seats, std::string * key_pem)
{
  gnutls_x509_crt_t a = parse_crt (read_text (seats.cert ("a"))), crt;
  gnutls_x509_privkey_t b_key = parse_key (read_text (seats.key ("b"))), key;
  unsigned char a_id[64];
  size_t a_id_len = sizeof a_id;
  time_t now = time (nullptr);
  /* As a session certificate starts out (CA:FALSE, digitalSignature). */
  fail_unless (wrtls::new_key_and_certificate ("forged session", now - 60, now + 3600, false, &key, &crt) == 0);
  fail_unless (gnutls_x509_crt_get_subject_key_id (a, a_id, &a_id_len, nullptr) >= 0);
  fail_unless (gnutls_x509_crt_set_authority_key_id (crt, a_id, a_id_len) >= 0);
  /* Issuer name from A's certificate, signature by B's key. */
  fail_unless (gnutls_x509_crt_sign2 (crt, a, b_key, GNUTLS_DIG_SHA256, 0) >= 0);
  gnutls_datum_t kpem = { nullptr, 0 };
  fail_unless (gnutls_x509_privkey_export2 (key, GNUTLS_X509_FMT_PEM, &kpem) >= 0);
  key_pem->assign ((const char *) kpem.data, kpem.size);
  gnutls_free (kpem.data);
  std::string out = pem_of (crt);
  gnutls_x509_crt_deinit (crt);
  gnutls_x509_crt_deinit (a);
  gnutls_x509_privkey_deinit (key);
  gnutls_x509_privkey_deinit (b_key);
  return out;
}

/* A leaf signed by seat B's key, sent with seat A's certificate: refused
 * when A is pinned, over QUIC and over TCP, and on first use. */
GST_START_TEST (test_session_chain_forged)
{
  Seats seats;
  std::string key;
  std::string forged = forge_leaf (seats, &key) + read_text (seats.cert ("a"));
  std::string creds = seats.session_files ("forged", forged, key);

  for (const char *transport : { "quic", "tcp" }) {
    std::string t = std::string ("transport=") + transport;
    std::string err = refused (seats.server (creds, t.c_str ()),
        seats.client (t + " pinned-fingerprint=" + seats.fp_a));
    fail_unless (err.find ("is not signed by the pinned server key SHA256:" + seats.fp_a) != std::string::npos,
        "%s: error: '%s'", transport, err.c_str ());
  }
  /* Not trusted on first use either, and nothing recorded. */
  std::string err = refused (seats.server (creds), seats.client (""));
  fail_unless (err.find ("is not signed by the pinned server key") != std::string::npos, "error: '%s'", err.c_str ());
  fail_if (g_file_test (seats.path ("known_hosts").c_str (), G_FILE_TEST_EXISTS));

  /* What seat B issues, put together with A's certificate: GnuTLS would
   * not send A's certificate (B's session certificate names B's key as its
   * issuer), so the server refuses to start with such a file. */
  std::string chain_b, key_b;
  seats.issue ("b", &chain_b, &key_b);
  creds = seats.session_files ("b-with-a", pem_blocks (chain_b)[0] + read_text (seats.cert ("a")), key_b);
  GstElement *srv = launch ("fakesrc num-buffers=0 ! quicsink " + seats.server (creds));
  fail_unless (gst_element_set_state (srv, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE);
  err = wait_error (srv, 0);
  fail_unless (err.find ("holds 2 certificates, but only the first 1 form a chain") != std::string::npos,
      "error: '%s'", err.c_str ());
  stop (srv);
}
GST_END_TEST;

/* A correctly signed session certificate outside its validity period is
 * refused, saying so. */
GST_START_TEST (test_session_chain_expired)
{
  Seats seats;
  time_t now = time (nullptr);
  std::string chain, key;
  GError *e = nullptr;
  fail_unless (wayray::issue_session_certificate_for_period (seats.cert ("a"), seats.key ("a"), "old", now - 7200,
          now - 3600, &chain, &key, &e), "%s", e ? e->message : "?");
  std::string creds = seats.session_files ("old", chain, key);
  std::string err = refused (seats.server (creds), seats.client ("pinned-fingerprint=" + seats.fp_a));
  fail_unless (err.find ("the session certificate SHA256:" + fingerprint_of_pem (pem_blocks (chain)[0])
          + " has expired") != std::string::npos, "error: '%s'", err.c_str ());

  fail_unless (wayray::issue_session_certificate_for_period (seats.cert ("a"), seats.key ("a"), "future",
          now + 3600, now + 7200, &chain, &key, &e), "%s", e ? e->message : "?");
  creds = seats.session_files ("future", chain, key);
  err = refused (seats.server (creds), seats.client ("pinned-fingerprint=" + seats.fp_a));
  fail_unless (err.find ("is not valid yet") != std::string::npos, "error: '%s'", err.c_str ());
}
GST_END_TEST;

/* The same pinned chain over the TCP fallback: UDP blocked (the server
 * listens on TCP only, its UDP port swallows datagrams). */
GST_START_TEST (test_session_chain_tcp_fallback)
{
  Seats seats;
  int blackhole = udp_blackhole (seats.port);
  std::string chain;
  std::string creds = seats.session ("a", "s1", &chain);
  std::string transport;
  std::string seen = stream_through (seats.server (creds, "transport=tcp"),
      seats.client ("transport=auto handshake-timeout=500 pinned-fingerprint=" + seats.fp_a), &transport);
  fail_unless_equals_string (transport.c_str (), "tcp");
  std::string leaf_fp = fingerprint_of_pem (pem_blocks (chain)[0]);
  fail_unless_equals_string (seen.c_str (), leaf_fp.c_str ());
  close (blackhole);
}
GST_END_TEST;

/* Trust on first use records the seat's fingerprint, not the session
 * certificate's: the next session's chain (a new key) is accepted, the
 * seat serving its own certificate too, another seat's chain is refused. */
GST_START_TEST (test_session_chain_known_hosts)
{
  Seats seats;
  stream_through (seats.server (seats.session ("a", "s1")), seats.client (""), nullptr);
  std::string known = read_text (seats.path ("known_hosts"));
  std::string want = "127.0.0.1:" + std::to_string (seats.port) + " " + seats.fp_a + "\n";
  fail_unless_equals_string (known.c_str (), want.c_str ());

  stream_through (seats.server (seats.session ("a", "s2")), seats.client (""), nullptr);
  stream_through (seats.server (seats.credentials ("a")), seats.client (""), nullptr);
  known = read_text (seats.path ("known_hosts"));
  fail_unless_equals_string (known.c_str (), want.c_str ());

  std::string err = refused (seats.server (seats.session ("b", "b")), seats.client (""));
  fail_unless (err.find ("records SHA256:" + seats.fp_a) != std::string::npos, "error: '%s'", err.c_str ());
  fail_unless (err.find ("SHA256:" + seats.fp_b) != std::string::npos, "error: '%s'", err.c_str ());
}
GST_END_TEST;

/* Every session certificate of a seat is signed by the same key, and a
 * session's user can read their own session's key: a chain is taken only
 * with the name of the session the client was sent to. */
GST_START_TEST (test_session_chain_name)
{
  Seats seats;
  std::string creds = seats.session ("a", "s1");
  std::string err = refused (seats.server (creds),
      seats.client ("pinned-fingerprint=" + seats.fp_a + " certificate-name=wayray-session-other"));
  fail_unless (err.find ("names '" SESSION_NAME "', not 'wayray-session-other' (certificate-name)")
      != std::string::npos && err.find ("another session's") != std::string::npos, "error: '%s'", err.c_str ());
  err = refused (seats.server (creds), seats.client ("pinned-fingerprint=" + seats.fp_a + " certificate-name=\"\""));
  fail_unless (err.find ("no certificate-name says which session to expect") != std::string::npos,
      "error: '%s'", err.c_str ());
  /* The seat's own certificate needs no name (the front door). */
  stream_through (seats.server (seats.credentials ("a")),
      seats.client ("pinned-fingerprint=" + seats.fp_a + " certificate-name=\"\""), nullptr);
}
GST_END_TEST;

/* A seat certificate from before seats became CA roots (CA:FALSE,
 * digitalSignature only) still vouches for its session certificates. */
GST_START_TEST (test_session_chain_legacy_seat)
{
  Seats seats;
  /* Such a seat certificate, for seat A's key. */
  gnutls_x509_privkey_t k = parse_key (read_text (seats.key ("a")));
  gnutls_x509_crt_t crt;
  gnutls_x509_crt_init (&crt);
  unsigned char serial[] = { 1, 2, 3 };
  time_t now = time (nullptr);
  const char *cn = "WayRay server legacy";
  fail_unless (gnutls_x509_crt_set_version (crt, 3) >= 0);
  fail_unless (gnutls_x509_crt_set_serial (crt, serial, sizeof serial) >= 0);
  fail_unless (gnutls_x509_crt_set_activation_time (crt, now - 3600) >= 0);
  fail_unless (gnutls_x509_crt_set_expiration_time (crt, now + 3600) >= 0);
  fail_unless (gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen (cn)) >= 0);
  fail_unless (gnutls_x509_crt_set_key (crt, k) >= 0);
  fail_unless (gnutls_x509_crt_set_key_usage (crt, GNUTLS_KEY_DIGITAL_SIGNATURE) >= 0);
  fail_unless (gnutls_x509_crt_sign2 (crt, crt, k, GNUTLS_DIG_SHA256, 0) >= 0);
  std::string pem = pem_of (crt);
  std::string legacy_cert = seats.path ("legacy-cert.pem");
  fail_unless (g_file_set_contents (legacy_cert.c_str (), pem.data (), pem.size (), nullptr));
  gnutls_x509_crt_deinit (crt);
  gnutls_x509_privkey_deinit (k);

  std::string chain, key;
  GError *e = nullptr;
  fail_unless (wayray::issue_session_certificate (legacy_cert, seats.key ("a"), SESSION_NAME, 3600, &chain, &key, &e),
      "%s", e ? e->message : "?");
  std::string legacy_fp = fingerprint_of_pem (read_text (legacy_cert));
  stream_through (seats.server (seats.session_files ("s", chain, key)),
      seats.client ("pinned-fingerprint=" + legacy_fp), nullptr);
}
GST_END_TEST;

static Suite *
quicsessioncert_suite (void)
{
  Suite *s = suite_create ("quicsessioncert");
  TCase *tc = tcase_create ("sessioncert");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_issue_session_certificate);
  tcase_add_test (tc, test_session_chain_pinned);
  tcase_add_test (tc, test_session_chain_forged);
  tcase_add_test (tc, test_session_chain_expired);
  tcase_add_test (tc, test_session_chain_name);
  tcase_add_test (tc, test_session_chain_tcp_fallback);
  tcase_add_test (tc, test_session_chain_known_hosts);
  tcase_add_test (tc, test_session_chain_legacy_seat);
  return s;
}

GST_CHECK_MAIN (quicsessioncert);
