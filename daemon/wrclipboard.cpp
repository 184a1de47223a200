/* The clipboard between a session and its client (see wrclipboard.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrclipboard.h"

#include "wrcontrol.h"

#include <cstring>

namespace wayray {

const char *
selection_name (Selection s)
{
  return s == Selection::Primary ? "primary" : "clipboard";
}

static bool
parse_selection (const GstStructure *s, Selection *sel)
{
  const gchar *name = gst_structure_get_string (s, "selection");
  if (g_strcmp0 (name, "clipboard") == 0)
    *sel = Selection::Clipboard;
  else if (g_strcmp0 (name, "primary") == 0)
    *sel = Selection::Primary;
  else
    return false;
  return true;
}

std::vector<std::string>
clipboard_types (const std::vector<std::string> &types)
{
  bool text = false, png = false;
  for (const std::string &t : types) {
    if (t == kClipboardText || t == "text/plain" || t == "UTF8_STRING" || t == "STRING" || t == "TEXT")
      text = true;
    else if (t == kClipboardPng)
      png = true;
  }
  std::vector<std::string> out;
  if (text)
    out.push_back (kClipboardText);
  if (png)
    out.push_back (kClipboardPng);
  return out;
}

static bool
known_type (const gchar *t)
{
  return g_strcmp0 (t, kClipboardText) == 0 || g_strcmp0 (t, kClipboardPng) == 0;
}

GstBuffer *
clipboard_message_new (const GstStructure *head, GBytes *payload)
{
  gchar *text = gst_structure_serialize (head, GST_SERIALIZE_FLAG_NONE);
  gsize len = strlen (text) + 1;     /* with its NUL */
  gsize extra = payload ? g_bytes_get_size (payload) : 0;
  GstBuffer *buf = gst_buffer_new_allocate (nullptr, len + extra, nullptr);
  gst_buffer_fill (buf, 0, text, len);
  if (extra)
    gst_buffer_fill (buf, len, g_bytes_get_data (payload, nullptr), extra);
  g_free (text);
  return buf;
}

bool
clipboard_message_parse (GstBuffer *buf, GstStructure **head, GBytes **payload)
{
  *head = nullptr;
  *payload = nullptr;
  gsize size = gst_buffer_get_size (buf);
  GstMapInfo map;
  if (size == 0 || !gst_buffer_map (buf, &map, GST_MAP_READ))
    return false;
  const char *p = (const char *) map.data;
  const void *nul = memchr (p, '\0', MIN (size, MAX_CONTROL_MESSAGE + 1));
  bool ok = nul != nullptr;
  gsize head_len = ok ? (const char *) nul - p : 0;
  gsize rest = ok ? size - head_len - 1 : 0;
  if (ok && (head_len == 0 || !g_utf8_validate (p, head_len, nullptr) || rest > kClipboardMaxBytes))
    ok = false;
  if (ok) {
    *head = gst_structure_from_string (p, nullptr);
    ok = *head != nullptr && (rest == 0 || gst_structure_has_name (*head, "data"));
  }
  if (ok && rest > 0)
    *payload = g_bytes_new (p + head_len + 1, rest);
  gst_buffer_unmap (buf, &map);
  if (!ok && *head) {
    gst_structure_free (*head);
    *head = nullptr;
  }
  return ok;
}

ClipboardLink::~ClipboardLink ()
{
  for (auto &p : pending_)
    if (p.second.timer)
      g_source_remove (p.second.timer);
}

void
ClipboardLink::send_offer (Selection sel)
{
  std::string list;
  for (const std::string &t : local_types_[(int) sel])
    list += (list.empty () ? "" : ",") + t;
  GstStructure *s = gst_structure_new ("offer", "selection", G_TYPE_STRING, selection_name (sel), "serial",
      G_TYPE_UINT, local_serial_[(int) sel], "types", G_TYPE_STRING, list.c_str (), nullptr);
  if (send)
    send (clipboard_message_new (s));
  gst_structure_free (s);
}

void
ClipboardLink::local_offered (Selection sel, const std::vector<std::string> &types)
{
  local_types_[(int) sel] = clipboard_types (types);
  local_serial_[(int) sel]++;
  send_offer (sel);
}

void
ClipboardLink::resend ()
{
  for (Selection sel : { Selection::Clipboard, Selection::Primary })
    if (local_serial_[(int) sel])
      send_offer (sel);
}

void
ClipboardLink::fetch (Selection sel, const std::string &type, Done done)
{
  const std::vector<std::string> &types = peer_types_[(int) sel];
  if (types.empty ()) {
    done (nullptr, std::string ("the ") + selection_name (sel) + " is empty");
    return;
  }
  bool offered = false;
  for (const std::string &t : types)
    offered = offered || t == type;
  if (!offered) {
    done (nullptr, "the " + std::string (selection_name (sel)) + " holds no " + type);
    return;
  }
  guint32 id = next_id_++;
  Pending &p = pending_[id];
  p.done = std::move (done);
  struct Timeout {
    ClipboardLink *link;
    guint32 id;
  };
  p.timer = g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, kClipboardTimeoutS, [] (gpointer data) -> gboolean {
        auto *t = static_cast<Timeout *> (data);
        auto it = t->link->pending_.find (t->id);
        if (it != t->link->pending_.end ())
          it->second.timer = 0;
        t->link->finish (t->id, nullptr, "no answer within " + std::to_string (kClipboardTimeoutS) + " s");
        return G_SOURCE_REMOVE;
      }, new Timeout { this, id }, [] (gpointer data) { delete static_cast<Timeout *> (data); });
  GstStructure *s = gst_structure_new ("request", "selection", G_TYPE_STRING, selection_name (sel), "serial",
      G_TYPE_UINT, peer_serial_[(int) sel], "id", G_TYPE_UINT, id, "type", G_TYPE_STRING, type.c_str (), nullptr);
  if (send)
    send (clipboard_message_new (s));
  gst_structure_free (s);
}

void
ClipboardLink::finish (guint32 id, GBytes *data, const std::string &error)
{
  auto it = pending_.find (id);
  if (it == pending_.end ()) {
    if (data)
      g_bytes_unref (data);
    return;
  }
  Pending p = std::move (it->second);
  pending_.erase (it);
  if (p.timer)
    g_source_remove (p.timer);
  p.done (data, error);
}

void
ClipboardLink::answer_request (const GstStructure *head)
{
  Selection sel;
  guint serial = 0, id = 0;
  const gchar *type = gst_structure_get_string (head, "type");
  if (!parse_selection (head, &sel) || !gst_structure_get_uint (head, "serial", &serial) ||
      !gst_structure_get_uint (head, "id", &id) || !type)
    return;
  auto fail = [this, id] (const std::string &why) {
    GstStructure *s = gst_structure_new ("failed", "id", G_TYPE_UINT, id, "reason", G_TYPE_STRING, why.c_str (),
        nullptr);
    if (send)
      send (clipboard_message_new (s));
    gst_structure_free (s);
  };
  bool offered = false;
  for (const std::string &t : local_types_[(int) sel])
    offered = offered || t == type;
  if (serial != local_serial_[(int) sel] || !offered || !read_local) {
    fail (serial != local_serial_[(int) sel] ? "the selection changed" : "not offered");
    return;
  }
  std::string t (type);
  read_local (sel, t, [this, id, t, fail] (GBytes *data, const std::string &error) {
        if (!data) {
          fail (error.empty () ? "could not be read" : error);
          return;
        }
        if (g_bytes_get_size (data) > kClipboardMaxBytes) {
          g_bytes_unref (data);
          fail ("larger than the clipboard's limit of " + std::to_string (kClipboardMaxBytes >> 20) + " MiB");
          return;
        }
        GstStructure *s = gst_structure_new ("data", "id", G_TYPE_UINT, id, "type", G_TYPE_STRING, t.c_str (),
            nullptr);
        if (send)
          send (clipboard_message_new (s, data));
        gst_structure_free (s);
        g_bytes_unref (data);
      });
}

bool
ClipboardLink::receive (GstBuffer *buf)
{
  GstStructure *head = nullptr;
  GBytes *payload = nullptr;
  if (!clipboard_message_parse (buf, &head, &payload))
    return false;
  bool ok = true;
  guint id = 0;
  Selection sel;
  if (gst_structure_has_name (head, "offer")) {
    guint serial = 0;
    const gchar *types = gst_structure_get_string (head, "types");
    ok = parse_selection (head, &sel) && gst_structure_get_uint (head, "serial", &serial) && types;
    if (ok) {
      std::vector<std::string> list;
      gchar **parts = g_strsplit (types, ",", 9);
      for (gchar **t = parts; *t; t++) {
        bool seen = false;
        for (const std::string &have : list)
          seen = seen || have == *t;
        if (known_type (*t) && !seen)
          list.push_back (*t);
      }
      g_strfreev (parts);
      peer_serial_[(int) sel] = serial;
      peer_types_[(int) sel] = list;
      if (peer_offered)
        peer_offered (sel, list);
    }
  } else if (gst_structure_has_name (head, "request")) {
    answer_request (head);
  } else if (gst_structure_has_name (head, "data") && gst_structure_get_uint (head, "id", &id)) {
    finish (id, payload ? g_bytes_ref (payload) : g_bytes_new (nullptr, 0), "");
  } else if (gst_structure_has_name (head, "failed") && gst_structure_get_uint (head, "id", &id)) {
    const gchar *why = gst_structure_get_string (head, "reason");
    finish (id, nullptr, std::string ("the other side: ") + (why ? why : "failed"));
  } else {
    ok = false;
  }
  gst_structure_free (head);
  if (payload)
    g_bytes_unref (payload);
  return ok;
}

void
ClipboardLink::reset ()
{
  std::vector<guint32> ids;
  for (auto &p : pending_)
    ids.push_back (p.first);
  for (guint32 id : ids)
    finish (id, nullptr, "the other side went away");
  for (Selection sel : { Selection::Clipboard, Selection::Primary }) {
    bool had = !peer_types_[(int) sel].empty ();
    peer_types_[(int) sel].clear ();
    peer_serial_[(int) sel] = 0;
    if (had && peer_offered)
      peer_offered (sel, {});
  }
}

}  // namespace wayray
