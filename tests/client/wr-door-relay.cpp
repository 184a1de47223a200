/* wr-door-relay: a man in the middle at the front door, for the tests.
 *
 * It listens as a front door with a certificate of its own (one that a
 * client trusting on first use accepts) and relays every message both
 * ways, unchanged and at once, to the real front door, over a connection
 * of its own that trusts the real seat (pinned fingerprint). A login
 * through it must fail: the client's proof is bound to the client's
 * connection with the relay, the server checks it against the relay's
 * connection with the server (docs/session-protocol.md, "Proving the
 * token").
 *
 *   wr-door-relay LISTEN-PORT SERVER-PORT SERVER-FINGERPRINT
 *
 * Prints "relaying" once both sides are up, then one line per message it
 * passes on ("to-server NAME", "to-client NAME").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcontrol.h"

#include <gst/gst.h>

#include <cstdio>
#include <cstdlib>

using namespace wayray;

namespace {

struct Relay {
  GstElement *pipeline = nullptr;
  GstElement *client_out = nullptr;   /* to the client that came to us */
  GstElement *server_out = nullptr;   /* to the real front door */
  guint64 client_conn = 0;
};

void
print_pass (const char *where, const GstStructure *msg)
{
  g_print ("%s %s\n", where, gst_structure_get_name (msg));
}

}  // namespace

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  setvbuf (stdout, nullptr, _IOLBF, 0);
  if (argc != 4) {
    g_printerr ("usage: wr-door-relay LISTEN-PORT SERVER-PORT SERVER-FINGERPRINT\n");
    return 2;
  }
  guint listen_port = (guint) atoi (argv[1]), server_port = (guint) atoi (argv[2]);
  Relay r;
  r.pipeline = gst_pipeline_new ("relay");

  /* The side the client sees: a front door (its certificate is made in
   * $XDG_CONFIG_HOME on first use). */
  GstElement *door_in = gst_element_factory_make ("quicsrc", nullptr);
  GstElement *door_net = gst_element_factory_make ("quicsink", nullptr);
  GstElement *hello = control_sink_new ("hello");
  r.client_out = control_source_new ("to-client");
  /* The side the server sees: a client. */
  GstElement *up_net = gst_element_factory_make ("quicsink", nullptr);
  GstElement *up_in = gst_element_factory_make ("quicsrc", nullptr);
  GstElement *answer = control_sink_new ("answer");
  r.server_out = control_source_new ("to-server");
  if (!door_in || !door_net || !up_net || !up_in) {
    g_printerr ("wr-door-relay: the quic elements are not installed\n");
    return 2;
  }
  for (GstElement *e : { door_in, door_net }) {
    g_object_set (e, "mode", 0, "host", "127.0.0.1", "port", listen_port, nullptr);
    gst_util_set_object_arg (G_OBJECT (e), "admission", "application");
  }
  g_object_set (door_in, "unadmitted-streams", "hello", nullptr);
  for (GstElement *e : { up_net, up_in })
    g_object_set (e, "mode", 1, "host", "127.0.0.1", "port", server_port, "pinned-fingerprint", argv[3], nullptr);
  gst_bin_add_many (GST_BIN (r.pipeline), door_in, door_net, hello, r.client_out, up_net, up_in, answer,
      r.server_out, nullptr);
  link_to_stream (r.client_out, door_net, "welcome");
  link_to_stream (r.server_out, up_net, "hello");
  g_signal_connect (door_in, "pad-added", G_CALLBACK (+[] (GstElement *el, GstPad *pad, gpointer data) {
        link_stream_pad (el, pad, "hello", GST_ELEMENT (data));
      }), hello);
  g_signal_connect (up_in, "pad-added", G_CALLBACK (+[] (GstElement *el, GstPad *pad, gpointer data) {
        link_stream_pad (el, pad, "welcome", GST_ELEMENT (data));
      }), answer);

  /* Client → server: the hello, then the proof, as they are. */
  g_signal_connect (hello, "new-sample", G_CALLBACK (+[] (GstAppSink *sink, gpointer data) -> GstFlowReturn {
        Relay *r = static_cast<Relay *> (data);
        MessageOrigin origin;
        GstStructure *msg = control_message_pull (sink, &origin);
        if (msg) {
          r->client_conn = origin.conn_id;
          print_pass ("to-server", msg);
          control_source_push (r->server_out, msg);
        }
        return GST_FLOW_OK;
      }), &r);
  /* Server → client: the challenge, then the welcome or the refusal. */
  g_signal_connect (answer, "new-sample", G_CALLBACK (+[] (GstAppSink *sink, gpointer data) -> GstFlowReturn {
        Relay *r = static_cast<Relay *> (data);
        GstStructure *msg = control_message_pull (sink, nullptr);
        if (msg) {
          print_pass ("to-client", msg);
          control_source_push (r->client_out, msg, r->client_conn);
        }
        return GST_FLOW_OK;
      }), &r);

  if (gst_element_set_state (r.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_printerr ("wr-door-relay: could not start\n");
    return 1;
  }
  g_print ("relaying\n");
  GMainLoop *loop = g_main_loop_new (nullptr, FALSE);
  GstBus *bus = gst_element_get_bus (r.pipeline);
  gst_bus_add_watch (bus, +[] (GstBus *, GstMessage *m, gpointer data) -> gboolean {
        if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
          GError *err = nullptr;
          gst_message_parse_error (m, &err, nullptr);
          g_printerr ("wr-door-relay: %s\n", err->message);
          g_error_free (err);
          g_main_loop_quit (static_cast<GMainLoop *> (data));
        }
        return G_SOURCE_CONTINUE;
      }, loop);
  gst_object_unref (bus);
  g_main_loop_run (loop);
  gst_element_set_state (r.pipeline, GST_STATE_NULL);
  gst_object_unref (r.pipeline);
  g_main_loop_unref (loop);
  return 1;
}
