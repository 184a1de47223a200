/* The front door's limit on failed logins per source address: each
 * address has a budget of failures (unknown tokens, refused accounts) that
 * refills slowly; once spent, every hello from that address is refused
 * without looking at its token until the budget grows back, so guessing
 * tokens costs time, and one noisy address does not slow anyone else
 * (docs/wayrayd.md, "The front door").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include <map>
#include <string>

namespace wayray {

class FailureLimit {
public:
  /* @burst failures at once, then one more per @refill_us. */
  FailureLimit (double burst = 10, gint64 refill_us = 3 * G_USEC_PER_SEC)
      : burst_ (burst), refill_us_ (refill_us) {}

  /* @burst 0: no limit. */
  void set_rate (double burst, gint64 refill_us) { burst_ = burst; refill_us_ = MAX (refill_us, 1); }

  /* Whether @source may try now; if not, @wait_us says for how long not. */
  bool allowed (const std::string &source, gint64 now_us, gint64 *wait_us = nullptr);
  /* A failure from @source spends one of its budget. */
  void failed (const std::string &source, gint64 now_us);
  size_t tracked () const { return budgets_.size (); }

  /* "ADDRESS" of "ADDRESS:PORT" ("[v6]:port" too). */
  static std::string source_of (const std::string &peer);

private:
  struct Budget {
    double left;
    gint64 at_us;
  };
  double refreshed (Budget &b, gint64 now_us) const;
  void prune (gint64 now_us);

  double burst_;
  gint64 refill_us_;
  std::map<std::string, Budget> budgets_;
  static constexpr size_t kMaxTracked = 8192;
};

}  // namespace wayray
