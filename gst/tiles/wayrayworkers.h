/* A pool of worker threads that live as long as their owner: the tile
 * encoder spreads a large update's compression over them, without starting
 * and joining threads for every frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wayray {
namespace tiles {

class WorkerPool {
public:
  /* @lanes: how many run at once, the calling thread included (so
   * lanes - 1 threads are started, on first use). */
  explicit WorkerPool (unsigned lanes = 1);
  ~WorkerPool ();
  WorkerPool (const WorkerPool &) = delete;
  WorkerPool &operator= (const WorkerPool &) = delete;

  unsigned lanes () const { return lanes_; }

  /* Calls @fn (k) for every k in [0, lanes): lane 0 on the calling thread,
   * the others on the pool's threads; returns when all have returned. One
   * caller at a time. */
  void run (const std::function<void (unsigned)> &fn);

private:
  void loop (unsigned lane);

  unsigned lanes_;
  std::vector<std::thread> threads_;
  std::mutex lock_;
  std::condition_variable start_, done_;
  const std::function<void (unsigned)> *job_ = nullptr;
  unsigned long generation_ = 0;
  unsigned busy_ = 0;
  bool quit_ = false;
};

}                               /* namespace tiles */
}                               /* namespace wayray */
