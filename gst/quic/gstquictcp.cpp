/* The TCP + TLS fallback: the same streams, multiplexed as records on
 * one TLS connection.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicendpointimpl.h"
#include "gstquictls.h"

namespace wrq {

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
      || listen (tcp_listen, 128) != 0) {
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
  for (int i = 0; i < 64; i++) {
    sockaddr_storage from {};
    socklen_t fromlen = sizeof from;
    int fd = accept4 (tcp_listen, (sockaddr *) &from, &fromlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    /* Its route preamble comes first (progress_pending_tcp). */
    /* Bounded in all and per address: silent connections cannot keep
     * others out for long. */
    size_t same = 0;
    for (auto &p : pending_tcp)
      if (p.addr.ss_family == from.ss_family
          && (from.ss_family == AF_INET6
              ? memcmp (&((sockaddr_in6 *) &p.addr)->sin6_addr, &((sockaddr_in6 *) &from)->sin6_addr, 16) == 0
              : ((sockaddr_in *) &p.addr)->sin_addr.s_addr == ((sockaddr_in *) &from)->sin_addr.s_addr))
        same++;
    if (pending_tcp.size () >= kMaxPendingTcp || same >= kMaxPendingTcpPerSource) {
      GST_INFO ("TCP connection from %s refused: %zu wait for their route preamble, %zu from that address",
          addr_to_string ((sockaddr *) &from).c_str (), pending_tcp.size (), same);
      close (fd);
      continue;
    }
    PendingTcp p;
    p.fd = fd;
    memcpy (&p.addr, &from, fromlen);
    p.len = fromlen;
    p.since = now_ns ();
    pending_tcp.push_back (p);
  }
}

/* A TCP connection that is this endpoint's: within the same bounds as QUIC
 * handshakes (no Retry: TCP's own handshake proved the address), it starts
 * its TLS handshake. */
void
Endpoint::Impl::take_tcp (int fd, const sockaddr * addr, socklen_t addrlen)
{
  const Config &cfg = self->cfg_;
  std::unique_ptr<Conn> c = new_tcp_conn (fd, addr, addrlen);
  guint from_source = 0;
  guint handshakes = count_handshakes (c->source, &from_source);
  if (conns.size () >= MAX (cfg.max_connections, 1u) || handshakes >= MAX (cfg.max_handshakes, 1u)
      || from_source >= MAX (cfg.max_handshakes_per_source, 1u)) {
    refused_initials++;
    GST_INFO ("refusing a TCP connection from %s: %zu connections, %u handshakes, %u from that address",
        c->peer.c_str (), conns.size (), handshakes, from_source);
    return;
  }
  std::string error;
  if (!setup_tls (*c, true, error)) {
    warn (error);
    return;
  }
  gnutls_transport_set_int (c->tls, fd);
  GST_INFO ("TCP handshake from %s (connection %" G_GUINT64_FORMAT ")", c->peer.c_str (), c->gen);
  add_conn (std::move (c));
}

/* A TCP+TLS connection on @fd with @addr as its peer; the Conn owns @fd. */
std::unique_ptr<Endpoint::Conn>
Endpoint::Impl::new_tcp_conn (int fd, const sockaddr * addr, socklen_t addrlen)
{
  tune_tcp (fd);
  std::unique_ptr<Conn> c (new Conn);
  c->ep = this;
  c->tcp = true;
  c->link = make_tcp_link (*this);
  c->fd = fd;
  c->gen = ++next_id;
  c->started = c->last_rx = c->last_tx = now_ns ();
  memcpy (&c->remote, addr, addrlen);
  c->remotelen = addrlen;
  c->peer = addr_to_string (addr);
  c->source = source_of (addr);
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
  conn = add_conn (std::move (c));
  gen = conn->gen;
  return true;
}

void
Endpoint::Impl::tcp_progress (Conn & c)
{
  guint64 now = now_ns ();
  bool server = self->cfg_.mode == Mode::Server;
  if (!server && c.route_sent < kTcpRouteLen) {
    /* The route preamble goes first, once the connect completed. */
    guint8 pre[kTcpRouteLen];
    encode_tcp_route (pre, self->cfg_.cid_prefix);
    ssize_t n = send (c.fd, pre + c.route_sent, kTcpRouteLen - c.route_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0)
      c.route_sent += (size_t) n;
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN && errno != EINTR) {
      close_conn (&c, std::string ("TCP connection failed: ") + g_strerror (errno), false, 0, false);
      return;
    }
    if (c.route_sent < kTcpRouteLen) {
      if (now - c.started > (guint64) MAX (self->cfg_.handshake_timeout_ms, 1000u) * 10 * 1000000ull)
        close_conn (&c, "the TCP connection timed out", false, 0, false);
      return;
    }
  }
  if (c.tls_handshaking) {
    int rv = gnutls_handshake (c.tls);
    if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) {
      if (now - c.started > (guint64) MAX (self->cfg_.handshake_timeout_ms, 1000u) * 10 * 1000000ull)
        close_conn (&c, "the TLS handshake over TCP timed out", false, 0, false);
      return;
    }
    if (rv < 0 && server) {
      GST_INFO ("TCP handshake from %s failed: %s", c.peer.c_str (), gnutls_strerror (rv));
      close_conn (&c, "handshake failed", false, 0, false);
      return;
    }
    if (rv < 0) {
      std::string why = !c.tls_failure.empty () ? c.tls_failure
          : std::string ("TLS handshake over TCP failed: ") + gnutls_strerror (rv);
      bool refused = !c.tls_failure.empty ();
      close_conn (&c, why, false, 0, false);
      if (refused) {
        fatal = true;
        fatal_reason = why;
        notify_state (false, 0, "", "tcp", why, true);
      }
      return;
    }
    c.tls_handshaking = false;
    c.last_rx = now;
    on_established (c);
  }
  tcp_read (c);
  if (c.closed)
    return;
  now = now_ns ();
  if (now - c.last_rx > (guint64) self->cfg_.idle_timeout_ms * 1000000ull) {
    char buf[160];
    g_snprintf (buf, sizeof buf, "no data from the peer for %.1f s (idle timeout): the peer is gone",
        self->cfg_.idle_timeout_ms / 1000.0);
    close_conn (&c, buf, false, 0, false);
    return;
  }
  if (self->cfg_.keepalive_ms && now - c.last_tx > (guint64) self->cfg_.keepalive_ms * 1000000ull
      && c.tx_pending.empty ())
    tcp_send_record (c, kTcpKeepAliveStream, kTcpKeepAlive, nullptr, 0);
}

bool
Endpoint::Impl::tcp_flush_pending (Conn & c)
{
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
      close_conn (&c, std::string ("TLS send failed: ") + gnutls_strerror ((int) r), false, 0, false);
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
Endpoint::Impl::tcp_send_record (Conn & c, guint32 id, guint8 flags, const guint8 * data, size_t len)
{
  if (c.closed)
    return false;
  guint8 h[kTcpRecordHeaderLen];
  encode_tcp_record_header (h, id, flags, (guint32) len);
  c.tx_pending.insert (c.tx_pending.end (), h, h + kTcpRecordHeaderLen);
  if (len)
    c.tx_pending.insert (c.tx_pending.end (), data, data + len);
  c.last_tx = now_ns ();
  /* Queued either way; what TLS did not take yet goes with the next try. */
  tcp_flush_pending (c);
  return !c.closed;
}

void
Endpoint::Impl::tcp_write (Conn & c)
{
  bool notify = false;
  while (!c.closed) {
    if (!tcp_flush_pending (c) || c.closed)
      break;
    for (auto &s : c.streams)
      if (s->id == -1 && !s->dead)
        s->id = c.next_tcp_id++;
    SendStream *s = pick_stream (c);
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
    if (!tcp_send_record (c, (guint32) s->id, flags, p, n))
      break;
    s->sent += n;
    s->served = ++serve_counter;
    if (flags & 1)
      s->fin_sent = true;
    /* TCP delivers reliably: what TLS accepted counts as acknowledged. */
    free_acked (*s, s->sent);
    notify = true;
    if (s->fin_sent && s->unacked () == 0) {
      s->dead = true;
      drop_stream (c, s);
    }
    if (c.tx_pending.size () - c.tx_off > kTcpMaxRecord * 4)
      break;
  }
  if (notify)
    cv.notify_all ();
}

void
Endpoint::Impl::tcp_read (Conn & c)
{
  guint8 buf[65536];
  for (int i = 0; i < 64 && !c.rx_paused; i++) {
    ssize_t r = gnutls_record_recv (c.tls, buf, sizeof buf);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
      break;
    if (r == 0) {
      close_conn (&c, "the peer closed the connection", false, 0, true);
      return;
    }
    if (r < 0) {
      close_conn (&c, std::string ("TLS receive failed: ") + gnutls_strerror ((int) r), false, 0, true);
      return;
    }
    c.last_rx = now_ns ();
    c.bytes_received += (guint64) r;
    c.rx.insert (c.rx.end (), buf, buf + r);
    tcp_dispatch_records (c);
    if (c.closed)
      return;
  }
}

void
Endpoint::Impl::tcp_dispatch_records (Conn & c)
{
  size_t off = 0;
  while (!c.closed) {
    TcpRecord rec;
    std::string error;
    gssize n = parse_tcp_record (c.rx.data () + off, c.rx.size () - off, rec, error);
    if (n < 0) {
      close_conn (&c, error, true, kErrMalformed, false);
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
    auto &slot = c.tcp_in[id];
    if (!slot) {
      if (c.tcp_in.size () > kMaxIncomingStreams) {
        close_conn (&c, "too many streams opened by the peer", true, kErrMalformed, false);
        return;
      }
      slot.reset (new InStream ());
    }
    InStream &s = *slot;
    if (flags & kTcpReset) {
      stream_ended (c, s, (gint64) id, true);
      c.tcp_in.erase (id);
      continue;
    }
    stream_data (c, s, (gint64) id, payload, len, flags & kTcpFin);
    if (c.closing) {
      close_conn (&c, c.close_reason, true, kErrMalformed, false);
      return;
    }
    if (flags & kTcpFin)
      c.tcp_in.erase (id);
  }
  if (!c.closed)
    c.rx.erase (c.rx.begin (), c.rx.begin () + off);
}

/* ---------------------------------------------------------------------- */
/* TCP + TLS behind the connection interface                               */

namespace {

class TcpLink : public Endpoint::Link {
public:
  explicit TcpLink (Endpoint::Impl & ep) : ep_ (ep) {}
  const char *name () const override { return "tcp"; }
  const char *title () const override { return "TCP+TLS"; }
  int poll_fd (const Endpoint::Conn & c, short & events) const override
  {
    if (c.fd < 0)
      return -1;
    events = c.rx_paused ? 0 : POLLIN;
    if (!c.tx_pending.empty () || (c.tls && gnutls_record_get_direction (c.tls) == 1))
      events |= POLLOUT;
    return c.fd;
  }
  guint64 next_timer (const Endpoint::Conn & c, guint64 now) const override
  {
    /* A connect in progress only shows as writable: its TLS handshake is
     * tried briskly instead; then keep-alive and idle timeout. */
    const Config &cfg = ep_.self->config ();
    if (c.tls_handshaking)
      return now + 5 * 1000000ull;
    guint ms = MAX (MIN (cfg.keepalive_ms ? cfg.keepalive_ms : 1000u, cfg.idle_timeout_ms / 2), 50u);
    return now + (guint64) ms * 1000000ull;
  }
  void progress (Endpoint::Conn & c, guint64) override { ep_.tcp_progress (c); }
  void write (Endpoint::Conn & c) override
  {
    if (!c.tls_handshaking)
      ep_.tcp_write (c);
  }
  void reset_stream (Endpoint::Conn & c, SendStream & s, guint64) override
  {
    ep_.tcp_send_record (c, (guint32) s.id, kTcpReset, nullptr, 0);
  }
  bool keeps_reset_data () const override { return false; }
  void received (Endpoint::Conn & c, InStream & s, gint64, size_t) override { ep_.tcp_received (c, s); }
  void discarded (Endpoint::Conn &, gint64, size_t) override {}
  bool stop_stream (Endpoint::Conn &, gint64, guint64) override { return false; }
  void resume (Endpoint::Conn & c) override
  {
    for (auto &in : c.tcp_in)
      in.second->rx_full = false;
    c.rx_paused = false;
  }
  void goodbye (Endpoint::Conn & c, const std::string &, guint64) override
  {
    if (c.tls && !c.tls_handshaking)
      gnutls_bye (c.tls, GNUTLS_SHUT_WR);
  }
  void stats (const Endpoint::Conn & c, Stats & st) const override
  {
    struct tcp_info ti {};
    socklen_t tl = sizeof ti;
    if (c.fd < 0 || getsockopt (c.fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0)
      return;
    st.rtt = st.smoothed_rtt = (guint64) ti.tcpi_rtt * 1000;
    st.rttvar = (guint64) ti.tcpi_rttvar * 1000;
    st.min_rtt = (guint64) ti.tcpi_min_rtt * 1000;
    st.cwnd = (guint64) ti.tcpi_snd_cwnd * ti.tcpi_snd_mss;
    st.bytes_in_flight = (guint64) ti.tcpi_unacked * ti.tcpi_snd_mss;
    st.delivery_rate = ti.tcpi_delivery_rate;
    st.acked_rate = ti.tcpi_delivery_rate;
    st.lost_packets = ti.tcpi_total_retrans;
  }

private:
  Endpoint::Impl &ep_;
};

}  // namespace

std::unique_ptr<Endpoint::Link>
make_tcp_link (Endpoint::Impl & ep)
{
  return std::unique_ptr<Endpoint::Link> (new TcpLink (ep));
}

}  // namespace wrq
