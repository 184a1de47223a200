/* The relay between a seat's router and its sessions' endpoints (one UDP
 * and one TCP port per seat, docs/transport.md, "One port per seat"): the
 * messages on the SOCK_SEQPACKET socket that joins them, and the route
 * preamble a client sends first on the TCP fallback. No GStreamer, no
 * sockets: what a fuzz target can exercise.
 *
 * A relay message:
 *   u8 kind (1 datagram, 2 TCP connection), u8 address length,
 *   u16 segment size (big endian; datagrams: the GSO segment size of a
 *   batch of equal packets, the last possibly shorter; 0 = one packet),
 *   the peer's sockaddr_in or sockaddr_in6, then the datagram bytes (none
 *   for a TCP connection, whose socket travels as SCM_RIGHTS).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace wrq {

constexpr guint8 kRelayDatagram = 1;
constexpr guint8 kRelayTcp = 2;
constexpr size_t kRelayHeaderLen = 4;
constexpr size_t kRelayMaxAddr = sizeof (sockaddr_in6);
constexpr size_t kRelayMaxPayload = 65535;
constexpr size_t kRelayMaxMessage = kRelayHeaderLen + kRelayMaxAddr + kRelayMaxPayload;

/* Connection-ID prefixes route connections: at most this many bytes. */
constexpr size_t kMaxRoutePrefix = 4;
/* What a client sends first on the TCP fallback: "WRT1" and the route
 * prefix (zeros: none), before TLS. */
constexpr size_t kTcpRouteLen = 8;
extern const guint8 kTcpRouteMagic[4];

struct RelayMessage {
  guint8 kind = 0;
  sockaddr_storage addr {};
  socklen_t addrlen = 0;
  size_t segment = 0;
  const guint8 *payload = nullptr;
  size_t len = 0;
};

/* Writes the header and address into @out (at least kRelayHeaderLen +
 * kRelayMaxAddr bytes); returns its length, 0 for an address that is not
 * IPv4 or IPv6. */
size_t encode_relay_header (guint8 * out, guint8 kind, const sockaddr * addr, socklen_t addrlen, size_t segment);
/* Parses one whole message; FALSE + @error for anything malformed. */
bool parse_relay_message (const guint8 * data, size_t len, RelayMessage & m, std::string & error);

/* The TCP route preamble for @prefix (at most kMaxRoutePrefix bytes). */
void encode_tcp_route (guint8 out[kTcpRouteLen], const std::string & prefix);
/* FALSE when @in is not a route preamble; else @prefix (empty for none). */
bool parse_tcp_route (const guint8 in[kTcpRouteLen], std::string & prefix);

/* Hex of a prefix and back ("" <-> ""); FALSE for bad hex or too long. */
std::string prefix_to_hex (const std::string & prefix);
bool prefix_from_hex (const std::string & hex, std::string & prefix);

}  // namespace wrq
