/* libFuzzer target: the relay between a seat's router and its sessions
 * (gstquicrelaywire.h) — relay messages, which a router reads from a
 * session's worker (another user's process) and a session from the router,
 * and the TCP route preamble, the first bytes of any TCP peer.
 *
 * The whole input is one relay message; its first 8 bytes, a route
 * preamble; all of it, a connection-ID prefix in hex. What is accepted must
 * be consistent and encode back to the same bytes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicrelaywire.h"

#include <cstdint>
#include <cstring>
#include <string>

using namespace wrq;

static void
check_relay_message (const guint8 * data, size_t size)
{
  RelayMessage m;
  std::string error;
  if (!parse_relay_message (data, size, m, error)) {
    if (error.empty ())
      __builtin_trap ();
    return;
  }
  const sockaddr *sa = (const sockaddr *) &m.addr;
  if (m.kind != kRelayDatagram && m.kind != kRelayTcp)
    __builtin_trap ();
  if (!((sa->sa_family == AF_INET && m.addrlen == sizeof (sockaddr_in))
          || (sa->sa_family == AF_INET6 && m.addrlen == sizeof (sockaddr_in6))))
    __builtin_trap ();
  size_t hl = kRelayHeaderLen + m.addrlen;
  if (m.payload != data + hl || m.len != size - hl)
    __builtin_trap ();
  if (m.kind == kRelayTcp && (m.len != 0 || m.segment != 0))
    __builtin_trap ();
  if (m.kind == kRelayDatagram && (m.len == 0 || m.len > kRelayMaxPayload || m.segment > m.len))
    __builtin_trap ();
  /* Touch every payload byte (ASan: all of it is within the input). */
  volatile guint8 sum = 0;
  for (size_t i = 0; i < m.len; i++)
    sum = sum + m.payload[i];
  (void) sum;

  /* The header encodes back to the bytes it was parsed from. */
  guint8 out[kRelayHeaderLen + kRelayMaxAddr];
  if (encode_relay_header (out, m.kind, sa, m.addrlen, m.segment) != hl || memcmp (out, data, hl) != 0)
    __builtin_trap ();
}

static void
check_tcp_route (const guint8 * data, size_t size)
{
  if (size < kTcpRouteLen)
    return;
  std::string prefix;
  bool ok = parse_tcp_route (data, prefix);
  if (ok != (memcmp (data, kTcpRouteMagic, 4) == 0))
    __builtin_trap ();
  if (!ok)
    return;
  static const guint8 zero[4] = { 0, 0, 0, 0 };
  bool none = memcmp (data + 4, zero, 4) == 0;
  if (none != prefix.empty () || (!none && (prefix.size () != kMaxRoutePrefix
              || memcmp (prefix.data (), data + 4, kMaxRoutePrefix) != 0)))
    __builtin_trap ();
  guint8 out[kTcpRouteLen];
  encode_tcp_route (out, prefix);
  if (memcmp (out, data, kTcpRouteLen) != 0)
    __builtin_trap ();
  /* A prefix survives hex (the add-route and connection-id-prefix
   * spelling). */
  std::string back;
  if (!prefix_from_hex (prefix_to_hex (prefix), back) || back != prefix)
    __builtin_trap ();
}

static void
check_hex (const guint8 * data, size_t size)
{
  std::string hex ((const char *) data, size);
  std::string prefix;
  if (!prefix_from_hex (hex, prefix))
    return;
  if (prefix.size () > kMaxRoutePrefix || prefix.size () * 2 != hex.size ())
    __builtin_trap ();
  std::string lower;
  for (char c : hex)
    lower += g_ascii_tolower (c);
  if (prefix_to_hex (prefix) != lower)
    __builtin_trap ();
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  check_relay_message (data, size);
  check_tcp_route (data, size);
  check_hex (data, size);
  return 0;
}
