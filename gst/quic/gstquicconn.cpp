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
new_cid_cb (ngtcp2_conn *, ngtcp2_cid * cid, uint8_t * token, size_t cidlen, void *user_data)
{
  if (gnutls_rnd (GNUTLS_RND_RANDOM, cid->data, cidlen) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  cid->datalen = cidlen;
  /* A server's IDs keep its prefix: the seat's router routes by it. */
  const std::string &prefix = static_cast<Endpoint::Conn *> (user_data)->prefix;
  memcpy (cid->data, prefix.data (), MIN (prefix.size (), cidlen));
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

/* ngtcp2 before 0.13 (Debian 12 has 0.12.1) never closes a stream the
 * peer opened in one direction once it has ended: its stream_close
 * callback does not come (ngtcp2 issue 662), and with it neither the
 * peer's credit for a next stream nor our freeing of the stream. A peer
 * that opens a stream per group of pictures would run out of streams
 * after kMaxIncomingStreams of them and stall for good. With such an
 * ngtcp2 a peer's stream is given back where it ends: when its last byte
 * and FIN have been delivered, or when it is reset. */
static bool
remote_streams_never_close ()
{
  static const bool old = ngtcp2_version (0)->version_num < 0x000d00;
  return old;
}

/* The peer's stream @id has ended for good: its held credit goes back to
 * the connection, its parser is freed, and the peer may open another
 * stream. Once per stream; what is left of it is a marker that
 * stream_close_cb (should it come) erases. */
static void
give_back_stream (ngtcp2_conn * conn, Endpoint::Conn * c, int64_t stream_id)
{
  auto &slot = c->in[stream_id];
  if (slot && slot->given_back)
    return;
  if (slot && slot->held)
    ngtcp2_conn_extend_max_offset (conn, slot->held);
  slot.reset (new InStream ());
  slot->given_back = true;
  slot->failed = true;
  ngtcp2_conn_extend_max_streams_uni (conn, 1);
}

static int
recv_stream_data_cb (ngtcp2_conn * conn, uint32_t flags, int64_t stream_id, uint64_t,
    const uint8_t * data, size_t datalen, void *user_data, void *)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  auto &slot = c->in[stream_id];
  if (!slot)
    slot.reset (new InStream ());
  c->bytes_received += datalen;
  if (c->closing || slot->given_back)
    return 0;
  bool fin = flags & NGTCP2_STREAM_DATA_FLAG_FIN;
  c->ep->stream_data (*c, *slot, stream_id, data, datalen, fin);
  if (fin && remote_streams_never_close () && !ngtcp2_conn_is_local_stream (conn, stream_id))
    give_back_stream (conn, c, stream_id);
  return 0;
}

static int
recv_datagram_cb (ngtcp2_conn *, uint32_t, const uint8_t * data, size_t datalen, void *user_data)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  c->bytes_received += datalen;
  if (!c->closing)
    c->ep->datagram_received (*c, data, datalen);
  return 0;
}

static int
acked_stream_data_cb (ngtcp2_conn *, int64_t, uint64_t offset, uint64_t datalen,
    void *user_data, void *stream_user_data)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  auto *s = static_cast<SendStream *> (stream_user_data);
  c->acks.add (datalen, now_ns ());
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
    if (it != c->in.end () && it->second->given_back) {
      c->in.erase (it);   /* given back already */
      return 0;
    }
    if (it != c->in.end ()) {
      InStream &s = *it->second;
      ep->stream_ended (*c, s, stream_id, false);
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
    ep->drop_stream (*c, s);
    ep->cv.notify_all ();
  }
  return 0;
}

static int
stream_reset_cb (ngtcp2_conn * conn, int64_t stream_id, uint64_t, uint64_t app_error,
    void *user_data, void *)
{
  auto *c = static_cast<Endpoint::Conn *> (user_data);
  auto it = c->in.find (stream_id);
  if (it != c->in.end () && !it->second->failed) {
    GST_DEBUG ("stream %" G_GINT64_FORMAT " from %s reset by the peer, error %" G_GUINT64_FORMAT,
        stream_id, c->peer.c_str (), app_error);
    c->ep->stream_ended (*c, *it->second, stream_id, true);
    it->second->failed = true;   /* ignore anything after */
  }
  if (remote_streams_never_close () && !ngtcp2_conn_is_local_stream (conn, stream_id))
    give_back_stream (conn, c, stream_id);
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
  c->ep->on_established (*c);
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
  gnutls_rnd (GNUTLS_RND_RANDOM, retry_secret, sizeof retry_secret);
  if (cfg.relay) {
    /* Datagrams and TCP connections come through the router's relay. */
    local = sockaddr_storage {};
    locallen = sizeof (sockaddr_in6);
    local.ss_family = AF_INET6;
    GST_INFO ("server behind the seat's router (connection-id prefix %s), certificate SHA256:%s",
        prefix_to_hex (cfg.cid_prefix).c_str (), fingerprint.c_str ());
    return true;
  }
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
  /* Over TCP, GnuTLS writes to the socket itself: a peer that closed it
   * (a router refusing the connection) must not raise SIGPIPE in the
   * application that loaded this plugin (GNUTLS_NO_SIGNAL: MSG_NOSIGNAL). */
  int rv = gnutls_init (&c.tls, (server ? GNUTLS_SERVER : GNUTLS_CLIENT)
      | (c.tcp ? GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL : GNUTLS_NO_END_OF_EARLY_DATA));
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

std::string
source_of (const sockaddr * sa)
{
  std::string a = addr_to_string (sa);
  size_t colon = a.rfind (':');
  return colon == std::string::npos ? a : a.substr (0, colon);
}

std::unique_ptr<Endpoint::Conn>
Endpoint::Impl::new_quic_conn (bool server, const ngtcp2_pkt_hd * hd, const ngtcp2_cid * odcid,
    const sockaddr * remote, socklen_t remotelen, std::string & error)
{
  const Config &cfg = self->cfg_;
  std::unique_ptr<Conn> c (new Conn);
  c->ep = this;
  c->link = make_quic_link (*this);
  c->gen = ++next_id;
  c->started = now_ns ();
  memcpy (&c->remote, remote, remotelen);
  c->remotelen = remotelen;
  c->peer = addr_to_string (remote);
  c->source = source_of (remote);
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
  cb.recv_datagram = recv_datagram_cb;
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
  params.max_datagram_frame_size = kMaxDatagramFrame;

  ngtcp2_cid scid;
  if (server) {
    make_scid (scid);
    c->prefix = cfg.cid_prefix.substr (0, kMaxRoutePrefix);
  } else {
    scid.datalen = 8;
    gnutls_rnd (GNUTLS_RND_RANDOM, scid.data, scid.datalen);
  }
  int rv;
  if (server) {
    if (odcid) {
      /* The client came back with our Retry token: its address is valid. */
      params.original_dcid = *odcid;
      params.retry_scid = hd->dcid;
      params.retry_scid_present = 1;
    } else {
      params.original_dcid = hd->dcid;
    }
    rv = ngtcp2_conn_server_new (&c->q, &hd->scid, &scid, &c->ps.path, hd->version, &cb,
        &settings, &params, nullptr, c.get ());
  } else {
    /* The Initial's destination ID carries the route to the session. */
    ngtcp2_cid dcid;
    dcid.datalen = 18;
    gnutls_rnd (GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
    memcpy (dcid.data, cfg.cid_prefix.data (), MIN (cfg.cid_prefix.size (), kMaxRoutePrefix));
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
  auto c = new_quic_conn (false, nullptr, nullptr, (sockaddr *) &server_addr, server_addrlen, error);
  if (!c)
    return false;
  conn = add_conn (std::move (c));
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


/* ---------------------------------------------------------------------- */
/* Connections                                                             */

Endpoint::Conn *
Endpoint::Impl::add_conn (std::unique_ptr<Conn> c)
{
  Conn *p = c.get ();
  conns[p->gen] = std::move (c);
  return p;
}

guint
Endpoint::Impl::count_handshakes (const std::string & source, guint * from_source) const
{
  guint all = 0;
  *from_source = 0;
  for (auto &kv : conns)
    if (!kv.second->established) {
      all++;
      if (kv.second->source == source)
        (*from_source)++;
    }
  return all;
}

Endpoint::Conn *
Endpoint::Impl::find_conn (guint64 id)
{
  auto it = conns.find (id);
  return it == conns.end () ? nullptr : it->second.get ();
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

static bool
owns_cid (Endpoint::Conn & c, const ngtcp2_version_cid & vc)
{
  if (!c.q || c.closed)
    return false;
  ngtcp2_cid scids[16];
  size_t n = ngtcp2_conn_get_num_scid (c.q);
  if (n > G_N_ELEMENTS (scids))
    n = G_N_ELEMENTS (scids);
  if (n == ngtcp2_conn_get_num_scid (c.q)) {
    ngtcp2_conn_get_scid (c.q, scids);
  } else {
    std::vector<ngtcp2_cid> all (ngtcp2_conn_get_num_scid (c.q));
    ngtcp2_conn_get_scid (c.q, all.data ());
    for (auto &cid : all)
      if (cid.datalen == vc.dcidlen && memcmp (cid.data, vc.dcid, vc.dcidlen) == 0)
        return true;
    n = 0;
  }
  for (size_t i = 0; i < n; i++)
    if (scids[i].datalen == vc.dcidlen && memcmp (scids[i].data, vc.dcid, vc.dcidlen) == 0)
      return true;
  const ngtcp2_cid *odcid = ngtcp2_conn_get_client_initial_dcid (c.q);
  return odcid->datalen == vc.dcidlen && memcmp (odcid->data, vc.dcid, vc.dcidlen) == 0;
}

void
Endpoint::Impl::feed_packet (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen)
{
  if (self->cfg_.mode == Mode::Client) {
    if (conn && conn->q)
      read_conn_packet (*conn, data, len, from, fromlen);
    return;
  }
  if (route_datagram (data, len, from, fromlen))
    return;
  ngtcp2_version_cid vc;
  if (ngtcp2_pkt_decode_version_cid (&vc, data, len, kScidLen) != 0)
    return;
  /* The admitted connection first: it carries nearly every packet. */
  Conn *owner = conn && owns_cid (*conn, vc) ? conn : nullptr;
  if (!owner)
    for (auto &kv : conns)
      if (kv.second.get () != conn && owns_cid (*kv.second, vc)) {
        owner = kv.second.get ();
        break;
      }
  if (!owner)
    owner = accept_initial (data, len, from, fromlen);
  if (owner)
    read_conn_packet (*owner, data, len, from, fromlen);
}

void
Endpoint::Impl::send_stateless (const guint8 * pkt, ngtcp2_ssize len, const sockaddr * to, socklen_t tolen)
{
  if (len > 0)
    send_udp (pkt, (size_t) len, 0, to, tolen);
}

/* A packet for no connection: a new peer's Initial. Within the bounds
 * (connections, handshakes, handshakes per source address) it becomes a
 * connection, which displaces no one. Once handshakes pile up (or always,
 * with retry=always) the peer must first prove its address with a Retry
 * token, so spoofed sources cannot hold handshakes. */
Endpoint::Conn *
Endpoint::Impl::accept_initial (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen)
{
  const Config &cfg = self->cfg_;
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept (&hd, data, len) != 0 || hd.type != NGTCP2_PKT_INITIAL)
    return nullptr;
  guint64 now = now_ns ();
  std::string source = source_of (from);
  guint8 out[1500];

  if (conns.size () >= MAX (cfg.max_connections, 1u)) {
    refused_initials++;
    GST_INFO ("refusing a connection from %s: the server holds %zu connections (max-connections)",
        addr_to_string (from).c_str (), conns.size ());
    static const char why[] = "server busy";
    send_stateless (out, ngtcp2_crypto_write_connection_close (out, sizeof out, hd.version, &hd.scid,
            &hd.dcid, NGTCP2_CONNECTION_REFUSED, (const uint8_t *) why, sizeof why - 1), from, fromlen);
    return nullptr;
  }

  ngtcp2_cid odcid;
  bool validated = false;
  if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    if (ngtcp2_crypto_verify_retry_token (&odcid, hd.token.base, hd.token.len, retry_secret,
            sizeof retry_secret, hd.version, from, fromlen, &hd.dcid, kRetryTokenTimeout, now) != 0) {
      refused_initials++;
      GST_INFO ("refusing a connection from %s: invalid or expired Retry token",
          addr_to_string (from).c_str ());
      static const char why[] = "invalid token";
      send_stateless (out, ngtcp2_crypto_write_connection_close (out, sizeof out, hd.version, &hd.scid,
              &hd.dcid, NGTCP2_INVALID_TOKEN, (const uint8_t *) why, sizeof why - 1), from, fromlen);
      return nullptr;
    }
    validated = true;
  }

  guint from_source = 0;
  guint handshakes = count_handshakes (source, &from_source);
  guint retry_above = MAX (cfg.max_handshakes / 4, 1u);
  if (!validated && (cfg.retry == RetryPolicy::Always
          || (cfg.retry == RetryPolicy::Auto && handshakes >= retry_above))) {
    ngtcp2_cid scid;
    make_scid (scid);
    guint8 token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
    ngtcp2_ssize tlen = ngtcp2_crypto_generate_retry_token (token, retry_secret, sizeof retry_secret,
        hd.version, from, fromlen, &scid, &hd.dcid, now);
    if (tlen < 0)
      return nullptr;
    ngtcp2_ssize n = ngtcp2_crypto_write_retry (out, sizeof out, hd.version, &hd.scid, &scid, &hd.dcid,
        token, (size_t) tlen);
    send_stateless (out, n, from, fromlen);
    retries_sent++;
    GST_DEBUG ("Retry to %s (%u handshakes in progress)", addr_to_string (from).c_str (), handshakes);
    return nullptr;
  }
  if (handshakes >= MAX (cfg.max_handshakes, 1u) || from_source >= MAX (cfg.max_handshakes_per_source, 1u)) {
    /* Dropped without an answer: the peer tries again (its Initial is
     * retransmitted), by when handshakes may have completed. */
    refused_initials++;
    GST_INFO ("not answering a handshake from %s: %u in progress, %u from that address "
        "(max-handshakes %u, max-handshakes-per-source %u)", addr_to_string (from).c_str (),
        handshakes, from_source, cfg.max_handshakes, cfg.max_handshakes_per_source);
    return nullptr;
  }
  std::string error;
  auto c = new_quic_conn (true, &hd, validated ? &odcid : nullptr, from, fromlen, error);
  if (!c) {
    warn (error);
    return nullptr;
  }
  GST_INFO ("handshake from %s (connection %" G_GUINT64_FORMAT "%s)", c->peer.c_str (), c->gen,
      validated ? ", address validated" : "");
  return add_conn (std::move (c));
}

void
Endpoint::Impl::read_conn_packet (Conn & c, const guint8 * data, size_t len, const sockaddr * from,
    socklen_t fromlen)
{
  ngtcp2_path path = c.ps.path;
  sockaddr_storage fromcopy;
  memcpy (&fromcopy, from, fromlen);
  path.remote.addr = (sockaddr *) &fromcopy;
  path.remote.addrlen = fromlen;
  ngtcp2_pkt_info pi {};
  int rv = ngtcp2_conn_read_pkt (c.q, &path, &pi, data, len, now_ns ());
  if (c.closed)
    return;
  if (c.closing) {
    close_conn (&c, c.close_reason, true, kErrMalformed, false);
    return;
  }
  if (rv == 0)
    return;
  if (!c.established && self->cfg_.mode == Mode::Server) {
    GST_INFO ("handshake from %s failed: %s", c.peer.c_str (), ngtcp2_strerror (rv));
    close_conn (&c, "handshake failed", false, 0, false);
    return;
  }
  if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_conn_get_connection_close_error (c.q, &ccerr);
    std::string why = ccerr.reasonlen ? std::string ((const char *) ccerr.reason, ccerr.reasonlen)
        : (ccerr.error_code == 0 ? "no error" : "error code " + std::to_string (ccerr.error_code));
    close_conn (&c, "the peer closed the connection (" + why + ")", false, 0, true);
    return;
  }
  if (rv == NGTCP2_ERR_DROP_CONN) {
    close_conn (&c, "connection dropped", false, 0, false);
    return;
  }
  if (rv == NGTCP2_ERR_CRYPTO || rv == NGTCP2_ERR_CALLBACK_FAILURE || ngtcp2_err_is_fatal (rv)) {
    std::string why = !c.tls_failure.empty () ? c.tls_failure
        : std::string ("QUIC error: ") + ngtcp2_strerror (rv);
    if (!c.tls_failure.empty ())
      ngtcp2_conn_set_tls_alert (c.q, GNUTLS_A_BAD_CERTIFICATE);
    bool refused = !c.tls_failure.empty ();
    close_conn (&c, why, true, kErrMalformed, false);
    if (refused && self->cfg_.mode == Mode::Client) {
      fatal = true;
      fatal_reason = why;
      quic_deadline = 0;
      notify_state (false, 0, "", "quic", why, true);
    }
  }
}

void
Endpoint::Impl::expire_conn (Conn & c, guint64 now)
{
  if (c.admit_deadline && now >= c.admit_deadline && !c.admitted) {
    char buf[120];
    g_snprintf (buf, sizeof buf, "not admitted within %.1f s", self->cfg_.admission_timeout_ms / 1000.0);
    close_conn (&c, buf, true, kErrNotAdmitted, false);
    return;
  }
  c.link->progress (c, now);
}

/* QUIC's timers: loss detection, acknowledgements, idle timeout. */
void
Endpoint::Impl::quic_expiry (Conn & c, guint64 now)
{
  if (now < ngtcp2_conn_get_expiry (c.q))
    return;
  int rv = ngtcp2_conn_handle_expiry (c.q, now);
  if (rv == 0)
    return;
  if (!c.established && self->cfg_.mode == Mode::Server) {
    GST_INFO ("handshake from %s timed out", c.peer.c_str ());
    close_conn (&c, "the handshake timed out", false, 0, false);
  } else if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    char buf[160];
    g_snprintf (buf, sizeof buf, "no packets from the peer for %.1f s (idle timeout): the peer is gone",
        self->cfg_.idle_timeout_ms / 1000.0);
    close_conn (&c, buf, false, 0, false);
  } else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    close_conn (&c, "the QUIC handshake timed out", false, 0, false);
  } else {
    close_conn (&c, std::string ("QUIC error: ") + ngtcp2_strerror (rv), true, kErrShutdown, false);
  }
}

void
Endpoint::Impl::handle_expiry ()
{
  guint64 now = now_ns ();
  if (quic_deadline && now >= quic_deadline && conn && conn->q && !conn->established) {
    /* The QUIC handshake did not complete in time: UDP is probably blocked. */
    quic_deadline = 0;
    GST_INFO ("QUIC handshake with %s did not complete within %u ms; trying TCP",
        conn->peer.c_str (), self->cfg_.handshake_timeout_ms);
    Conn *old = conn;
    conn = nullptr;
    old->closed = true;
    closed.push_back (std::move (conns[old->gen]));
    conns.erase (old->gen);
    std::string error;
    if (!start_tcp_client (error)) {
      fatal = true;
      fatal_reason = error;
      notify_state (false, 0, "", "tcp", error, true);
    }
    return;
  }
  std::vector<Conn *> list;
  for (auto &kv : conns)
    list.push_back (kv.second.get ());
  for (Conn *c : list)
    if (!c->closed)
      expire_conn (*c, now);
}

/* Closes @c (telling the peer when @send_close), ends its streams both
 * ways, and tells the elements when it was the admitted connection (or
 * the client's). The Conn is freed at the next turn of the loop. */
void
Endpoint::Impl::close_conn (Conn * cp, const std::string & reason, bool send_close, guint64 app_error,
    bool peer_closed)
{
  if (!cp || cp->closed)
    return;
  Conn &c = *cp;
  c.closed = true;
  auto it = conns.find (c.gen);
  if (it != conns.end () && it->second.get () == cp) {
    closed.push_back (std::move (it->second));
    conns.erase (it);
  }
  bool was_conn = cp == conn;
  if (was_conn || c.established)
    GST_INFO ("connection with %s closed: %s", c.peer.c_str (), reason.c_str ());
  else
    GST_DEBUG ("connection with %s closed: %s", c.peer.c_str (), reason.c_str ());
  if (send_close)
    c.link->goodbye (c, reason, app_error);
  /* Every stream of that connection is gone. */
  for (auto &s : c.streams) {
    s->dead = true;
    s->chunks.clear ();
  }
  c.streams.clear ();
  c.control.reset ();
  if (was_conn) {
    conn = nullptr;
    tx_len = tx_count = 0;
    want_pollout = false;
  }
  bool was_up = was_conn && connected;
  if (was_conn)
    connected = false;
  for (auto &kv : c.in)
    stream_ended (c, *kv.second, kv.first, true);
  for (auto &kv : c.tcp_in)
    stream_ended (c, *kv.second, (gint64) kv.first, true);
  bool client = self->cfg_.mode == Mode::Client;
  if (was_up || (client && (was_conn || peer_closed))) {
    bool fatal_now = client && !c.tls_failure.empty ();
    if (!fatal_now)
      notify_state (false, c.gen, c.peer, c.link->name (), "connection with " + c.peer + " lost: " + reason,
          client && was_up);
  }
  cv.notify_all ();
  update_stats (false);
}

void
Endpoint::Impl::quic_goodbye (Conn & c, const std::string & reason, guint64 app_error)
{
  ngtcp2_connection_close_error ccerr;
  ngtcp2_connection_close_error_default (&ccerr);
  if (!c.tls_failure.empty ())
    ngtcp2_connection_close_error_set_transport_error_tls_alert (&ccerr, GNUTLS_A_BAD_CERTIFICATE,
        (const uint8_t *) "certificate refused", 19);
  else
    ngtcp2_connection_close_error_set_application_error (&ccerr, app_error,
        (const uint8_t *) reason.data (), MIN (reason.size (), (size_t) 200));
  guint8 buf[1500];
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero (&ps);
  ngtcp2_pkt_info pi {};
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close (c.q, &ps.path, &pi, buf, sizeof buf,
      &ccerr, now_ns ());
  if (n > 0) {
    if (self->cfg_.mode == Mode::Server)
      send_udp (buf, (size_t) n, 0, (sockaddr *) &c.remote, c.remotelen);
    else
      send (udp, buf, n, MSG_DONTWAIT);
  }
}


/* The handshake completed. The connection's control stream opens; a
 * client's connection is up; a server's waits for admission (or is
 * admitted at once with admission=open). */
void
Endpoint::Impl::on_established (Conn & c)
{
  const Config &cfg = self->cfg_;
  c.established = true;
  c.control = new_stream (c, Preamble { });
  c.control->pre.purpose = Purpose::Control;
  c.control->pre.name = "control";
  c.control->priority = purpose_priority (Purpose::Control);
  std::vector<guint8> hdr;
  encode_preamble (hdr, c.control->pre);
  c.control->chunks.clear ();
  c.control->written = hdr.size ();
  hdr.reserve (kChunkReserve);
  c.control->chunks.push_back (std::move (hdr));
  GST_INFO ("connected with %s over %s (connection %" G_GUINT64_FORMAT ")", c.peer.c_str (),
      c.link->title (), c.gen);
  if (cfg.mode == Mode::Client) {
    connected = true;
    quic_deadline = 0;
    gen = c.gen;
    notify_state (true, c.gen, c.peer, c.link->name (), "", false);
    cv.notify_all ();
    return;
  }
  if (cfg.admission == Admission::Open) {
    admit_conn (c);
    return;
  }
  c.admit_deadline = now_ns () + (guint64) MAX (cfg.admission_timeout_ms, 100u) * 1000000ull;
  GST_INFO ("connection %" G_GUINT64_FORMAT " from %s waits for admission", c.gen, c.peer.c_str ());
}

/* @c becomes the admitted connection: the one before it is closed
 * ("replaced"), the peer is told it is admitted, the elements that it is
 * up. */
void
Endpoint::Impl::admit_conn (Conn & c)
{
  if (conn && conn != &c)
    close_conn (conn, "replaced by a new client from " + c.peer, true, kErrReplaced, false);
  c.admitted = true;
  c.admit_deadline = 0;
  conn = &c;
  gen = c.gen;
  connected = true;
  GstEvent *ev = gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM, gst_structure_new_empty ("wayray-admitted"));
  std::vector<guint8> bytes;
  if (c.control && encode_upstream_event (bytes, kTransportTarget, ev))
    append (*c.control, std::move (bytes));
  gst_event_unref (ev);
  GST_INFO ("admitted %s (connection %" G_GUINT64_FORMAT ")", c.peer.c_str (), c.gen);
  notify_state (true, c.gen, c.peer, c.link->name (), "", false);
  cv.notify_all ();
}

/* ---------------------------------------------------------------------- */
/* QUIC behind the connection interface                                    */

namespace {

class QuicLink : public Endpoint::Link {
public:
  explicit QuicLink (Endpoint::Impl & ep) : ep_ (ep) {}
  const char *name () const override { return "quic"; }
  const char *title () const override { return "QUIC"; }
  int poll_fd (const Endpoint::Conn &, short &) const override { return -1; }
  guint64 next_timer (const Endpoint::Conn & c, guint64) const override
  {
    return c.q ? ngtcp2_conn_get_expiry (c.q) : UINT64_MAX;
  }
  void progress (Endpoint::Conn & c, guint64 now) override { ep_.quic_expiry (c, now); }
  void write (Endpoint::Conn & c) override
  {
    ep_.open_pending_streams (c);
    ep_.write_quic (c);
  }
  void reset_stream (Endpoint::Conn & c, SendStream & s, guint64 app_error) override
  {
    ngtcp2_conn_shutdown_stream_write (c.q, s.id, app_error);
  }
  bool keeps_reset_data () const override { return true; }
  void received (Endpoint::Conn & c, InStream & s, gint64, size_t len) override
  {
    s.held += len;
    ep_.credit_held (c);
  }
  void discarded (Endpoint::Conn & c, gint64 id, size_t len) override { ep_.credit (c, id, len); }
  bool stop_stream (Endpoint::Conn & c, gint64 id, guint64 app_error) override
  {
    ngtcp2_conn_shutdown_stream_read (c.q, id, app_error);
    return true;
  }
  void resume (Endpoint::Conn & c) override
  {
    for (auto &in : c.in)
      in.second->rx_full = false;
    ep_.credit_held (c);
  }
  void goodbye (Endpoint::Conn & c, const std::string & reason, guint64 app_error) override
  {
    ep_.quic_goodbye (c, reason, app_error);
  }
  void stats (const Endpoint::Conn & c, Stats & st) const override
  {
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat (c.q, &cs);
    st.rtt = cs.latest_rtt;
    st.min_rtt = cs.min_rtt == UINT64_MAX ? 0 : cs.min_rtt;
    st.smoothed_rtt = cs.smoothed_rtt;
    st.rttvar = cs.rttvar;
    st.cwnd = cs.cwnd;
    st.bytes_in_flight = cs.bytes_in_flight;
    st.delivery_rate = cs.delivery_rate_sec;
    st.acked_rate = c.acks.rate (now_ns (), Endpoint::Impl::kAckRateWindow);
    st.pto_count = cs.pto_count;
    guint64 lost = c.loss_closed;
    for (auto &s : c.streams)
      if (s->id >= 0)
        lost += ngtcp2_conn_get_stream_loss_count (c.q, s->id);
    st.lost_packets = lost;
  }

private:
  Endpoint::Impl &ep_;
};

}  // namespace

std::unique_ptr<Endpoint::Link>
make_quic_link (Endpoint::Impl & ep)
{
  return std::unique_ptr<Endpoint::Link> (new QuicLink (ep));
}

}  // namespace wrq
