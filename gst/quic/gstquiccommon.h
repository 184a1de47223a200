/* What quicsink and quicsrc share: the connection properties, the GstContext
 * that hands one endpoint to every quic element of a process, and the bus
 * messages about the connection.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "gstquicendpoint.h"

#include <gst/gst.h>

#include <memory>

namespace wrq {

/* Context type carrying the endpoint ("endpoint" field, boxed). */
#define WRQ_CONTEXT_TYPE "wayray.quic.endpoint"

enum CommonProp {
  PROP_0,
  PROP_MODE,
  PROP_HOST,
  PROP_PORT,
  PROP_TRANSPORT,
  PROP_CERTIFICATE_FILE,
  PROP_PRIVATE_KEY_FILE,
  PROP_CERTIFICATE_FINGERPRINT,
  PROP_KNOWN_HOSTS_FILE,
  PROP_PINNED_FINGERPRINT,
  PROP_CERTIFICATE_NAME,
  PROP_IDLE_TIMEOUT,
  PROP_KEEPALIVE_INTERVAL,
  PROP_HANDSHAKE_TIMEOUT,
  PROP_MAX_UDP_PAYLOAD,
  PROP_CONGESTION_CONTROL,
  PROP_STATS_INTERVAL,
  PROP_STATS,
  PROP_CONNECTED,
  PROP_ADMISSION,
  PROP_ADMISSION_TIMEOUT,
  PROP_MAX_CONNECTIONS,
  PROP_MAX_HANDSHAKES,
  PROP_MAX_HANDSHAKES_PER_SOURCE,
  PROP_RETRY,
  PROP_ADMITTED,
  PROP_CONNECTION_ID_PREFIX,
  PROP_RELAY_FD,
  PROP_COMMON_LAST,
};

void install_common_properties (GObjectClass * klass);
/* The action signals "admit" and "close-connection"; @get_endpoint gives
 * an element's endpoint (nullptr when stopped). */
typedef std::shared_ptr<Endpoint> (*EndpointGetter) (GstElement * element);
void install_common_signals (GType type, EndpointGetter get_endpoint);

/* The custom buffer meta naming the connection a buffer came from (quicsrc,
 * server) or is meant for (quicsink: an answer on that connection only).
 * Its structure "wayray-connection" holds id (guint64), peer (string) and
 * admitted (boolean). Registered by the plugin. */
#define WRQ_CONNECTION_META "WayrayConnectionMeta"
void register_connection_meta ();
void add_connection_meta (GstBuffer * buf, guint64 id, const std::string & peer, bool admitted);
/* 0 when @buf has none. */
guint64 connection_meta_id (GstBuffer * buf);
/* FALSE when @prop_id is not a common property. */
bool set_common_property (Config & cfg, Endpoint * ep, guint prop_id, const GValue * value);
/* Closes what the element's configuration owns (its relay-fd duplicate). */
void clear_common_config (Config & cfg);
bool get_common_property (const Config & cfg, Endpoint * ep, guint prop_id, GValue * value);

/* Finds the endpoint: one handed over in a context (@ctx_ep) when its
 * configuration matches, else the process-wide one for @cfg; then
 * publishes it as a context. */
std::shared_ptr<Endpoint> acquire_endpoint (GstElement * element, const Config & cfg,
    const std::shared_ptr<Endpoint> & ctx_ep);
/* Extracts the endpoint from a context set on the element. */
std::shared_ptr<Endpoint> endpoint_from_context (GstContext * context);

/* Element messages: "wayray-quic-connection", "wayray-quic-stats" and
 * (client) "wayray-quic-admitted". */
void post_admitted_message (GstElement * element, const std::string & peer);
void post_connection_message (GstElement * element, bool up, guint64 conn_id, const std::string & peer,
    const std::string & transport, const std::string & reason);
void post_stats_message (GstElement * element, const Stats & stats);

}  // namespace wrq
