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
