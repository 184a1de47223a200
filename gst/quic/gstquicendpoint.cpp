/* WayRay transport endpoint (see gstquicendpoint.h and docs/transport.md).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicendpoint.h"
#include "gstquictls.h"

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/tcp.h>   /* struct tcp_info with delivery rate and min RTT */
#include <netinet/udp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#ifndef UDP_SEGMENT
#  define UDP_SEGMENT 103
#endif

GST_DEBUG_CATEGORY_STATIC (wrq_endpoint_debug);
#define GST_CAT_DEFAULT wrq_endpoint_debug

namespace wrq {

namespace {


/* The receive budget of a connection (docs/transport.md, "Queues, flow
 * control and robustness"). Connection credit is granted only for bytes
 * credited to their stream, and a stream is credited only for what leaves
 * this end's buffers or, for bytes of unfinished frames, while all the
 * connection's unfinished frames together stay within kPartialBudget (beyond
 * it, only the stream with the largest unfinished frame goes on, so one
 * frame can always complete). So what a peer can make this end hold is at
 * most kConnWindow not yet credited, plus kPartialBudget and one frame of
 * unfinished frames, plus what the receiver's queues hold. */
constexpr guint64 kStreamWindow = 4 * 1024 * 1024;
constexpr guint64 kConnWindow = 64 * 1024 * 1024;
constexpr guint64 kPartialBudget = 72 * 1024 * 1024;
constexpr guint64 kMaxIncomingStreams = 256;
constexpr size_t kMaxBatch = 32;           /* packets per GSO send */
constexpr size_t kChunkReserve = 64 * 1024;
constexpr size_t kRxBufSize = 65536;

const char *const kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:%DISABLE_TLS13_COMPAT_MODE";

guint64
now_ns ()
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * 1000000000ull + (guint64) ts.tv_nsec;
}

std::string
addr_to_string (const sockaddr * sa)
{
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    auto *in = (const sockaddr_in *) sa;
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs (in->sin_port);
    return std::string (host) + ":" + std::to_string (port);
  }
  if (sa->sa_family == AF_INET6) {
    auto *in6 = (const sockaddr_in6 *) sa;
    inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs (in6->sin6_port);
    return std::string ("[") + host + "]:" + std::to_string (port);
  }
  return "?";
}

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

std::mutex registry_mu;
std::map<std::string, std::weak_ptr<Endpoint>> registry;

}  // namespace

std::string
Config::key () const
{
  return std::string (mode == Mode::Server ? "server:" : "client:") + host + ":" + std::to_string (port);
}

std::string
Config::host_port () const
{
  if (host.find (':') != std::string::npos)
    return "[" + host + "]:" + std::to_string (port);
  return host + ":" + std::to_string (port);
}

GstStructure *
Stats::to_structure () const
{
  return gst_structure_new ("wayray-quic-stats",
      "connected", G_TYPE_BOOLEAN, connected,
      "transport", G_TYPE_STRING, transport.c_str (),
      "peer", G_TYPE_STRING, peer.c_str (),
      "rtt", G_TYPE_UINT64, rtt,
      "min-rtt", G_TYPE_UINT64, min_rtt,
      "smoothed-rtt", G_TYPE_UINT64, smoothed_rtt,
      "rtt-variance", G_TYPE_UINT64, rttvar,
      "cwnd", G_TYPE_UINT64, cwnd,
      "bytes-in-flight", G_TYPE_UINT64, bytes_in_flight,
      "delivery-rate", G_TYPE_UINT64, delivery_rate,
      "lost-packets", G_TYPE_UINT64, lost_packets,
      "pto-count", G_TYPE_UINT64, pto_count,
      "bytes-sent", G_TYPE_UINT64, bytes_sent,
      "bytes-received", G_TYPE_UINT64, bytes_received,
      "send-queue-bytes", G_TYPE_UINT64, send_queue_bytes, nullptr);
}

/* One incoming stream. */
struct InStream {
  Parser parser;
  guint64 held = 0;      /* received, flow control not yet credited (stream and connection) */
  bool rx_full = false;  /* the receiver's queue is full: hold credit */
  bool is_control = false;
  bool failed = false;
};

struct Endpoint::Conn {
  Impl *ep = nullptr;
  guint64 gen = 0;
  bool tcp = false;
  ngtcp2_conn *q = nullptr;
  gnutls_session_t tls = nullptr;
  ngtcp2_crypto_conn_ref ref {};
  ngtcp2_path_storage ps {};
  sockaddr_storage remote {};
  socklen_t remotelen = 0;
  std::string peer;
  bool established = false;
  bool closing = false;       /* a callback found it unusable: close after */
  std::string close_reason;
  gint64 control_id = -1;
  std::string tls_failure;   /* why certificate verification refused */
  std::map<gint64, std::unique_ptr<InStream>> in;
  guint64 loss_closed = 0;   /* lost-packet count of closed streams */
  guint64 bytes_sent = 0, bytes_received = 0;
  guint64 started = 0;

  /* TCP fallback. */
  int fd = -1;
  bool tls_handshaking = true;
  std::vector<guint8> rx;            /* undecoded mux bytes */
  std::vector<guint8> tx_pending;    /* mux bytes TLS has not taken yet */
  size_t tx_off = 0;
  size_t tx_again_len = 0;           /* length of the call that got E_AGAIN */
  std::map<guint32, std::unique_ptr<InStream>> tcp_in;
  bool rx_paused = false;            /* a receiver is full: read nothing more */
  guint32 next_tcp_id = 0;
  guint64 last_rx = 0, last_tx = 0;

  ~Conn ()
  {
    if (q)
      ngtcp2_conn_del (q);
    if (tls)
      gnutls_deinit (tls);
    if (fd >= 0)
      close (fd);
  }
};

struct Endpoint::Impl {
  Endpoint *self = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::thread net, disp;
  std::atomic<bool> quit { false };
  int efd = -1;
  int udp = -1;
  int tcp_listen = -1;
  sockaddr_storage local {};
  socklen_t locallen = 0;
  gnutls_certificate_credentials_t cred = nullptr;
  std::string fingerprint;
  std::unique_ptr<Conn> conn;
  /* Server: a client still in its handshake. It replaces conn only once the
   * handshake completes, so stray or forged packets cannot evict a client. */
  std::unique_ptr<Conn> candidate;
  guint64 gen = 0;
  bool connected = false;
  std::vector<std::shared_ptr<SendStream>> streams;
  std::shared_ptr<SendStream> control;
  guint64 serve_counter = 0;
  bool started = false;
  bool fatal = false;
  std::string fatal_reason;
  bool gso = true;
  bool want_pollout = false;
  std::vector<guint8> txbuf;
  size_t tx_len = 0, tx_seg = 0, tx_count = 0;
  std::vector<guint8> rxbuf;
  Stats stats;
  guint64 next_stats = 0;
  guint64 quic_deadline = 0;   /* client: when to give up QUIC for TCP */
  bool tcp_tried = false;
  sockaddr_storage server_addr {};
  socklen_t server_addrlen = 0;

  std::mutex users_mu;
  std::condition_variable users_cv;
  std::vector<EndpointUser *> users;
  int dispatching = 0;                 /* dispatcher calls in progress */
  std::thread::id disp_thread;

  /* Dispatcher thread: calls @f for each registered user (until it returns
   * TRUE) without holding users_mu, so a callback may change the element's
   * state; remove_user () waits for calls in progress instead. */
  template <typename F> void for_each_user (F f)
  {
    std::vector<EndpointUser *> list;
    {
      std::lock_guard<std::mutex> lk (users_mu);
      list = users;
      dispatching++;
    }
    for (auto *u : list) {
      {
        std::lock_guard<std::mutex> lk (users_mu);
        if (std::find (users.begin (), users.end (), u) == users.end ())
          continue;
      }
      if (f (u))
        break;
    }
    {
      std::lock_guard<std::mutex> lk (users_mu);
      dispatching--;
    }
    users_cv.notify_all ();
  }

  std::mutex disp_mu;
  std::condition_variable disp_cv;
  std::deque<std::function<void ()>> jobs;
  bool disp_quit = false;

  std::atomic<bool> resume { false };

  bool orphaned = false;   /* the Endpoint is gone; the dispatcher frees this */
  static void dispatch_loop (Impl * m);

  /* Serializes starting (first user) and stopping (last user left). */
  std::mutex life_mu;
  void stop_network ();

  /* --- helpers, all with mu held unless noted --- */
  void notify_state (bool up, const std::string & peer, const std::string & transport,
      const std::string & reason, bool fatal_);
  void warn (const std::string & msg);
  bool setup_server (std::string & error);
  bool setup_client (std::string & error);
  bool start_quic_client (std::string & error);
  bool start_tcp_client (std::string & error);
  std::unique_ptr<Conn> new_quic_conn (bool server, const ngtcp2_pkt_hd * hd,
      const sockaddr * remote, socklen_t remotelen, std::string & error);
  bool setup_tls (Conn & c, bool server, std::string & error);
  void read_udp ();
  void feed_packet (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen);
  void write_quic (Conn & c);
  bool flush_tx (Conn & c);
  void queue_tx (Conn & c, const guint8 * pkt, size_t len);
  void handle_expiry ();
  void promote_candidate ();
  void close_conn (const std::string & reason, bool send_close, guint64 app_error, bool peer_closed);
  void on_established ();
  void apply_resume ();
  void credit (Conn & c, gint64 id, guint64 len);
  void credit_held (Conn & c);
  void update_stats (bool post);
  SendStream *pick_stream ();
  void open_pending_streams ();
  void stream_data (Conn & c, InStream & s, gint64 id, const guint8 * data, size_t len, bool fin);
  void stream_failed (Conn & c, InStream & s, gint64 id, const std::string & why);
  void free_acked (SendStream & s, guint64 upto);
  void follow_path (Conn & c, size_t pkt_len);
  guint64 queued_bytes () const;
  /* TCP fallback. */
  bool setup_tcp_listen (std::string & error);
  void accept_tcp ();
  std::unique_ptr<Conn> new_tcp_conn (int fd, const sockaddr * addr, socklen_t addrlen);
  void tcp_progress (Conn * c);
  void tcp_read ();
  void tcp_write ();
  bool tcp_send_record (guint32 id, guint8 flags, const guint8 * data, size_t len);
  bool tcp_flush_pending ();
  void tcp_dispatch_records ();
};

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

std::shared_ptr<Endpoint>
Endpoint::obtain (const Config & cfg)
{
  static gsize once = 0;
  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (wrq_endpoint_debug, "quicendpoint", 0, "WayRay QUIC endpoint");
    g_once_init_leave (&once, 1);
  }
  std::lock_guard<std::mutex> lk (registry_mu);
  auto &w = registry[cfg.key ()];
  auto ep = w.lock ();
  if (!ep) {
    ep.reset (new Endpoint (cfg));
    w = ep;
  }
  return ep;
}

Endpoint::Endpoint (const Config & cfg)
    : cfg_ (cfg), impl_ (new Impl)
{
  impl_->self = this;
  if (!cfg_.pinned_fingerprint.empty ())
    cfg_.pinned_fingerprint = normalize_fingerprint (cfg_.pinned_fingerprint);
  Impl *m = impl_.get ();
  impl_->disp = std::thread ([m] { Impl::dispatch_loop (m); });
}

/* The last user left: close the connection (telling the peer), stop the
 * network thread and release the sockets, even while a bin still holds the
 * endpoint in a cached context. The next add_user () starts afresh. */
void
Endpoint::Impl::stop_network ()
{
  {
    std::lock_guard<std::mutex> lk (mu);
    if (!started)
      return;
    quit = true;
  }
  self->wake ();
  if (net.joinable ())
    net.join ();
  std::lock_guard<std::mutex> lk (mu);
  candidate.reset ();
  conn.reset ();
  streams.clear ();
  control.reset ();
  connected = false;
  started = false;
  fatal = false;
  fatal_reason.clear ();
  quic_deadline = 0;
  want_pollout = false;
  tx_len = tx_count = 0;
  for (int *fd : { &udp, &tcp_listen, &efd }) {
    if (*fd >= 0)
      close (*fd);
    *fd = -1;
  }
  if (cred)
    gnutls_certificate_free_credentials (cred);
  cred = nullptr;
  quit = false;
  cv.notify_all ();
}

Endpoint::~Endpoint ()
{
  Impl &m = *impl_;
  m.quit = true;
  wake ();
  if (m.net.joinable ())
    m.net.join ();
  {
    std::lock_guard<std::mutex> lk (m.disp_mu);
    m.disp_quit = true;
  }
  m.disp_cv.notify_all ();
  if (m.disp.joinable ()) {
    if (m.disp.get_id () == std::this_thread::get_id ()) {
      m.disp.detach ();
      m.orphaned = true;
    } else {
      m.disp.join ();
    }
  }
  m.conn.reset ();
  if (m.udp >= 0)
    close (m.udp);
  if (m.tcp_listen >= 0)
    close (m.tcp_listen);
  if (m.efd >= 0)
    close (m.efd);
  if (m.cred)
    gnutls_certificate_free_credentials (m.cred);
  {
    std::lock_guard<std::mutex> lk (registry_mu);
    auto it = registry.find (cfg_.key ());
    if (it != registry.end () && it->second.expired ())
      registry.erase (it);
  }
  /* Destroyed from one of its own dispatcher jobs: the dispatcher thread
   * frees the Impl once that job returns. */
  if (m.orphaned)
    (void) impl_.release ();
}

void
Endpoint::wake ()
{
  if (impl_->efd >= 0) {
    guint64 one = 1;
    ssize_t r = ::write (impl_->efd, &one, sizeof one);
    (void) r;
  }
}

void
Endpoint::post (std::function<void ()> job)
{
  {
    std::lock_guard<std::mutex> lk (impl_->disp_mu);
    impl_->jobs.push_back (std::move (job));
  }
  impl_->disp_cv.notify_one ();
}

void
Endpoint::Impl::dispatch_loop (Impl * mp)
{
  /* Only the Impl is used here: a job may drop the last reference to the
   * Endpoint, whose destructor then leaves the Impl to this thread. */
  Impl &m = *mp;
  {
    std::lock_guard<std::mutex> lk (m.users_mu);
    m.disp_thread = std::this_thread::get_id ();
  }
  for (;;) {
    std::function<void ()> job;
    {
      std::unique_lock<std::mutex> lk (m.disp_mu);
      m.disp_cv.wait (lk, [&] { return m.disp_quit || !m.jobs.empty (); });
      if (m.jobs.empty ())
        break;
      job = std::move (m.jobs.front ());
      m.jobs.pop_front ();
    }
    job ();
  }
  if (m.orphaned)
    delete mp;
}

void
Endpoint::Impl::notify_state (bool up, const std::string & peer, const std::string & transport,
    const std::string & reason, bool fatal_)
{
  self->post ([this, up, peer, transport, reason, fatal_] {
    for_each_user ([&] (EndpointUser * u) {
      u->on_connection_state (up, peer, transport, reason, fatal_);
      return false;
    });
  });
}

void
Endpoint::Impl::warn (const std::string & msg)
{
  GST_WARNING ("%s", msg.c_str ());
  self->post ([this, msg] {
    for_each_user ([&] (EndpointUser * u) {
      u->on_warning (msg);
      return false;
    });
  });
}

bool
Endpoint::add_user (EndpointUser * user, std::string & error)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> life (m.life_mu);
  {
    std::lock_guard<std::mutex> lk (m.users_mu);
    m.users.push_back (user);
  }
  std::lock_guard<std::mutex> lk (m.mu);
  if (m.started) {
    if (m.fatal) {
      error = m.fatal_reason;
      return false;
    }
    if (m.connected) {
      /* A late user learns the state too. */
      std::string peer = m.conn ? m.conn->peer : "";
      std::string tr = m.conn && m.conn->tcp ? "tcp" : "quic";
      post ([user, peer, tr, &m] {
        m.for_each_user ([&] (EndpointUser * u) {
          if (u == user)
            u->on_connection_state (true, peer, tr, "", false);
          return u == user;
        });
      });
    }
    return true;
  }
  m.efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  m.rxbuf.resize (kRxBufSize);
  m.txbuf.resize (kMaxBatch * std::max<guint> (cfg_.max_udp_payload, 1200));
  bool ok = cfg_.mode == Mode::Server ? m.setup_server (error) : m.setup_client (error);
  if (!ok) {
    std::lock_guard<std::mutex> lk2 (m.users_mu);
    m.users.erase (std::remove (m.users.begin (), m.users.end (), user), m.users.end ());
    return false;
  }
  m.started = true;
  /* The network thread's first poll must not sleep before a client's
   * Initial packet goes out. */
  wake ();
  m.net = std::thread ([this] { run (); });
  return true;
}

void
Endpoint::remove_user (EndpointUser * user)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> life (m.life_mu);
  bool last;
  {
    std::unique_lock<std::mutex> lk (m.users_mu);
    m.users.erase (std::remove (m.users.begin (), m.users.end (), user), m.users.end ());
    /* Not while a callback may still be running on it (unless this is that
     * callback's own thread). */
    if (std::this_thread::get_id () != m.disp_thread)
      m.users_cv.wait (lk, [&] { return m.dispatching == 0; });
    last = m.users.empty ();
  }
  if (last)
    m.stop_network ();
}

bool
Endpoint::connected ()
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  return impl_->connected;
}

guint64
Endpoint::generation ()
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  return impl_->gen;
}

Stats
Endpoint::stats ()
{
  /* The network thread touches ngtcp2 only with the lock held, so reading
   * its statistics here is safe and current. */
  std::lock_guard<std::mutex> lk (impl_->mu);
  impl_->update_stats (false);
  return impl_->stats;
}

std::string
Endpoint::certificate_fingerprint ()
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  return impl_->fingerprint;
}

bool
Endpoint::wait_connected (const std::atomic<bool> & cancel, gint64 timeout_ms)
{
  Impl &m = *impl_;
  std::unique_lock<std::mutex> lk (m.mu);
  auto pred = [&] { return m.connected || cancel.load () || m.fatal || m.quit; };
  if (timeout_ms < 0)
    m.cv.wait (lk, pred);
  else
    m.cv.wait_for (lk, std::chrono::milliseconds (timeout_ms), pred);
  return m.connected && !cancel.load ();
}

void
Endpoint::wake_waiters ()
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  impl_->cv.notify_all ();
}

std::shared_ptr<SendStream>
Endpoint::open_stream (const Preamble & pre)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  if (!m.connected)
    return nullptr;
  auto s = std::make_shared<SendStream> ();
  s->pre = pre;
  s->priority = purpose_priority (pre.purpose);
  s->conn_gen = m.gen;
  std::vector<guint8> hdr;
  encode_preamble (hdr, pre);
  s->written = hdr.size ();
  s->chunks.push_back (std::move (hdr));
  m.streams.push_back (s);
  wake ();
  return s;
}

Endpoint::WriteResult
Endpoint::write (SendStream & s, std::vector<guint8> && bytes, guint64 limit, bool block,
    const std::atomic<bool> & cancel)
{
  Impl &m = *impl_;
  std::unique_lock<std::mutex> lk (m.mu);
  for (;;) {
    if (s.dead || s.conn_gen != m.gen || !m.connected)
      return WriteResult::Closed;
    if (cancel.load ())
      return WriteResult::Cancelled;
    if (s.unacked () == 0 || s.unacked () + bytes.size () <= limit)
      break;
    if (!block)
      return WriteResult::Full;
    m.cv.wait (lk);
  }
  size_t n = bytes.size ();
  if (!s.chunks.empty () && s.chunks.back ().capacity () - s.chunks.back ().size () >= n) {
    /* Appending within capacity never moves bytes already handed out. */
    auto &back = s.chunks.back ();
    back.insert (back.end (), bytes.begin (), bytes.end ());
  } else if (n < kChunkReserve / 4) {
    std::vector<guint8> c;
    c.reserve (kChunkReserve);
    c.insert (c.end (), bytes.begin (), bytes.end ());
    s.chunks.push_back (std::move (c));
  } else {
    s.chunks.push_back (std::move (bytes));
  }
  s.written += n;
  lk.unlock ();
  wake ();
  return WriteResult::Ok;
}

void
Endpoint::finish (SendStream & s)
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  s.fin = true;
  wake ();
}

void
Endpoint::reset (SendStream & s, guint64 app_error)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  if (s.dead)
    return;
  s.dead = true;
  if (m.conn && s.conn_gen == m.gen && s.id >= 0) {
    if (m.conn->tcp) {
      m.tcp_send_record ((guint32) s.id, kTcpReset, nullptr, 0);
    } else {
      ngtcp2_conn_shutdown_stream_write (m.conn->q, s.id, app_error);
    }
  }
  /* Nothing more of it is sent. But ngtcp2 holds pointers into the data it
   * has sent until it is acknowledged or the stream is closed (its contract;
   * and a reset stream's STREAM frames may still be in flight or, with older
   * releases, be retransmitted on loss): a QUIC stream keeps its chunks
   * until stream_close_cb drops it. A stream never opened, or one on the TCP
   * fallback (whose bytes are already in TLS records), goes at once. */
  s.sent = s.written;
  if (s.id < 0 || !m.conn || s.conn_gen != m.gen || m.conn->tcp) {
    s.chunks.clear ();
    s.base = s.acked = s.written;
    m.streams.erase (std::remove_if (m.streams.begin (), m.streams.end (),
            [&s] (const std::shared_ptr<SendStream> &p) { return p.get () == &s; }), m.streams.end ());
  }
  m.cv.notify_all ();
  wake ();
}

bool
Endpoint::wait_drained (SendStream & s, const std::atomic<bool> & cancel, gint64 timeout_ms)
{
  Impl &m = *impl_;
  std::unique_lock<std::mutex> lk (m.mu);
  auto pred = [&] {
    return cancel.load () || s.dead || s.conn_gen != m.gen || !m.connected
        || (s.unacked () == 0 && (!s.fin || s.fin_sent));
  };
  m.cv.wait_for (lk, std::chrono::milliseconds (timeout_ms), pred);
  return s.unacked () == 0 && !cancel.load ();
}

guint64
Endpoint::unsent (SendStream & s)
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  return s.unsent ();
}

bool
Endpoint::send_upstream_event (const std::string & target, GstEvent * event)
{
  std::vector<guint8> bytes;
  if (!encode_upstream_event (bytes, target, event))
    return false;
  std::shared_ptr<SendStream> ctl;
  {
    std::lock_guard<std::mutex> lk (impl_->mu);
    ctl = impl_->control;
  }
  if (!ctl)
    return false;
  std::atomic<bool> never { false };
  /* The control stream is never throttled: upstream events are small. */
  return write (*ctl, std::move (bytes), G_MAXUINT64, false, never) == WriteResult::Ok;
}

void
Endpoint::resume_receive ()
{
  impl_->resume = true;
  wake ();
}

void
Endpoint::drop_connection (bool silent)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  if (m.conn)
    m.close_conn ("connection dropped locally", !silent, kErrShutdown, false);
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

/* ---------------------------------------------------------------------- */
/* Network thread                                                          */

void
Endpoint::run ()
{
  Impl &m = *impl_;
  std::unique_lock<std::mutex> lk (m.mu);
  while (!m.quit) {
    guint64 now = now_ns ();
    gint64 timeout_ms = 1000;
    for (Conn *c : { m.conn.get (), m.candidate.get () }) {
      if (c && c->q) {
        guint64 exp = ngtcp2_conn_get_expiry (c->q);
        if (exp != UINT64_MAX)
          timeout_ms = exp <= now ? 0 : MIN ((gint64) ((exp - now + 999999) / 1000000), timeout_ms);
      }
    }
    if (m.quic_deadline)
      timeout_ms = MIN (timeout_ms, m.quic_deadline <= now ? 0 : (gint64) ((m.quic_deadline - now) / 1000000 + 1));
    if (m.next_stats)
      timeout_ms = MIN (timeout_ms, m.next_stats <= now ? 0 : (gint64) ((m.next_stats - now) / 1000000 + 1));
    if (m.conn && m.conn->tcp)
      timeout_ms = MIN (timeout_ms, (gint64) MAX (MIN (cfg_.keepalive_ms ? cfg_.keepalive_ms : 1000u,
                  cfg_.idle_timeout_ms / 2), 50u));
    /* A TCP connect in progress only shows as writable; poll the TLS
     * handshake briskly instead of tracking that state. */
    if ((m.conn && m.conn->tcp && m.conn->tls_handshaking) || (m.candidate && m.candidate->tcp))
      timeout_ms = MIN (timeout_ms, 5);

    struct pollfd fds[5];
    int nfds = 0;
    fds[nfds++] = { m.efd, POLLIN, 0 };
    int udp_idx = -1, lst_idx = -1, tcp_idx = -1;
    if (m.udp >= 0) {
      udp_idx = nfds;
      fds[nfds++] = { m.udp, (short) (POLLIN | (m.want_pollout ? POLLOUT : 0)), 0 };
    }
    if (m.tcp_listen >= 0) {
      lst_idx = nfds;
      fds[nfds++] = { m.tcp_listen, POLLIN, 0 };
    }
    if (m.conn && m.conn->tcp && m.conn->fd >= 0) {
      tcp_idx = nfds;
      short ev = m.conn->rx_paused ? 0 : POLLIN;
      if (!m.conn->tx_pending.empty () || gnutls_record_get_direction (m.conn->tls) == 1)
        ev |= POLLOUT;
      fds[nfds++] = { m.conn->fd, ev, 0 };
    }
    if (m.candidate && m.candidate->tcp)
      fds[nfds++] = { m.candidate->fd, POLLIN, 0 };
    lk.unlock ();
    poll (fds, nfds, (int) timeout_ms);
    lk.lock ();
    if (m.quit)
      break;
    if (fds[0].revents & POLLIN) {
      guint64 v;
      while (read (m.efd, &v, sizeof v) > 0) {
      }
    }
    if (udp_idx >= 0 && (fds[udp_idx].revents & POLLOUT))
      m.want_pollout = false;
    if (udp_idx >= 0 && (fds[udp_idx].revents & POLLIN))
      m.read_udp ();
    if (lst_idx >= 0 && (fds[lst_idx].revents & POLLIN))
      m.accept_tcp ();
    (void) tcp_idx;
    if (m.candidate && m.candidate->tcp)
      m.tcp_progress (m.candidate.get ());
    if (m.conn && m.conn->tcp)
      m.tcp_progress (m.conn.get ());
    m.handle_expiry ();
    if (m.resume.exchange (false))
      m.apply_resume ();
    if (m.candidate && !m.candidate->tcp)
      m.write_quic (*m.candidate);
    if (m.conn && !m.conn->tcp) {
      m.open_pending_streams ();
      m.write_quic (*m.conn);
    } else if (m.conn && m.conn->tcp && !m.conn->tls_handshaking) {
      m.tcp_write ();
    }
    now = now_ns ();
    if (m.next_stats == 0 || now >= m.next_stats) {
      m.update_stats (m.next_stats != 0);
      m.next_stats = now + (guint64) MAX (cfg_.stats_interval_ms, 100u) * 1000000ull;
    }
  }
  /* The last element let go: tell the peer now rather than letting it wait
   * for its idle timeout. */
  if (m.conn)
    m.close_conn ("the endpoint shut down", true, kErrShutdown, false);
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

void
Endpoint::Impl::free_acked (SendStream & s, guint64 upto)
{
  if (upto <= s.acked)
    return;
  s.acked = MIN (upto, s.written);
  while (!s.chunks.empty () && s.base + s.chunks.front ().size () <= s.acked
      && (s.chunks.size () > 1 || s.base + s.chunks.front ().size () == s.written)) {
    /* The last chunk may still grow; keep it unless fully written out. */
    if (s.chunks.size () == 1 && s.chunks.front ().capacity () > s.chunks.front ().size ()
        && s.sent < s.written)
      break;
    s.base += s.chunks.front ().size ();
    s.chunks.pop_front ();
  }
  cv.notify_all ();
}

void
Endpoint::Impl::open_pending_streams ()
{
  if (!conn || !conn->established)
    return;
  for (auto &s : streams) {
    if (s->id != -1 || s->dead)
      continue;
    gint64 id;
    int rv = ngtcp2_conn_open_uni_stream (conn->q, &id, s.get ());
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
      break;
    if (rv != 0) {
      s->dead = true;
      continue;
    }
    s->id = id;
  }
}

SendStream *
Endpoint::Impl::pick_stream ()
{
  SendStream *best = nullptr;
  for (auto &sp : streams) {
    SendStream *s = sp.get ();
    if (s->id < 0 || s->dead || s->blocked)
      continue;
    if (s->unsent () == 0 && !(s->fin && !s->fin_sent))
      continue;
    if (!best || s->priority < best->priority
        || (s->priority == best->priority && s->served < best->served))
      best = s;
  }
  return best;
}

void
Endpoint::Impl::queue_tx (Conn & c, const guint8 * pkt, size_t len)
{
  /* Packets are written in place into txbuf at tx_len (@pkt). A GSO batch
   * holds equal-sized packets, the last one possibly shorter. */
  if (tx_count > 0 && len > tx_seg) {
    std::vector<guint8> tmp (pkt, pkt + len);
    flush_tx (c);
    memcpy (txbuf.data (), tmp.data (), len);
  }
  if (tx_count == 0)
    tx_seg = len;
  tx_len += len;
  tx_count++;
  if (len < tx_seg || tx_count >= kMaxBatch || !gso)
    flush_tx (c);
}

/* A server sends every packet on the path ngtcp2 wrote it for (the path
 * the peer's packets came from, once validated), not to the address of the
 * handshake: a client whose NAT rebinds keeps its connection. Packets of
 * one batch share a destination, so a new path flushes the batch first. */
void
Endpoint::Impl::follow_path (Conn & c, size_t pkt_len)
{
  const ngtcp2_addr &to = c.ps.path.remote;
  if (self->cfg_.mode != Mode::Server || !to.addr || to.addrlen == 0 || to.addrlen > sizeof c.remote
      || (to.addrlen == c.remotelen && memcmp (to.addr, &c.remote, c.remotelen) == 0))
    return;
  if (tx_count > 0) {
    std::vector<guint8> pkt (txbuf.data () + tx_len, txbuf.data () + tx_len + pkt_len);
    flush_tx (c);
    memcpy (txbuf.data () + tx_len, pkt.data (), pkt_len);
  }
  std::string before = c.peer;
  memcpy (&c.remote, to.addr, to.addrlen);
  c.remotelen = to.addrlen;
  c.peer = addr_to_string ((const sockaddr *) &c.remote);
  GST_INFO ("the path to %s moved to %s", before.c_str (), c.peer.c_str ());
}

bool
Endpoint::Impl::flush_tx (Conn & c)
{
  if (tx_count == 0)
    return true;
  struct iovec iov { txbuf.data (), tx_len };
  struct msghdr msg {};
  if (self->cfg_.mode == Mode::Server) {
    msg.msg_name = &c.remote;
    msg.msg_namelen = c.remotelen;
  }
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas (struct cmsghdr) char cbuf[CMSG_SPACE (sizeof (uint16_t))];
  if (tx_count > 1) {
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN (sizeof (uint16_t));
    uint16_t seg = (uint16_t) tx_seg;
    memcpy (CMSG_DATA (cm), &seg, sizeof seg);
  }
  ssize_t n = sendmsg (udp, &msg, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    /* The socket buffer is full: these packets count as lost (QUIC
     * recovers them) and writing pauses until the socket drains. */
    want_pollout = true;
    tx_len = tx_count = 0;
    return false;
  }
  if (n < 0 && tx_count > 1 && (errno == EIO || errno == EINVAL)) {
    /* No GSO here: send one by one from now on. */
    gso = false;
    size_t off = 0;
    for (size_t i = 0; i < tx_count; i++) {
      size_t l = MIN (tx_seg, tx_len - off);
      if (self->cfg_.mode == Mode::Server)
        sendto (udp, txbuf.data () + off, l, 0, (sockaddr *) &c.remote, c.remotelen);
      else
        send (udp, txbuf.data () + off, l, 0);
      off += l;
    }
  }
  c.bytes_sent += tx_len;
  tx_len = tx_count = 0;
  return true;
}

void
Endpoint::Impl::write_quic (Conn & c)
{
  if (want_pollout)
    return;
  /* Only the established connection carries media; a candidate sends its
   * handshake. */
  bool media = &c == conn.get ();
  size_t payload = std::max<guint> (self->cfg_.max_udp_payload, 1200);
  guint64 ts = now_ns ();
  size_t max_pkts = MAX ((size_t) 1, ngtcp2_conn_get_send_quantum (c.q) / payload);
  max_pkts = MIN (max_pkts, (size_t) 64 * kMaxBatch);
  size_t pkts = 0;
  bool notify = false;
  while (pkts < max_pkts) {
    SendStream *s = media ? pick_stream () : nullptr;
    ngtcp2_vec vec[16];
    size_t nvec = 0;
    guint32 flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    gint64 sid = -1;
    if (s) {
      sid = s->id;
      guint64 skip = s->sent - s->base;
      for (auto &ch : s->chunks) {
        if (skip >= ch.size ()) {
          skip -= ch.size ();
          continue;
        }
        vec[nvec].base = (uint8_t *) ch.data () + skip;
        vec[nvec].len = ch.size () - skip;
        skip = 0;
        if (++nvec == G_N_ELEMENTS (vec))
          break;
      }
      if (s->fin && !s->fin_sent && nvec < G_N_ELEMENTS (vec))
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    }
    if (tx_len + payload > txbuf.size ())
      flush_tx (c);
    ngtcp2_ssize ndatalen = -1;
    ngtcp2_pkt_info pi {};
    ngtcp2_ssize n = ngtcp2_conn_writev_stream (c.q, &c.ps.path, &pi,
        txbuf.data () + tx_len, payload, &ndatalen, flags, sid, vec, nvec, ts);
    if (s && ndatalen >= 0) {
      s->sent += (guint64) ndatalen;
      s->served = ++serve_counter;
      if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && s->sent == s->written)
        s->fin_sent = true;
      notify = true;
    }
    if (n == NGTCP2_ERR_WRITE_MORE)
      continue;
    if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
      s->blocked = true;
      continue;
    }
    if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
      s->dead = true;
      notify = true;
      continue;
    }
    if (n < 0) {
      tx_len = tx_count = 0;
      if (media)
        close_conn (std::string ("QUIC write error: ") + ngtcp2_strerror ((int) n), true, kErrShutdown, false);
      else
        candidate.reset ();
      return;
    }
    if (n == 0)
      break;
    follow_path (c, (size_t) n);
    queue_tx (c, txbuf.data () + tx_len, (size_t) n);
    pkts++;
    if (want_pollout)
      break;
  }
  if (tx_count)
    flush_tx (c);
  ngtcp2_conn_update_pkt_tx_time (c.q, ts);
  if (notify)
    cv.notify_all ();
}

void
Endpoint::Impl::stream_failed (Conn & c, InStream & s, gint64 id, const std::string & why)
{
  s.failed = true;
  std::string name = s.parser.has_preamble () ? s.parser.preamble ().name : "?";
  std::string msg = "malformed data from " + c.peer + " on stream " + std::to_string (id)
      + " ('" + name + "'): " + why;
  if (s.is_control || !s.parser.has_preamble ()) {
    /* Without a trustworthy control stream the connection is unusable. */
    warn (msg + "; closing the connection");
    c.closing = true;
    c.close_reason = msg;
    return;
  }
  warn (msg + "; stream closed");
  if (c.tcp) {
    /* One byte stream: the rest of it cannot be re-synchronized. */
    c.closing = true;
    c.close_reason = msg;
    return;
  }
  ngtcp2_conn_shutdown_stream_read (c.q, id, kErrMalformed);
  InStreamRef ref { c.gen, id, &s.parser.preamble () };
  std::lock_guard<std::mutex> lk (users_mu);
  for (auto *u : users)
    if (u->is_receiver ())
      u->on_stream_end (ref, true);
}

void
Endpoint::Impl::stream_data (Conn & c, InStream & s, gint64 id, const guint8 * data, size_t len, bool fin)
{
  if (c.closing)
    return;
  if (s.failed) {
    if (!c.tcp)
      credit (c, id, len);
    return;
  }
  std::vector<Frame> frames;
  bool had_preamble = s.parser.has_preamble ();
  bool ok = s.parser.feed (data, len, frames);
  if (!had_preamble && s.parser.has_preamble ()) {
    if (s.parser.preamble ().purpose == Purpose::Control) {
      s.is_control = true;
      if (c.control_id >= 0) {
        stream_failed (c, s, id, "a second control stream");
        return;
      }
      c.control_id = id;
    }
  }
  if (!ok) {
    stream_failed (c, s, id, s.parser.error ());
    return;
  }
  if (fin && s.parser.buffered () > 0) {
    stream_failed (c, s, id, "stream ended inside a frame");
    return;
  }
  if (s.is_control) {
    for (auto &f : frames) {
      std::string target = f.target;
      std::string err;
      GstEvent *ev = f.to_event (err);
      if (!ev) {
        /* Well framed but meaningless: skip it, the stream stays usable. */
        warn ("upstream event from " + c.peer + " for '" + target + "' dropped: " + err);
        continue;
      }
      self->post ([this, target, ev] {
        bool taken = false;
        for_each_user ([&] (EndpointUser * u) { return taken = u->on_upstream_event (target, ev); });
        if (!taken)
          GST_DEBUG ("upstream event for unknown sink pad '%s' dropped", target.c_str ());
        gst_event_unref (ev);
      });
    }
  } else if (s.parser.has_preamble () && (!frames.empty () || fin)) {
    InStreamRef ref { c.gen, id, &s.parser.preamble () };
    std::lock_guard<std::mutex> lk (users_mu);
    EndpointUser *rx = nullptr;
    for (auto *u : users)
      if (u->is_receiver ()) {
        rx = u;
        break;
      }
    if (rx) {
      if (!frames.empty ())
        s.rx_full = !rx->on_frames (ref, frames);
      if (fin)
        rx->on_stream_end (ref, false);
    } else if (!frames.empty ()) {
      GST_LOG ("no quicsrc on this endpoint; dropping %zu frames of '%s'", frames.size (),
          ref.pre->name.c_str ());
    }
  }
  if (c.tcp) {
    /* One byte stream: a full receiver stops the reading altogether, and
     * unfinished frames beyond the budget end the connection (nothing can
     * be held back selectively). */
    if (s.rx_full)
      c.rx_paused = true;
    guint64 partial = 0;
    for (auto &kv : c.tcp_in)
      partial += kv.second->parser.buffered ();
    if (partial > kPartialBudget + kMaxBufferLen + kBufferHeaderLen) {
      c.closing = true;
      c.close_reason = "the peer's unfinished frames exceed the receive budget ("
          + std::to_string (partial) + " bytes)";
    }
    return;
  }
  s.held += len;
  credit_held (c);
}

/* Grants flow-control credit for @len bytes of stream @id, and as much to
 * the connection. */
void
Endpoint::Impl::credit (Conn & c, gint64 id, guint64 len)
{
  if (len == 0)
    return;
  ngtcp2_conn_extend_max_stream_offset (c.q, id, len);
  ngtcp2_conn_extend_max_offset (c.q, len);
}

/* Credits what streams hold, where the budget allows: never while the
 * receiver is full (the sender stops at the stream window); bytes of
 * unfinished frames only while the connection's unfinished frames stay
 * within kPartialBudget, or for the stream with the largest one. */
void
Endpoint::Impl::credit_held (Conn & c)
{
  guint64 partial = 0, largest = 0;
  InStream *first = nullptr;
  for (auto &kv : c.in) {
    guint64 b = kv.second->parser.buffered ();
    partial += b;
    if (b > largest) {
      largest = b;
      first = kv.second.get ();
    }
  }
  for (auto &kv : c.in) {
    InStream &s = *kv.second;
    if (!s.held || s.rx_full)
      continue;
    if (s.parser.buffered () > 0 && partial > kPartialBudget && &s != first)
      continue;
    credit (c, kv.first, s.held);
    s.held = 0;
  }
}

void
Endpoint::Impl::apply_resume ()
{
  if (!conn)
    return;
  if (conn->tcp) {
    for (auto &kv : conn->tcp_in)
      kv.second->rx_full = false;
    conn->rx_paused = false;
    return;
  }
  for (auto &kv : conn->in)
    kv.second->rx_full = false;
  credit_held (*conn);
}

guint64
Endpoint::Impl::queued_bytes () const
{
  /* What is still to be delivered; a reset stream's data waiting for its
   * close is not. */
  guint64 n = 0;
  for (auto &s : streams)
    if (!s->dead)
      n += s->unacked ();
  return n;
}

void
Endpoint::Impl::update_stats (bool post_it)
{
  Stats st;
  st.connected = connected;
  if (conn) {
    st.peer = conn->peer;
    st.transport = conn->tcp ? "tcp" : "quic";
    st.bytes_sent = conn->bytes_sent;
    st.bytes_received = conn->bytes_received;
    if (!conn->tcp && conn->q) {
      ngtcp2_conn_stat cs;
      ngtcp2_conn_get_conn_stat (conn->q, &cs);
      st.rtt = cs.latest_rtt;
      st.min_rtt = cs.min_rtt == UINT64_MAX ? 0 : cs.min_rtt;
      st.smoothed_rtt = cs.smoothed_rtt;
      st.rttvar = cs.rttvar;
      st.cwnd = cs.cwnd;
      st.bytes_in_flight = cs.bytes_in_flight;
      st.delivery_rate = cs.delivery_rate_sec;
      st.pto_count = cs.pto_count;
      guint64 lost = conn->loss_closed;
      for (auto &s : streams)
        if (s->id >= 0)
          lost += ngtcp2_conn_get_stream_loss_count (conn->q, s->id);
      st.lost_packets = lost;
    } else if (conn->tcp && conn->fd >= 0) {
      struct tcp_info ti {};
      socklen_t tl = sizeof ti;
      if (getsockopt (conn->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0) {
        st.rtt = st.smoothed_rtt = (guint64) ti.tcpi_rtt * 1000;
        st.rttvar = (guint64) ti.tcpi_rttvar * 1000;
        st.min_rtt = (guint64) ti.tcpi_min_rtt * 1000;
        st.cwnd = (guint64) ti.tcpi_snd_cwnd * ti.tcpi_snd_mss;
        st.bytes_in_flight = (guint64) ti.tcpi_unacked * ti.tcpi_snd_mss;
        st.delivery_rate = ti.tcpi_delivery_rate;
        st.lost_packets = ti.tcpi_total_retrans;
      }
    }
  }
  st.send_queue_bytes = queued_bytes ();
  stats = st;
  if (post_it && self->cfg_.stats_interval_ms > 0 && conn) {
    self->post ([this, st] {
      for_each_user ([&] (EndpointUser * u) {
        u->on_stats (st);
        return false;
      });
    });
  }
}

/* ---------------------------------------------------------------------- */
/* TCP + TLS fallback: the same streams, multiplexed as records
 *   u32 stream, u8 flags (1 = FIN, 2 = RESET, 4 = keep-alive), u32 length, data
 * inside one TLS 1.3 connection on the same port number.                   */

static constexpr size_t kTcpMaxRecord = kTcpMaxRecordLen;

bool
Endpoint::Impl::setup_tcp_listen (std::string & error)
{
  tcp_listen = socket (local.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1, off = 0;
  setsockopt (tcp_listen, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (local.ss_family == AF_INET6)
    setsockopt (tcp_listen, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (tcp_listen < 0 || bind (tcp_listen, (sockaddr *) &local, locallen) != 0
      || listen (tcp_listen, 8) != 0) {
    error = "cannot listen on TCP " + addr_to_string ((sockaddr *) &local) + ": " + strerror (errno);
    return false;
  }
  return true;
}

static void
tune_tcp (int fd)
{
  int on = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

void
Endpoint::Impl::accept_tcp ()
{
  sockaddr_storage from {};
  socklen_t fromlen = sizeof from;
  int fd = accept4 (tcp_listen, (sockaddr *) &from, &fromlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return;
  std::unique_ptr<Conn> c = new_tcp_conn (fd, (sockaddr *) &from, fromlen);
  std::string error;
  if (!setup_tls (*c, true, error)) {
    warn (error);
    return;
  }
  gnutls_transport_set_int (c->tls, fd);
  if (candidate)
    GST_DEBUG ("dropping the unfinished handshake of %s", candidate->peer.c_str ());
  candidate = std::move (c);
  GST_INFO ("TCP handshake from %s", candidate->peer.c_str ());
}

/* A TCP+TLS connection on @fd with @addr as its peer; the Conn owns @fd. */
std::unique_ptr<Endpoint::Conn>
Endpoint::Impl::new_tcp_conn (int fd, const sockaddr * addr, socklen_t addrlen)
{
  tune_tcp (fd);
  std::unique_ptr<Conn> c (new Conn);
  c->ep = this;
  c->tcp = true;
  c->fd = fd;
  c->gen = gen + 1;
  c->started = c->last_rx = c->last_tx = now_ns ();
  memcpy (&c->remote, addr, addrlen);
  c->remotelen = addrlen;
  c->peer = addr_to_string (addr);
  return c;
}

bool
Endpoint::Impl::start_tcp_client (std::string & error)
{
  tcp_tried = true;
  int fd = socket (server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || (connect (fd, (sockaddr *) &server_addr, server_addrlen) != 0 && errno != EINPROGRESS)) {
    error = "cannot connect over TCP to " + addr_to_string ((sockaddr *) &server_addr) + ": " + strerror (errno);
    if (fd >= 0)
      close (fd);
    return false;
  }
  std::unique_ptr<Conn> c = new_tcp_conn (fd, (sockaddr *) &server_addr, server_addrlen);
  if (!setup_tls (*c, false, error)) {
    close (fd);
    c->fd = -1;
    return false;
  }
  gnutls_transport_set_int (c->tls, fd);
  gnutls_handshake_set_timeout (c->tls, 0);
  conn = std::move (c);
  gen = conn->gen;
  return true;
}

void
Endpoint::Impl::tcp_progress (Conn * c)
{
  guint64 now = now_ns ();
  bool is_candidate = c == candidate.get ();
  if (c->tls_handshaking) {
    int rv = gnutls_handshake (c->tls);
    if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) {
      if (now - c->started > (guint64) MAX (self->cfg_.handshake_timeout_ms, 1000u) * 10 * 1000000ull) {
        if (is_candidate)
          candidate.reset ();
        else
          close_conn ("the TLS handshake over TCP timed out", false, 0, false);
      }
      return;
    }
    if (rv < 0 && is_candidate) {
      GST_INFO ("TCP handshake from %s failed: %s", c->peer.c_str (), gnutls_strerror (rv));
      candidate.reset ();
      return;
    }
    if (rv < 0) {
      std::string why = !c->tls_failure.empty () ? c->tls_failure
          : std::string ("TLS handshake over TCP failed: ") + gnutls_strerror (rv);
      bool refused = !c->tls_failure.empty ();
      close_conn (why, false, 0, false);
      if (refused && self->cfg_.mode == Mode::Client) {
        fatal = true;
        fatal_reason = why;
        notify_state (false, "", "tcp", why, true);
      }
      return;
    }
    c->tls_handshaking = false;
    c->last_rx = now;
    if (is_candidate)
      promote_candidate ();
    on_established ();
  }
  tcp_read ();
  if (!conn || conn.get () != c)
    return;
  now = now_ns ();
  if (now - c->last_rx > (guint64) self->cfg_.idle_timeout_ms * 1000000ull) {
    char buf[160];
    g_snprintf (buf, sizeof buf, "no data from the peer for %.1f s (idle timeout): the peer is gone",
        self->cfg_.idle_timeout_ms / 1000.0);
    close_conn (buf, false, 0, false);
    return;
  }
  if (self->cfg_.keepalive_ms && now - c->last_tx > (guint64) self->cfg_.keepalive_ms * 1000000ull
      && c->tx_pending.empty ())
    tcp_send_record (kTcpKeepAliveStream, kTcpKeepAlive, nullptr, 0);
}

bool
Endpoint::Impl::tcp_flush_pending ()
{
  Conn &c = *conn;
  while (c.tx_off < c.tx_pending.size ()) {
    /* After E_AGAIN gnutls must be called again with the same arguments. */
    size_t len = c.tx_again_len ? c.tx_again_len : MIN (c.tx_pending.size () - c.tx_off, kTcpMaxRecord);
    ssize_t r = gnutls_record_send (c.tls, c.tx_pending.data () + c.tx_off, len);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      c.tx_again_len = len;
      return false;
    }
    c.tx_again_len = 0;
    if (r < 0) {
      close_conn (std::string ("TLS send failed: ") + gnutls_strerror ((int) r), false, 0, false);
      return false;
    }
    c.tx_off += (size_t) r;
    c.bytes_sent += (guint64) r;
  }
  c.tx_pending.clear ();
  c.tx_off = 0;
  return true;
}

bool
Endpoint::Impl::tcp_send_record (guint32 id, guint8 flags, const guint8 * data, size_t len)
{
  Conn &c = *conn;
  guint8 h[kTcpRecordHeaderLen];
  encode_tcp_record_header (h, id, flags, (guint32) len);
  c.tx_pending.insert (c.tx_pending.end (), h, h + kTcpRecordHeaderLen);
  if (len)
    c.tx_pending.insert (c.tx_pending.end (), data, data + len);
  c.last_tx = now_ns ();
  /* Queued either way; what TLS did not take yet goes with the next try. */
  Conn *cp = &c;
  tcp_flush_pending ();
  return conn.get () == cp;
}

void
Endpoint::Impl::tcp_write ()
{
  bool notify = false;
  while (conn && conn->tcp) {
    Conn *c = conn.get ();
    if (!tcp_flush_pending () || !conn || conn.get () != c)
      break;
    for (auto &s : streams)
      if (s->id == -1 && !s->dead)
        s->id = c->next_tcp_id++;
    SendStream *s = pick_stream ();
    if (!s)
      break;
    guint64 skip = s->sent - s->base;
    const guint8 *p = nullptr;
    size_t n = 0;
    for (auto &ch : s->chunks) {
      if (skip >= ch.size ()) {
        skip -= ch.size ();
        continue;
      }
      p = ch.data () + skip;
      n = MIN (ch.size () - skip, kTcpMaxRecord);
      break;
    }
    bool last = s->sent + n == s->written;
    guint8 flags = (s->fin && last) ? kTcpFin : 0;
    if (!tcp_send_record ((guint32) s->id, flags, p, n) || !conn || conn.get () != c)
      break;
    s->sent += n;
    s->served = ++serve_counter;
    if (flags & 1)
      s->fin_sent = true;
    /* TCP delivers reliably: what TLS accepted counts as acknowledged. */
    free_acked (*s, s->sent);
    notify = true;
    if (s->fin_sent && s->unacked () == 0) {
      SendStream *done = s;
      done->dead = true;
      streams.erase (std::remove_if (streams.begin (), streams.end (),
              [done] (const std::shared_ptr<SendStream> &sp) { return sp.get () == done; }), streams.end ());
    }
    if (c->tx_pending.size () - c->tx_off > kTcpMaxRecord * 4)
      break;
  }
  if (notify)
    cv.notify_all ();
}

void
Endpoint::Impl::tcp_read ()
{
  Conn *c = conn.get ();
  guint8 buf[65536];
  for (int i = 0; i < 64 && !c->rx_paused; i++) {
    ssize_t r = gnutls_record_recv (c->tls, buf, sizeof buf);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
      break;
    if (r == 0) {
      close_conn ("the peer closed the connection", false, 0, true);
      return;
    }
    if (r < 0) {
      close_conn (std::string ("TLS receive failed: ") + gnutls_strerror ((int) r), false, 0, true);
      return;
    }
    c->last_rx = now_ns ();
    c->bytes_received += (guint64) r;
    c->rx.insert (c->rx.end (), buf, buf + r);
    tcp_dispatch_records ();
    if (!conn || conn.get () != c)
      return;
  }
}

void
Endpoint::Impl::tcp_dispatch_records ()
{
  Conn *c = conn.get ();
  size_t off = 0;
  while (conn.get () == c) {
    TcpRecord rec;
    std::string error;
    gssize n = parse_tcp_record (c->rx.data () + off, c->rx.size () - off, rec, error);
    if (n < 0) {
      close_conn (error, true, kErrMalformed, false);
      return;
    }
    if (n == 0)
      break;
    off += (size_t) n;
    if (rec.flags & kTcpKeepAlive)
      continue;
    guint32 id = rec.stream;
    guint8 flags = rec.flags;
    guint32 len = rec.len;
    const guint8 *payload = rec.data;
    auto &slot = c->tcp_in[id];
    if (!slot) {
      if (c->tcp_in.size () > kMaxIncomingStreams) {
        close_conn ("too many streams opened by the peer", true, kErrMalformed, false);
        return;
      }
      slot.reset (new InStream ());
    }
    InStream &s = *slot;
    if (flags & kTcpReset) {
      if (s.parser.has_preamble () && !s.is_control) {
        InStreamRef ref { c->gen, (gint64) id, &s.parser.preamble () };
        std::lock_guard<std::mutex> lk (users_mu);
        for (auto *u : users)
          if (u->is_receiver ())
            u->on_stream_end (ref, true);
      }
      c->tcp_in.erase (id);
      continue;
    }
    stream_data (*c, s, (gint64) id, payload, len, flags & kTcpFin);
    if (c->closing) {
      close_conn (c->close_reason, true, kErrMalformed, false);
      return;
    }
    if (flags & kTcpFin)
      c->tcp_in.erase (id);
  }
  if (conn.get () == c)
    c->rx.erase (c->rx.begin (), c->rx.begin () + off);
}

}  // namespace wrq
