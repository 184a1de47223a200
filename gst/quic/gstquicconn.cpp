/* QUIC connections: TLS, the ngtcp2 callbacks, setting up servers and
 * clients, UDP input, expiry and closing.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicendpointimpl.h"
#include "gstquictls.h"

namespace wrq {

namespace {

const char *const kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:%DISABLE_TLS13_COMPAT_MODE";


void
rand_cb (uint8_t * dest, size_t len, const ngtcp2_rand_ctx *)
{
  gnutls_rnd (GNUTLS_RND_RANDOM, dest, len);
}

int
new_cid_cb (ngtcp2_conn *, ngtcp2_cid * cid, uint8_t * token, size_t cidlen, void *)
{
  if (gnutls_rnd (GNUTLS_RND_RANDOM, cid->data, cidlen) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  cid->datalen = cidlen;
  if (gnutls_rnd (GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

}  // namespace

/* ---------------------------------------------------------------------- */
/* ngtcp2 callbacks                                                        */

static ngtcp2_conn *
get_conn_cb (ngtcp2_crypto_conn_ref * ref)
{
  return static_cast<Endpoint::Conn *> (ref->user_data)->q;
}

static int
recv_stream_data_cb (ngtcp2_conn *, uint32_t flags, int64_t stream_id, uint64_t,
    const uint8_t * data, size_t datalen, void *user_data, void *)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  auto &slot = c->in[stream_id];
  if (!slot)
    slot.reset (new InStream ());
  c->bytes_received += datalen;
  if (c->closing)
    return 0;
  c->ep->stream_data (*c, *slot, stream_id, data, datalen, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
  return 0;
}

static int
acked_stream_data_cb (ngtcp2_conn *, int64_t, uint64_t offset, uint64_t datalen,
    void *user_data, void *stream_user_data)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  auto *s = static_cast<SendStream *> (stream_user_data);
  if (s)
    c->ep->free_acked (*s, offset + datalen);
  return 0;
}

static int
stream_close_cb (ngtcp2_conn * conn, uint32_t, int64_t stream_id, uint64_t,
    void *user_data, void *stream_user_data)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  Endpoint::Impl *ep = c->ep;
  c->loss_closed += ngtcp2_conn_get_stream_loss_count (conn, stream_id);
  if (!ngtcp2_conn_is_local_stream (conn, stream_id)) {
    auto it = c->in.find (stream_id);
    if (it != c->in.end ()) {
      InStream &s = *it->second;
      if (s.parser.has_preamble () && !s.is_control) {
        InStreamRef ref { c->gen, stream_id, &s.parser.preamble () };
        std::lock_guard<std::mutex> lk (ep->users_mu);
        for (auto *u : ep->users)
          if (u->is_receiver ())
            u->on_stream_end (ref, false);
      }
      /* Its bytes leave with it: what it held goes back to the connection. */
      if (s.held)
        ngtcp2_conn_extend_max_offset (conn, s.held);
      c->in.erase (it);
    }
    ngtcp2_conn_extend_max_streams_uni (conn, 1);
  } else if (stream_user_data) {
    auto *s = static_cast<SendStream *> (stream_user_data);
    s->id = -2;   /* closed */
    s->dead = true;
    ep->streams.erase (std::remove_if (ep->streams.begin (), ep->streams.end (),
            [s] (const std::shared_ptr<SendStream> &p) { return p.get () == s; }), ep->streams.end ());
    ep->cv.notify_all ();
  }
  return 0;
}

static int
stream_reset_cb (ngtcp2_conn *, int64_t stream_id, uint64_t, uint64_t app_error,
    void *user_data, void *)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  auto it = c->in.find (stream_id);
  if (it != c->in.end () && it->second->parser.has_preamble () && !it->second->is_control) {
    InStreamRef ref { c->gen, stream_id, &it->second->parser.preamble () };
    GST_DEBUG ("stream %" G_GINT64_FORMAT " (%s) reset by the peer, error %" G_GUINT64_FORMAT,
        stream_id, ref.pre->name.c_str (), app_error);
    std::lock_guard<std::mutex> lk (c->ep->users_mu);
    for (auto *u : c->ep->users)
      if (u->is_receiver ())
        u->on_stream_end (ref, true);
    it->second->failed = true;   /* ignore anything after */
  }
  return 0;
}

static int
extend_max_stream_data_cb (ngtcp2_conn *, int64_t, uint64_t, void *, void *stream_user_data)
{
  if (stream_user_data)
    static_cast<SendStream *> (stream_user_data)->blocked = false;
  return 0;
}

static int
extend_max_local_streams_uni_cb (ngtcp2_conn *, uint64_t, void *)
{
  return 0;   /* pending streams are opened by the next write pass */
}

static int
handshake_completed_cb (ngtcp2_conn *, void *user_data)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  if (c->ep->candidate.get () == c)
    c->ep->promote_candidate ();
  c->ep->on_established ();
  return 0;
}

/* The client's check of the server (QUIC and TCP fallback alike): the
 * trusted fingerprint is pinned-fingerprint, else the known-hosts entry,
 * else (first use) the server's identity, recorded once accepted. The
 * server is accepted when its certificate has that fingerprint, or when it
 * sent a chain whose second certificate has it and that signed the first,
 * which is valid now (check_peer_certificates). */
static int
verify_peer_cb (gnutls_session_t session)
{
  auto *ref = static_cast<ngtcp2_crypto_conn_ref *> (gnutls_session_get_ptr (session));
  auto *c = static_cast<Endpoint::Conn *> (ref->user_data);
  const Config &cfg = c->ep->self->config ();
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers (session, &n);
  if (!certs || n == 0) {
    c->tls_failure = "the server presented no certificate";
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  std::string fp = fingerprint_of_der (certs[0].data, certs[0].size);
  std::string hp = cfg.host_port ();
  c->ep->fingerprint = fp;   /* what the certificate-fingerprint property shows */

  std::string trusted, file, source;
  bool first_use = false;
  if (!cfg.pinned_fingerprint.empty ()) {
    trusted = cfg.pinned_fingerprint;
    source = "pinned-fingerprint";
  } else {
    file = cfg.known_hosts_file.empty () ? default_known_hosts_file () : cfg.known_hosts_file;
    trusted = KnownHosts::lookup (file, hp);
    source = "recorded in " + file;
    if (trusted.empty ()) {
      first_use = true;
      trusted = identity_fingerprint (certs, n);
      source = "sent with it; nothing is recorded for this server yet";
    }
  }

  std::string detail;
  PeerTrust t = check_peer_certificates (certs, n, trusted, cfg.certificate_name, detail);
  /* For a chain, what the server presents as its identity is the signer. */
  std::string presented = "SHA256:" + fp;
  if (n >= 2)
    presented = "SHA256:" + fingerprint_of_der (certs[1].data, certs[1].size)
        + " (issuer of the session certificate SHA256:" + fp + ")";
  switch (t) {
    case PeerTrust::LEAF:
    case PeerTrust::CHAIN:
      if (first_use) {
        std::string err;
        if (!KnownHosts::add (file, hp, trusted, err))
          GST_WARNING ("%s", err.c_str ());
        GST_INFO ("trusting server %s on first use: SHA256:%s (recorded in %s)", hp.c_str (),
            trusted.c_str (), file.c_str ());
      }
      return 0;
    case PeerTrust::MISMATCH:
      if (!cfg.pinned_fingerprint.empty ())
        c->tls_failure = "server " + hp + " presented certificate fingerprint " + presented
            + ", but pinned-fingerprint is SHA256:" + cfg.pinned_fingerprint
            + "; refusing the connection";
      else
        c->tls_failure = "server " + hp + " presented certificate fingerprint " + presented
            + ", but " + file + " records SHA256:" + trusted + " for it: the server key changed or "
            "someone is intercepting the connection; refusing. If the change is expected, remove the "
            "line for " + hp + " from " + file;
      break;
    case PeerTrust::BAD_SIGNATURE:
    case PeerTrust::EXPIRED:
    case PeerTrust::NOT_YET_VALID:
    case PeerTrust::WRONG_NAME: {
      /* The trusted certificate came second: what is wrong with the first. */
      std::string leaf = "server " + hp + ": the session certificate SHA256:" + fp;
      std::string signer = "the pinned server key SHA256:" + trusted + " (" + source + ")";
      if (t == PeerTrust::BAD_SIGNATURE)
        c->tls_failure = leaf + " is not signed by " + signer + ": " + detail
            + "; someone may be intercepting the connection; refusing";
      else if (t == PeerTrust::WRONG_NAME)
        c->tls_failure = leaf + " is signed by " + signer + ", but " + detail
            + ": it is another session's; refusing the connection";
      else
        c->tls_failure = leaf + (t == PeerTrust::EXPIRED ? " has expired (" : " is not valid yet (") + detail
            + "), although signed by " + signer + "; check the clocks of server and client; refusing the connection";
      break;
    }
  }
  return GNUTLS_E_CERTIFICATE_ERROR;
}


/* ---------------------------------------------------------------------- */
/* Setup                                                                   */

static int
make_udp_socket (int family)
{
  int fd = socket (family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int sz = 8 * 1024 * 1024;
  if (setsockopt (fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
    setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  return fd;
}

static bool
resolve (const std::string & host, guint port, int socktype, bool passive,
    sockaddr_storage * out, socklen_t * outlen, std::string & error)
{
  addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo *res = nullptr;
  std::string ps = std::to_string (port);
  int rv = getaddrinfo (host.empty () ? nullptr : host.c_str (), ps.c_str (), &hints, &res);
  if (rv != 0 || !res) {
    error = "cannot resolve '" + host + "': " + gai_strerror (rv);
    return false;
  }
  /* A passive wildcard prefers IPv6 (dual-stack). */
  addrinfo *pick = res;
  if (passive && host.empty ())
    for (addrinfo *a = res; a; a = a->ai_next)
      if (a->ai_family == AF_INET6) {
        pick = a;
        break;
      }
  memcpy (out, pick->ai_addr, pick->ai_addrlen);
  *outlen = pick->ai_addrlen;
  freeaddrinfo (res);
  return true;
}

bool
Endpoint::Impl::setup_server (std::string & error)
{
  const Config &cfg = self->cfg_;
  std::string cert = cfg.cert_file.empty () ? default_certificate_file () : cfg.cert_file;
  std::string key = cfg.key_file.empty () ? default_private_key_file () : cfg.key_file;
  if (!load_server_credentials (cert, key, &cred, fingerprint, error))
    return false;
  if (!resolve (cfg.host, cfg.port, SOCK_DGRAM, true, &local, &locallen, error))
    return false;
  if (cfg.transport != TransportChoice::Tcp) {
    udp = make_udp_socket (local.ss_family);
    int off = 0, on = 1;
    if (local.ss_family == AF_INET6)
      setsockopt (udp, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    setsockopt (udp, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (udp < 0 || bind (udp, (sockaddr *) &local, locallen) != 0) {
      error = "cannot listen on UDP " + addr_to_string ((sockaddr *) &local) + ": " + strerror (errno);
      return false;
    }
    locallen = sizeof local;
    getsockname (udp, (sockaddr *) &local, &locallen);
  }
  if (cfg.transport != TransportChoice::Quic && !setup_tcp_listen (error))
    return false;
  GST_INFO ("server listening on %s, certificate SHA256:%s", addr_to_string ((sockaddr *) &local).c_str (),
      fingerprint.c_str ());
  return true;
}

bool
Endpoint::Impl::setup_tls (Conn & c, bool server, std::string & error)
{
  int rv = gnutls_init (&c.tls, (server ? GNUTLS_SERVER : GNUTLS_CLIENT)
      | (c.tcp ? GNUTLS_NONBLOCK : GNUTLS_NO_END_OF_EARLY_DATA));
  if (rv == 0)
    rv = gnutls_priority_set_direct (c.tls, kPriority, nullptr);
  if (rv == 0 && !c.tcp)
    rv = server ? ngtcp2_crypto_gnutls_configure_server_session (c.tls)
        : ngtcp2_crypto_gnutls_configure_client_session (c.tls);
  if (rv == 0)
    rv = gnutls_credentials_set (c.tls, GNUTLS_CRD_CERTIFICATE, cred);
  if (rv != 0) {
    error = std::string ("TLS setup failed: ") + gnutls_strerror (rv);
    return false;
  }
  c.ref.get_conn = get_conn_cb;
  c.ref.user_data = &c;
  gnutls_session_set_ptr (c.tls, &c.ref);
  gnutls_datum_t alpn { (unsigned char *) kAlpn, (unsigned) strlen (kAlpn) };
  gnutls_alpn_set_protocols (c.tls, &alpn, 1, GNUTLS_ALPN_MANDATORY);
  if (!server)
    gnutls_server_name_set (c.tls, GNUTLS_NAME_DNS, "wayray", 6);
  return true;
}

std::unique_ptr<Endpoint::Conn>
Endpoint::Impl::new_quic_conn (bool server, const ngtcp2_pkt_hd * hd, const sockaddr * remote,
    socklen_t remotelen, std::string & error)
{
  const Config &cfg = self->cfg_;
  std::unique_ptr<Conn> c (new Conn);
  c->ep = this;
  c->gen = gen + 1;
  c->started = now_ns ();
  memcpy (&c->remote, remote, remotelen);
  c->remotelen = remotelen;
  c->peer = addr_to_string (remote);
  ngtcp2_path_storage_init (&c->ps, (sockaddr *) &local, locallen, remote, remotelen, nullptr);

  ngtcp2_callbacks cb {};
  cb.client_initial = server ? nullptr : ngtcp2_crypto_client_initial_cb;
  cb.recv_client_initial = server ? ngtcp2_crypto_recv_client_initial_cb : nullptr;
  cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb.handshake_completed = handshake_completed_cb;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.recv_stream_data = recv_stream_data_cb;
  cb.acked_stream_data_offset = acked_stream_data_cb;
  cb.stream_close = stream_close_cb;
  cb.recv_retry = server ? nullptr : ngtcp2_crypto_recv_retry_cb;
  cb.extend_max_local_streams_uni = extend_max_local_streams_uni_cb;
  cb.rand = rand_cb;
  cb.get_new_connection_id = new_cid_cb;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.stream_reset = stream_reset_cb;
  cb.extend_max_stream_data = extend_max_stream_data_cb;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;

  ngtcp2_settings settings;
  ngtcp2_settings_default (&settings);
  settings.initial_ts = now_ns ();
  settings.cc_algo = (ngtcp2_cc_algo) cfg.congestion;
  settings.max_tx_udp_payload_size = std::max<guint> (cfg.max_udp_payload, 1200);
  settings.handshake_timeout = (cfg.transport == TransportChoice::Auto && !server)
      ? UINT64_MAX : (ngtcp2_duration) std::max<guint> (cfg.handshake_timeout_ms, 1000) * 10 * NGTCP2_MILLISECONDS;

  ngtcp2_transport_params params;
  ngtcp2_transport_params_default (&params);
  params.initial_max_streams_uni = kMaxIncomingStreams;
  params.initial_max_streams_bidi = 0;
  params.initial_max_stream_data_uni = kStreamWindow;
  params.initial_max_data = kConnWindow;
  params.max_idle_timeout = (ngtcp2_duration) cfg.idle_timeout_ms * NGTCP2_MILLISECONDS;

  ngtcp2_cid scid;
  scid.datalen = 8;
  gnutls_rnd (GNUTLS_RND_RANDOM, scid.data, scid.datalen);
  int rv;
  if (server) {
    params.original_dcid = hd->dcid;
    rv = ngtcp2_conn_server_new (&c->q, &hd->scid, &scid, &c->ps.path, hd->version, &cb,
        &settings, &params, nullptr, c.get ());
  } else {
    ngtcp2_cid dcid;
    dcid.datalen = 18;
    gnutls_rnd (GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
    rv = ngtcp2_conn_client_new (&c->q, &dcid, &scid, &c->ps.path, NGTCP2_PROTO_VER_V1, &cb,
        &settings, &params, nullptr, c.get ());
  }
  if (rv != 0) {
    error = std::string ("creating the QUIC connection failed: ") + ngtcp2_strerror (rv);
    return nullptr;
  }
  if (!setup_tls (*c, server, error))
    return nullptr;
  ngtcp2_conn_set_tls_native_handle (c->q, c->tls);
  if (cfg.keepalive_ms > 0)
    ngtcp2_conn_set_keep_alive_timeout (c->q, (ngtcp2_duration) cfg.keepalive_ms * NGTCP2_MILLISECONDS);
  return c;
}

bool
Endpoint::Impl::start_quic_client (std::string & error)
{
  if (udp >= 0)
    close (udp);
  udp = make_udp_socket (server_addr.ss_family);
  if (udp < 0 || connect (udp, (sockaddr *) &server_addr, server_addrlen) != 0) {
    error = "cannot open a UDP socket to " + addr_to_string ((sockaddr *) &server_addr) + ": " + strerror (errno);
    return false;
  }
  locallen = sizeof local;
  getsockname (udp, (sockaddr *) &local, &locallen);
  conn = new_quic_conn (false, nullptr, (sockaddr *) &server_addr, server_addrlen, error);
  if (!conn)
    return false;
  gen = conn->gen;
  quic_deadline = self->cfg_.transport == TransportChoice::Auto
      ? now_ns () + (guint64) self->cfg_.handshake_timeout_ms * 1000000ull : 0;
  return true;
}

bool
Endpoint::Impl::setup_client (std::string & error)
{
  const Config &cfg = self->cfg_;
  gnutls_certificate_allocate_credentials (&cred);
  gnutls_certificate_set_verify_function (cred, verify_peer_cb);
  if (!resolve (cfg.host.empty () ? "127.0.0.1" : cfg.host, cfg.port, SOCK_DGRAM, false,
          &server_addr, &server_addrlen, error))
    return false;
  if (cfg.transport == TransportChoice::Tcp)
    return start_tcp_client (error);
  return start_quic_client (error);
}


void
Endpoint::Impl::read_udp ()
{
  for (int i = 0; i < 256; i++) {
    sockaddr_storage from {};
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom (udp, rxbuf.data (), rxbuf.size (), 0, (sockaddr *) &from, &fromlen);
    if (n < 0)
      break;
    feed_packet (rxbuf.data (), (size_t) n, (sockaddr *) &from, fromlen);
  }
}

void
Endpoint::Impl::feed_packet (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen)
{
  if (self->cfg_.mode == Mode::Server) {
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid (&vc, data, len, 8);
    if (rv != 0)
      return;
    auto owns = [&vc] (Conn * c) {
      if (!c || c->tcp)
        return false;
      std::vector<ngtcp2_cid> scids (ngtcp2_conn_get_num_scid (c->q));
      ngtcp2_conn_get_scid (c->q, scids.data ());
      for (auto &cid : scids)
        if (cid.datalen == vc.dcidlen && memcmp (cid.data, vc.dcid, vc.dcidlen) == 0)
          return true;
      const ngtcp2_cid *odcid = ngtcp2_conn_get_client_initial_dcid (c->q);
      return odcid->datalen == vc.dcidlen && memcmp (odcid->data, vc.dcid, vc.dcidlen) == 0;
    };
    if (!owns (conn.get ())) {
      if (!owns (candidate.get ())) {
        ngtcp2_pkt_hd hd;
        if (ngtcp2_accept (&hd, data, len) != 0)
          return;
        std::string error;
        auto c = new_quic_conn (true, &hd, from, fromlen, error);
        if (!c) {
          warn (error);
          return;
        }
        if (candidate)
          GST_DEBUG ("dropping the unfinished handshake of %s", candidate->peer.c_str ());
        candidate = std::move (c);
        GST_INFO ("handshake from %s", candidate->peer.c_str ());
      }
      /* A handshake in progress: it becomes conn when it completes. */
      Conn *c = candidate.get ();
      ngtcp2_path path = c->ps.path;
      sockaddr_storage fromcopy;
      memcpy (&fromcopy, from, fromlen);
      path.remote.addr = (sockaddr *) &fromcopy;
      path.remote.addrlen = fromlen;
      ngtcp2_pkt_info pi {};
      int rv = ngtcp2_conn_read_pkt (c->q, &path, &pi, data, len, now_ns ());
      if (candidate.get () == c && rv != 0) {
        GST_INFO ("handshake from %s failed: %s", c->peer.c_str (), ngtcp2_strerror (rv));
        candidate.reset ();
      }
      return;
    }
  }
  if (!conn || conn->tcp)
    return;
  Conn *c = conn.get ();
  ngtcp2_path path = c->ps.path;
  sockaddr_storage fromcopy;
  memcpy (&fromcopy, from, fromlen);
  path.remote.addr = (sockaddr *) &fromcopy;
  path.remote.addrlen = fromlen;
  ngtcp2_pkt_info pi {};
  int rv = ngtcp2_conn_read_pkt (c->q, &path, &pi, data, len, now_ns ());
  if (!conn || conn.get () != c)
    return;
  if (c->closing) {
    close_conn (c->close_reason, true, kErrMalformed, false);
    return;
  }
  if (rv == 0)
    return;
  if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_conn_get_connection_close_error (c->q, &ccerr);
    std::string why = ccerr.reasonlen ? std::string ((const char *) ccerr.reason, ccerr.reasonlen)
        : (ccerr.error_code == 0 ? "no error" : "error code " + std::to_string (ccerr.error_code));
    close_conn ("the peer closed the connection (" + why + ")", false, 0, true);
    return;
  }
  if (rv == NGTCP2_ERR_DROP_CONN) {
    close_conn ("connection dropped", false, 0, false);
    return;
  }
  if (rv == NGTCP2_ERR_CRYPTO || rv == NGTCP2_ERR_CALLBACK_FAILURE || ngtcp2_err_is_fatal (rv)) {
    std::string why = !c->tls_failure.empty () ? c->tls_failure
        : std::string ("QUIC error: ") + ngtcp2_strerror (rv);
    if (!c->tls_failure.empty ())
      ngtcp2_conn_set_tls_alert (c->q, GNUTLS_A_BAD_CERTIFICATE);
    bool refused = !c->tls_failure.empty ();
    close_conn (why, true, kErrMalformed, false);
    if (refused && self->cfg_.mode == Mode::Client) {
      fatal = true;
      fatal_reason = why;
      quic_deadline = 0;
      notify_state (false, "", "quic", why, true);
    }
  }
}

void
Endpoint::Impl::handle_expiry ()
{
  guint64 now = now_ns ();
  if (quic_deadline && now >= quic_deadline && conn && !conn->tcp && !conn->established) {
    /* The QUIC handshake did not complete in time: UDP is probably blocked. */
    quic_deadline = 0;
    GST_INFO ("QUIC handshake with %s did not complete within %u ms; trying TCP",
        conn->peer.c_str (), self->cfg_.handshake_timeout_ms);
    conn.reset ();
    std::string error;
    if (!start_tcp_client (error)) {
      fatal = true;
      fatal_reason = error;
      notify_state (false, "", "tcp", error, true);
    }
    return;
  }
  if (candidate && !candidate->tcp && now >= ngtcp2_conn_get_expiry (candidate->q)
      && ngtcp2_conn_handle_expiry (candidate->q, now) != 0) {
    GST_INFO ("handshake from %s timed out", candidate->peer.c_str ());
    candidate.reset ();
  }
  if (!conn || conn->tcp)
    return;
  if (now < ngtcp2_conn_get_expiry (conn->q))
    return;
  int rv = ngtcp2_conn_handle_expiry (conn->q, now);
  if (rv == 0)
    return;
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    char buf[160];
    g_snprintf (buf, sizeof buf, "no packets from the peer for %.1f s (idle timeout): the peer is gone",
        self->cfg_.idle_timeout_ms / 1000.0);
    close_conn (buf, false, 0, false);
  } else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    close_conn ("the QUIC handshake timed out", false, 0, false);
  } else {
    close_conn (std::string ("QUIC error: ") + ngtcp2_strerror (rv), true, kErrShutdown, false);
  }
}

void
Endpoint::Impl::close_conn (const std::string & reason, bool send_close, guint64 app_error, bool peer_closed)
{
  if (!conn)
    return;
  std::unique_ptr<Conn> c = std::move (conn);
  GST_INFO ("connection with %s closed: %s", c->peer.c_str (), reason.c_str ());
  if (send_close && !c->tcp && c->q) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default (&ccerr);
    if (!c->tls_failure.empty ())
      ngtcp2_connection_close_error_set_transport_error_tls_alert (&ccerr, GNUTLS_A_BAD_CERTIFICATE,
          (const uint8_t *) "certificate refused", 19);
    else
      ngtcp2_connection_close_error_set_application_error (&ccerr, app_error,
          (const uint8_t *) reason.data (), MIN (reason.size (), (size_t) 200));
    guint8 buf[1500];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero (&ps);
    ngtcp2_pkt_info pi {};
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close (c->q, &ps.path, &pi, buf, sizeof buf,
        &ccerr, now_ns ());
    if (n > 0) {
      if (self->cfg_.mode == Mode::Server)
        sendto (udp, buf, n, MSG_DONTWAIT, (sockaddr *) &c->remote, c->remotelen);
      else
        send (udp, buf, n, MSG_DONTWAIT);
    }
  }
  if (send_close && c->tcp && c->tls && !c->tls_handshaking)
    gnutls_bye (c->tls, GNUTLS_SHUT_WR);
  bool was_up = connected;
  connected = false;
  /* Every stream of that connection is gone. */
  for (auto &s : streams) {
    s->dead = true;
    s->chunks.clear ();
  }
  streams.clear ();
  control.reset ();
  tx_len = tx_count = 0;
  want_pollout = false;
  {
    std::lock_guard<std::mutex> lk (users_mu);
    for (auto &kv : c->in) {
      if (kv.second->parser.has_preamble () && !kv.second->is_control) {
        InStreamRef ref { c->gen, kv.first, &kv.second->parser.preamble () };
        for (auto *u : users)
          if (u->is_receiver ())
            u->on_stream_end (ref, true);
      }
    }
    for (auto &kv : c->tcp_in) {
      if (kv.second->parser.has_preamble () && !kv.second->is_control) {
        InStreamRef ref { c->gen, (gint64) kv.first, &kv.second->parser.preamble () };
        for (auto *u : users)
          if (u->is_receiver ())
            u->on_stream_end (ref, true);
      }
    }
  }
  if (was_up || peer_closed || self->cfg_.mode == Mode::Client) {
    bool fatal_now = self->cfg_.mode == Mode::Client && !c->tls_failure.empty ();
    if (!fatal_now)
      notify_state (false, c->peer, c->tcp ? "tcp" : "quic",
          "connection with " + c->peer + " lost: " + reason,
          self->cfg_.mode == Mode::Client && was_up);
  }
  cv.notify_all ();
  update_stats (false);
}

void
Endpoint::Impl::promote_candidate ()
{
  std::string peer = candidate->peer;
  if (conn)
    close_conn ("replaced by a new client from " + peer, true, kErrReplaced, false);
  conn = std::move (candidate);
  GST_INFO ("new client %s", peer.c_str ());
}

void
Endpoint::Impl::on_established ()
{
  Conn &c = *conn;
  c.established = true;
  connected = true;
  quic_deadline = 0;
  gen = c.gen;
  GST_INFO ("connected with %s over %s", c.peer.c_str (), c.tcp ? "TCP+TLS" : "QUIC");
  auto ctl = std::make_shared<SendStream> ();
  ctl->pre.purpose = Purpose::Control;
  ctl->pre.name = "control";
  ctl->priority = purpose_priority (Purpose::Control);
  ctl->conn_gen = gen;
  std::vector<guint8> hdr;
  encode_preamble (hdr, ctl->pre);
  ctl->written = hdr.size ();
  hdr.reserve (kChunkReserve);
  ctl->chunks.push_back (std::move (hdr));
  control = ctl;
  streams.push_back (ctl);
  notify_state (true, c.peer, c.tcp ? "tcp" : "quic", "", false);
  cv.notify_all ();
}

}  // namespace wrq
