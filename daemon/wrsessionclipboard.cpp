/* A session's clipboard (see wrsessionclipboard.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrsessionclipboard.h"

#include "wrcontrol.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#include <string>
#include <vector>

namespace wayray {

static std::vector<std::string>
strv_to_vector (const gchar *const *strv)
{
  std::vector<std::string> out;
  for (; strv && *strv; strv++)
    out.push_back (*strv);
  return out;
}

SessionClipboard::~SessionClipboard ()
{
  *alive_ = false;
  for (gulong h : handlers_)
    if (h && src_)
      g_signal_handler_disconnect (src_, h);
  if (src_)
    gst_object_unref (src_);
}

bool
SessionClipboard::start (GstElement *pipeline, GstElement *src, GstElement *net)
{
  GType type = G_OBJECT_TYPE (src);
  if (!g_signal_lookup ("selection-changed", type) || !g_signal_lookup ("read-selection", type))
    return false;
  out_ = control_source_new ("wayrayd-clipboard-out", WAYRAY_CLIPBOARD_CAPS);
  in_ = control_sink_new ("wayrayd-clipboard-in", 0);
  gst_bin_add_many (GST_BIN (pipeline), out_, in_, nullptr);
  if (!link_to_stream (out_, net, "clipboard"))
    return false;
  src_ = GST_ELEMENT (gst_object_ref (src));
  std::shared_ptr<bool> alive = alive_;
  on_buffers_on_main (in_, [this, alive] (GstBuffer *buf) {
    if (*alive)
      receive (buf);
  });

  /* To the client: only the admitted connection gets anything. */
  link_.send = [this] (GstBuffer *buf) {
    if (!conn_) {
      gst_buffer_unref (buf);
      return;
    }
    buffer_set_connection (buf, conn_);
    gst_app_src_push_buffer (GST_APP_SRC (out_), buf);
  };
  /* The client's selection becomes the session's. */
  link_.peer_offered = [this] (Selection sel, const std::vector<std::string> &types) {
    std::vector<const gchar *> strv;
    for (const std::string &t : types)
      strv.push_back (t.c_str ());
    strv.push_back (nullptr);
    g_signal_emit_by_name (src_, "offer-selection", (gint) sel, strv.data ());
  };
  /* The client pastes the session's: wayraysrc reads it from the
   * application that holds it. */
  link_.read_local = [this] (Selection sel, const std::string &type, ClipboardLink::Done done) {
    guint request = 0;
    g_signal_emit_by_name (src_, "read-selection", (gint) sel, type.c_str (), &request);
    if (request == 0) {
      done (nullptr, "the session's selection is gone");
      return;
    }
    reads_[request] = std::move (done);
  };

  /* wayraysrc's signals come from its compositor thread. */
  handlers_[0] = g_signal_connect (src, "selection-changed", G_CALLBACK (+[] (GstElement *, gint sel,
          const gchar *const *types, gpointer data) {
        auto *self = static_cast<SessionClipboard *> (data);
        std::vector<std::string> list = strv_to_vector (types);
        std::shared_ptr<bool> alive = self->alive_;
        run_on_main ([self, alive, sel, list] {
              if (*alive)
                self->link_.local_offered ((Selection) sel, list);
            });
      }), this);
  handlers_[1] = g_signal_connect (src, "selection-read", G_CALLBACK (+[] (GstElement *, guint request,
          GBytes *bytes, const gchar *error, gpointer data) {
        auto *self = static_cast<SessionClipboard *> (data);
        GBytes *copy = bytes ? g_bytes_ref (bytes) : nullptr;
        std::string why = error ? error : "";
        std::shared_ptr<bool> alive = self->alive_;
        run_on_main ([self, alive, request, copy, why] {
              if (!*alive) {
                if (copy)
                  g_bytes_unref (copy);
                return;
              }
              auto it = self->reads_.find (request);
              if (it == self->reads_.end ()) {
                if (copy)
                  g_bytes_unref (copy);
                return;
              }
              ClipboardLink::Done done = std::move (it->second);
              self->reads_.erase (it);
              done (copy, why);
            });
      }), this);
  /* An application pastes the client's selection. */
  handlers_[2] = g_signal_connect (src, "selection-wanted", G_CALLBACK (+[] (GstElement *, gint sel,
          const gchar *type, guint request, gpointer data) {
        auto *self = static_cast<SessionClipboard *> (data);
        std::string t = type ? type : "";
        std::shared_ptr<bool> alive = self->alive_;
        run_on_main ([self, alive, sel, t, request] {
              if (!*alive)
                return;
              self->link_.fetch ((Selection) sel, t, [self, request] (GBytes *bytes, const std::string &error) {
                    if (!bytes)
                      GST_INFO ("clipboard: a paste from the client failed: %s", error.c_str ());
                    g_signal_emit_by_name (self->src_, "selection-data", request, bytes);
                    if (bytes)
                      g_bytes_unref (bytes);
                  });
            });
      }), this);
  return true;
}

void
SessionClipboard::receive (GstBuffer *buf)
{
  /* A message from any other connection than the admitted one (a
   * stranger, the client before) is dropped unread. */
  MessageOrigin origin = buffer_origin (buf);
  if (!conn_ || origin.conn_id != conn_)
    return;
  if (!link_.receive (buf))
    g_printerr ("clipboard: a malformed message from %s was dropped\n", origin.peer.c_str ());
}

void
SessionClipboard::attach (guint64 conn)
{
  if (!out_)
    return;
  link_.reset ();
  conn_ = conn;
  link_.resend ();
}

void
SessionClipboard::detach ()
{
  if (!out_)
    return;
  conn_ = 0;
  link_.reset ();
}

}  // namespace wayray
