/* WayRay transport endpoint: one per (role, address, port) in a process,
 * shared by every quicsink and quicsrc configured for it. It owns the UDP
 * (and TCP fallback) sockets, a network thread with its own poll loop, the
 * connections (ngtcp2 + GnuTLS), per-stream send queues and the stream
 * parsers of incoming data.
 *
 * A server holds many connections (bounded), each first in its handshake,
 * then waiting for admission. Only the admitted connection carries media
 * and input; admitting another closes it (docs/transport.md, "Connections
 * and admission"). A connection not admitted may send only on the streams
 * its receiver accepts before admission (a hello, a ticket), and the
 * application may answer it on streams of its own (open_stream with its
 * id).
 *
 * Threads: the network thread is the only one touching ngtcp2/GnuTLS.
 * Streaming threads append to send queues under the endpoint lock and wake
 * it. A dispatcher thread runs element callbacks (upstream events,
 * connection state, statistics) so that no element code ever runs on the
 * network thread, except the receive hand-off (EndpointUser::on_frames),
 * which must only queue.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gstquicframing.h"

#include <gst/gst.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wrq {

enum class Mode { Server, Client };

/* Application error codes of RESET_STREAM / CONNECTION_CLOSE (and of the
 * TCP fallback's reset records). */
constexpr guint64 kErrMalformed = 1;      /* framing error */
constexpr guint64 kErrSuperseded = 2;     /* stale group of pictures */
constexpr guint64 kErrReplaced = 3;       /* another client took over */
constexpr guint64 kErrShutdown = 4;       /* element stopped, local close */
constexpr guint64 kErrNotAdmitted = 5;    /* not admitted in time, or refused */
constexpr guint64 kErrRefused = 6;        /* the stream is not accepted before admission */
enum class TransportChoice { Auto, Quic, Tcp };
/* Open: every connection is admitted when its handshake completes (and
 * replaces the one before), as for gst-launch-1.0. Application: only
 * Endpoint::admit () admits (the daemon, after a ticket). */
enum class Admission { Open, Application };
/* Address validation with a QUIC Retry: Auto once handshakes pile up. */
enum class RetryPolicy { Auto, Always, Never };
/* Values match ngtcp2_cc_algo. */
enum class Congestion { Reno = 0, Cubic = 1, Bbr = 2, Bbr2 = 3 };

struct Config {
  Mode mode = Mode::Server;
  std::string host;              /* server: bind address ("" = any); client: server */
  guint port = 4433;
  std::string cert_file;         /* "" = default path */
  std::string key_file;
  std::string known_hosts_file;
  std::string pinned_fingerprint;  /* client: exact SHA-256 to accept, "" = TOFU */
  std::string certificate_name;    /* client: the common name a chained certificate must carry */
  guint idle_timeout_ms = 10000;
  guint keepalive_ms = 2000;
  guint handshake_timeout_ms = 3000;
  TransportChoice transport = TransportChoice::Auto;
  guint stats_interval_ms = 1000;
  guint max_udp_payload = 1452;
  Congestion congestion = Congestion::Cubic;
  /* Server: admission and the bounds on peers (docs/transport.md). */
  Admission admission = Admission::Open;
  guint admission_timeout_ms = 10000;
  guint max_connections = 64;
  guint max_handshakes = 32;
  guint max_handshakes_per_source = 8;
  RetryPolicy retry = RetryPolicy::Auto;
  /* Connection-ID prefix (raw bytes, at most 4): a server's connection IDs
   * start with it; a client's Initial destination ID and TCP route preamble
   * carry it, so that the seat's router hands the connection to the right
   * session (docs/transport.md, "One port per seat"). */
  std::string cid_prefix;
  /* Server: no sockets of its own; datagrams and TCP connections come and
   * go through a relay socket to the seat's router (set_relay ()). */
  bool relay = false;
  /* The element's own duplicate of its relay-fd property (-1: none); the
   * endpoint takes duplicates of it, never this one. */
  int relay_fd = -1;

  /* Elements with equal keys share one endpoint. */
  std::string key () const;
  /* "host:port" as recorded in known-hosts. */
  std::string host_port () const;
};

struct Stats {
  bool connected = false;
  std::string transport;   /* "quic" or "tcp" */
  std::string peer;
  guint64 rtt = 0, min_rtt = 0, smoothed_rtt = 0, rttvar = 0;   /* ns */
  guint64 cwnd = 0, bytes_in_flight = 0, delivery_rate = 0;     /* bytes, bytes/s */
  /* Stream bytes the peer acknowledged per second over the last 0.5 s:
   * while data waits to be sent, what the link really delivers (the
   * transport's delivery-rate estimate can stay at an old maximum for
   * seconds after a link slows down). TCP: the kernel's delivery rate. */
  guint64 acked_rate = 0;
  guint64 lost_packets = 0, pto_count = 0;
  guint64 bytes_sent = 0, bytes_received = 0;
  guint64 send_queue_bytes = 0;
  guint64 datagrams_sent = 0, datagrams_received = 0, datagrams_dropped = 0;
  guint64 video_unsent_bytes = 0;   /* of streams whose purpose is video, not yet sent */
  guint64 connections = 0, handshakes = 0;         /* server: peers held now */
  guint64 refused_initials = 0, retries_sent = 0;  /* server: since the start */
  GstStructure *to_structure () const;
};

/* A reliable outgoing stream. Members are guarded by the endpoint lock. */
struct SendStream {
  Preamble pre;
  int priority = 4;
  guint64 conn_gen = 0;
  gint64 id = -1;                /* transport stream id, -1 until opened */
  std::deque<std::vector<guint8>> chunks;
  guint64 base = 0;              /* offset of chunks.front () */
  guint64 written = 0, sent = 0, acked = 0;
  bool fin = false, fin_sent = false;
  bool dead = false;             /* reset, or its connection is gone */
  bool blocked = false;          /* waiting for flow-control credit */
  guint64 served = 0;            /* round-robin among equal priorities */

  guint64 unacked () const { return written - acked; }
  guint64 unsent () const { return written - sent; }
};

/* Identifies one incoming stream for EndpointUser. */
struct InStreamRef {
  guint64 conn_gen;          /* the connection's id */
  gint64 id;
  const Preamble *pre;
  bool admitted = true;      /* its connection is the admitted one */
  const std::string *peer = nullptr;   /* its address */
};

class EndpointUser {
public:
  virtual ~EndpointUser () = default;
  /* Dispatcher thread. @fatal: the endpoint will not recover (client side). */
  /* @conn_id: the connection that came up (admitted) or went. */
  virtual void on_connection_state (bool up, guint64 conn_id, const std::string & peer, const std::string & transport,
      const std::string & reason, bool fatal) {}
  virtual void on_stats (const Stats & stats) {}
  /* Dispatcher thread; TRUE when this user owns the sink pad @target. */
  virtual bool on_upstream_event (const std::string & target, GstEvent * event) { return false; }
  /* Dispatcher thread: problems worth a warning (malformed data, ...). */
  virtual void on_warning (const std::string & message) {}
  /* Receivers (quicsrc) only. Network thread, endpoint locked: queue only.
   * Return FALSE to stop crediting flow control until resume_receive (). */
  virtual bool is_receiver () const { return false; }
  virtual bool on_frames (const InStreamRef & s, std::vector<Frame> & frames) { return true; }
  virtual void on_stream_end (const InStreamRef & s, bool reset) {}
  /* Receivers, network thread: whether a connection not yet admitted may
   * send on a stream named @name (else the stream is refused). */
  virtual bool accepts_unadmitted (const std::string & name) const { return false; }
  /* Client, dispatcher thread: the server admitted this connection. */
  virtual void on_admitted (const std::string & peer) {}
};

class Endpoint : public std::enable_shared_from_this<Endpoint> {
public:
  /* The endpoint for @cfg's key: the existing one or a new one. */
  static std::shared_ptr<Endpoint> obtain (const Config & cfg);
  ~Endpoint ();

  const Config & config () const { return cfg_; }

  /* Registers @user and starts the network thread if needed. */
  bool add_user (EndpointUser * user, std::string & error);
  void remove_user (EndpointUser * user);

  bool connected ();
  guint64 generation ();
  Stats stats ();
  std::string certificate_fingerprint ();

  /* Waits until connected, or @cancel becomes true / @timeout_ms passes. */
  bool wait_connected (const std::atomic<bool> & cancel, gint64 timeout_ms = -1);
  /* Wakes every waiter (so it re-checks its cancel flag). */
  void wake_waiters ();

  /* A stream on the admitted connection, or with @conn_id on that
   * connection (admitted or not: answers to a hello). nullptr when there
   * is no such connection. */
  std::shared_ptr<SendStream> open_stream (const Preamble & pre, guint64 conn_id = 0);
  /* Server: makes connection @conn_id the admitted one (closing the one
   * admitted before: "replaced by a new client"). FALSE + @error when it is
   * gone or not established. */
  bool admit (guint64 conn_id, std::string & error);
  /* Closes connection @conn_id, telling the peer @reason. */
  bool close_connection (guint64 conn_id, const std::string & reason);
  /* Client: the server admitted the connection. */
  bool admitted ();
  /* The TLS exporter value of connection @conn_id (client: 0, its one
   * connection) for RFC 9266's label, 32 bytes as hex: what binds a login
   * to this very connection. FALSE + @error when it is gone or not
   * established. */
  bool channel_binding (guint64 conn_id, std::string & hex, std::string & error);

  /* Relay endpoint: takes @fd (a SOCK_SEQPACKET socket to the router) in
   * place of the one before. */
  void set_relay (int fd);
  /* Router (a server with its own sockets): connections whose IDs (or TCP
   * route preamble) start with @prefix go through @fd (taken) to the
   * endpoint that owns them. FALSE for a bad prefix or a relay endpoint. */
  bool add_route (const std::string & prefix, int fd);
  bool remove_route (const std::string & prefix);
  /* Sends @buf of stream @s (an audio stream whose caps went on it) as a
   * QUIC datagram: never retransmitted, never holding back what follows.
   * FALSE when it cannot go that way (TCP, a peer without datagrams, not
   * opened yet, too large): write it on the stream then. */
  bool send_datagram (SendStream & s, GstBuffer * buf);
  enum class WriteResult { Ok, Cancelled, Closed, Full };
  /* Queues @bytes. While more than @limit bytes are unacknowledged, or
   * (with @time_ms) the bytes not yet sent would take more than @time_ms
   * at the rate the connection delivers (queue_budget ()), waits (or
   * returns Full at once when @block is false). A write into an empty
   * queue is always accepted, so a frame larger than the bounds still
   * goes. */
  WriteResult write (SendStream & s, std::vector<guint8> && bytes, guint64 limit, bool block,
      const std::atomic<bool> & cancel, guint time_ms = 0);
  /* What @s's connection delivers in @time_ms, in bytes, at least
   * kMinQueueBudget; kUnmeasuredQueueBudget until the connection has
   * measured what it delivers; 0 when the stream's connection is gone. */
  guint64 queue_budget (SendStream & s, guint time_ms);
  static constexpr guint64 kMinQueueBudget = 16 * 1024;
  static constexpr guint64 kUnmeasuredQueueBudget = 64 * 1024;
  void finish (SendStream & s);
  /* Drops what is queued and resets the stream. */
  void reset (SendStream & s, guint64 app_error);
  /* Waits until all queued bytes (and FIN) are acknowledged. */
  bool wait_drained (SendStream & s, const std::atomic<bool> & cancel, gint64 timeout_ms);
  guint64 unsent (SendStream & s);
  /* FALSE once the stream is reset or its connection gone. */
  bool stream_alive (SendStream & s);

  /* Queues an upstream event for the peer's sink pad @target on the
   * control stream. FALSE when not connected or not serializable. */
  bool send_upstream_event (const std::string & target, GstEvent * event);

  /* Receivers: their queues drained; credit what was held back. */
  void resume_receive ();

  /* Runs @job on the dispatcher thread. */
  void post (std::function<void ()> job);

  /* Closes the current connection (tests: simulates a lost peer when
   * @silent, i.e. without telling the peer). */
  void drop_connection (bool silent);

  struct Conn;
  struct Impl;
  struct Link;

private:
  explicit Endpoint (const Config & cfg);
  void run ();
  void wake ();

  Config cfg_;
  std::unique_ptr<Impl> impl_;
  friend struct Impl;
  friend struct Conn;
};

}  // namespace wrq
