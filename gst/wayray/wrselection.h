/* The session's selections (clipboard and primary) as wayraysrc shows them
 * to the outside (docs/wayraysrc.md, "Clipboard"): what the session's
 * applications offer, read on request; and selections offered from outside
 * (the client's), served to the applications that paste them.
 *
 * Runs on the compositor thread, on its event loop: reading and writing
 * the applications' pipes never blocks it. A read stops at kMaxBytes or
 * after kTimeoutMs; a paste nobody answers fails after kTimeoutMs.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrwlroots.h"

#include <glib.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace wayray {

class Selections {
 public:
  static constexpr gsize kMaxBytes = 16 * 1024 * 1024;
  static constexpr int kTimeoutMs = 10000;

  /* 0: the clipboard, 1: the primary selection. */
  struct Callbacks {
    /* An application set a selection offering @types (empty: none). */
    std::function<void (int sel, const std::vector<std::string> &types)> changed;
    /* A read () finished: @data (owned by the callee) or @error. */
    std::function<void (guint request, GBytes *data, const std::string &error)> read_done;
    /* An application pastes the outside selection as @type: answer with
     * provide (@request, ...). */
    std::function<void (int sel, const std::string &type, guint request)> wanted;
  };

  Selections (wl_display *display, wlr_seat *seat, Callbacks callbacks);
  ~Selections ();
  Selections (const Selections &) = delete;
  Selections &operator= (const Selections &) = delete;

  /* The outside now offers @types as selection @sel (empty: nothing; an
   * application's selection is then left alone). */
  void offer (int sel, const std::vector<std::string> &types);
  /* Reads the applications' selection @sel as @type; read_done (@id, ...)
   * tells the result, at once when there is none (or it is the outside's
   * own). @id is the caller's, below kWriteIds. */
  void read (guint id, int sel, const std::string &type);
  static constexpr guint kWriteIds = 0x80000000u;
  /* The bytes for paste @request (NULL: it failed). */
  void provide (guint request, GBytes *data);

  struct Transfer;
  struct Source;

 private:
  void seat_selection_changed (int sel);
  void end_transfer (guint id, const char *error);
  static int on_readable (int fd, uint32_t mask, void *data);
  static int on_writable (int fd, uint32_t mask, void *data);
  static int on_timeout (void *data);
  friend struct Source;

  wl_display *display_;
  wl_event_loop *loop_;
  wlr_seat *seat_;
  Callbacks cb_;
  Listener set_selection_, set_primary_, request_primary_;
  guint next_write_id_ = kWriteIds;
  std::map<guint, std::unique_ptr<Transfer>> transfers_;
  /* Our own sources (the outside's offers), while a seat holds them. */
  Source *sources_[2] = { nullptr, nullptr };
};

}  // namespace wayray
