/* The transport endpoint's insides, shared by the files that implement
 * it, one concern each (the way cage splits a compositor):
 *   gstquicendpoint.cpp  the registry of endpoints, the public API, the
 *                        dispatcher and the network thread's loop
 *   gstquicconn.cpp      connections: admission, bounds and Retry for new
 *                        peers, closing; QUIC itself (TLS, ngtcp2
 *                        callbacks, UDP input, timers) as a Link
 *   gstquicsend.cpp      the send scheduler: streams, priorities, packets,
 *                        paths, acknowledgements
 *   gstquicrecv.cpp      incoming streams and the receive budget
 *   gstquictcp.cpp       the TCP + TLS fallback, the same Link interface
 *   gstquicrouter.cpp    one port per seat: the router and the relay
 *   gstquicrelaywire.cpp the relay's messages and the TCP route preamble
 * Not installed; see gstquicendpoint.h for the interface.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gstquicendpoint.h"
#include "gstquicrelaywire.h"
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

#include <map>
#include <memory>
#include <mutex>
#include <string>

GST_DEBUG_CATEGORY_EXTERN (wrq_endpoint_debug);
#define GST_CAT_DEFAULT wrq_endpoint_debug

namespace wrq {


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
/* Length of a server's connection IDs (prefix included). */
constexpr size_t kScidLen = 12;
/* A routed session's peers: addresses its packets came from recently,
 * the only ones the router sends its packets to. */
constexpr guint64 kRoutePeerTtl = 120ull * 1000000000ull;
constexpr size_t kRouteMaxPeers = 64;
/* TCP connections waiting for their route preamble. */
constexpr size_t kMaxPendingTcp = 64;
constexpr size_t kMaxPendingTcpPerSource = 8;
constexpr guint64 kTcpRouteTimeout = 3ull * 1000000000ull;
/* What a connection not yet admitted may send in all (hello, ticket): more
 * ends it. */
constexpr guint64 kUnadmittedBudget = 256 * 1024;
/* How long a Retry token stays valid. */
constexpr guint64 kRetryTokenTimeout = 10ull * 1000000000ull;
/* The control stream's reserved target: records for the transport itself
 * (the server's admission), not for a sink pad. */
extern const char *const kTransportTarget;

guint64 now_ns ();
std::string addr_to_string (const sockaddr * sa);
/* The address without its port: what per-source limits count. */
std::string source_of (const sockaddr * sa);

struct InStream {
  Parser parser;
  bool refused = false;  /* not accepted before admission: its bytes are dropped */
  guint64 held = 0;      /* received, flow control not yet credited (stream and connection) */
  bool rx_full = false;  /* the receiver's queue is full: hold credit */
  bool is_control = false;
  bool failed = false;
  bool given_back = false;  /* ended; its stream credit went back to the peer (gstquicconn.cpp) */
  bool caps_seen = false;   /* its caps arrived: datagrams for it can be delivered */
};

/* A connection's transport: QUIC (QuicLink, gstquicconn.cpp) or the
 * TCP+TLS fallback (TcpLink, gstquictcp.cpp). The rest of the endpoint —
 * admission, streams, scheduling, framing, budgets — is the same for both;
 * what differs is behind this interface. All calls with the endpoint
 * locked, on the network thread. */
struct Endpoint::Link {
  virtual ~Link () = default;
  virtual const char *name () const = 0;           /* "quic", "tcp" (statistics, messages) */
  virtual const char *title () const = 0;          /* "QUIC", "TCP+TLS" (logs) */
  /* A socket of its own to poll, and for what; -1: none (QUIC datagrams
   * arrive on the endpoint's socket or relay). */
  virtual int poll_fd (const Conn & c, short & events) const = 0;
  /* When it next needs a turn without input (UINT64_MAX: never). */
  virtual guint64 next_timer (const Conn & c, guint64 now) const = 0;
  /* Its turn: handshake, input, timers (idle, retransmission, keep-alive). */
  virtual void progress (Conn & c, guint64 now) = 0;
  /* Sends what its streams have, most urgent first. */
  virtual void write (Conn & c) = 0;
  virtual void reset_stream (Conn & c, SendStream & s, guint64 app_error) = 0;
  /* Whether a reset stream's sent bytes must stay until the stream closes
   * (QUIC may still read them; TCP handed them to TLS already). */
  virtual bool keeps_reset_data () const = 0;
  /* @len bytes of stream @id reached its parser: apply the receive budget. */
  virtual void received (Conn & c, InStream & s, gint64 id, size_t len) = 0;
  /* @len bytes of stream @id were dropped unread. */
  virtual void discarded (Conn & c, gint64 id, size_t len) = 0;
  /* Stops the peer sending on stream @id; FALSE when one stream cannot be
   * stopped alone (TCP: one byte stream). */
  virtual bool stop_stream (Conn & c, gint64 id, guint64 app_error) = 0;
  /* The receivers have room again. */
  virtual void resume (Conn & c) = 0;
  /* Tells the peer the connection closes. */
  virtual void goodbye (Conn & c, const std::string & reason, guint64 app_error) = 0;
  virtual void stats (const Conn & c, Stats & st) const = 0;
};

std::unique_ptr<Endpoint::Link> make_quic_link (Endpoint::Impl & ep);
std::unique_ptr<Endpoint::Link> make_tcp_link (Endpoint::Impl & ep);

/* Stream bytes acknowledged, sampled for their rate (Stats::acked_rate). */
class AckMeter {
public:
  void add (guint64 bytes, guint64 now);
  /* Bytes per second over the last @window_ns (or what history there is,
   * at least 100 ms of it); 0 without history or without acks. */
  guint64 rate (guint64 now, guint64 window_ns) const;
  bool measured () const { return !samples_.empty (); }

private:
  guint64 total_ = 0;
  std::deque<std::pair<guint64, guint64>> samples_;   /* (time, total), 20 ms apart, the last second */
};

/* One peer. A server holds many: handshakes in progress, connections
 * waiting for admission, and at most one admitted connection (Impl::conn),
 * the only one that carries media and input. */
struct Endpoint::Conn {
  Impl *ep = nullptr;
  guint64 gen = 0;           /* the connection's id, unique in the endpoint */
  bool tcp = false;
  std::unique_ptr<Endpoint::Link> link;
  bool closed = false;       /* closed; freed at the next turn of the loop */
  bool admitted = false;     /* server: admitted by the application; client: told so by the server */
  guint64 admit_deadline = 0;   /* server: closed if not admitted by then */
  guint64 unadmitted_rx = 0;    /* bytes received before admission */
  std::string source;        /* the peer's address without the port */
  std::string prefix;        /* server: the start of its connection IDs */
  /* Its outgoing streams (the control stream first, once established). */
  std::vector<std::shared_ptr<SendStream>> streams;
  std::shared_ptr<SendStream> control;
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
  AckMeter acks;             /* QUIC: stream bytes the peer acknowledged */
  guint64 bytes_sent = 0, bytes_received = 0;
  guint64 started = 0;
  /* QUIC datagrams waiting to be sent (docs/transport.md, "Datagrams"),
   * and what happened to datagrams so far. */
  std::deque<std::vector<guint8>> dgrams;
  guint64 dgrams_sent = 0, dgrams_received = 0, dgrams_dropped = 0;
  /* Datagrams that came before their stream's caps (they overtook them),
   * by stream: delivered after the caps, dropped when too many or too
   * old (kMaxEarlyDatagrams, kEarlyDatagramAge). */
  struct Early {
    guint64 since;
    std::vector<Frame> frames;
  };
  std::map<gint64, Early> early;

  /* TCP fallback. */
  int fd = -1;
  bool tls_handshaking = true;
  size_t route_sent = 0;             /* client: bytes of the route preamble written */
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
  /* Every connection, by id. Server: a new connection (handshake, then
   * waiting for admission) displaces no one; only admit () makes it conn,
   * closing the one admitted before. Client: its one connection. */
  std::map<guint64, std::unique_ptr<Conn>> conns;
  Conn *conn = nullptr;          /* the admitted connection (client: the established one) */
  std::vector<std::unique_ptr<Conn>> closed;   /* freed at the next turn of the loop */
  guint64 next_id = 0;
  guint64 gen = 0;               /* id of conn */
  bool connected = false;
  guint8 retry_secret[32] {};

  /* Relay endpoint: the socket to the router (-1: none yet, or it went). */
  int relay = -1;
  /* Router: sessions' endpoints by connection-ID prefix (4 bytes). */
  struct RoutePeer {
    sockaddr_storage addr;
    socklen_t len;
    guint64 seen;
  };
  struct Route {
    int fd = -1;
    std::vector<RoutePeer> peers;
    guint64 dropped = 0, malformed = 0;
  };
  std::map<std::string, Route> routes;
  struct PendingTcp {
    int fd = -1;
    sockaddr_storage addr {};
    socklen_t len = 0;
    guint8 buf[kTcpRouteLen] {};
    size_t got = 0;
    guint64 since = 0;
  };
  std::vector<PendingTcp> pending_tcp;
  std::vector<guint8> relay_buf;
  guint64 refused_initials = 0, retries_sent = 0;
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
  void notify_state (bool up, guint64 conn_id, const std::string & peer, const std::string & transport,
      const std::string & reason, bool fatal_);
  void warn (const std::string & msg);
  bool setup_server (std::string & error);
  bool setup_client (std::string & error);
  bool start_quic_client (std::string & error);
  bool start_tcp_client (std::string & error);
  std::unique_ptr<Conn> new_quic_conn (bool server, const ngtcp2_pkt_hd * hd, const ngtcp2_cid * odcid,
      const sockaddr * remote, socklen_t remotelen, std::string & error);
  Conn *add_conn (std::unique_ptr<Conn> c);
  /* Handshakes in progress, in all and from @source. */
  guint count_handshakes (const std::string & source, guint * from_source) const;
  Conn *find_conn (guint64 id);
  bool setup_tls (Conn & c, bool server, std::string & error);
  void read_udp ();
  void feed_packet (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen);
  Conn *accept_initial (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen);
  void send_stateless (const guint8 * pkt, ngtcp2_ssize len, const sockaddr * to, socklen_t tolen);
  void read_conn_packet (Conn & c, const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen);
  void write_quic (Conn & c);
  bool flush_tx (Conn & c);
  void queue_tx (Conn & c, const guint8 * pkt, size_t len);
  void handle_expiry ();
  void expire_conn (Conn & c, guint64 now);
  void quic_expiry (Conn & c, guint64 now);
  void quic_goodbye (Conn & c, const std::string & reason, guint64 app_error);
  void tcp_received (Conn & c, InStream & s);
  void close_conn (Conn * c, const std::string & reason, bool send_close, guint64 app_error, bool peer_closed);
  void on_established (Conn & c);
  void admit_conn (Conn & c);
  void apply_resume ();
  void credit (Conn & c, gint64 id, guint64 len);
  void credit_held (Conn & c);
  void update_stats (bool post);
  SendStream *pick_stream (Conn & c, bool media_ok = true);
  void open_pending_streams (Conn & c);
  std::shared_ptr<SendStream> new_stream (Conn & c, const Preamble & pre);
  void append (SendStream & s, std::vector<guint8> && bytes);
  void drop_stream (Conn & c, SendStream * s);
  void stream_data (Conn & c, InStream & s, gint64 id, const guint8 * data, size_t len, bool fin);
  void datagram_received (Conn & c, const guint8 * data, size_t len);
  /* Datagrams a connection queues at most; the oldest go first. */
  static constexpr size_t kMaxQueuedDatagrams = 32;
  static constexpr size_t kMaxEarlyDatagrams = 64;
  static constexpr guint64 kEarlyDatagramAge = 2000000000ull;   /* ns */
  void stream_failed (Conn & c, InStream & s, gint64 id, const std::string & why);
  void stream_ended (Conn & c, InStream & s, gint64 id, bool reset);
  void control_frames (Conn & c, std::vector<Frame> & frames);
  void free_acked (SendStream & s, guint64 upto);
  void follow_path (Conn & c, size_t pkt_len);
  guint64 queued_bytes () const;
  guint64 unsent_video () const;
  /* QUIC: media bytes allowed in flight now (gstquicsend.cpp). */
  guint64 media_window (Conn & c, guint64 now);
  static constexpr guint64 kMediaQueueDelay = 50000000ull;   /* ns */
  static constexpr guint64 kAckRateWindow = 500000000ull;    /* ns: Stats::acked_rate's window */
  static constexpr guint64 kMediaWindowDelay = 20000000ull;  /* ns of queueing before the window holds */
  static constexpr guint64 kMinMediaWindow = 16 * 1024;
  /* Bytes @c delivers in @time_ms at its measured rate (0: not measured). */
  guint64 queue_budget (Conn & c, guint time_ms);
  /* One port per seat (gstquicrouter.cpp). */
  void make_scid (ngtcp2_cid & cid);
  bool send_udp (const guint8 * data, size_t len, size_t seg, const sockaddr * to, socklen_t tolen);
  bool relay_send (guint8 kind, const guint8 * data, size_t len, size_t seg, const sockaddr * to,
      socklen_t tolen, int pass_fd);
  bool route_datagram (const guint8 * data, size_t len, const sockaddr * from, socklen_t fromlen);
  void read_route (const std::string & prefix);
  void read_relay ();
  void drop_route (const std::string & prefix, const char * why);
  void progress_pending_tcp ();
  void take_tcp (int fd, const sockaddr * addr, socklen_t addrlen);
  /* TCP fallback. */
  bool setup_tcp_listen (std::string & error);
  void accept_tcp ();
  std::unique_ptr<Conn> new_tcp_conn (int fd, const sockaddr * addr, socklen_t addrlen);
  void tcp_progress (Conn & c);
  void tcp_read (Conn & c);
  void tcp_write (Conn & c);
  bool tcp_send_record (Conn & c, guint32 id, guint8 flags, const guint8 * data, size_t len);
  bool tcp_flush_pending (Conn & c);
  void tcp_dispatch_records (Conn & c);
};


}  // namespace wrq
