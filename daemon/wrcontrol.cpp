/* Control streams shared by wayrayd and wayray-client.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcontrol.h"

#include <gst/app/gstappsrc.h>

#include <cstring>
#include <string>

namespace wayray {

GstBuffer *
control_message_new (const GstStructure *s)
{
  gchar *text = gst_structure_serialize (s, GST_SERIALIZE_FLAG_NONE);
  gsize len = strlen (text);
  return gst_buffer_new_wrapped (text, len);
}

GstStructure *
control_message_parse (GstBuffer *buf)
{
  gsize size = gst_buffer_get_size (buf);
  if (size == 0 || size > MAX_CONTROL_MESSAGE)
    return nullptr;
  std::string text (size, '\0');
  gst_buffer_extract (buf, 0, &text[0], size);
  if (!g_utf8_validate (text.data (), size, nullptr) || text.find ('\0') != std::string::npos)
    return nullptr;
  return gst_structure_from_string (text.c_str (), nullptr);
}

GstElement *
control_source_new (const char *name, const char *caps_string)
{
  GstElement *src = gst_element_factory_make ("appsrc", name);
  GstCaps *caps = gst_caps_from_string (caps_string);
  g_object_set (src, "caps", caps, "format", GST_FORMAT_TIME, "is-live", TRUE, "do-timestamp", TRUE, nullptr);
  gst_caps_unref (caps);
  return src;
}

GstElement *
control_sink_new (const char *name, guint max_buffers)
{
  GstElement *sink = gst_element_factory_make ("appsink", name);
  g_object_set (sink, "emit-signals", TRUE, "sync", FALSE, "async", FALSE, "max-buffers", max_buffers, "drop",
      max_buffers > 0, nullptr);
  /* A peer ending its stream (EOS) must not end the sink for the next
   * connection on the same stream name. */
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, [] (GstPad *, GstPadProbeInfo *info,
          gpointer) -> GstPadProbeReturn {
        return GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_EOS ? GST_PAD_PROBE_DROP
                                                                                 : GST_PAD_PROBE_OK;
      }, nullptr, nullptr);
  gst_object_unref (pad);
  return sink;
}

bool
link_to_stream (GstElement *src, GstElement *quicsink, const char *stream)
{
  GstPad *req = gst_element_request_pad_simple (quicsink, stream);
  if (!req)
    return false;
  GstPad *srcpad = gst_element_get_static_pad (src, "src");
  bool ok = gst_pad_link (srcpad, req) == GST_PAD_LINK_OK;
  gst_object_unref (srcpad);
  gst_object_unref (req);
  return ok;
}

/* The quic elements' custom buffer meta (gst/quic/gstquiccommon.h): its
 * structure names the connection. Registered by the plugin; registered
 * here too in case no quic element was made yet. */
static const char *const CONNECTION_META = "WayrayConnectionMeta";

static void
ensure_connection_meta ()
{
  static const gchar *tags[] = { nullptr };
  if (!gst_meta_get_info (CONNECTION_META))
    gst_meta_register_custom (CONNECTION_META, tags, nullptr, nullptr, nullptr);
}

void
buffer_set_connection (GstBuffer *buf, guint64 conn_id)
{
  ensure_connection_meta ();
  GstCustomMeta *m = gst_buffer_add_custom_meta (buf, CONNECTION_META);
  if (m) {
    GstStructure *st = gst_custom_meta_get_structure (m);
    gst_structure_set_name (st, "wayray-connection");
    gst_structure_set (st, "id", G_TYPE_UINT64, conn_id, nullptr);
  }
}

MessageOrigin
buffer_origin (GstBuffer *buf)
{
  MessageOrigin origin;
  ensure_connection_meta ();
  GstCustomMeta *m = buf ? gst_buffer_get_custom_meta (buf, CONNECTION_META) : nullptr;
  if (m) {
    const GstStructure *st = gst_custom_meta_get_structure (m);
    gst_structure_get_uint64 (st, "id", &origin.conn_id);
    const gchar *peer = gst_structure_get_string (st, "peer");
    origin.peer = peer ? peer : "";
    gboolean admitted = FALSE;
    gst_structure_get_boolean (st, "admitted", &admitted);
    origin.admitted = admitted;
  }
  return origin;
}

void
control_source_push (GstElement *appsrc, GstStructure *msg, guint64 conn_id)
{
  GstBuffer *buf = control_message_new (msg);
  if (conn_id)
    buffer_set_connection (buf, conn_id);
  gst_app_src_push_buffer (GST_APP_SRC (appsrc), buf);
  gst_structure_free (msg);
}

GstStructure *
control_message_pull (GstAppSink *sink, MessageOrigin *origin)
{
  GstSample *sample = gst_app_sink_pull_sample (sink);
  if (!sample)
    return nullptr;
  GstBuffer *buf = gst_sample_get_buffer (sample);
  if (origin)
    *origin = buffer_origin (buf);
  GstStructure *s = buf ? control_message_parse (buf) : nullptr;
  gst_sample_unref (sample);
  return s;
}

void
link_stream_pad (GstElement *quicsrc, GstPad *pad, const char *want, GstElement *target)
{
  link_stream_pad (quicsrc, pad, { { want, target } });
}

void
link_stream_pad (GstElement *quicsrc, GstPad *pad, std::initializer_list<std::pair<const char *, GstElement *>> targets)
{
  if (gst_pad_is_linked (pad))
    return;
  GstElement *bin = GST_ELEMENT (gst_object_get_parent (GST_OBJECT (quicsrc)));
  GstElement *to = nullptr;
  for (const auto &t : targets)
    if (t.second && g_strcmp0 (GST_PAD_NAME (pad), t.first) == 0)
      to = t.second;
  if (!to) {
    to = gst_element_factory_make ("fakesink", nullptr);
    g_object_set (to, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add (GST_BIN (bin), to);
    gst_element_sync_state_with_parent (to);
  }
  GstPad *sinkpad = gst_element_get_static_pad (to, "sink");
  if (!gst_pad_is_linked (sinkpad))
    gst_pad_link (pad, sinkpad);
  gst_object_unref (sinkpad);
  gst_object_unref (bin);
}

void
on_buffers_on_main (GstElement *appsink, std::function<void (GstBuffer *)> fn)
{
  auto *handler = new std::function<void (GstBuffer *)> (std::move (fn));
  g_signal_connect_data (appsink, "new-sample", G_CALLBACK (+[] (GstAppSink *sink, gpointer data) -> GstFlowReturn {
        GstSample *sample = gst_app_sink_pull_sample (sink);
        GstBuffer *buf = sample ? gst_buffer_ref (gst_sample_get_buffer (sample)) : nullptr;
        if (sample)
          gst_sample_unref (sample);
        auto *h = static_cast<std::function<void (GstBuffer *)> *> (data);
        if (buf) {
          std::function<void (GstBuffer *)> call = *h;
          run_on_main ([call, buf] {
                call (buf);
                gst_buffer_unref (buf);
              });
        }
        return GST_FLOW_OK;
      }), handler, [] (gpointer data, GClosure *) { delete static_cast<std::function<void (GstBuffer *)> *> (data); },
      (GConnectFlags) 0);
}

void
run_on_main (std::function<void ()> fn)
{
  auto p = new std::function<void ()> (std::move (fn));
  g_main_context_invoke_full (nullptr, G_PRIORITY_DEFAULT, [] (gpointer data) -> gboolean {
        (*static_cast<std::function<void ()> *> (data)) ();
        return G_SOURCE_REMOVE;
      }, p, [] (gpointer data) { delete static_cast<std::function<void ()> *> (data); });
}

}  // namespace wayray
