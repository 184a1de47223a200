/* Helpers shared by the quic element tests: ports, pipelines and their
 * bus messages, test data.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <arpa/inet.h>
#include <glib.h>
#include <gst/check/gstcheck.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

/* A port free for both UDP and TCP right now (the kernel picks it). */
static inline guint
free_port ()
{
  for (int attempt = 0; attempt < 50; attempt++) {
    int u = socket (AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind (u, (sockaddr *) &a, sizeof a) != 0 || getsockname (u, (sockaddr *) &a, &len) != 0) {
      close (u);
      continue;
    }
    int t = socket (AF_INET, SOCK_STREAM, 0);
    bool ok = bind (t, (sockaddr *) &a, sizeof a) == 0;
    close (t);
    close (u);
    if (ok)
      return ntohs (a.sin_port);
  }
  return 0;
}

/* Blocks UDP on loopback @port, as a firewall would: a socket bound there
 * that silently swallows datagrams (a server then listens on TCP only).
 * Close the descriptor returned to unblock. */
static inline int
udp_blackhole (guint port)
{
  int fd = socket (AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  a.sin_port = htons (port);
  fail_unless (bind (fd, (sockaddr *) &a, sizeof a) == 0);
  return fd;
}

/* The pipeline @desc describes, not started. */
static inline GstElement *
launch (const std::string & desc)
{
  GError *err = nullptr;
  GstElement *p = gst_parse_launch (desc.c_str (), &err);
  fail_unless (p != nullptr, "%s: %s", desc.c_str (), err ? err->message : "?");
  return p;
}

static inline GstElement *
by_name (GstElement * pipeline, const char *name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), name);
  fail_unless (e != nullptr, "no element %s", name);
  return e;
}

/* Sets @p playing; returns it. */
static inline GstElement *
play (GstElement * p)
{
  fail_if (gst_element_set_state (p, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE);
  return p;
}

/* Stops and frees @p. */
static inline void
stop (GstElement * p)
{
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
}

/* Fails the test on an error message from @p. */
static inline void
assert_no_error (GstElement * p)
{
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (m) {
    GError *e;
    gchar *dbg;
    gst_message_parse_error (m, &e, &dbg);
    fail ("error from %s: %s (%s)", GST_OBJECT_NAME (GST_MESSAGE_SRC (m)), e->message, dbg);
  }
  gst_object_unref (bus);
}

/* Waits for an error (@type GST_MESSAGE_ERROR) or warning message from @p;
 * returns its text ("" after @timeout). */
static inline std::string
wait_message_text (GstElement * p, GstClockTime timeout, GstMessageType type)
{
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *m = gst_bus_timed_pop_filtered (bus, timeout, type);
  gst_object_unref (bus);
  if (!m)
    return "";
  GError *e;
  if (type == GST_MESSAGE_ERROR)
    gst_message_parse_error (m, &e, nullptr);
  else
    gst_message_parse_warning (m, &e, nullptr);
  std::string s = e->message;
  g_error_free (e);
  gst_message_unref (m);
  return s;
}

static inline std::string
wait_error (GstElement * p, GstClockTime timeout)
{
  return wait_message_text (p, timeout, GST_MESSAGE_ERROR);
}

static inline std::string
wait_warning (GstElement * p, GstClockTime timeout)
{
  return wait_message_text (p, timeout, GST_MESSAGE_WARNING);
}

/* The certificate-fingerprint a quicsink with @server_props shows once
 * ready: its certificate's (generated first when the files are missing). */
static inline std::string
server_fingerprint (const std::string & server_props)
{
  GstElement *srv = launch ("fakesrc num-buffers=0 ! quicsink name=s " + server_props);
  fail_unless (gst_element_set_state (srv, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  GstElement *s = by_name (srv, "s");
  gchar *fp = nullptr;
  g_object_get (s, "certificate-fingerprint", &fp, nullptr);
  std::string r = fp ? fp : "";
  g_free (fp);
  gst_object_unref (s);
  stop (srv);
  return r;
}

/* @size pseudo-random bytes, different for each @i (and @seed). */
static inline GstBuffer *
pattern_buffer (guint i, gsize size, guint32 seed = 1)
{
  GstBuffer *b = gst_buffer_new_allocate (nullptr, size, nullptr);
  GstMapInfo map;
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  guint32 x = i * 2654435761u + seed;
  for (gsize k = 0; k < size; k++) {
    x = x * 1103515245u + 12345u;
    map.data[k] = (guint8) (x >> 16);
  }
  gst_buffer_unmap (b, &map);
  return b;
}
