/* The send scheduler: streams by priority, packets, paths,
 * acknowledgements, the send queue.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicendpointimpl.h"
#include "gstquictls.h"

namespace wrq {

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
AckMeter::add (guint64 bytes, guint64 now)
{
  total_ += bytes;
  if (samples_.empty () || now >= samples_.back ().first + 20000000ull)
    samples_.emplace_back (now, total_);
  else
    samples_.back ().second = total_;
  /* Keep one sample older than a second: the window's start. */
  while (samples_.size () > 2 && samples_[1].first + 1000000000ull < now)
    samples_.pop_front ();
}

guint64
AckMeter::rate (guint64 now, guint64 window_ns) const
{
  if (samples_.empty ())
    return 0;
  /* The newest sample at least @window_ns old, else the oldest. */
  const std::pair<guint64, guint64> *from = &samples_.front ();
  for (auto &s : samples_) {
    if (s.first + window_ns > now)
      break;
    from = &s;
  }
  guint64 span = now > from->first ? now - from->first : 0;
  if (span < 100000000ull)
    return 0;
  return (total_ - from->second) * 1000000000ull / span;
}

std::shared_ptr<SendStream>
Endpoint::Impl::new_stream (Conn & c, const Preamble & pre)
{
  auto s = std::make_shared<SendStream> ();
  s->pre = pre;
  s->priority = purpose_priority (pre.purpose);
  s->conn_gen = c.gen;
  std::vector<guint8> hdr;
  encode_preamble (hdr, pre);
  s->written = hdr.size ();
  s->chunks.push_back (std::move (hdr));
  c.streams.push_back (s);
  return s;
}

void
Endpoint::Impl::drop_stream (Conn & c, SendStream * s)
{
  c.streams.erase (std::remove_if (c.streams.begin (), c.streams.end (),
          [s] (const std::shared_ptr<SendStream> &p) { return p.get () == s; }), c.streams.end ());
}

void
Endpoint::Impl::open_pending_streams (Conn & c)
{
  if (!c.established || !c.q)
    return;
  for (auto &s : c.streams) {
    if (s->id != -1 || s->dead)
      continue;
    gint64 id;
    int rv = ngtcp2_conn_open_uni_stream (c.q, &id, s.get ());
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
      break;
    if (rv != 0) {
      s->dead = true;
      continue;
    }
    s->id = id;
  }
}

/* Once a queue shows (the round trip kMediaWindowDelay over its minimum),
 * media (display, video and bulk streams) in flight is held to what the
 * link delivered lately times the round trip's minimum plus
 * kMediaQueueDelay: a bottleneck's queue then holds about that much of
 * it, whatever the congestion window allows, and input, cursor and sound
 * (never held) overtake it there too; at least kMinMediaWindow. Without a
 * queue only the congestion window counts: a burst after a quiet while
 * (a window switch) is not held to what the quiet link delivered. */
guint64
Endpoint::Impl::media_window (Conn & c, guint64 now)
{
  if (!c.acks.measured ())
    return G_MAXUINT64;
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat (c.q, &cs);
  if (cs.min_rtt == UINT64_MAX || cs.smoothed_rtt < cs.min_rtt + kMediaWindowDelay)
    return G_MAXUINT64;
  guint64 base = cs.min_rtt;
  guint64 w = c.acks.rate (now, kAckRateWindow) * (base + kMediaQueueDelay) / 1000000000ull;
  return std::max (kMinMediaWindow, w);
}

static bool
held_by_window (const SendStream & s)
{
  return s.priority >= purpose_priority (Purpose::Display);
}

SendStream *
Endpoint::Impl::pick_stream (Conn & c, bool media_ok)
{
  SendStream *best = nullptr;
  for (auto &sp : c.streams) {
    SendStream *s = sp.get ();
    if (s->id < 0 || s->dead || s->blocked || (!media_ok && held_by_window (*s)))
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
  bool server = self->cfg_.mode == Mode::Server;
  bool ok = send_udp (txbuf.data (), tx_len, tx_count > 1 ? tx_seg : 0, server ? (sockaddr *) &c.remote : nullptr,
      server ? c.remotelen : 0);
  if (!ok) {
    /* The socket buffer is full: these packets count as lost (QUIC
     * recovers them) and writing pauses until the socket drains. */
    want_pollout = true;
    tx_len = tx_count = 0;
    return false;
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
  /* A connection in its handshake has no streams yet. */
  bool media = c.established;
  size_t payload = std::max<guint> (self->cfg_.max_udp_payload, 1200);
  guint64 ts = now_ns ();
  size_t max_pkts = MAX ((size_t) 1, ngtcp2_conn_get_send_quantum (c.q) / payload);
  max_pkts = MIN (max_pkts, (size_t) 64 * kMaxBatch);
  size_t pkts = 0;
  bool notify = false;
  guint64 window = media ? media_window (c, ts) : G_MAXUINT64;
  guint64 in_flight = 0;        /* at the start of this pass, plus what it wrote */
  if (window != G_MAXUINT64) {
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat (c.q, &cs);
    in_flight = cs.bytes_in_flight;
  }
  while (pkts < max_pkts) {
    if (tx_len + payload > txbuf.size ())
      flush_tx (c);
    ngtcp2_pkt_info pi {};
    ngtcp2_ssize n;
    if (media && !c.dgrams.empty ()) {
      /* Datagrams (sound) first: small, and late they are worthless. */
      const std::vector<guint8> &d = c.dgrams.front ();
      ngtcp2_vec dv { (uint8_t *) d.data (), d.size () };
      int accepted = 0;
      n = ngtcp2_conn_writev_datagram (c.q, &c.ps.path, &pi, txbuf.data () + tx_len, payload, &accepted,
          NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &dv, 1, ts);
      if (accepted) {
        c.dgrams.pop_front ();
        c.dgrams_sent++;
      }
      if (n == NGTCP2_ERR_INVALID_STATE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
        /* The peer takes no datagrams, or none this large. */
        c.dgrams.pop_front ();
        c.dgrams_dropped++;
        continue;
      }
    } else {
      bool media_ok = in_flight < window;
      SendStream *s = media ? pick_stream (c, media_ok) : nullptr;
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
      ngtcp2_ssize ndatalen = -1;
      n = ngtcp2_conn_writev_stream (c.q, &c.ps.path, &pi,
          txbuf.data () + tx_len, payload, &ndatalen, flags, sid, vec, nvec, ts);
      if (s && ndatalen >= 0) {
        s->sent += (guint64) ndatalen;
        s->served = ++serve_counter;
        if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && s->sent == s->written)
          s->fin_sent = true;
        notify = true;
      }
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
        s->blocked = true;
        continue;
      }
      if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
        s->dead = true;
        notify = true;
        continue;
      }
    }
    if (n == NGTCP2_ERR_WRITE_MORE)
      continue;
    if (n < 0) {
      tx_len = tx_count = 0;
      close_conn (&c, std::string ("QUIC write error: ") + ngtcp2_strerror ((int) n), media, kErrShutdown, false);
      return;
    }
    if (n == 0)
      break;
    follow_path (c, (size_t) n);
    queue_tx (c, txbuf.data () + tx_len, (size_t) n);
    in_flight += (guint64) n;
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


guint64
Endpoint::Impl::queued_bytes () const
{
  /* What is still to be delivered; a reset stream's data waiting for its
   * close is not. */
  guint64 n = 0;
  if (!conn)
    return 0;
  for (auto &s : conn->streams)
    if (!s->dead)
      n += s->unacked ();
  return n;
}

guint64
Endpoint::Impl::unsent_video () const
{
  guint64 n = 0;
  if (!conn)
    return 0;
  for (auto &s : conn->streams)
    if (!s->dead && s->pre.purpose == Purpose::Video)
      n += s->unsent ();
  return n;
}

}  // namespace wrq
