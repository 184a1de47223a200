/* What wayrayd and wayray-client both do with their control streams:
 * messages in and out of appsrc/appsink, linking a quicsrc's named streams,
 * and getting back to the main loop from streaming threads.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <utility>

namespace wayray {

/* Control messages: one GstStructure, serialized, per buffer. */
#define WAYRAY_CONTROL_CAPS "application/x-wayray-control,version=(int)1"
constexpr gsize MAX_CONTROL_MESSAGE = 4096;

GstBuffer *control_message_new (const GstStructure *s);
/* NULL when the buffer is not a well-formed message (too big, not UTF-8,
 * not a structure). */
GstStructure *control_message_parse (GstBuffer *buf);

/* A live appsrc with the control caps (or @caps), for sending messages. */
GstElement *control_source_new (const char *name, const char *caps = WAYRAY_CONTROL_CAPS);
/* Pushes @msg (taking it) into a control_source_new () element; with a
 * @conn_id, the quicsink sends it on that connection only (the answer to a
 * hello goes to the connection that sent it). */
void control_source_push (GstElement *appsrc, GstStructure *msg, guint64 conn_id = 0);
/* An appsink for control messages, emitting "new-sample"; a peer's EOS
 * does not end it. It keeps @max_buffers at most, dropping the oldest
 * (0: every message is kept until pulled). */
GstElement *control_sink_new (const char *name, guint max_buffers = 4);
/* Links @src to a new request pad of @quicsink named @stream. */
bool link_to_stream (GstElement *src, GstElement *quicsink, const char *stream);
/* Where a message came from: the quic elements' connection (server side). */
struct MessageOrigin {
  guint64 conn_id = 0;   /* 0: unknown */
  std::string peer;      /* "ADDRESS:PORT" */
  bool admitted = false;
};
/* Where @buf came from (the quic elements' connection meta). */
MessageOrigin buffer_origin (GstBuffer *buf);
/* Sends @buf on connection @conn_id only (a quicsink serving several). */
void buffer_set_connection (GstBuffer *buf, guint64 conn_id);
/* Pulls and parses one message from an appsink; NULL if malformed.
 * @origin (optional) is filled either way. */
GstStructure *control_message_pull (GstAppSink *sink, MessageOrigin *origin = nullptr);

/* For a quicsrc "pad-added" handler (connect it after parsing the pipeline
 * file, so the file's own delayed links come first): links @pad to
 * @target's sink pad when it is the stream named @want, leaves pads the file
 * already linked, and drains any other stream into a fakesink so an
 * unexpected stream cannot stall or fail the pipeline. */
void link_stream_pad (GstElement *quicsrc, GstPad *pad, const char *want, GstElement *target);
/* The same for several streams (a quicsrc's one handler): each named
 * stream to its target (NULL targets count as absent). */
void link_stream_pad (GstElement *quicsrc, GstPad *pad,
    std::initializer_list<std::pair<const char *, GstElement *>> targets);

/* Every buffer a control_sink_new () element receives, handed to @fn on
 * the default main context (which takes a reference of its own if it keeps
 * the buffer). */
void on_buffers_on_main (GstElement *appsink, std::function<void (GstBuffer *)> fn);

/* Runs @fn on the default main context (call from any thread). */
void run_on_main (std::function<void ()> fn);

}  // namespace wayray
