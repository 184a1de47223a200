/* One port per seat: a router (a server with its own port, the seat's front
 * door) hands the connections whose connection IDs (QUIC) or route preamble
 * (TCP) carry a session's prefix to that session's endpoint, which has no
 * socket of its own, over a SOCK_SEQPACKET relay (add-route, relay-fd). The
 * router sends a session's packets only to addresses that wrote to its
 * route; remove-route ends the routing; a new relay resumes it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/app/app.h>
#include <gst/check/gstcheck.h>

#include "quictestutil.h"

#include "gstquicrelaywire.h"

#include <arpa/inet.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#define SESSION_PREFIX "0a0b0c0d"

/* A temporary directory with two certificates (the router's and the
 * session's, so that a client's pin tells which endpoint it reached) and
 * the seat's port. */
struct Site {
  std::string dir;
  guint port = free_port ();
  std::string router_fp, session_fp;

  Site ()
  {
    gchar *d = g_dir_make_tmp ("wayray-router-XXXXXX", nullptr);
    dir = d;
    g_free (d);
    /* Generated now, one at a time, before any endpoint loads them. */
    router_fp = server_fingerprint (router ());
    session_fp = server_fingerprint (creds ("session") + " mode=server host=127.0.0.1 port="
        + std::to_string (port));
    fail_unless (router_fp.size () == 64 && session_fp.size () == 64 && router_fp != session_fp);
  }
  ~Site ()
  {
    GDir *d = g_dir_open (dir.c_str (), 0, nullptr);
    for (const gchar *n; d && (n = g_dir_read_name (d));)
      g_unlink ((dir + "/" + n).c_str ());
    if (d)
      g_dir_close (d);
    g_rmdir (dir.c_str ());
  }
  std::string creds (const char *who) const
  {
    return std::string (" certificate-file=") + dir + "/" + who + "-cert.pem private-key-file=" + dir + "/" + who
        + "-key.pem ";
  }
  /* The seat's router: its own port, prefix zeros. */
  std::string router () const
  {
    return "mode=server host=127.0.0.1 port=" + std::to_string (port) + creds ("router")
        + " connection-id-prefix=00000000 admission=open ";
  }
  /* A session behind the router: no port, a relay socket. */
  std::string session (const char *prefix, int relay_fd) const
  {
    return std::string ("mode=server") + creds ("session") + " connection-id-prefix=" + prefix
        + " admission=open relay-fd=" + std::to_string (relay_fd) + " ";
  }
  /* A client of the seat's port, pinned to @fp (or trusting on first use,
   * with a known-hosts file of its own, when @fp is empty). */
  std::string client (const std::string & host, const char *prefix, const std::string & fp,
      const char *transport = "quic") const
  {
    std::string p = "mode=client host=" + host + " port=" + std::to_string (port) + " transport=" + transport;
    if (prefix && *prefix)
      p += std::string (" connection-id-prefix=") + prefix;
    if (!fp.empty ())
      p += " pinned-fingerprint=" + fp;
    else
      p += " known-hosts-file=" + dir + "/known_hosts-" + host + "-" + (prefix ? prefix : "none");
    return p + " ";
  }
};

/* A server (router or session): what its peer sends on "up" goes to an
 * appsink, its media ("display") comes from an appsrc. */
struct Server {
  GstElement *pipe, *src, *sink, *in, *disp;

  explicit Server (const std::string & props)
  {
    pipe = play (launch ("quicsrc name=qs " + props + " qs.up ! appsink name=in sync=false async=false "
        "appsrc name=disp format=time caps=application/x-wayray-test ! qk.display quicsink name=qk " + props));
    src = by_name (pipe, "qs");
    sink = by_name (pipe, "qk");
    in = by_name (pipe, "in");
    disp = by_name (pipe, "disp");
  }
  ~Server ()
  {
    stop (pipe);
    for (GstElement *e : { src, sink, in, disp })
      gst_object_unref (e);
  }
};

/* A thin client: sends on "up", gets "display". */
struct Client {
  GstElement *pipe, *src, *display, *up;

  explicit Client (const std::string & props)
  {
    pipe = play (launch ("quicsrc name=c " + props + " c.display ! appsink name=display sync=false async=false "
        "appsrc name=up format=time caps=application/x-wayray-test ! k.up quicsink name=k " + props));
    src = by_name (pipe, "c");
    display = by_name (pipe, "display");
    up = by_name (pipe, "up");
  }
  ~Client ()
  {
    stop (pipe);
    for (GstElement *e : { src, display, up })
      gst_object_unref (e);
  }
};

static void
push (GstElement * appsrc, guint8 tag)
{
  GstBuffer *b = gst_buffer_new_allocate (nullptr, 64, nullptr);
  gst_buffer_memset (b, 0, tag, 64);
  fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (appsrc), b), GST_FLOW_OK);
}

/* TRUE when a buffer starting with @tag reaches @appsink within @timeout
 * (others are skipped). */
static bool
got (GstElement * appsink, guint8 tag, GstClockTime timeout)
{
  gint64 end = g_get_monotonic_time () + timeout / 1000;
  for (gint64 left; (left = end - g_get_monotonic_time ()) > 0;) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (appsink), left * 1000);
    if (!s)
      break;
    guint8 first = 0;
    gst_buffer_extract (gst_sample_get_buffer (s), 0, &first, 1);
    gst_sample_unref (s);
    if (first == tag)
      return true;
  }
  return false;
}

/* Pushes @tag into @appsrc until it reaches @appsink (before the
 * connection is up, and while a route changes, buffers may be lost). */
static bool
reaches (GstElement * appsrc, GstElement * appsink, guint8 tag)
{
  for (int i = 0; i < 60; i++) {
    push (appsrc, tag);
    if (got (appsink, tag, 250 * GST_MSECOND))
      return true;
  }
  return false;
}

/* Pushes @tag into @appsrc for about @ms; TRUE when none of @sinks got
 * it. */
static bool
never_reaches (GstElement * appsrc, std::vector<GstElement *> sinks, guint ms, guint8 tag)
{
  for (guint t = 0; t < ms; t += 250) {
    push (appsrc, tag);
    g_usleep (250 * 1000);
  }
  for (auto *s : sinks)
    if (got (s, tag, 200 * GST_MSECOND))
      return false;
  return true;
}

static gboolean
add_route (GstElement * e, const char *prefix, int fd)
{
  gboolean ok = FALSE;
  g_signal_emit_by_name (e, "add-route", prefix, fd, &ok);
  return ok;
}

static gboolean
remove_route (GstElement * e, const char *prefix)
{
  gboolean ok = FALSE;
  g_signal_emit_by_name (e, "remove-route", prefix, &ok);
  return ok;
}

/* A relay: [0] for the router (add-route), [1] for the session
 * (relay-fd) or the test. */
static void
relay_pair (int sv[2])
{
  fail_unless (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
}

static std::string
fingerprint_of (GstElement * e)
{
  gchar *fp = nullptr;
  g_object_get (e, "certificate-fingerprint", &fp, nullptr);
  std::string r = fp ? fp : "";
  g_free (fp);
  return r;
}

/* @client_src's connection is to the server with certificate @want. */
static void
assert_reached (GstElement * client_src, const std::string & want, const char *who)
{
  std::string fp = fingerprint_of (client_src);
  fail_unless (fp == want, "client %s reached the wrong server (certificate %s)", who, fp.c_str ());
}

static gboolean
flag_connected (GstElement * e)
{
  gboolean v = FALSE;
  g_object_get (e, "connected", &v, nullptr);
  return v;
}

/* The next "wayray-quic-connection" message with connected=TRUE from @p;
 * its peer and transport. */
static bool
connected_message (GstElement * p, GstClockTime timeout, std::string & peer, std::string & transport)
{
  GstBus *bus = gst_element_get_bus (p);
  gint64 end = g_get_monotonic_time () + timeout / 1000;
  bool found = false;
  while (!found && g_get_monotonic_time () < end) {
    GstMessage *m = gst_bus_timed_pop_filtered (bus, 20 * GST_MSECOND, GST_MESSAGE_ELEMENT);
    if (!m)
      continue;
    const GstStructure *s = gst_message_get_structure (m);
    gboolean c = FALSE;
    if (gst_structure_has_name (s, "wayray-quic-connection") && gst_structure_get_boolean (s, "connected", &c)
        && c) {
      peer = gst_structure_get_string (s, "peer");
      transport = gst_structure_get_string (s, "transport");
      found = true;
    }
    gst_message_unref (m);
  }
  gst_object_unref (bus);
  return found;
}

/* A router and a session behind it (prefix SESSION_PREFIX), its relay
 * handed over: the test keeps no end of it. */
struct SeatSetup {
  Server *router = nullptr, *session = nullptr;

  explicit SeatSetup (const Site & site)
  {
    router = new Server (site.router ());
    int sv[2];
    relay_pair (sv);
    session = new Server (site.session (SESSION_PREFIX, sv[1]));
    close (sv[1]);   /* the elements hold duplicates */
    fail_unless (add_route (router->src, SESSION_PREFIX, sv[0]), "add-route refused");
    close (sv[0]);
  }
  ~SeatSetup ()
  {
    delete session;
    delete router;
  }
};

/* QUIC: a client with the session's prefix reaches the session (both
 * ways), one without reaches the router's own elements, each with the
 * other's data nowhere. */
GST_START_TEST (test_routes_quic)
{
  Site site;
  SeatSetup seat (site);
  Server &router = *seat.router, &session = *seat.session;

  /* What add-route refuses: the router's own prefix, bad hex, a short
   * prefix, a relay endpoint. */
  int sv[2];
  relay_pair (sv);
  fail_if (add_route (router.src, "00000000", sv[0]), "a route for the router's own prefix");
  fail_if (add_route (router.src, "0a0b0c0z", sv[0]), "a route for bad hex");
  fail_if (add_route (router.src, "0a0b", sv[0]), "a route for a 2-byte prefix");
  fail_if (add_route (session.sink, "01010101", sv[0]), "a route on a relay endpoint");
  close (sv[0]);
  close (sv[1]);

  Client a (site.client ("127.0.0.1", SESSION_PREFIX, site.session_fp));
  Client b (site.client ("127.0.0.1", nullptr, site.router_fp));

  fail_unless (reaches (a.up, session.in, 1), "the prefixed client's data did not reach the session");
  fail_unless (reaches (session.disp, a.display, 2), "the session's media did not reach its client");
  std::string peer, transport;
  fail_unless (connected_message (session.pipe, 5 * GST_SECOND, peer, transport),
      "the session posted no connection");
  fail_unless (g_str_has_prefix (peer.c_str (), "127.0.0.1:") && atoi (peer.c_str () + 10) > 0,
      "the session sees its peer as '%s'", peer.c_str ());
  fail_unless_equals_string (transport.c_str (), "quic");
  assert_reached (a.src, site.session_fp, "a");

  fail_unless (reaches (b.up, router.in, 3), "the plain client's data did not reach the router");
  fail_unless (reaches (router.disp, b.display, 4), "the router's media did not reach its client");
  assert_reached (b.src, site.router_fp, "b");

  /* Nothing crossed over. */
  fail_if (got (router.in, 1, 300 * GST_MSECOND), "the session's client's data reached the router");
  fail_if (got (session.in, 3, 300 * GST_MSECOND), "the router's client's data reached the session");
  fail_if (got (b.display, 2, 300 * GST_MSECOND), "the session's media reached the router's client");
  fail_if (got (a.display, 4, 300 * GST_MSECOND), "the router's media reached the session's client");
  /* Still both ways after that. */
  fail_unless (reaches (a.up, session.in, 5));
  fail_unless (reaches (session.disp, a.display, 6));
  assert_no_error (router.pipe);
  assert_no_error (session.pipe);
  assert_no_error (a.pipe);
  assert_no_error (b.pipe);
}
GST_END_TEST;

/* A TCP connection to the seat's port from @source (an address of
 * 127.0.0.0/8, host order). */
static int
tcp_open (guint port, guint32 source = INADDR_LOOPBACK)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from {};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl (source);
  fail_unless (bind (fd, (sockaddr *) &from, sizeof from) == 0, "bind: %s", g_strerror (errno));
  sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  a.sin_port = htons (port);
  fail_unless (connect (fd, (sockaddr *) &a, sizeof a) == 0, "connect: %s", g_strerror (errno));
  return fd;
}

/* A TCP connection to the seat's port whose route preamble is @pre: TRUE
 * when the router closes it within @ms (without a byte). */
static bool
tcp_closed (guint port, const guint8 * pre, size_t len, guint ms, guint32 source = INADDR_LOOPBACK)
{
  int fd = tcp_open (port, source);
  fail_unless (send (fd, pre, len, MSG_NOSIGNAL) == (ssize_t) len);
  struct pollfd p { fd, POLLIN, 0 };
  bool closed = false;
  if (poll (&p, 1, (int) ms) > 0) {
    guint8 buf[64];
    ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
    closed = n == 0 || (n < 0 && errno == ECONNRESET);
  }
  close (fd);
  return closed;
}

/* TCP: the route preamble hands a connection with the session's prefix
 * over to the session (data both ways); none (zeros) stays with the
 * router; an unknown prefix, or no preamble at all, is closed. */
GST_START_TEST (test_routes_tcp)
{
  Site site;
  SeatSetup seat (site);
  Server &router = *seat.router, &session = *seat.session;

  Client a (site.client ("127.0.0.1", SESSION_PREFIX, site.session_fp, "tcp"));
  fail_unless (reaches (a.up, session.in, 1), "the prefixed TCP client's data did not reach the session");
  fail_unless (reaches (session.disp, a.display, 2), "the session's media did not reach its TCP client");
  std::string peer, transport;
  fail_unless (connected_message (session.pipe, 5 * GST_SECOND, peer, transport),
      "the session posted no connection");
  fail_unless_equals_string (transport.c_str (), "tcp");
  fail_unless (g_str_has_prefix (peer.c_str (), "127.0.0.1:"), "the session sees its peer as '%s'", peer.c_str ());
  assert_reached (a.src, site.session_fp, "a");

  Client b (site.client ("127.0.0.1", nullptr, site.router_fp, "tcp"));
  fail_unless (reaches (b.up, router.in, 3), "the plain TCP client's data did not reach the router");
  fail_unless (reaches (router.disp, b.display, 4));

  Client c (site.client ("127.0.0.1", "01020304", site.session_fp, "tcp"));
  fail_unless (never_reaches (c.up, { router.in, session.in }, 1500, 5),
      "a TCP client with an unknown prefix reached a server");
  fail_if (flag_connected (c.src), "a TCP client with an unknown prefix is connected");

  guint8 pre[wrq::kTcpRouteLen];
  wrq::encode_tcp_route (pre, std::string ("\x01\x02\x03\x04", 4));
  fail_unless (tcp_closed (site.port, pre, sizeof pre, 3000), "a preamble with an unknown prefix was not closed");
  static const guint8 http[] = { 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T' };
  fail_unless (tcp_closed (site.port, http, sizeof http, 3000), "a connection without a preamble was not closed");

  fail_if (got (router.in, 1, 200 * GST_MSECOND) || got (session.in, 3, 200 * GST_MSECOND),
      "data crossed over");
  fail_unless (reaches (a.up, session.in, 6), "the session's TCP client lost its connection");
  assert_no_error (router.pipe);
  assert_no_error (session.pipe);
  assert_no_error (a.pipe);
  assert_no_error (b.pipe);
}
GST_END_TEST;

/* Connections that never send their route preamble are bounded per
 * address: eight silent ones from one address keep that address's next
 * connection out (closed at once), not another address's, and not for
 * longer than they stay. */
GST_START_TEST (test_silent_tcp_bounded)
{
  Site site;
  SeatSetup seat (site);
  guint8 pre[wrq::kTcpRouteLen];
  wrq::encode_tcp_route (pre, std::string ());
  std::vector<int> silent;
  for (int i = 0; i < 8; i++)
    silent.push_back (tcp_open (site.port));
  g_usleep (200 * 1000);
  fail_unless (tcp_closed (site.port, pre, sizeof pre, 1000),
      "a ninth connection from an address with eight silent ones was not refused");
  fail_if (tcp_closed (site.port, pre, sizeof pre, 1000, INADDR_LOOPBACK + 1),
      "another address's connection was refused too");
  /* A real client refused the same way (its socket closed under its TLS
   * handshake) loses that connection, and nothing more: no SIGPIPE ends
   * the application that runs it. */
  for (int round = 0; round < 3; round++) {
    Client r (site.client ("127.0.0.1", SESSION_PREFIX, site.session_fp, "tcp"));
    g_usleep (700 * 1000);
    fail_if (flag_connected (r.src), "a refused TCP client is connected");
  }
  for (int fd : silent)
    close (fd);
  g_usleep (300 * 1000);
  fail_if (tcp_closed (site.port, pre, sizeof pre, 1000),
      "the address was still refused after its silent connections went");
}
GST_END_TEST;

/* --- the relay, raw ----------------------------------------------------- */

static int
udp_socket (sockaddr_in & addr)
{
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  addr = sockaddr_in {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  fail_unless (bind (fd, (sockaddr *) &addr, sizeof addr) == 0 && getsockname (fd, (sockaddr *) &addr, &len) == 0);
  return fd;
}

/* One datagram on @fd within @ms (its source in @from); empty if none. */
static std::vector<guint8>
udp_recv (int fd, guint ms, sockaddr_in * from = nullptr)
{
  struct pollfd p { fd, POLLIN, 0 };
  if (poll (&p, 1, (int) ms) <= 0)
    return {};
  std::vector<guint8> buf (70000);
  sockaddr_in a {};
  socklen_t alen = sizeof a;
  ssize_t n = recvfrom (fd, buf.data (), buf.size (), MSG_DONTWAIT, (sockaddr *) &a, &alen);
  if (n <= 0)
    return {};
  buf.resize ((size_t) n);
  if (from)
    *from = a;
  return buf;
}

/* The session's side: a datagram (or a batch of @seg-byte ones) for @to. */
static void
relay_datagram (int fd, const sockaddr * to, socklen_t tolen, const std::vector<guint8> & payload, size_t seg = 0)
{
  std::vector<guint8> msg (wrq::kRelayHeaderLen + wrq::kRelayMaxAddr);
  size_t hl = wrq::encode_relay_header (msg.data (), wrq::kRelayDatagram, to, tolen, seg);
  fail_unless (hl == wrq::kRelayHeaderLen + tolen);
  msg.resize (hl);
  msg.insert (msg.end (), payload.begin (), payload.end ());
  fail_unless (send (fd, msg.data (), msg.size (), MSG_NOSIGNAL) == (ssize_t) msg.size (), "relay send: %s",
      g_strerror (errno));
}

static std::vector<guint8>
bytes (const char *s)
{
  return std::vector<guint8> (s, s + strlen (s));
}

/* A session cannot use the seat's port to reach strangers: the router
 * sends what a route's relay asks only to addresses that wrote to that
 * route, with the source and the GSO batches intact; malformed relay
 * messages are dropped without ending the route. */
GST_START_TEST (test_relay_only_to_peers)
{
  Site site;
  Server router (site.router ());
  int sv[2];
  relay_pair (sv);
  const std::string prefix ("\x0c\x0c\x0c\x0c", 4);
  fail_unless (add_route (router.src, "0c0c0c0c", sv[0]));
  close (sv[0]);
  int relay = sv[1];
  struct timeval tv { 5, 0 };
  setsockopt (relay, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  sockaddr_in peer_addr, stranger_addr;
  int peer = udp_socket (peer_addr), stranger = udp_socket (stranger_addr);

  /* Nobody wrote from there yet. */
  relay_datagram (relay, (sockaddr *) &peer_addr, sizeof peer_addr, bytes ("not for strangers"));
  fail_unless (udp_recv (peer, 500).empty (), "the router sent a session's datagram to an address that never wrote");

  /* A short-header packet for the route (destination ID: 12 bytes, the
   * prefix first) goes to the relay, with its source. */
  std::vector<guint8> pkt = { 0x40 };
  pkt.insert (pkt.end (), prefix.begin (), prefix.end ());
  for (int i = 0; i < 8 + 30; i++)
    pkt.push_back ((guint8) g_random_int ());
  sockaddr_in seat {};
  seat.sin_family = AF_INET;
  seat.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  seat.sin_port = htons (site.port);
  fail_unless (sendto (peer, pkt.data (), pkt.size (), 0, (sockaddr *) &seat, sizeof seat) == (ssize_t) pkt.size ());
  std::vector<guint8> buf (wrq::kRelayMaxMessage + 1);
  ssize_t n = recv (relay, buf.data (), buf.size (), 0);
  fail_unless (n > 0, "the router did not relay the route's packet: %s", n < 0 ? g_strerror (errno) : "closed");
  wrq::RelayMessage m;
  std::string error;
  fail_unless (wrq::parse_relay_message (buf.data (), (size_t) n, m, error), "%s", error.c_str ());
  fail_unless_equals_int (m.kind, wrq::kRelayDatagram);
  fail_unless_equals_int (m.segment, 0);
  fail_unless (m.len == pkt.size () && memcmp (m.payload, pkt.data (), pkt.size ()) == 0, "the packet changed");
  fail_unless_equals_int (m.addrlen, sizeof (sockaddr_in));
  auto *src = (const sockaddr_in *) &m.addr;
  fail_unless (src->sin_family == AF_INET && src->sin_addr.s_addr == peer_addr.sin_addr.s_addr
      && src->sin_port == peer_addr.sin_port, "the relayed source is not the peer's address");

  /* Now the session may answer it, from the seat's port. */
  relay_datagram (relay, (sockaddr *) &m.addr, m.addrlen, bytes ("hello peer"));
  sockaddr_in from {};
  std::vector<guint8> answer = udp_recv (peer, 3000, &from);
  fail_unless (answer == bytes ("hello peer"), "the peer did not get the session's datagram (%zu bytes)",
      answer.size ());
  fail_unless_equals_int (ntohs (from.sin_port), site.port);

  /* But still not anyone else. */
  relay_datagram (relay, (sockaddr *) &stranger_addr, sizeof stranger_addr, bytes ("not for strangers"));
  fail_unless (udp_recv (stranger, 500).empty (), "the router sent a session's datagram to a stranger");
  fail_unless (udp_recv (peer, 100).empty ());

  /* Malformed messages are dropped; the route goes on. */
  static const guint8 shorter[] = { 1, 16 };
  static const guint8 unknown_kind[4 + 16 + 1] = { 9, 16 };
  send (relay, shorter, sizeof shorter, MSG_NOSIGNAL);
  send (relay, unknown_kind, sizeof unknown_kind, MSG_NOSIGNAL);
  std::vector<guint8> tcp (wrq::kRelayHeaderLen + wrq::kRelayMaxAddr);
  tcp.resize (wrq::encode_relay_header (tcp.data (), wrq::kRelayTcp, (sockaddr *) &m.addr, m.addrlen, 0));
  send (relay, tcp.data (), tcp.size (), MSG_NOSIGNAL);
  /* A batch: 10-byte packets, the last shorter. */
  std::vector<guint8> batch;
  for (int i = 0; i < 25; i++)
    batch.push_back ((guint8) i);
  relay_datagram (relay, (sockaddr *) &m.addr, m.addrlen, batch, 10);
  for (size_t off = 0; off < batch.size (); off += 10) {
    std::vector<guint8> part = udp_recv (peer, 3000);
    std::vector<guint8> want (batch.begin () + off, batch.begin () + MIN (off + 10, batch.size ()));
    fail_unless (part == want, "packet %zu of the batch: %zu bytes", off / 10, part.size ());
  }
  fail_unless (udp_recv (peer, 200).empty (), "a malformed relay message was sent");

  close (peer);
  close (stranger);
  close (relay);
  assert_no_error (router.pipe);
}
GST_END_TEST;

/* remove-route: the session's client reaches it no more (its packets and
 * the session's media go nowhere); a new client with its prefix gets the
 * router's front door (unknown prefixes: a new client's Initial goes to
 * the router itself), not the session. */
GST_START_TEST (test_remove_route)
{
  Site site;
  SeatSetup seat (site);
  Server &router = *seat.router, &session = *seat.session;

  Client a (site.client ("127.0.0.1", SESSION_PREFIX, site.session_fp));
  fail_unless (reaches (a.up, session.in, 1));
  fail_unless (reaches (session.disp, a.display, 2));

  fail_unless (remove_route (router.src, SESSION_PREFIX), "remove-route failed");
  fail_if (remove_route (router.sink, SESSION_PREFIX), "removed the route twice");
  fail_if (remove_route (router.sink, "01020304"), "removed a route that never was");

  fail_unless (never_reaches (a.up, { session.in, router.in }, 1500, 3),
      "the client's data still reached a server after remove-route");
  fail_unless (never_reaches (session.disp, { a.display }, 1500, 4),
      "the session's media still reached its client after remove-route");

  Client e (site.client ("127.1", SESSION_PREFIX, ""));
  fail_unless (never_reaches (e.up, { session.in }, 2500, 5),
      "a new client with the removed prefix reached the session");
  fail_unless (reaches (e.up, router.in, 6), "a new client with the removed prefix did not get the front door");
  assert_reached (e.src, site.router_fp, "e");
  assert_no_error (router.pipe);
  assert_no_error (session.pipe);
}
GST_END_TEST;

/* The router restarts: its route goes and comes back on a new relay (the
 * session gets the new relay-fd); the session's QUIC connection goes on. */
GST_START_TEST (test_new_relay_resumes)
{
  Site site;
  SeatSetup seat (site);
  Server &router = *seat.router, &session = *seat.session;

  Client a (site.client ("127.0.0.1", SESSION_PREFIX, site.session_fp));
  fail_unless (reaches (a.up, session.in, 1));
  fail_unless (reaches (session.disp, a.display, 2));

  fail_unless (remove_route (router.src, SESSION_PREFIX));
  g_usleep (500 * 1000);
  int sv[2];
  relay_pair (sv);
  fail_unless (add_route (router.sink, SESSION_PREFIX, sv[0]));
  for (GstElement *e : { session.src, session.sink })
    g_object_set (e, "relay-fd", sv[1], nullptr);
  close (sv[0]);
  close (sv[1]);

  fail_unless (reaches (a.up, session.in, 3), "the client's data no longer reaches the session on the new relay");
  fail_unless (reaches (session.disp, a.display, 4), "the session's media no longer reaches the client");
  fail_unless (flag_connected (a.src), "the client's connection did not survive");
  assert_no_error (router.pipe);
  assert_no_error (session.pipe);
  assert_no_error (a.pipe);
}
GST_END_TEST;

static Suite *
quicrouter_suite (void)
{
  Suite *s = suite_create ("quicrouter");
  TCase *tc = tcase_create ("router");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_routes_quic);
  tcase_add_test (tc, test_routes_tcp);
  tcase_add_test (tc, test_silent_tcp_bounded);
  tcase_add_test (tc, test_relay_only_to_peers);
  tcase_add_test (tc, test_remove_route);
  tcase_add_test (tc, test_new_relay_resumes);
  return s;
}

GST_CHECK_MAIN (quicrouter);
