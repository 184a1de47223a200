/* A pool of worker threads that live as long as their owner.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayrayworkers.h"

#include <algorithm>

namespace wayray {
namespace tiles {

WorkerPool::WorkerPool (unsigned lanes) : lanes_ (std::max (1u, lanes)) {}

WorkerPool::~WorkerPool ()
{
  {
    std::lock_guard<std::mutex> g (lock_);
    quit_ = true;
  }
  start_.notify_all ();
  for (auto &t : threads_)
    t.join ();
}

void
WorkerPool::loop (unsigned lane)
{
  unsigned long seen = 0;
  std::unique_lock<std::mutex> g (lock_);
  for (;;) {
    start_.wait (g, [&] { return quit_ || generation_ != seen; });
    if (quit_)
      return;
    seen = generation_;
    const std::function<void (unsigned)> *fn = job_;
    g.unlock ();
    (*fn) (lane);
    g.lock ();
    if (--busy_ == 0)
      done_.notify_one ();
  }
}

void
WorkerPool::run (const std::function<void (unsigned)> &fn)
{
  if (lanes_ == 1) {
    fn (0);
    return;
  }
  {
    std::lock_guard<std::mutex> g (lock_);
    if (threads_.empty ())
      for (unsigned k = 1; k < lanes_; k++)
        threads_.emplace_back (&WorkerPool::loop, this, k);
    job_ = &fn;
    busy_ = lanes_ - 1;
    generation_++;
  }
  start_.notify_all ();
  fn (0);
  std::unique_lock<std::mutex> g (lock_);
  done_.wait (g, [&] { return busy_ == 0; });
  job_ = nullptr;
}

}                               /* namespace tiles */
}                               /* namespace wayray */
