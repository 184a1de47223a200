/* The clipboard between a session and its client (docs/desktop.md,
 * "Clipboard"): what wayrayd and wayray-client both run on their `clipboard`
 * streams.
 *
 * Each end tells the other what its desktop's selections offer (types
 * only); data crosses only when someone pastes: the pasting end asks, the
 * owning end reads its own desktop's selection and answers. Two
 * selections: the clipboard and the primary selection (what is
 * highlighted, pasted with the middle button). Only plain text (UTF-8)
 * and PNG images cross, at most kClipboardMaxBytes per paste.
 *
 * One message per buffer: a control structure (at most 4096 bytes), a NUL,
 * then for `data` the bytes.
 *
 *   offer, selection=(string)clipboard|primary, serial=(uint)N, types=(string)"text/plain;charset=utf-8,image/png"
 *   request, selection=..., serial=(uint)N, id=(uint)R, type=(string)T
 *   data, id=(uint)R, type=(string)T            + the bytes
 *   failed, id=(uint)R, reason=(string)"..."
 *
 * An offer with no types: the selection was cleared. A request names the
 * offer it answers (its serial); one for an offer that has been replaced
 * since fails ("the selection changed").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace wayray {

#define WAYRAY_CLIPBOARD_CAPS "application/x-wayray-clipboard,version=(int)1"
constexpr gsize kClipboardMaxBytes = 16 * 1024 * 1024;
/* A paste the peer has not answered within this long fails. */
constexpr guint kClipboardTimeoutS = 10;

enum class Selection { Clipboard = 0, Primary = 1 };
const char *selection_name (Selection s);

/* The types that cross, in order of preference; anything else an
 * application offers stays on its side. */
constexpr const char *kClipboardText = "text/plain;charset=utf-8";
constexpr const char *kClipboardPng = "image/png";
/* @types less what does not cross; plain text types an application
 * offers ("text/plain", "UTF8_STRING", "STRING", "TEXT") count as
 * kClipboardText. */
std::vector<std::string> clipboard_types (const std::vector<std::string> &types);

GstBuffer *clipboard_message_new (const GstStructure *head, GBytes *payload = nullptr);
/* FALSE for anything malformed (no NUL in the first 4097 bytes, a head
 * that does not parse, bytes after a head that is not `data`, more than
 * kClipboardMaxBytes). */
bool clipboard_message_parse (GstBuffer *buf, GstStructure **head, GBytes **payload);

class ClipboardLink {
 public:
  /* @data (owned by the callee, NULL on failure) or @error. */
  using Done = std::function<void (GBytes *data, const std::string &error)>;

  ClipboardLink () = default;
  ClipboardLink (const ClipboardLink &) = delete;
  ClipboardLink &operator= (const ClipboardLink &) = delete;
  ~ClipboardLink ();

  /* What this end does; set before use. All calls on the main loop. */
  std::function<void (GstBuffer *)> send;                /* a message to the peer (owned) */
  /* The peer's selection now offers @types (empty: it has none): this
   * end's desktop gets a selection that pastes from the peer. */
  std::function<void (Selection, const std::vector<std::string> &)> peer_offered;
  /* The peer pastes: read this end's selection as @type, then call @done
   * exactly once. */
  std::function<void (Selection, const std::string &, Done)> read_local;

  /* This end's desktop has a new selection offering @types (empty:
   * none). Types that do not cross are left out; a selection that offers
   * nothing that crosses is offered as none. */
  void local_offered (Selection sel, const std::vector<std::string> &types);
  /* Pastes the peer's selection as @type: @done gets its bytes, or why
   * not (nothing offered, the type not offered, the peer failed or took
   * longer than kClipboardTimeoutS). */
  void fetch (Selection sel, const std::string &type, Done done);
  const std::vector<std::string> &peer_types (Selection sel) const { return peer_types_[(int) sel]; }
  /* A message from the peer; FALSE if it was malformed (dropped). */
  bool receive (GstBuffer *buf);
  /* The peer is gone: pastes waiting for it fail, its offers are
   * forgotten (peer_offered with none), and this end's offers are sent
   * again to the next peer by resend (). */
  void reset ();
  /* Offers this end's current selections again (to a new peer). */
  void resend ();

 private:
  struct Pending {
    Done done;
    guint timer = 0;
  };
  void answer_request (const GstStructure *head);
  void finish (guint32 id, GBytes *data, const std::string &error);
  void send_offer (Selection sel);

  guint32 local_serial_[2] = { 0, 0 };
  std::vector<std::string> local_types_[2];
  guint32 peer_serial_[2] = { 0, 0 };
  std::vector<std::string> peer_types_[2];
  guint32 next_id_ = 1;
  std::map<guint32, Pending> pending_;
};

}  // namespace wayray
