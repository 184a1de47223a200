/* The client's smart card reader.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrsmartcard.h"

#include "wrcontrol.h"

#include <glib.h>

#include <chrono>

namespace wayray {

CardWatcher::~CardWatcher ()
{
  stop ();
}

void
CardWatcher::start (const std::string &reader, Callbacks callbacks)
{
  stop ();
  wanted = reader;
  cb = std::move (callbacks);
  stopping = false;
  last_status.clear ();
  thread = std::thread ([this] { run (); });
}

void
CardWatcher::stop ()
{
  if (!thread.joinable ())
    return;
  stopping = true;
  SCARDCONTEXT c = ctx.load ();
  if (c)
    SCardCancel (c);            /* ends a wait in SCardGetStatusChange */
  thread.join ();
}

/* A line for the user, once per change (from the thread). */
void
CardWatcher::say (const std::string &message)
{
  if (message == last_status)
    return;
  last_status = message;
  auto fn = cb.status;
  run_on_main ([fn, message] { fn (message); });
}

/* Sleeps @ms, or less when stopping. */
static void
nap (const std::atomic<bool> &stopping, int ms)
{
  for (int i = 0; i < ms / 50 && !stopping; i++)
    std::this_thread::sleep_for (std::chrono::milliseconds (50));
}

void
CardWatcher::run ()
{
  while (!stopping) {
    SCARDCONTEXT c = 0;
    LONG rc = SCardEstablishContext (SCARD_SCOPE_SYSTEM, nullptr, nullptr, &c);
    if (rc != SCARD_S_SUCCESS) {
      say ("the smart card service (pcscd) is not running");
      nap (stopping, 1000);
      continue;
    }
    ctx = c;
    std::string reader;
    if (!stopping && wait_for_reader (&reader))
      watch (reader);
    ctx = 0;
    SCardReleaseContext (c);
    if (!stopping)
      nap (stopping, 200);
  }
}

/* Until the reader wanted is there: pcscd's PnP notification tells when
 * readers come, polled each second for a pcscd without it. */
bool
CardWatcher::wait_for_reader (std::string *reader)
{
  while (!stopping) {
    std::vector<std::string> readers;
    std::string why;
    if (!card_readers (ctx, &readers, &why)) {
      say (why);
      return false;
    }
    *reader = card_pick_reader (readers, wanted);
    if (!reader->empty ())
      return true;
    say (wanted.empty () ? "no smart card reader is connected" : "the reader '" + wanted + "' is not connected");
    SCARD_READERSTATE pnp = {};
    pnp.szReader = "\\\\?PnP?\\Notification";
    pnp.dwCurrentState = (DWORD) readers.size () << 16;
    LONG rc = SCardGetStatusChange (ctx, 1000, &pnp, 1);
    if (rc != SCARD_S_SUCCESS && rc != SCARD_E_TIMEOUT)
      return false;             /* cancelled, or pcscd went away */
  }
  return false;
}

void
CardWatcher::watch (const std::string &reader)
{
  say ("reader " + reader);
  SCARD_READERSTATE st = {};
  st.szReader = reader.c_str ();
  st.dwCurrentState = SCARD_STATE_UNAWARE;
  bool present = false;
  DWORD events = 0;
  auto removed = [this, &reader] (gint64 when) {
    auto fn = cb.removed;
    run_on_main ([fn, reader, when] { fn (reader, when); });
  };
  while (!stopping) {
    LONG rc = SCardGetStatusChange (ctx, INFINITE, &st, 1);
    if (rc == SCARD_E_TIMEOUT)
      continue;
    gint64 now = g_get_monotonic_time ();
    DWORD state = st.dwEventState;
    bool gone = rc != SCARD_S_SUCCESS || (state & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE | SCARD_STATE_IGNORE));
    if (gone) {
      if (present)
        removed (now);
      if (rc == SCARD_S_SUCCESS)
        say ("the reader '" + reader + "' went away");
      return;
    }
    st.dwCurrentState = state & ~SCARD_STATE_CHANGED;
    bool here = (state & SCARD_STATE_PRESENT) != 0;
    /* pcscd counts insertions and removals in the top 16 bits: a card
     * taken out and put back between two looks is two events. */
    DWORD count = state >> 16;
    bool swapped = present && here && count != events;
    events = count;
    if (present && (!here || swapped)) {
      present = false;
      removed (now);
    }
    if (here && !present) {
      present = true;
      CardIdentity id;
      std::string why;
      bool ok = false;
      /* A card still being pushed in can fail its first exchanges while
       * its contacts settle: a few tries, each on a fresh connection
       * after a reset. */
      for (int i = 0; i < 5 && !stopping; i++) {
        SCARDHANDLE card = 0;
        DWORD protocol = 0;
        bool lost = false;
        rc = SCardConnect (ctx, reader.c_str (), SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card,
            &protocol);
        if (rc == SCARD_S_SUCCESS) {
          ok = card_identity_read (card, protocol, &id, &why, &lost);
          SCardDisconnect (card, lost ? SCARD_RESET_CARD : SCARD_LEAVE_CARD);
          if (ok || !lost)
            break;
        } else {
          why = "the card does not answer (" + pcsc_error (rc) + ")";
          if (rc == SCARD_E_NO_SMARTCARD || rc == SCARD_E_CANCELLED)
            break;
        }
        nap (stopping, 200);
      }
      if (ok) {
        auto fn = cb.inserted;
        run_on_main ([fn, reader, id, now] { fn (reader, id, now); });
      } else if (rc != SCARD_E_NO_SMARTCARD && !stopping) {
        auto fn = cb.unreadable;
        run_on_main ([fn, reader, why] { fn (reader, why); });
      } else
        present = false;        /* gone already: the next look says so */
    }
  }
}

}  // namespace wayray
