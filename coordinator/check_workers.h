#pragma once

// Definition checks off the reactor thread: each submit's plan (submission_plan.h) is made on a
// thread of its own, at most `limit` at once, and its result is handed back through `post` (the
// reactor's), so a definition that is slow to check never keeps the coordinator from answering.

#include <functional>
#include <memory>
#include <mutex>

#include "coordinator/submission_plan.h"

namespace imgpipe::coord {

class CheckWorkers {
 public:
  // Thread-safe: runs a function on the owner's thread soon (net::Reactor::post).
  using Post = std::function<void(std::function<void()>)>;

  CheckWorkers(unsigned limit, Post post);
  // Results not yet handed back are dropped; checks still running end on their own.
  ~CheckWorkers();
  CheckWorkers(const CheckWorkers&) = delete;
  CheckWorkers& operator=(const CheckWorkers&) = delete;

  // Runs `plan` on a thread and then `done` with its result on the owner's thread, unless the
  // CheckWorkers is gone by then. false, and nothing runs, when `limit` checks are running. An
  // exception out of `plan` becomes a refusal of kind failed.
  bool start(std::function<SubmissionPlan()> plan, std::function<void(SubmissionPlan)> done);
  unsigned running() const;
  unsigned limit() const { return limit_; }

 private:
  // What a check's thread shares with its owner. A thread cannot be stopped from outside, so a
  // check the engine gave up waiting for (definition_check_timeout) runs on to its end; it holds
  // its slot until then, which is how `limit` bounds the cores and memory such checks can take.
  // The threads are detached and hold only this: shutting down never waits for a check that may
  // not end, and a result never reaches an engine that is gone.
  struct Shared {
    std::mutex mutex;
    Post post;  // empty once the owner is gone
    unsigned running = 0;
  };

  unsigned limit_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace imgpipe::coord
