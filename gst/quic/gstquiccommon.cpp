/* Shared parts of quicsink and quicsrc (see gstquiccommon.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquiccommon.h"
#include "gstquicrelaywire.h"
#include "gstquictls.h"

#include <fcntl.h>
#include <unistd.h>

namespace wrq {

namespace {

struct EndpointHolder {
  std::shared_ptr<Endpoint> ep;
};

gpointer
holder_copy (gpointer p)
{
  return new EndpointHolder (*static_cast<EndpointHolder *> (p));
}

void
holder_free (gpointer p)
{
  delete static_cast<EndpointHolder *> (p);
}

GType
holder_get_type ()
{
  static GType type = 0;
  if (g_once_init_enter (&type)) {
    GType t = g_boxed_type_register_static ("GstWayrayQuicEndpoint", holder_copy, holder_free);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
mode_get_type ()
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { (gint) Mode::Server, "Listen for a client (the session side)", "server" },
    { (gint) Mode::Client, "Connect to a server (the thin-client side)", "client" },
    { 0, nullptr, nullptr },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWayrayQuicMode", values));
  return type;
}

GType
transport_get_type ()
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { (gint) TransportChoice::Auto,
      "QUIC; a client falls back to TCP+TLS when the QUIC handshake does not complete within "
      "handshake-timeout, a server accepts both", "auto" },
    { (gint) TransportChoice::Quic, "QUIC only", "quic" },
    { (gint) TransportChoice::Tcp, "TCP+TLS only (same framing)", "tcp" },
    { 0, nullptr, nullptr },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWayrayQuicTransport", values));
  return type;
}

GType
congestion_get_type ()
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { (gint) Congestion::Reno, "NewReno", "reno" },
    { (gint) Congestion::Cubic, "CUBIC", "cubic" },
    { (gint) Congestion::Bbr, "BBR", "bbr" },
    { (gint) Congestion::Bbr2, "BBR v2", "bbr2" },
    { 0, nullptr, nullptr },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWayrayQuicCongestion", values));
  return type;
}

GType
admission_get_type ()
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { (gint) Admission::Open,
      "server: every connection is admitted once its handshake completes and replaces the one "
      "admitted before (for gst-launch-1.0 and debugging)", "open" },
    { (gint) Admission::Application,
      "server: a connection carries no media and no input, and displaces no one, until the "
      "application admits it with the \"admit\" action signal (wayrayd: after the ticket)", "application" },
    { 0, nullptr, nullptr },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWayrayQuicAdmission", values));
  return type;
}

GType
retry_get_type ()
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { (gint) RetryPolicy::Auto,
      "server: a QUIC Retry (address validation) once max-handshakes/4 handshakes are in progress", "auto" },
    { (gint) RetryPolicy::Always, "server: a Retry before every handshake (one round trip more)", "always" },
    { (gint) RetryPolicy::Never, "server: never", "never" },
    { 0, nullptr, nullptr },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWayrayQuicRetry", values));
  return type;
}

GQuark
getter_quark ()
{
  return g_quark_from_static_string ("wayray-quic-endpoint-getter");
}

std::shared_ptr<Endpoint>
element_endpoint (GstElement * element)
{
  for (GType t = G_OBJECT_TYPE (element); t; t = g_type_parent (t)) {
    auto get = (EndpointGetter) g_type_get_qdata (t, getter_quark ());
    if (get)
      return get (element);
  }
  return nullptr;
}

gboolean
admit_handler (GstElement * element, guint64 id)
{
  auto ep = element_endpoint (element);
  std::string error = "the element is not running";
  if (ep && ep->admit (id, error)) {
    GST_INFO_OBJECT (element, "admitted connection %" G_GUINT64_FORMAT, id);
    return TRUE;
  }
  GST_INFO_OBJECT (element, "cannot admit connection %" G_GUINT64_FORMAT ": %s", id, error.c_str ());
  return FALSE;
}

gchar *
channel_binding_handler (GstElement * element, guint64 id)
{
  auto ep = element_endpoint (element);
  std::string hex, error = "the element is not running";
  if (ep && ep->channel_binding (id, hex, error))
    return g_strdup (hex.c_str ());
  GST_INFO_OBJECT (element, "no channel binding for connection %" G_GUINT64_FORMAT ": %s", id, error.c_str ());
  return nullptr;
}

gboolean
close_handler (GstElement * element, guint64 id, const gchar * reason)
{
  auto ep = element_endpoint (element);
  return ep && ep->close_connection (id, reason ? reason : "closed by the server");
}

gboolean
add_route_handler (GstElement * element, const gchar * prefix_hex, gint fd)
{
  auto ep = element_endpoint (element);
  std::string prefix;
  if (!ep || fd < 0 || !prefix_from_hex (prefix_hex ? prefix_hex : "", prefix))
    return FALSE;
  int mine = fcntl (fd, F_DUPFD_CLOEXEC, 3);
  return mine >= 0 && ep->add_route (prefix, mine);
}

gboolean
remove_route_handler (GstElement * element, const gchar * prefix_hex)
{
  auto ep = element_endpoint (element);
  std::string prefix;
  return ep && prefix_from_hex (prefix_hex ? prefix_hex : "", prefix) && ep->remove_route (prefix);
}

}  // namespace

void
install_common_signals (GType type, EndpointGetter get_endpoint)
{
  g_type_set_qdata (type, getter_quark (), (gpointer) get_endpoint);
  /**
   * admit: (server) makes connection ID (the "id" of a buffer's
   * WayrayConnectionMeta) the admitted one; the one admitted before is
   * closed ("replaced by a new client"). FALSE when it is gone or not
   * established.
   */
  g_signal_new_class_handler ("admit", type, (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK (admit_handler), nullptr, nullptr, nullptr, G_TYPE_BOOLEAN, 1, G_TYPE_UINT64);
  /**
   * channel-binding: the TLS exporter value (RFC 9266, 32 bytes as hex) of
   * connection ID (a client: 0). Both ends get the same value, and no
   * other connection does: a login proof made over it (wayrayd's front
   * door) cannot be used on another. NULL when there is no such
   * established connection.
   */
  g_signal_new_class_handler ("channel-binding", type, (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK (channel_binding_handler), nullptr, nullptr, nullptr, G_TYPE_STRING, 1, G_TYPE_UINT64);
  /**
   * close-connection: closes connection ID, telling the peer REASON.
   */
  g_signal_new_class_handler ("close-connection", type, (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK (close_handler), nullptr, nullptr, nullptr, G_TYPE_BOOLEAN, 2, G_TYPE_UINT64, G_TYPE_STRING);
  /**
   * add-route: (server with its own sockets: the seat's router) connections
   * whose IDs, or TCP route preamble, start with PREFIX (8 hex digits) go
   * through FD (a SOCK_SEQPACKET socket; the element takes a duplicate) to
   * the endpoint that owns them (a session's, relay-fd).
   */
  g_signal_new_class_handler ("add-route", type, (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK (add_route_handler), nullptr, nullptr, nullptr, G_TYPE_BOOLEAN, 2, G_TYPE_STRING, G_TYPE_INT);
  /**
   * remove-route: forgets the route of PREFIX.
   */
  g_signal_new_class_handler ("remove-route", type, (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK (remove_route_handler), nullptr, nullptr, nullptr, G_TYPE_BOOLEAN, 1, G_TYPE_STRING);
}

void
register_connection_meta ()
{
  static const gchar *tags[] = { nullptr };
  if (!gst_meta_get_info (WRQ_CONNECTION_META))
    gst_meta_register_custom (WRQ_CONNECTION_META, tags, nullptr, nullptr, nullptr);
}

void
add_connection_meta (GstBuffer * buf, guint64 id, const std::string & peer, bool admitted)
{
  GstCustomMeta *m = gst_buffer_add_custom_meta (buf, WRQ_CONNECTION_META);
  if (!m)
    return;
  GstStructure *s = gst_custom_meta_get_structure (m);
  gst_structure_set_name (s, "wayray-connection");
  gst_structure_set (s, "id", G_TYPE_UINT64, id, "peer", G_TYPE_STRING, peer.c_str (),
      "admitted", G_TYPE_BOOLEAN, admitted, nullptr);
}

guint64
connection_meta_id (GstBuffer * buf)
{
  GstCustomMeta *m = gst_buffer_get_custom_meta (buf, WRQ_CONNECTION_META);
  guint64 id = 0;
  if (m)
    gst_structure_get_uint64 (gst_custom_meta_get_structure (m), "id", &id);
  return id;
}

void
install_common_properties (GObjectClass * klass)
{
  const GParamFlags rw_ready = (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY
      | G_PARAM_STATIC_STRINGS);
  const GParamFlags ro = (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  Config d;

  g_object_class_install_property (klass, PROP_MODE,
      g_param_spec_enum ("mode", "Mode", "Role of this end: server listens, client connects",
          mode_get_type (), (gint) d.mode, rw_ready));
  g_object_class_install_property (klass, PROP_HOST,
      g_param_spec_string ("host", "Host",
          "client: the server's name or address; server: the address to listen on (empty = all, "
          "IPv6 and IPv4)", nullptr, rw_ready));
  g_object_class_install_property (klass, PROP_PORT,
      g_param_spec_uint ("port", "Port", "UDP port (and TCP port of the fallback)", 1, 65535,
          d.port, rw_ready));
  g_object_class_install_property (klass, PROP_TRANSPORT,
      g_param_spec_enum ("transport", "Transport", "QUIC, the TCP+TLS fallback, or QUIC with fallback",
          transport_get_type (), (gint) d.transport, rw_ready));
  g_object_class_install_property (klass, PROP_CERTIFICATE_FILE,
      g_param_spec_string ("certificate-file", "Certificate file",
          "server: PEM certificate, or a chain (session certificate, then the certificate that "
          "signed it), all sent to clients; with private-key-file. When neither file exists, a key and a "
          "self-signed certificate are generated there. Empty = $XDG_CONFIG_HOME/wayray/server-cert.pem",
          nullptr, rw_ready));
  g_object_class_install_property (klass, PROP_PRIVATE_KEY_FILE,
      g_param_spec_string ("private-key-file", "Private key file",
          "server: PEM private key. Empty = $XDG_CONFIG_HOME/wayray/server-key.pem", nullptr, rw_ready));
  g_object_class_install_property (klass, PROP_CERTIFICATE_FINGERPRINT,
      g_param_spec_string ("certificate-fingerprint", "Certificate fingerprint",
          "SHA-256 (64 hex digits) of the server's certificate: server: its own (the first of a "
          "chain), what clients pin; client: the one the server presented (the first)", nullptr, ro));
  g_object_class_install_property (klass, PROP_KNOWN_HOSTS_FILE,
      g_param_spec_string ("known-hosts-file", "Known hosts file",
          "client: where server fingerprints are remembered on first use ('HOST:PORT SHA256HEX' "
          "lines; for a chain of two, the signer's); a server presenting another fingerprint is refused. "
          "Empty = $XDG_CONFIG_HOME/wayray/known_hosts", nullptr, rw_ready));
  g_object_class_install_property (klass, PROP_PINNED_FINGERPRINT,
      g_param_spec_string ("pinned-fingerprint", "Pinned fingerprint",
          "client: accept only a server certificate with this SHA-256 (hex, ':' allowed), or a "
          "chain whose second certificate has it and validly signed the first, which must be within its "
          "validity period; overrides the known-hosts file", nullptr, rw_ready));
  g_object_class_install_property (klass, PROP_CERTIFICATE_NAME,
      g_param_spec_string ("certificate-name", "Certificate name",
          "client: the common name a chained server certificate (a session certificate signed by the "
          "pinned key) must carry: wayrayd names each session's certificate and tells the client in its "
          "welcome. Empty: chains are refused, only the pinned or known certificate itself is accepted",
          nullptr, rw_ready));
  g_object_class_install_property (klass, PROP_IDLE_TIMEOUT,
      g_param_spec_uint ("idle-timeout", "Idle timeout",
          "Milliseconds without any packet from the peer after which it counts as gone", 500,
          G_MAXINT, d.idle_timeout_ms, rw_ready));
  g_object_class_install_property (klass, PROP_KEEPALIVE_INTERVAL,
      g_param_spec_uint ("keepalive-interval", "Keep-alive interval",
          "Milliseconds of silence after which a keep-alive is sent (0 = never)", 0, G_MAXINT,
          d.keepalive_ms, rw_ready));
  g_object_class_install_property (klass, PROP_HANDSHAKE_TIMEOUT,
      g_param_spec_uint ("handshake-timeout", "Handshake timeout",
          "client, transport=auto: milliseconds to wait for the QUIC handshake before falling "
          "back to TCP+TLS", 100, G_MAXINT, d.handshake_timeout_ms, rw_ready));
  g_object_class_install_property (klass, PROP_MAX_UDP_PAYLOAD,
      g_param_spec_uint ("max-udp-payload", "Maximum UDP payload",
          "Largest UDP payload sent, in bytes (1200..65527; the default suits Ethernet paths)",
          1200, 65527, d.max_udp_payload, rw_ready));
  g_object_class_install_property (klass, PROP_CONGESTION_CONTROL,
      g_param_spec_enum ("congestion-control", "Congestion control",
          "QUIC congestion controller of what this end sends", congestion_get_type (),
          (gint) d.congestion, rw_ready));
  g_object_class_install_property (klass, PROP_STATS_INTERVAL,
      g_param_spec_uint ("stats-interval", "Statistics interval",
          "Milliseconds between 'wayray-quic-stats' element messages while connected (0 = none)",
          0, G_MAXINT, d.stats_interval_ms,
          (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (klass, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Connection statistics: rtt, min-rtt, smoothed-rtt, rtt-variance (ns), cwnd, "
          "bytes-in-flight (bytes), delivery-rate (bytes/s), lost-packets, pto-count, bytes-sent, "
          "bytes-received, send-queue-bytes, transport, peer, connected",
          GST_TYPE_STRUCTURE, ro));
  g_object_class_install_property (klass, PROP_CONNECTED,
      g_param_spec_boolean ("connected", "Connected",
          "Whether a peer is connected (server: an admitted one)", FALSE, ro));
  g_object_class_install_property (klass, PROP_ADMISSION,
      g_param_spec_enum ("admission", "Admission",
          "server: whether a connection is admitted (carries media and input, replacing the one "
          "before) as soon as its handshake completes, or only when the application says so",
          admission_get_type (), (gint) d.admission, rw_ready));
  g_object_class_install_property (klass, PROP_ADMISSION_TIMEOUT,
      g_param_spec_uint ("admission-timeout", "Admission timeout",
          "server, admission=application: milliseconds a connection may wait for admission before "
          "it is closed", 100, G_MAXINT, d.admission_timeout_ms, rw_ready));
  g_object_class_install_property (klass, PROP_MAX_CONNECTIONS,
      g_param_spec_uint ("max-connections", "Maximum connections",
          "server: connections held at once (handshakes, waiting, admitted); a new one beyond is "
          "refused with CONNECTION_REFUSED", 1, 65535, d.max_connections, rw_ready));
  g_object_class_install_property (klass, PROP_MAX_HANDSHAKES,
      g_param_spec_uint ("max-handshakes", "Maximum handshakes",
          "server: handshakes in progress at once; beyond a quarter of it, new peers must prove "
          "their address with a QUIC Retry first (retry=auto)", 1, 65535, d.max_handshakes, rw_ready));
  g_object_class_install_property (klass, PROP_MAX_HANDSHAKES_PER_SOURCE,
      g_param_spec_uint ("max-handshakes-per-source", "Maximum handshakes per source",
          "server: handshakes in progress at once from one IP address", 1, 65535,
          d.max_handshakes_per_source, rw_ready));
  g_object_class_install_property (klass, PROP_RETRY,
      g_param_spec_enum ("retry", "Retry", "server: when a QUIC Retry validates a new peer's address",
          retry_get_type (), (gint) d.retry, rw_ready));
  g_object_class_install_property (klass, PROP_CONNECTION_ID_PREFIX,
      g_param_spec_string ("connection-id-prefix", "Connection ID prefix",
          "Up to 4 bytes in hex. server: its QUIC connection IDs start with them; client: its first "
          "destination ID and its TCP route preamble carry them, so that the seat's router (wayrayd's "
          "front door) hands the connection to the session that owns the prefix", nullptr, rw_ready));
  g_object_class_install_property (klass, PROP_RELAY_FD,
      g_param_spec_int ("relay-fd", "Relay socket",
          "server: a SOCK_SEQPACKET socket to the seat's router; the endpoint then has no UDP or TCP socket "
          "of its own, and its datagrams and TCP connections come and go through the router (wayrayd's "
          "sessions). The element takes a duplicate; setting another one (router restarted) replaces it",
          -1, G_MAXINT, -1, (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (klass, PROP_ADMITTED,
      g_param_spec_boolean ("admitted", "Admitted",
          "client: whether the server admitted this connection (it says so on the connection; a "
          "\"wayray-quic-admitted\" element message tells the moment)", FALSE, ro));
}

void
clear_common_config (Config & cfg)
{
  if (cfg.relay_fd >= 0)
    close (cfg.relay_fd);
  cfg.relay_fd = -1;
}

bool
set_common_property (Config & cfg, Endpoint * ep, guint prop_id, const GValue * value)
{
  auto str = [value] { const gchar *s = g_value_get_string (value); return std::string (s ? s : ""); };
  switch (prop_id) {
    case PROP_MODE: cfg.mode = (Mode) g_value_get_enum (value); return true;
    case PROP_HOST: cfg.host = str (); return true;
    case PROP_PORT: cfg.port = g_value_get_uint (value); return true;
    case PROP_TRANSPORT: cfg.transport = (TransportChoice) g_value_get_enum (value); return true;
    case PROP_CERTIFICATE_FILE: cfg.cert_file = str (); return true;
    case PROP_PRIVATE_KEY_FILE: cfg.key_file = str (); return true;
    case PROP_KNOWN_HOSTS_FILE: cfg.known_hosts_file = str (); return true;
    case PROP_PINNED_FINGERPRINT: cfg.pinned_fingerprint = str (); return true;
    case PROP_CERTIFICATE_NAME: cfg.certificate_name = str (); return true;
    case PROP_IDLE_TIMEOUT: cfg.idle_timeout_ms = g_value_get_uint (value); return true;
    case PROP_KEEPALIVE_INTERVAL: cfg.keepalive_ms = g_value_get_uint (value); return true;
    case PROP_HANDSHAKE_TIMEOUT: cfg.handshake_timeout_ms = g_value_get_uint (value); return true;
    case PROP_MAX_UDP_PAYLOAD: cfg.max_udp_payload = g_value_get_uint (value); return true;
    case PROP_CONGESTION_CONTROL: cfg.congestion = (Congestion) g_value_get_enum (value); return true;
    case PROP_STATS_INTERVAL: cfg.stats_interval_ms = g_value_get_uint (value); return true;
    case PROP_ADMISSION: cfg.admission = (Admission) g_value_get_enum (value); return true;
    case PROP_ADMISSION_TIMEOUT: cfg.admission_timeout_ms = g_value_get_uint (value); return true;
    case PROP_MAX_CONNECTIONS: cfg.max_connections = g_value_get_uint (value); return true;
    case PROP_MAX_HANDSHAKES: cfg.max_handshakes = g_value_get_uint (value); return true;
    case PROP_MAX_HANDSHAKES_PER_SOURCE: cfg.max_handshakes_per_source = g_value_get_uint (value); return true;
    case PROP_RETRY: cfg.retry = (RetryPolicy) g_value_get_enum (value); return true;
    case PROP_CONNECTION_ID_PREFIX: {
      std::string prefix;
      if (prefix_from_hex (str (), prefix))
        cfg.cid_prefix = prefix;
      else
        GST_WARNING ("connection-id-prefix '%s' is not up to %zu bytes of hex; ignored", str ().c_str (),
            kMaxRoutePrefix);
      return true;
    }
    case PROP_RELAY_FD: {
      /* A duplicate of its own, taken now: the caller may close theirs. */
      int fd = g_value_get_int (value);
      int mine = fd >= 0 ? fcntl (fd, F_DUPFD_CLOEXEC, 3) : -1;
      clear_common_config (cfg);
      cfg.relay_fd = mine;
      if (mine >= 0) {
        cfg.relay = true;
        if (ep)
          ep->set_relay (fcntl (mine, F_DUPFD_CLOEXEC, 3));
      }
      return true;
    }
    default: return false;
  }
}

bool
get_common_property (const Config & cfg, Endpoint * ep, guint prop_id, GValue * value)
{
  auto set_str = [value] (const std::string & s) { g_value_set_string (value, s.empty () ? nullptr : s.c_str ()); };
  switch (prop_id) {
    case PROP_MODE: g_value_set_enum (value, (gint) cfg.mode); return true;
    case PROP_HOST: set_str (cfg.host); return true;
    case PROP_PORT: g_value_set_uint (value, cfg.port); return true;
    case PROP_TRANSPORT: g_value_set_enum (value, (gint) cfg.transport); return true;
    case PROP_CERTIFICATE_FILE: set_str (cfg.cert_file); return true;
    case PROP_PRIVATE_KEY_FILE: set_str (cfg.key_file); return true;
    case PROP_CERTIFICATE_FINGERPRINT: set_str (ep ? ep->certificate_fingerprint () : ""); return true;
    case PROP_KNOWN_HOSTS_FILE: set_str (cfg.known_hosts_file); return true;
    case PROP_PINNED_FINGERPRINT: set_str (cfg.pinned_fingerprint); return true;
    case PROP_CERTIFICATE_NAME: set_str (cfg.certificate_name); return true;
    case PROP_IDLE_TIMEOUT: g_value_set_uint (value, cfg.idle_timeout_ms); return true;
    case PROP_KEEPALIVE_INTERVAL: g_value_set_uint (value, cfg.keepalive_ms); return true;
    case PROP_HANDSHAKE_TIMEOUT: g_value_set_uint (value, cfg.handshake_timeout_ms); return true;
    case PROP_MAX_UDP_PAYLOAD: g_value_set_uint (value, cfg.max_udp_payload); return true;
    case PROP_CONGESTION_CONTROL: g_value_set_enum (value, (gint) cfg.congestion); return true;
    case PROP_STATS_INTERVAL: g_value_set_uint (value, cfg.stats_interval_ms); return true;
    case PROP_STATS: {
      Stats st = ep ? ep->stats () : Stats ();
      g_value_take_boxed (value, st.to_structure ());
      return true;
    }
    case PROP_CONNECTED: g_value_set_boolean (value, ep && ep->connected ()); return true;
    case PROP_ADMISSION: g_value_set_enum (value, (gint) cfg.admission); return true;
    case PROP_ADMISSION_TIMEOUT: g_value_set_uint (value, cfg.admission_timeout_ms); return true;
    case PROP_MAX_CONNECTIONS: g_value_set_uint (value, cfg.max_connections); return true;
    case PROP_MAX_HANDSHAKES: g_value_set_uint (value, cfg.max_handshakes); return true;
    case PROP_MAX_HANDSHAKES_PER_SOURCE: g_value_set_uint (value, cfg.max_handshakes_per_source); return true;
    case PROP_RETRY: g_value_set_enum (value, (gint) cfg.retry); return true;
    case PROP_ADMITTED: g_value_set_boolean (value, ep && ep->admitted ()); return true;
    case PROP_CONNECTION_ID_PREFIX: set_str (prefix_to_hex (cfg.cid_prefix)); return true;
    case PROP_RELAY_FD: g_value_set_int (value, cfg.relay_fd); return true;
    default: return false;
  }
}

std::shared_ptr<Endpoint>
endpoint_from_context (GstContext * context)
{
  if (!gst_context_has_context_type (context, WRQ_CONTEXT_TYPE))
    return nullptr;
  const GstStructure *s = gst_context_get_structure (context);
  const GValue *v = gst_structure_get_value (s, "endpoint");
  if (!v || !G_VALUE_HOLDS (v, holder_get_type ()))
    return nullptr;
  auto *h = static_cast<EndpointHolder *> (g_value_get_boxed (v));
  return h ? h->ep : nullptr;
}

std::shared_ptr<Endpoint>
acquire_endpoint (GstElement * element, const Config & cfg, const std::shared_ptr<Endpoint> & ctx_ep)
{
  /* Give the application and the bins a chance to hand one over; a
   * synchronous answer arrives through set_context before this returns. */
  if (!ctx_ep)
    gst_element_post_message (element, gst_message_new_need_context (GST_OBJECT (element), WRQ_CONTEXT_TYPE));
  std::shared_ptr<Endpoint> ep;
  if (ctx_ep && ctx_ep->config ().key () == cfg.key ())
    ep = ctx_ep;
  else
    ep = Endpoint::obtain (cfg);
  if (cfg.relay_fd >= 0)
    ep->set_relay (fcntl (cfg.relay_fd, F_DUPFD_CLOEXEC, 3));

  GstContext *ctx = gst_context_new (WRQ_CONTEXT_TYPE, TRUE);
  EndpointHolder holder { ep };
  gst_structure_set (gst_context_writable_structure (ctx), "endpoint", holder_get_type (), &holder, nullptr);
  gst_element_post_message (element, gst_message_new_have_context (GST_OBJECT (element), ctx));
  return ep;
}

void
post_connection_message (GstElement * element, bool up, guint64 conn_id, const std::string & peer,
    const std::string & transport, const std::string & reason)
{
  GstStructure *s = gst_structure_new ("wayray-quic-connection",
      "connected", G_TYPE_BOOLEAN, up,
      "connection-id", G_TYPE_UINT64, conn_id,
      "peer", G_TYPE_STRING, peer.c_str (),
      "transport", G_TYPE_STRING, transport.c_str (),
      "reason", G_TYPE_STRING, reason.c_str (), nullptr);
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element), s));
}

void
post_admitted_message (GstElement * element, const std::string & peer)
{
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element),
          gst_structure_new ("wayray-quic-admitted", "peer", G_TYPE_STRING, peer.c_str (), nullptr)));
}

void
post_stats_message (GstElement * element, const Stats & stats)
{
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element), stats.to_structure ()));
}

}  // namespace wrq
