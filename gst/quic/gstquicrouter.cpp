/* One port per seat: the router and the relay.
 *
 * The seat's front door endpoint owns the UDP and TCP sockets. Connections
 * whose IDs start with a session's prefix are routed, datagram by datagram
 * (and TCP connection by TCP connection, after their route preamble), over
 * a SOCK_SEQPACKET socket to that session's endpoint in its worker, which
 * has no sockets of its own and sends its packets back the same way. The
 * router sends a session's packets only to addresses that session's peers
 * wrote from, so a session cannot use the seat's port to reach anyone else.
 * Wire format: gstquicrelaywire.h; docs/transport.md, "One port per seat".
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicendpointimpl.h"

namespace wrq {

/* A server's connection ID: its prefix, then random bytes. */
void
Endpoint::Impl::make_scid (ngtcp2_cid & cid)
{
  const std::string &prefix = self->cfg_.cid_prefix;
  cid.datalen = kScidLen;
  gnutls_rnd (GNUTLS_RND_RANDOM, cid.data, cid.datalen);
  memcpy (cid.data, prefix.data (), MIN (prefix.size (), kMaxRoutePrefix));
}

/* Sends @len bytes (packets of @seg bytes, the last possibly shorter; 0:
 * one packet) to @to: on the UDP socket, or through the relay. FALSE when
 * the socket is full (the packets count as lost). */
bool
Endpoint::Impl::send_udp (const guint8 * data, size_t len, size_t seg, const sockaddr * to, socklen_t tolen)
{
  if (relay >= 0 || self->cfg_.relay)
    return relay_send (kRelayDatagram, data, len, seg, to, tolen, -1);
  struct iovec iov { (void *) data, len };
  struct msghdr msg {};
  msg.msg_name = (void *) to;
  msg.msg_namelen = to ? tolen : 0;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas (struct cmsghdr) char cbuf[CMSG_SPACE (sizeof (uint16_t))];
  if (seg && seg < len && gso) {
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN (sizeof (uint16_t));
    uint16_t s16 = (uint16_t) seg;
    memcpy (CMSG_DATA (cm), &s16, sizeof s16);
  }
  ssize_t n = sendmsg (udp, &msg, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return false;
  if (n < 0 && msg.msg_control && (errno == EIO || errno == EINVAL)) {
    /* No GSO here: one by one from now on. */
    gso = false;
    for (size_t off = 0; off < len; off += seg)
      sendto (udp, data + off, MIN (seg, len - off), MSG_DONTWAIT, to, to ? tolen : 0);
  }
  return true;
}

/* One relay message on @sock (either end), with @pass_fd alongside when
 * >= 0. -1 with errno set when it could not be sent (EAGAIN: full). */
static ssize_t
send_relay_message (int sock, guint8 kind, const guint8 * data, size_t len, size_t seg, const sockaddr * addr,
    socklen_t addrlen, int pass_fd)
{
  guint8 head[kRelayHeaderLen + kRelayMaxAddr];
  size_t hl = encode_relay_header (head, kind, addr, addrlen, seg);
  if (!hl || len > kRelayMaxPayload) {
    errno = EINVAL;
    return -1;
  }
  struct iovec iov[2] = { { head, hl }, { (void *) data, len } };
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = len ? 2 : 1;
  alignas (struct cmsghdr) char cbuf[CMSG_SPACE (sizeof (int))];
  if (pass_fd >= 0) {
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN (sizeof (int));
    memcpy (CMSG_DATA (cm), &pass_fd, sizeof pass_fd);
  }
  return sendmsg (sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool
Endpoint::Impl::relay_send (guint8 kind, const guint8 * data, size_t len, size_t seg, const sockaddr * to,
    socklen_t tolen, int pass_fd)
{
  if (relay < 0)
    return true;   /* no router now (it restarts): the packets are lost */
  ssize_t n = send_relay_message (relay, kind, data, len, seg, to, tolen, pass_fd);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return false;
  if (n < 0)
    GST_DEBUG ("relay send failed: %s", g_strerror (errno));
  return true;
}

static void
tune_relay (int fd)
{
  int sz = 4 * 1024 * 1024;
  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
    setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  if (setsockopt (fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  int fl = fcntl (fd, F_GETFL);
  fcntl (fd, F_SETFL, fl | O_NONBLOCK);
  fcntl (fd, F_SETFD, FD_CLOEXEC);
}

void
Endpoint::set_relay (int fd)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  if (m.relay >= 0)
    close (m.relay);
  m.relay = fd;
  if (fd >= 0) {
    tune_relay (fd);
    GST_INFO ("relay socket %d in place", fd);
  }
  wake ();
}

bool
Endpoint::add_route (const std::string & prefix, int fd)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  if (cfg_.relay || cfg_.mode != Mode::Server || prefix.size () != kMaxRoutePrefix || prefix == cfg_.cid_prefix) {
    close (fd);
    return false;
  }
  tune_relay (fd);
  auto &r = m.routes[prefix];
  if (r.fd >= 0)
    close (r.fd);
  r.fd = fd;
  r.peers.clear ();
  GST_INFO ("route %s: connections go through socket %d", prefix_to_hex (prefix).c_str (), fd);
  wake ();
  return true;
}

bool
Endpoint::remove_route (const std::string & prefix)
{
  Impl &m = *impl_;
  std::lock_guard<std::mutex> lk (m.mu);
  if (!m.routes.count (prefix))
    return false;
  m.drop_route (prefix, "removed");
  return true;
}

void
Endpoint::Impl::drop_route (const std::string & prefix, const char * why)
{
  auto it = routes.find (prefix);
  if (it == routes.end ())
    return;
  GST_INFO ("route %s %s", prefix_to_hex (prefix).c_str (), why);
  if (it->second.fd >= 0)
    close (it->second.fd);
  routes.erase (it);
}

/* Router: a datagram for a routed session goes to it, with its source. */
bool
Endpoint::Impl::route_datagram (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen)
{
  if (routes.empty ())
    return false;
  ngtcp2_version_cid vc;
  if (ngtcp2_pkt_decode_version_cid (&vc, data, len, kScidLen) != 0 || vc.dcidlen < kMaxRoutePrefix)
    return false;
  auto it = routes.find (std::string ((const char *) vc.dcid, kMaxRoutePrefix));
  if (it == routes.end ())
    return false;
  Route &r = it->second;
  guint64 now = now_ns ();
  bool known = false;
  for (auto &p : r.peers)
    if (p.len == fromlen && memcmp (&p.addr, from, fromlen) == 0) {
      p.seen = now;
      known = true;
      break;
    }
  if (!known) {
    r.peers.erase (std::remove_if (r.peers.begin (), r.peers.end (),
            [now] (const RoutePeer &p) { return now - p.seen > kRoutePeerTtl; }), r.peers.end ());
    if (r.peers.size () >= kRouteMaxPeers)
      r.peers.erase (std::min_element (r.peers.begin (), r.peers.end (),
              [] (const RoutePeer &a, const RoutePeer &b) { return a.seen < b.seen; }));
    RoutePeer p {};
    memcpy (&p.addr, from, fromlen);
    p.len = fromlen;
    p.seen = now;
    r.peers.push_back (p);
  }
  if (send_relay_message (r.fd, kRelayDatagram, data, len, 0, from, fromlen, -1) < 0 && errno != EAGAIN
      && errno != EWOULDBLOCK && errno != EINVAL)
    drop_route (it->first, "is gone (its endpoint closed the relay)");
  return true;
}

/* Router: what a session's endpoint sends, out of the seat's port. */
void
Endpoint::Impl::read_route (const std::string & prefix)
{
  relay_buf.resize (kRelayMaxMessage + 1);
  for (int i = 0; i < 256; i++) {
    auto it = routes.find (prefix);
    if (it == routes.end ())
      return;
    Route &r = it->second;
    ssize_t n = recv (r.fd, relay_buf.data (), relay_buf.size (), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      drop_route (prefix, "is gone (its endpoint closed the relay)");
      return;
    }
    if (n < 0)
      return;
    RelayMessage msg;
    std::string error;
    if (!parse_relay_message (relay_buf.data (), (size_t) n, msg, error) || msg.kind != kRelayDatagram) {
      /* A session's worker runs as its user: what it sends is untrusted,
       * and its mistakes do not flood the log. */
      if (r.malformed++ % 1000 == 0)
        GST_WARNING ("route %s: %s; message dropped (%" G_GUINT64_FORMAT " so far)", prefix_to_hex (prefix).c_str (),
            error.empty () ? "not a datagram" : error.c_str (), r.malformed);
      continue;
    }
    bool allowed = false;
    guint64 now = now_ns ();
    for (auto &p : r.peers)
      if (p.len == msg.addrlen && memcmp (&p.addr, &msg.addr, msg.addrlen) == 0 && now - p.seen <= kRoutePeerTtl)
        allowed = true;
    if (!allowed) {
      /* After a router restart, until the peer writes again (its next
       * packet or keep-alive) — or a session sending where it must not. */
      if (r.dropped++ % 100 == 0)
        GST_INFO ("route %s: a packet for %s, which never wrote to it, dropped", prefix_to_hex (prefix).c_str (),
            addr_to_string ((const sockaddr *) &msg.addr).c_str ());
      continue;
    }
    send_udp (msg.payload, msg.len, msg.segment, (const sockaddr *) &msg.addr, msg.addrlen);
  }
}

/* Relay endpoint: datagrams and TCP connections from the router. */
void
Endpoint::Impl::read_relay ()
{
  relay_buf.resize (kRelayMaxMessage + 1);
  for (int i = 0; i < 256 && relay >= 0; i++) {
    struct iovec iov { relay_buf.data (), relay_buf.size () };
    struct msghdr mh {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas (struct cmsghdr) char cbuf[CMSG_SPACE (sizeof (int) * 4)];
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n = recvmsg (relay, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    int passed = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR (&mh); n >= 0 && cm; cm = CMSG_NXTHDR (&mh, cm))
      if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
        for (size_t k = 0; k < (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int); k++) {
          int fd;
          memcpy (&fd, CMSG_DATA (cm) + k * sizeof (int), sizeof fd);
          if (passed < 0)
            passed = fd;
          else
            close (fd);
        }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      GST_INFO ("the router closed the relay; waiting for a new one");
      close (relay);
      relay = -1;
      return;
    }
    if (n < 0)
      return;
    RelayMessage msg;
    std::string error;
    if (!parse_relay_message (relay_buf.data (), (size_t) n, msg, error)) {
      GST_WARNING ("relay: %s; message dropped", error.c_str ());
      if (passed >= 0)
        close (passed);
      continue;
    }
    if (msg.kind == kRelayTcp) {
      if (passed < 0)
        continue;
      take_tcp (passed, (const sockaddr *) &msg.addr, msg.addrlen);
      continue;
    }
    if (passed >= 0)
      close (passed);
    feed_packet (msg.payload, msg.len, (const sockaddr *) &msg.addr, msg.addrlen);
  }
}

/* Router (or any server with a TCP listener): a TCP connection first says
 * where it goes; a routed one is handed over, the others are this
 * endpoint's. */
void
Endpoint::Impl::progress_pending_tcp ()
{
  guint64 now = now_ns ();
  for (size_t i = 0; i < pending_tcp.size ();) {
    PendingTcp &p = pending_tcp[i];
    ssize_t n = recv (p.fd, p.buf + p.got, kTcpRouteLen - p.got, MSG_DONTWAIT);
    if (n > 0)
      p.got += (size_t) n;
    bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    if (!gone && p.got < kTcpRouteLen && now - p.since < kTcpRouteTimeout) {
      i++;
      continue;
    }
    PendingTcp done = p;
    pending_tcp.erase (pending_tcp.begin () + i);
    std::string prefix, peer = addr_to_string ((const sockaddr *) &done.addr);
    if (done.got < kTcpRouteLen || !parse_tcp_route (done.buf, prefix)) {
      GST_INFO ("TCP connection from %s closed: %s", peer.c_str (),
          done.got < kTcpRouteLen ? "no route preamble in time" : "not a WayRay route preamble");
      close (done.fd);
      continue;
    }
    auto it = prefix.empty () ? routes.end () : routes.find (prefix);
    if (it != routes.end ()) {
      /* The session's endpoint takes the socket; its peer may now reach it. */
      Route &r = it->second;
      RoutePeer rp {};
      memcpy (&rp.addr, &done.addr, done.len);
      rp.len = done.len;
      rp.seen = now;
      r.peers.push_back (rp);
      if (send_relay_message (r.fd, kRelayTcp, nullptr, 0, 0, (const sockaddr *) &done.addr, done.len, done.fd) < 0)
        GST_INFO ("TCP connection from %s for route %s could not be handed over", peer.c_str (),
            prefix_to_hex (prefix).c_str ());
      close (done.fd);
      continue;
    }
    if (!prefix.empty () && prefix != self->cfg_.cid_prefix.substr (0, kMaxRoutePrefix)) {
      GST_INFO ("TCP connection from %s for unknown route %s closed", peer.c_str (), prefix_to_hex (prefix).c_str ());
      close (done.fd);
      continue;
    }
    take_tcp (done.fd, (const sockaddr *) &done.addr, done.len);
  }
}

}  // namespace wrq
