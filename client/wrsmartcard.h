/* The client's smart card reader: a thread that waits on pcscd for a card
 * to come and go (SCardGetStatusChange) and tells the main loop.
 *
 * It watches one reader: the one named (its whole name or the start of
 * it), else the first pcscd knows. Readers plugged in later are found
 * (pcscd's PnP notification); a pcscd that is not running yet is waited
 * for. Every callback runs on the main loop.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrcard.h"

#include <glib.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace wayray {

class CardWatcher {
public:
  struct Callbacks {
    /* A card came and its identity was read; @seen_us is when pcscd
     * said so (g_get_monotonic_time ()). */
    std::function<void (const std::string &reader, const CardIdentity &id, gint64 seen_us)> inserted;
    /* A card came that has no identity WayRay reads (wrcard.h). */
    std::function<void (const std::string &reader, const std::string &why)> unreadable;
    /* The card went (or its reader did). */
    std::function<void (const std::string &reader, gint64 seen_us)> removed;
    /* No reader, no pcscd, a reader found: for the user to read. */
    std::function<void (const std::string &message)> status;
  };

  CardWatcher () = default;
  ~CardWatcher ();
  CardWatcher (const CardWatcher &) = delete;
  CardWatcher &operator= (const CardWatcher &) = delete;

  void start (const std::string &reader, Callbacks cb);
  void stop ();

private:
  void run ();
  bool wait_for_reader (std::string *reader);
  void watch (const std::string &reader);
  void say (const std::string &message);

  std::string wanted;
  Callbacks cb;
  std::thread thread;
  std::atomic<bool> stopping { false };
  std::atomic<SCARDCONTEXT> ctx { 0 };
  std::string last_status;
};

}  // namespace wayray
