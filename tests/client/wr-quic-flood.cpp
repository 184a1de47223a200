/* wr-quic-flood: a spoofed-source QUIC Initial flood, on loopback only.
 *
 * It plays the attacker that tries to exhaust a QUIC server's handshake
 * slots: every packet is the first datagram of a brand-new client connection
 * (a correctly protected Initial carrying a real TLS ClientHello with
 * WayRay's ALPN and SNI, made by ngtcp2 + GnuTLS exactly like quicsink and
 * quicsrc make theirs), sent from one of K source addresses 127.X.Y.Z (never
 * 127.0.0.1, so that a real client running next to it stays distinct), and
 * then forgotten: nothing the server sends back is ever read or answered.
 * Tests use it to check that a flood cannot keep a real client out.
 *
 * Usage:
 *   wr-quic-flood HOST PORT [--rate N] [--duration SECONDS] [--sources K]
 *                 [--prefix HEX]
 *     --rate N            Initials per second (default 500)
 *     --duration SECONDS  how long to flood (default 5)
 *     --sources K         distinct source addresses (default 200)
 *     --prefix HEX        bytes every destination connection ID starts with;
 *                         the rest of its 18 bytes are random
 *
 * HOST must be a loopback address: 127.0.0.0/8, ::1 or "localhost";
 * anything else is refused (exit 2). IPv6 has one loopback address only, so
 * against ::1 the K sources are K ports of ::1. At the end it prints
 * "sent N initials from K sources in S s" and exits 0; errors exit 1.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <unordered_set>
#include <vector>

#include "gstquictls.h"  /* kAlpn */

namespace {

/* The same TLS 1.3 suites as the real client (gst/quic/gstquicconn.cpp). */
const char *const kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:%DISABLE_TLS13_COMPAT_MODE";
const char kServerName[] = "wayray";
constexpr size_t kDcidLen = 18;
constexpr size_t kMaxSources = 60000;

[[noreturn]] void
die (int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fputs ("wr-quic-flood: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  exit (code);
}

[[noreturn]] void
usage ()
{
  fputs ("usage: wr-quic-flood HOST PORT [--rate N] [--duration SECONDS] [--sources K] [--prefix HEX]\n"
      "  HOST must be a loopback address (127.0.0.0/8, ::1 or localhost)\n", stderr);
  exit (1);
}

uint64_t
now_ns ()
{
  timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

void
sleep_until (uint64_t deadline)
{
  timespec ts;
  ts.tv_sec = (time_t) (deadline / 1000000000ull);
  ts.tv_nsec = (long) (deadline % 1000000000ull);
  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

double
parse_number (const char *opt, const char *s, double min, double max)
{
  char *end = nullptr;
  errno = 0;
  double v = strtod (s, &end);
  if (errno != 0 || end == s || *end != '\0' || !std::isfinite (v) || v < min || v > max)
    die (1, "%s: '%s' is not a number between %g and %g", opt, s, min, max);
  return v;
}

std::vector<uint8_t>
parse_hex (const char *s)
{
  std::string hex (s);
  if (hex.rfind ("0x", 0) == 0 || hex.rfind ("0X", 0) == 0)
    hex.erase (0, 2);
  if (hex.empty () || hex.size () % 2 != 0 || hex.size () / 2 > kDcidLen)
    die (1, "--prefix: '%s' is not 1 to %zu bytes of hex", s, kDcidLen);
  std::vector<uint8_t> out;
  for (size_t i = 0; i < hex.size (); i += 2) {
    char byte[3] = { hex[i], hex[i + 1], '\0' };
    char *end = nullptr;
    unsigned long v = strtoul (byte, &end, 16);
    if (*end != '\0' || !isxdigit ((unsigned char) byte[0]) || !isxdigit ((unsigned char) byte[1]))
      die (1, "--prefix: '%s' is not hex", s);
    out.push_back ((uint8_t) v);
  }
  return out;
}

/* The target, refused unless it is loopback. */
void
parse_target (const char *host, const char *port_s, sockaddr_storage * target, socklen_t * len)
{
  char *end = nullptr;
  errno = 0;
  long port = strtol (port_s, &end, 10);
  if (errno != 0 || end == port_s || *end != '\0' || port < 1 || port > 65535)
    die (1, "'%s' is not a port number", port_s);

  memset (target, 0, sizeof *target);
  std::string h = strcmp (host, "localhost") == 0 ? "127.0.0.1" : host;
  if (h.size () > 2 && h.front () == '[' && h.back () == ']')
    h = h.substr (1, h.size () - 2);
  auto *sin = reinterpret_cast<sockaddr_in *> (target);
  auto *sin6 = reinterpret_cast<sockaddr_in6 *> (target);
  if (inet_pton (AF_INET, h.c_str (), &sin->sin_addr) == 1) {
    if ((ntohl (sin->sin_addr.s_addr) >> 24) != 127)
      die (2, "refusing to flood %s: only loopback targets (127.0.0.0/8, ::1) are allowed", host);
    sin->sin_family = AF_INET;
    sin->sin_port = htons ((uint16_t) port);
    *len = sizeof *sin;
  } else if (inet_pton (AF_INET6, h.c_str (), &sin6->sin6_addr) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK (&sin6->sin6_addr))
      die (2, "refusing to flood %s: only loopback targets (127.0.0.0/8, ::1) are allowed", host);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons ((uint16_t) port);
    *len = sizeof *sin6;
  } else {
    die (2, "refusing to flood '%s': not a loopback address (give 127.x.y.z, ::1 or localhost)", host);
  }
}

struct Source
{
  int fd = -1;
  sockaddr_storage addr {};
  socklen_t addrlen = 0;
};

/* K UDP sockets, each bound to a distinct source: a random 127.X.Y.Z for
 * IPv4 (never 127.0.0.1, 127.0.0.0 nor 127.255.255.255), an ephemeral port
 * of ::1 for IPv6. Their receive buffers are kept minimal and never read. */
std::vector<Source>
open_sources (int family, size_t k)
{
  rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < k + 64) {
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= k + 64) ? k + 64 : rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }

  std::unordered_set<uint32_t> used;
  std::vector<Source> sources (k);
  for (auto &s : sources) {
    s.fd = socket (family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s.fd < 0)
      die (1, "cannot open UDP socket %zu of %zu: %s", (size_t) (&s - sources.data ()) + 1, k,
          strerror (errno));
    int small = 1;
    setsockopt (s.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (family == AF_INET) {
      uint32_t low;
      do {
        gnutls_rnd (GNUTLS_RND_NONCE, &low, sizeof low);
        low &= 0xffffff;
      } while (low <= 1 || low == 0xffffff || !used.insert (low).second);
      auto *sin = reinterpret_cast<sockaddr_in *> (&s.addr);
      sin->sin_family = AF_INET;
      sin->sin_addr.s_addr = htonl (0x7f000000u | low);
      s.addrlen = sizeof *sin;
    } else {
      auto *sin6 = reinterpret_cast<sockaddr_in6 *> (&s.addr);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_addr = in6addr_loopback;
      s.addrlen = sizeof *sin6;
    }
    if (bind (s.fd, reinterpret_cast<sockaddr *> (&s.addr), s.addrlen) != 0) {
      char ip[INET6_ADDRSTRLEN] = "?";
      inet_ntop (family, family == AF_INET ? (void *) &reinterpret_cast<sockaddr_in *> (&s.addr)->sin_addr
          : (void *) &reinterpret_cast<sockaddr_in6 *> (&s.addr)->sin6_addr, ip, sizeof ip);
      die (1, "cannot bind a UDP socket to %s: %s", ip, strerror (errno));
    }
    s.addrlen = sizeof s.addr;
    getsockname (s.fd, reinterpret_cast<sockaddr *> (&s.addr), &s.addrlen);
  }
  return sources;
}

/* One throw-away client connection. */
struct Client
{
  ngtcp2_conn *q = nullptr;
  gnutls_session_t tls = nullptr;
  ngtcp2_crypto_conn_ref ref {};
  ngtcp2_path_storage ps {};

  ~Client ()
  {
    if (q)
      ngtcp2_conn_del (q);
    if (tls)
      gnutls_deinit (tls);
  }
};

ngtcp2_conn *
get_conn_cb (ngtcp2_crypto_conn_ref * ref)
{
  return static_cast<Client *> (ref->user_data)->q;
}

void
rand_cb (uint8_t * dest, size_t len, const ngtcp2_rand_ctx *)
{
  gnutls_rnd (GNUTLS_RND_RANDOM, dest, len);
}

int
new_cid_cb (ngtcp2_conn *, ngtcp2_cid * cid, uint8_t * token, size_t cidlen, void *)
{
  if (gnutls_rnd (GNUTLS_RND_RANDOM, cid->data, cidlen) != 0
      || gnutls_rnd (GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  cid->datalen = cidlen;
  return 0;
}

/* Writes the first datagram of a fresh client connection from @src to
 * @target into @buf; returns its length. */
size_t
make_initial (const Source & src, const sockaddr_storage & target, socklen_t targetlen,
    const std::vector<uint8_t> & prefix, gnutls_certificate_credentials_t cred,
    uint8_t * buf, size_t buflen)
{
  Client c;
  ngtcp2_path_storage_init (&c.ps, reinterpret_cast<const sockaddr *> (&src.addr), src.addrlen,
      reinterpret_cast<const sockaddr *> (&target), targetlen, nullptr);

  ngtcp2_callbacks cb {};
  cb.client_initial = ngtcp2_crypto_client_initial_cb;
  cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb.encrypt = ngtcp2_crypto_encrypt_cb;
  cb.decrypt = ngtcp2_crypto_decrypt_cb;
  cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
  cb.rand = rand_cb;
  cb.get_new_connection_id = new_cid_cb;
  cb.update_key = ngtcp2_crypto_update_key_cb;
  cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;

  uint64_t ts = now_ns ();
  ngtcp2_settings settings;
  ngtcp2_settings_default (&settings);
  settings.initial_ts = ts;

  ngtcp2_transport_params params;
  ngtcp2_transport_params_default (&params);
  params.initial_max_streams_uni = 16;
  params.initial_max_stream_data_uni = 1 << 20;
  params.initial_max_data = 4 << 20;
  params.max_idle_timeout = 30 * NGTCP2_SECONDS;

  ngtcp2_cid dcid, scid;
  dcid.datalen = kDcidLen;
  if (!prefix.empty ())
    memcpy (dcid.data, prefix.data (), prefix.size ());
  gnutls_rnd (GNUTLS_RND_NONCE, dcid.data + prefix.size (), kDcidLen - prefix.size ());
  scid.datalen = 8;
  gnutls_rnd (GNUTLS_RND_NONCE, scid.data, scid.datalen);

  int rv = ngtcp2_conn_client_new (&c.q, &dcid, &scid, &c.ps.path, NGTCP2_PROTO_VER_V1, &cb,
      &settings, &params, nullptr, &c);
  if (rv != 0)
    die (1, "creating a QUIC client connection failed: %s", ngtcp2_strerror (rv));

  rv = gnutls_init (&c.tls, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA);
  if (rv == 0)
    rv = gnutls_priority_set_direct (c.tls, kPriority, nullptr);
  if (rv == 0)
    rv = ngtcp2_crypto_gnutls_configure_client_session (c.tls);
  if (rv == 0)
    rv = gnutls_credentials_set (c.tls, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_datum_t alpn { (unsigned char *) wrq::kAlpn, (unsigned) strlen (wrq::kAlpn) };
  if (rv == 0)
    rv = gnutls_alpn_set_protocols (c.tls, &alpn, 1, GNUTLS_ALPN_MANDATORY);
  if (rv == 0)
    rv = gnutls_server_name_set (c.tls, GNUTLS_NAME_DNS, kServerName, sizeof kServerName - 1);
  if (rv != 0)
    die (1, "TLS setup failed: %s", gnutls_strerror (rv));
  c.ref.get_conn = get_conn_cb;
  c.ref.user_data = &c;
  gnutls_session_set_ptr (c.tls, &c.ref);
  ngtcp2_conn_set_tls_native_handle (c.q, c.tls);

  ngtcp2_pkt_info pi {};
  ngtcp2_ssize n = ngtcp2_conn_write_pkt (c.q, &c.ps.path, &pi, buf, buflen, ts);
  if (n < 0)
    die (1, "writing the Initial failed: %s", ngtcp2_strerror ((int) n));
  if ((size_t) n < NGTCP2_MAX_UDP_PAYLOAD_SIZE)
    die (1, "the Initial is %zd bytes, less than the %d a client must send", (ssize_t) n,
        NGTCP2_MAX_UDP_PAYLOAD_SIZE);
  return (size_t) n;
}

}  // namespace

int
main (int argc, char **argv)
{
  std::vector<const char *> positional;
  double rate = 500, duration = 5, nsources = 200;
  std::vector<uint8_t> prefix;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    size_t eq = arg.find ('=');
    if (arg.rfind ("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr (eq + 1);
      arg.erase (eq);
      has_value = true;
    }
    auto next = [&] () -> std::string {
      if (has_value)
        return value;
      if (i + 1 >= argc)
        die (1, "%s needs a value", arg.c_str ());
      return argv[++i];
    };
    if (arg == "--rate")
      rate = parse_number ("--rate", next ().c_str (), 1, 1e6);
    else if (arg == "--duration")
      duration = parse_number ("--duration", next ().c_str (), 0.001, 86400);
    else if (arg == "--sources")
      nsources = std::floor (parse_number ("--sources", next ().c_str (), 1, (double) kMaxSources));
    else if (arg == "--prefix")
      prefix = parse_hex (next ().c_str ());
    else if (arg == "-h" || arg == "--help")
      usage ();
    else if (arg.rfind ("--", 0) == 0)
      die (1, "unknown option %s", arg.c_str ());
    else
      positional.push_back (argv[i]);
  }
  if (positional.size () != 2)
    usage ();

  sockaddr_storage target;
  socklen_t targetlen;
  parse_target (positional[0], positional[1], &target, &targetlen);

  int rv = gnutls_global_init ();
  if (rv != 0)
    die (1, "GnuTLS init failed: %s", gnutls_strerror (rv));
  gnutls_certificate_credentials_t cred;
  rv = gnutls_certificate_allocate_credentials (&cred);
  if (rv != 0)
    die (1, "GnuTLS credentials failed: %s", gnutls_strerror (rv));

  std::vector<Source> sources = open_sources (target.ss_family, (size_t) nsources);

  uint64_t total = (uint64_t) std::llround (rate * duration);
  if (total == 0)
    total = 1;
  const double period_ns = 1e9 / rate;
  std::vector<uint8_t> buf (1452);
  uint64_t sent = 0, dropped = 0;
  const uint64_t start = now_ns ();
  for (uint64_t i = 0; i < total; i++) {
    sleep_until (start + (uint64_t) std::llround ((double) i * period_ns));
    const Source &src = sources[i % sources.size ()];
    size_t len = make_initial (src, target, targetlen, prefix, cred, buf.data (), buf.size ());
    ssize_t n = sendto (src.fd, buf.data (), len, 0, reinterpret_cast<const sockaddr *> (&target),
        targetlen);
    if (n == (ssize_t) len)
      sent++;
    else if (n < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == ECONNREFUSED))
      dropped++;
    else
      die (1, "sending to the target failed: %s", n < 0 ? strerror (errno) : "short write");
  }
  const double secs = (double) (now_ns () - start) / 1e9;

  for (auto &s : sources)
    close (s.fd);
  gnutls_certificate_free_credentials (cred);
  gnutls_global_deinit ();

  if (dropped)
    fprintf (stderr, "wr-quic-flood: %llu Initials were not sent (the socket refused them)\n",
        (unsigned long long) dropped);
  printf ("sent %llu initials from %zu sources in %.2f s\n", (unsigned long long) sent,
      (size_t) std::min<uint64_t> (sources.size (), total), secs);
  return 0;
}
