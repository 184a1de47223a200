/* libFuzzer target: clipboard messages (wrclipboard.h), input from the
 * network on both ends. Whatever parses is handled by a ClipboardLink as a
 * peer's message would be: offers, requests (answered from a local
 * selection), data and failures for pastes that may not exist.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrclipboard.h"

#include <gst/gst.h>

#include <cstdint>

using namespace wayray;

static ClipboardLink *peer_link;
static size_t sent;

extern "C" int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  gst_init (argc, argv);
  peer_link = new ClipboardLink ();
  peer_link->send = [] (GstBuffer *buf) {
    sent += gst_buffer_get_size (buf);
    gst_buffer_unref (buf);
  };
  peer_link->peer_offered = [] (Selection, const std::vector<std::string> &types) {
    if (types.size () > 2)
      __builtin_trap ();      /* only the two known types cross */
  };
  peer_link->read_local = [] (Selection, const std::string &type, ClipboardLink::Done done) {
    done (g_bytes_new (type.data (), type.size ()), "");
  };
  /* A selection of this end's, so that requests have something to ask. */
  peer_link->local_offered (Selection::Clipboard, { "text/plain;charset=utf-8", "image/png", "x-unknown" });
  return 0;
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  GstBuffer *buf = size ? gst_buffer_new_memdup (data, size) : gst_buffer_new ();
  GstStructure *head = nullptr;
  GBytes *payload = nullptr;
  bool ok = clipboard_message_parse (buf, &head, &payload);
  if (ok != (head != nullptr) || (payload && !ok))
    __builtin_trap ();
  if (head)
    gst_structure_free (head);
  if (payload) {
    if (g_bytes_get_size (payload) > kClipboardMaxBytes)
      __builtin_trap ();
    g_bytes_unref (payload);
  }
  /* What the parser refuses, the link never takes (it may refuse more:
   * a well-formed message it has no use for). */
  if (peer_link->receive (buf) && !ok)
    __builtin_trap ();
  gst_buffer_unref (buf);
  return 0;
}
