/* Shared parts of quicsink and quicsrc (see gstquiccommon.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquiccommon.h"
#include "gstquictls.h"

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

}  // namespace

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
      g_param_spec_boolean ("connected", "Connected", "Whether a peer is connected", FALSE, ro));
}

bool
set_common_property (Config & cfg, guint prop_id, const GValue * value)
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

  GstContext *ctx = gst_context_new (WRQ_CONTEXT_TYPE, TRUE);
  EndpointHolder holder { ep };
  gst_structure_set (gst_context_writable_structure (ctx), "endpoint", holder_get_type (), &holder, nullptr);
  gst_element_post_message (element, gst_message_new_have_context (GST_OBJECT (element), ctx));
  return ep;
}

void
post_connection_message (GstElement * element, bool up, const std::string & peer,
    const std::string & transport, const std::string & reason)
{
  GstStructure *s = gst_structure_new ("wayray-quic-connection",
      "connected", G_TYPE_BOOLEAN, up,
      "peer", G_TYPE_STRING, peer.c_str (),
      "transport", G_TYPE_STRING, transport.c_str (),
      "reason", G_TYPE_STRING, reason.c_str (), nullptr);
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element), s));
}

void
post_stats_message (GstElement * element, const Stats & stats)
{
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element), stats.to_structure ()));
}

}  // namespace wrq
