/* WayRay transport endpoint (see gstquicendpoint.h and docs/transport.md):
 * the registry of endpoints, the public API, the dispatcher and the
 * network thread's loop. The other parts: gstquicendpointimpl.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicendpointimpl.h"
#include "gstquictls.h"

GST_DEBUG_CATEGORY (wrq_endpoint_debug);

namespace wrq {

const char *const kTransportTarget = "-transport";

namespace {

std::mutex registry_mu;
std::map<std::string, std::weak_ptr<Endpoint>> registry;

}  // namespace

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

std::string
Config::key () const
{
  /* A relay endpoint has no address of its own; a client's prefix makes its
   * session connection another endpoint than its front-door one. */
  if (mode == Mode::Server && relay)
    return "relay:" + prefix_to_hex (cid_prefix);
  std::string k = std::string (mode == Mode::Server ? "server:" : "client:") + host + ":" + std::to_string (port);
  if (!cid_prefix.empty ())
    k += "/" + prefix_to_hex (cid_prefix);
  return k;
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
      "acked-rate", G_TYPE_UINT64, acked_rate,
      "lost-packets", G_TYPE_UINT64, lost_packets,
      "pto-count", G_TYPE_UINT64, pto_count,
      "bytes-sent", G_TYPE_UINT64, bytes_sent,
      "bytes-received", G_TYPE_UINT64, bytes_received,
      "send-queue-bytes", G_TYPE_UINT64, send_queue_bytes,
      "datagrams-sent", G_TYPE_UINT64, datagrams_sent,
      "datagrams-received", G_TYPE_UINT64, datagrams_received,
      "datagrams-dropped", G_TYPE_UINT64, datagrams_dropped,
      "video-unsent-bytes", G_TYPE_UINT64, video_unsent_bytes,
      "connections", G_TYPE_UINT64, connections,
      "handshakes", G_TYPE_UINT64, handshakes,
      "refused-initials", G_TYPE_UINT64, refused_initials,
      "retries-sent", G_TYPE_UINT64, retries_sent, nullptr);
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
  conn = nullptr;
  conns.clear ();
  closed.clear ();
  connected = false;
  started = false;
  fatal = false;
  fatal_reason.clear ();
  quic_deadline = 0;
  want_pollout = false;
  tx_len = tx_count = 0;
  for (int *fd : { &udp, &tcp_listen, &efd, &relay }) {
    if (*fd >= 0)
      close (*fd);
    *fd = -1;
  }
  for (auto &r : routes)
    close (r.second.fd);
  routes.clear ();
  for (auto &p : pending_tcp)
    close (p.fd);
  pending_tcp.clear ();
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
  m.conn = nullptr;
  m.conns.clear ();
  m.closed.clear ();
  if (m.udp >= 0)
    close (m.udp);
  if (m.tcp_listen >= 0)
    close (m.tcp_listen);
  if (m.efd >= 0)
    close (m.efd);
  if (m.relay >= 0)
    close (m.relay);
  for (auto &r : m.routes)
    close (r.second.fd);
  for (auto &p : m.pending_tcp)
    close (p.fd);
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
Endpoint::Impl::notify_state (bool up, guint64 conn_id, const std::string & peer, const std::string & transport,
    const std::string & reason, bool fatal_)
{
  self->post ([this, up, conn_id, peer, transport, reason, fatal_] {
    for_each_user ([&] (EndpointUser * u) {
      u->on_connection_state (up, conn_id, peer, transport, reason, fatal_);
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
    if (m.connected && m.conn) {
      /* A late user learns the state too. */
      std::string peer = m.conn->peer;
      guint64 id = m.conn->gen;
      std::string tr = m.conn->link->name ();
      post ([user, id, peer, tr, &m] {
        m.for_each_user ([&] (EndpointUser * u) {
          if (u == user)
            u->on_connection_state (true, id, peer, tr, "", false);
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
Endpoint::open_stream (const Preamble & pre, guint64 conn_id)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  Conn *c = conn_id ? m.find_conn (conn_id) : (m.connected ? m.conn : nullptr);
  if (!c || !c->established)
    return nullptr;
  auto s = m.new_stream (*c, pre);
  wake ();
  return s;
}

bool
Endpoint::admit (guint64 conn_id, std::string & error)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  if (cfg_.mode != Mode::Server) {
    error = "only a server admits connections";
    return false;
  }
  Conn *c = m.find_conn (conn_id);
  if (!c) {
    error = "connection " + std::to_string (conn_id) + " is gone";
    return false;
  }
  if (!c->established) {
    error = "connection " + std::to_string (conn_id) + " has not completed its handshake";
    return false;
  }
  if (c != m.conn)
    m.admit_conn (*c);
  wake ();
  return true;
}

bool
Endpoint::close_connection (guint64 conn_id, const std::string & reason)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  Conn *c = m.find_conn (conn_id);
  if (!c)
    return false;
  m.close_conn (c, reason, true, kErrNotAdmitted, false);
  wake ();
  return true;
}

bool
Endpoint::channel_binding (guint64 conn_id, std::string & hex, std::string & error)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  Conn *c = conn_id ? m.find_conn (conn_id) : m.conn;
  if (!c || c->closed || !c->tls) {
    error = "connection " + std::to_string (conn_id) + " is gone";
    return false;
  }
  if (!c->established) {
    error = "connection " + std::to_string (conn_id) + " has not completed its handshake";
    return false;
  }
  static const char label[] = "EXPORTER-Channel-Binding";
  unsigned char out[32];
  int rv = gnutls_prf_rfc5705 (c->tls, sizeof label - 1, label, 0, "", sizeof out, (char *) out);
  if (rv < 0) {
    error = std::string ("no exporter value: ") + gnutls_strerror (rv);
    return false;
  }
  static const char digits[] = "0123456789abcdef";
  hex.clear ();
  for (unsigned char b : out) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return true;
}

bool
Endpoint::admitted ()
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  return impl_->conn && impl_->conn->admitted;
}

Endpoint::WriteResult
Endpoint::write (SendStream & s, std::vector<guint8> && bytes, guint64 limit, bool block,
    const std::atomic<bool> & cancel, guint time_ms)
{
  Impl &m = *impl_;
  std::unique_lock<std::mutex> lk (m.mu);
  for (;;) {
    Conn *c = s.dead ? nullptr : m.find_conn (s.conn_gen);
    if (!c)
      return WriteResult::Closed;
    if (cancel.load ())
      return WriteResult::Cancelled;
    if (s.unacked () == 0)
      break;
    guint64 budget = time_ms ? m.queue_budget (*c, time_ms) : 0;
    bool too_late = budget && s.unsent () > 0 && s.unsent () + bytes.size () > budget;
    if (s.unacked () + bytes.size () <= limit && !too_late)
      break;
    if (!block)
      return WriteResult::Full;
    m.cv.wait (lk);
  }
  m.append (s, std::move (bytes));
  lk.unlock ();
  wake ();
  return WriteResult::Ok;
}

bool
Endpoint::send_datagram (SendStream & s, GstBuffer * buf)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  Conn *c = s.dead ? nullptr : m.find_conn (s.conn_gen);
  if (!c || c->tcp || !c->q || !c->established || s.id < 0) {
    GST_LOG ("no datagram for '%s': %s", s.pre.name.c_str (), !c ? "no connection" : c->tcp ? "TCP" :
        s.id < 0 ? "stream not open yet" : "connection not established");
    return false;
  }
  const ngtcp2_transport_params *tp = ngtcp2_conn_get_remote_transport_params (c->q);
  std::vector<guint8> d;
  encode_datagram (d, (guint64) s.id, buf);
  /* The frame's own type and length take up to 1 + 8 bytes. */
  if (!tp || tp->max_datagram_frame_size < d.size () + 9) {
    GST_LOG ("no datagram for '%s': %zu bytes, the peer takes %" G_GUINT64_FORMAT, s.pre.name.c_str (),
        d.size (), tp ? (guint64) tp->max_datagram_frame_size : 0);
    return false;
  }
  c->dgrams.push_back (std::move (d));
  /* A link that cannot keep up loses the oldest sound, not the newest. */
  while (c->dgrams.size () > Impl::kMaxQueuedDatagrams) {
    c->dgrams.pop_front ();
    c->dgrams_dropped++;
  }
  wake ();
  return true;
}

void
Endpoint::Impl::append (SendStream & s, std::vector<guint8> && bytes)
{
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
  Conn *c = m.find_conn (s.conn_gen);
  if (c && s.id >= 0)
    c->link->reset_stream (*c, s, app_error);
  /* Nothing more of it is sent. But ngtcp2 holds pointers into the data it
   * has sent until it is acknowledged or the stream is closed (its contract;
   * and a reset stream's STREAM frames may still be in flight or, with older
   * releases, be retransmitted on loss): a QUIC stream keeps its chunks
   * until stream_close_cb drops it. A stream never opened, or one on the TCP
   * fallback (whose bytes are already in TLS records), goes at once. */
  s.sent = s.written;
  c = m.find_conn (s.conn_gen);   /* a TCP send may have closed it */
  if (s.id < 0 || !c || !c->link->keeps_reset_data ()) {
    s.chunks.clear ();
    s.base = s.acked = s.written;
    if (c)
      m.drop_stream (*c, &s);
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
    return cancel.load () || s.dead || !m.find_conn (s.conn_gen)
        || (s.unacked () == 0 && (!s.fin || s.fin_sent));
  };
  m.cv.wait_for (lk, std::chrono::milliseconds (timeout_ms), pred);
  return s.unacked () == 0 && !cancel.load ();
}

guint64
Endpoint::Impl::queue_budget (Conn & c, guint time_ms)
{
  /* Per frame: QUIC's own meter, not the whole statistics. */
  guint64 rate = 0;
  if (c.tcp) {
    Stats st;
    c.link->stats (c, st);
    rate = st.acked_rate;
  } else {
    rate = c.acks.rate (now_ns (), kAckRateWindow);
  }
  if (!rate && !c.acks.measured ())
    return kUnmeasuredQueueBudget;
  return std::max (kMinQueueBudget, rate * time_ms / 1000);
}

guint64
Endpoint::queue_budget (SendStream & s, guint time_ms)
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  Conn *c = s.dead ? nullptr : impl_->find_conn (s.conn_gen);
  return c ? impl_->queue_budget (*c, time_ms) : 0;
}

guint64
Endpoint::unsent (SendStream & s)
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  return s.unsent ();
}

bool
Endpoint::stream_alive (SendStream & s)
{
  std::lock_guard<std::mutex> lk (impl_->mu);
  return !s.dead && impl_->find_conn (s.conn_gen);
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
    if (impl_->conn)
      ctl = impl_->conn->control;
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
    m.close_conn (m.conn, "connection dropped locally", !silent, kErrShutdown, false);
}

/* ---------------------------------------------------------------------- */
/* Network thread                                                          */

void
Endpoint::run ()
{
  Impl &m = *impl_;
  std::unique_lock<std::mutex> lk (m.mu);
  std::vector<struct pollfd> fds;
  std::vector<Conn *> polled;
  while (!m.quit) {
    m.closed.clear ();
    guint64 now = now_ns ();
    gint64 timeout_ms = 1000;
    auto until = [&] (guint64 t) {
      if (t && t != UINT64_MAX)
        timeout_ms = MIN (timeout_ms, t <= now ? 0 : (gint64) ((t - now + 999999) / 1000000));
    };
    for (auto &kv : m.conns) {
      Conn &c = *kv.second;
      until (c.link->next_timer (c, now));
      until (c.admit_deadline);
    }
    until (m.quic_deadline);
    until (m.next_stats);

    fds.clear ();
    polled.clear ();
    fds.push_back ({ m.efd, POLLIN, 0 });
    int udp_idx = -1, lst_idx = -1, relay_idx = -1;
    if (m.udp >= 0) {
      udp_idx = (int) fds.size ();
      fds.push_back ({ m.udp, (short) (POLLIN | (m.want_pollout ? POLLOUT : 0)), 0 });
    }
    if (m.tcp_listen >= 0) {
      lst_idx = (int) fds.size ();
      fds.push_back ({ m.tcp_listen, POLLIN, 0 });
    }
    if (m.relay >= 0) {
      relay_idx = (int) fds.size ();
      fds.push_back ({ m.relay, (short) (POLLIN | (m.want_pollout ? POLLOUT : 0)), 0 });
    }
    size_t routes_idx = fds.size ();
    std::vector<std::string> route_keys;
    for (auto &r : m.routes) {
      route_keys.push_back (r.first);
      fds.push_back ({ r.second.fd, POLLIN, 0 });
    }
    for (auto &p : m.pending_tcp)
      fds.push_back ({ p.fd, POLLIN, 0 });
    if (!m.pending_tcp.empty ())
      timeout_ms = MIN (timeout_ms, 100);
    for (auto &kv : m.conns) {
      short ev = 0;
      int fd = kv.second->link->poll_fd (*kv.second, ev);
      if (fd >= 0)
        fds.push_back ({ fd, ev, 0 });
    }
    lk.unlock ();
    poll (fds.data (), fds.size (), (int) timeout_ms);
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
    if (relay_idx >= 0 && (fds[relay_idx].revents & POLLOUT))
      m.want_pollout = false;
    if (relay_idx >= 0 && (fds[relay_idx].revents & (POLLIN | POLLHUP | POLLERR)))
      m.read_relay ();
    for (size_t k = 0; k < route_keys.size (); k++)
      if (fds[routes_idx + k].revents & (POLLIN | POLLHUP | POLLERR))
        m.read_route (route_keys[k]);
    if (lst_idx >= 0 && (fds[lst_idx].revents & POLLIN))
      m.accept_tcp ();
    if (!m.pending_tcp.empty ())
      m.progress_pending_tcp ();
    /* Every connection's turn (a TCP one reads its socket, a QUIC one runs
     * its timers); a closed one stays in `closed` until the next turn. */
    m.handle_expiry ();
    if (m.resume.exchange (false))
      m.apply_resume ();
    polled.clear ();
    for (auto &kv : m.conns)
      polled.push_back (kv.second.get ());
    for (Conn *c : polled)
      if (!c->closed)
        c->link->write (*c);
    now = now_ns ();
    if (m.next_stats == 0 || now >= m.next_stats) {
      m.update_stats (m.next_stats != 0);
      m.next_stats = now + (guint64) MAX (cfg_.stats_interval_ms, 100u) * 1000000ull;
    }
  }
  /* The last element let go: tell the peers now rather than letting them
   * wait for their idle timeout. */
  polled.clear ();
  for (auto &kv : m.conns)
    polled.push_back (kv.second.get ());
  for (Conn *c : polled)
    m.close_conn (c, "the endpoint shut down", true, kErrShutdown, false);
  m.closed.clear ();
}

void
Endpoint::Impl::update_stats (bool post_it)
{
  Stats st;
  st.connected = connected;
  if (conn) {
    st.peer = conn->peer;
    st.transport = conn->link->name ();
    st.bytes_sent = conn->bytes_sent;
    st.bytes_received = conn->bytes_received;
    st.datagrams_sent = conn->dgrams_sent;
    st.datagrams_received = conn->dgrams_received;
    st.datagrams_dropped = conn->dgrams_dropped;
    conn->link->stats (*conn, st);
  }
  st.send_queue_bytes = queued_bytes ();
  st.video_unsent_bytes = unsent_video ();
  st.connections = conns.size ();
  for (auto &kv : conns)
    if (!kv.second->established)
      st.handshakes++;
  st.refused_initials = refused_initials;
  st.retries_sent = retries_sent;
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

}  // namespace wrq
