/* Incoming streams: framing, upstream events, the receivers, and the
 * receive budget (flow-control credit).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicendpointimpl.h"
#include "gstquictls.h"

namespace wrq {

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
  if (!c.link->stop_stream (c, id, kErrMalformed)) {
    /* One byte stream (TCP): the rest of it cannot be re-synchronized. */
    c.closing = true;
    c.close_reason = msg;
    return;
  }
  s.failed = false;   /* so that the receiver hears of its end */
  stream_ended (c, s, id, true);
  s.failed = true;
}

/* Tells the receiver that a stream it was given ended (@reset: cut off). */
void
Endpoint::Impl::stream_ended (Conn & c, InStream & s, gint64 id, bool reset)
{
  if (!s.parser.has_preamble () || s.is_control || s.refused || s.failed)
    return;
  InStreamRef ref { c.gen, id, &s.parser.preamble (), c.admitted, &c.peer };
  std::lock_guard<std::mutex> lk (users_mu);
  for (auto *u : users)
    if (u->is_receiver ())
      u->on_stream_end (ref, reset);
}

/* Upstream events from the peer's control stream. A server takes them only
 * from the admitted connection; a client learns from it that it was
 * admitted. */
void
Endpoint::Impl::control_frames (Conn & c, std::vector<Frame> & frames)
{
  bool client = self->cfg_.mode == Mode::Client;
  for (auto &f : frames) {
    std::string target = f.target;
    if (target == kTransportTarget) {
      if (client && !c.admitted && f.text.rfind ("wayray-admitted", 0) == 0) {
        c.admitted = true;
        std::string peer = c.peer;
        GST_INFO ("admitted by %s", peer.c_str ());
        self->post ([this, peer] {
          for_each_user ([&] (EndpointUser * u) {
            u->on_admitted (peer);
            return false;
          });
        });
      }
      continue;
    }
    if (!client && !c.admitted) {
      GST_DEBUG ("upstream event from %s, which is not admitted, dropped", c.peer.c_str ());
      continue;
    }
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
}

void
Endpoint::Impl::stream_data (Conn & c, InStream & s, gint64 id, const guint8 * data, size_t len, bool fin)
{
  if (c.closing)
    return;
  if (!c.admitted && self->cfg_.mode == Mode::Server) {
    c.unadmitted_rx += len;
    if (c.unadmitted_rx > kUnadmittedBudget) {
      c.closing = true;
      c.close_reason = "the peer sent more than " + std::to_string (kUnadmittedBudget / 1024)
          + " KiB before being admitted";
      return;
    }
  }
  if (s.failed || s.refused) {
    c.link->discarded (c, id, len);
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
    } else if (!c.admitted && self->cfg_.mode == Mode::Server) {
      /* Before admission only the streams the receiver names (a hello, a
       * ticket) are taken. */
      const std::string &name = s.parser.preamble ().name;
      bool ok = false;
      {
        std::lock_guard<std::mutex> lk (users_mu);
        for (auto *u : users)
          if (u->is_receiver () && u->accepts_unadmitted (name))
            ok = true;
      }
      if (!ok) {
        GST_INFO ("refusing stream '%s' of %s: not accepted before admission", name.c_str (), c.peer.c_str ());
        s.refused = true;
        c.link->stop_stream (c, id, kErrRefused);
        c.link->discarded (c, id, len);
        return;
      }
    }
  }
  if (!ok) {
    stream_failed (c, s, id, s.parser.error ());
    return;
  }
  for (auto &f : frames)
    if (f.type == FrameType::Caps)
      s.caps_seen = true;
  /* Datagrams that overtook these caps follow them now. */
  auto early = c.early.find (id);
  if (early != c.early.end () && s.caps_seen) {
    for (auto &f : early->second.frames)
      frames.push_back (std::move (f));
    c.early.erase (early);
  }
  if (fin && s.parser.buffered () > 0) {
    stream_failed (c, s, id, "stream ended inside a frame");
    return;
  }
  if (s.is_control) {
    control_frames (c, frames);
  } else if (s.parser.has_preamble () && (!frames.empty () || fin)) {
    InStreamRef ref { c.gen, id, &s.parser.preamble (), c.admitted, &c.peer };
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
  c.link->received (c, s, id, len);
}

/* A datagram: a buffer of one of the peer's audio streams, delivered as if
 * it had come on that stream (docs/transport.md, "Datagrams"). Dropped
 * when its stream is unknown, not audio, or has not brought its caps yet,
 * and on a connection not admitted. */
void
Endpoint::Impl::datagram_received (Conn & c, const guint8 * data, size_t len)
{
  c.dgrams_received++;
  if (!c.admitted && self->cfg_.mode == Mode::Server) {
    c.dgrams_dropped++;
    return;
  }
  guint64 id = 0;
  Frame f;
  std::string err;
  if (!decode_datagram (data, len, id, f, err)) {
    c.dgrams_dropped++;
    GST_DEBUG ("malformed datagram from %s dropped: %s", c.peer.c_str (), err.c_str ());
    return;
  }
  auto it = c.in.find ((gint64) id);
  InStream *s = it == c.in.end () ? nullptr : it->second.get ();
  if (!s || !s->caps_seen) {
    /* It overtook its stream's start: kept until the caps come. A peer
     * can make this end keep kMaxEarlyDatagrams, for kEarlyDatagramAge. */
    guint64 now = now_ns ();
    for (auto e = c.early.begin (); e != c.early.end ();) {
      if (e->second.since + kEarlyDatagramAge >= now) {
        ++e;
        continue;
      }
      c.dgrams_dropped += e->second.frames.size ();
      e = c.early.erase (e);
    }
    size_t held = 0;
    for (auto &e : c.early)
      held += e.second.frames.size ();
    if (held >= kMaxEarlyDatagrams || (s && (s->failed || s->refused || s->given_back))) {
      c.dgrams_dropped++;
      return;
    }
    auto &e = c.early[(gint64) id];
    if (e.frames.empty ())
      e.since = now;
    e.frames.push_back (std::move (f));
    return;
  }
  if (!s->parser.has_preamble () || s->failed || s->refused || s->is_control || s->given_back
      || s->parser.preamble ().purpose != Purpose::Audio) {
    c.dgrams_dropped++;
    return;
  }
  InStreamRef ref { c.gen, (gint64) id, &s->parser.preamble (), c.admitted, &c.peer };
  std::vector<Frame> frames;
  frames.push_back (std::move (f));
  std::lock_guard<std::mutex> lk (users_mu);
  for (auto *u : users)
    if (u->is_receiver ()) {
      u->on_frames (ref, frames);
      return;
    }
}

/* TCP: one byte stream. A full receiver stops the reading altogether, and
 * unfinished frames beyond the budget end the connection (nothing can be
 * held back selectively). */
void
Endpoint::Impl::tcp_received (Conn & c, InStream & s)
{
  if (s.rx_full)
    c.rx_paused = true;
  guint64 partial = 0;
  for (auto &kv : c.tcp_in)
    partial += kv.second->parser.buffered ();
  if (partial > kPartialBudget + kMaxBufferLen + kBufferHeaderMax) {
    c.closing = true;
    c.close_reason = "the peer's unfinished frames exceed the receive budget ("
        + std::to_string (partial) + " bytes)";
  }
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
  for (auto &kv : conns)
    kv.second->link->resume (*kv.second);
}

}  // namespace wrq
