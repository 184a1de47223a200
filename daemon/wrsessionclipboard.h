/* A session's clipboard (docs/desktop.md, "Clipboard"): the session's
 * selections, as wayraysrc reports and serves them, joined to the attached
 * client's over the `clipboard` stream (wrclipboard.h).
 *
 * Only the admitted connection's messages count, and the session's
 * selections go to that connection alone; while no client is attached
 * nothing crosses, and a new client is told what the session holds.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrclipboard.h"

#include <gst/gst.h>

#include <functional>
#include <map>
#include <memory>

namespace wayray {

class SessionClipboard {
 public:
  SessionClipboard () = default;
  SessionClipboard (const SessionClipboard &) = delete;
  SessionClipboard &operator= (const SessionClipboard &) = delete;
  ~SessionClipboard ();

  /* Adds the stream's elements to @pipeline (sending through @net; what
   * comes from the client goes to sink ()) and follows @src's selections.
   * FALSE (and no clipboard) when @src has no selection signals or @net no
   * room. */
  bool start (GstElement *pipeline, GstElement *src, GstElement *net);
  /* Connection @conn was admitted: it is the one peer from now on. */
  void attach (guint64 conn);
  /* No client any more. */
  void detach ();
  /* Where the stream from the client goes (NULL without a clipboard);
   * the session's quicsrc handler links it. */
  GstElement *sink () const { return in_; }

 private:
  void receive (GstBuffer *buf);

  GstElement *src_ = nullptr, *out_ = nullptr, *in_ = nullptr;
  guint64 conn_ = 0;            /* the admitted connection, 0: none */
  ClipboardLink link_;
  std::map<guint, ClipboardLink::Done> reads_;   /* wayraysrc reads in flight */
  gulong handlers_[3] = { 0, 0, 0 };
  /* False once this is gone: work queued for the main loop from
   * streaming threads checks it first. */
  std::shared_ptr<bool> alive_ = std::make_shared<bool> (true);
};

}  // namespace wayray
