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

}  // namespace wrq
