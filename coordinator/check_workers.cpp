#include "coordinator/check_workers.h"

#include <system_error>
#include <thread>

namespace imgpipe::coord {

CheckWorkers::CheckWorkers(unsigned limit, Post post)
    : limit_(limit), shared_(std::make_shared<Shared>()) {
  shared_->post = std::move(post);
}

CheckWorkers::~CheckWorkers() {
  std::lock_guard lock(shared_->mutex);
  shared_->post = nullptr;
}

unsigned CheckWorkers::running() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->running;
}

bool CheckWorkers::start(std::function<SubmissionPlan()> plan,
                         std::function<void(SubmissionPlan)> done) {
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->running >= limit_) return false;
    ++shared_->running;
  }
  auto check = [shared = shared_, plan = std::move(plan), done = std::move(done)]() mutable {
    SubmissionPlan result;
    try {
      result = plan();
    } catch (const std::exception& e) {
      result = {{}, Error(std::string("checking the definition failed: ") + e.what())};
    }
    std::lock_guard lock(shared->mutex);
    --shared->running;
    if (!shared->post) return;
    shared->post([shared, done = std::move(done), result = std::move(result)]() mutable {
      bool open = false;
      {
        std::lock_guard owner(shared->mutex);
        open = static_cast<bool>(shared->post);
      }
      // The owner is destroyed on this thread, so it is either still here or gone for good.
      if (open) done(std::move(result));
    });
  };
  try {
    std::thread(std::move(check)).detach();
  } catch (const std::system_error&) {  // no thread to be had: as good as busy
    std::lock_guard lock(shared_->mutex);
    --shared_->running;
    return false;
  }
  return true;
}

}  // namespace imgpipe::coord
