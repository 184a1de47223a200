/* Failed logins per source address (see wrdoorlimit.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrdoorlimit.h"

#include <cmath>

namespace wayray {

std::string
FailureLimit::source_of (const std::string &peer)
{
  if (!peer.empty () && peer[0] == '[') {
    size_t close = peer.find (']');
    return close == std::string::npos ? peer : peer.substr (0, close + 1);
  }
  size_t colon = peer.find (':');
  if (colon != std::string::npos && peer.find (':', colon + 1) == std::string::npos)
    return peer.substr (0, colon);
  return peer;   /* no port, or a bare IPv6 address */
}

double
FailureLimit::refreshed (Budget &b, gint64 now_us) const
{
  if (now_us > b.at_us) {
    b.left = std::min (burst_, b.left + (double) (now_us - b.at_us) / (double) refill_us_);
    b.at_us = now_us;
  }
  return b.left;
}

bool
FailureLimit::allowed (const std::string &source, gint64 now_us, gint64 *wait_us)
{
  auto it = budgets_.find (source);
  if (burst_ <= 0 || it == budgets_.end () || refreshed (it->second, now_us) >= 1.0)
    return true;
  if (wait_us)
    *wait_us = (gint64) std::ceil ((1.0 - it->second.left) * (double) refill_us_);
  return false;
}

void
FailureLimit::failed (const std::string &source, gint64 now_us)
{
  if (burst_ <= 0)
    return;
  auto it = budgets_.find (source);
  if (it == budgets_.end ()) {
    if (budgets_.size () >= kMaxTracked)
      prune (now_us);
    it = budgets_.emplace (source, Budget { burst_, now_us }).first;
  }
  refreshed (it->second, now_us);
  it->second.left = std::max (0.0, it->second.left - 1.0);
}

/* Forgets addresses whose budget grew back in full; if all are still
 * spending, the oldest. The map stays bounded whatever the sources. */
void
FailureLimit::prune (gint64 now_us)
{
  for (auto it = budgets_.begin (); it != budgets_.end ();)
    it = refreshed (it->second, now_us) >= burst_ ? budgets_.erase (it) : std::next (it);
  while (budgets_.size () >= kMaxTracked) {
    auto oldest = budgets_.begin ();
    for (auto it = budgets_.begin (); it != budgets_.end (); ++it)
      if (it->second.at_us < oldest->second.at_us)
        oldest = it;
    budgets_.erase (oldest);
  }
}

}  // namespace wayray
