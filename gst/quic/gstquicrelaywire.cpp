/* Relay messages and the TCP route preamble (see gstquicrelaywire.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicrelaywire.h"

#include <cstring>

namespace wrq {

const guint8 kTcpRouteMagic[4] = { 'W', 'R', 'T', '1' };

size_t
encode_relay_header (guint8 * out, guint8 kind, const sockaddr * addr, socklen_t addrlen, size_t segment)
{
  if (!addr || !((addr->sa_family == AF_INET && addrlen == sizeof (sockaddr_in))
          || (addr->sa_family == AF_INET6 && addrlen == sizeof (sockaddr_in6))))
    return 0;
  out[0] = kind;
  out[1] = (guint8) addrlen;
  out[2] = (guint8) ((segment >> 8) & 0xff);
  out[3] = (guint8) (segment & 0xff);
  memcpy (out + kRelayHeaderLen, addr, addrlen);
  return kRelayHeaderLen + addrlen;
}

bool
parse_relay_message (const guint8 * data, size_t len, RelayMessage & m, std::string & error)
{
  if (len < kRelayHeaderLen) {
    error = "relay message of " + std::to_string (len) + " bytes is shorter than its header";
    return false;
  }
  m = RelayMessage ();
  m.kind = data[0];
  size_t alen = data[1];
  m.segment = ((size_t) data[2] << 8) | data[3];
  if (m.kind != kRelayDatagram && m.kind != kRelayTcp) {
    error = "relay message of unknown kind " + std::to_string (m.kind);
    return false;
  }
  if (alen != sizeof (sockaddr_in) && alen != sizeof (sockaddr_in6)) {
    error = "relay message: address length " + std::to_string (alen) + " is neither IPv4 nor IPv6";
    return false;
  }
  if (len < kRelayHeaderLen + alen) {
    error = "relay message ends inside its address";
    return false;
  }
  memcpy (&m.addr, data + kRelayHeaderLen, alen);
  m.addrlen = (socklen_t) alen;
  int family = ((const sockaddr *) &m.addr)->sa_family;
  if ((family == AF_INET && alen != sizeof (sockaddr_in)) || (family == AF_INET6 && alen != sizeof (sockaddr_in6))
      || (family != AF_INET && family != AF_INET6)) {
    error = "relay message: address family " + std::to_string (family) + " does not match its length";
    return false;
  }
  m.payload = data + kRelayHeaderLen + alen;
  m.len = len - kRelayHeaderLen - alen;
  if (m.kind == kRelayTcp) {
    if (m.len != 0 || m.segment != 0) {
      error = "relay message: a TCP connection carries no bytes";
      return false;
    }
    return true;
  }
  if (m.len == 0 || m.len > kRelayMaxPayload) {
    error = "relay message: a datagram of " + std::to_string (m.len) + " bytes";
    return false;
  }
  if (m.segment > m.len) {
    error = "relay message: segment size " + std::to_string (m.segment) + " beyond its " + std::to_string (m.len)
        + " bytes";
    return false;
  }
  return true;
}

void
encode_tcp_route (guint8 out[kTcpRouteLen], const std::string & prefix)
{
  memcpy (out, kTcpRouteMagic, 4);
  memset (out + 4, 0, 4);
  memcpy (out + 4, prefix.data (), MIN (prefix.size (), kMaxRoutePrefix));
}

bool
parse_tcp_route (const guint8 in[kTcpRouteLen], std::string & prefix)
{
  if (memcmp (in, kTcpRouteMagic, 4) != 0)
    return false;
  static const guint8 zero[4] = { 0, 0, 0, 0 };
  prefix = memcmp (in + 4, zero, 4) == 0 ? std::string () : std::string ((const char *) in + 4, 4);
  return true;
}

std::string
prefix_to_hex (const std::string & prefix)
{
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : prefix) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

bool
prefix_from_hex (const std::string & hex, std::string & prefix)
{
  if (hex.size () % 2 || hex.size () > 2 * kMaxRoutePrefix)
    return false;
  std::string out;
  for (size_t i = 0; i < hex.size (); i += 2) {
    int hi = g_ascii_xdigit_value (hex[i]), lo = g_ascii_xdigit_value (hex[i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out += (char) (hi * 16 + lo);
  }
  prefix = out;
  return true;
}

}  // namespace wrq
