#pragma once

#include <memory>

#include "transfer/fetch_runner.h"

namespace imgpipe::transfer {

// The TaskRunner of an agent that has a transfer plane and, besides fetching, a job of its own
// (building, registering): fetch tasks go to the plane, every other task to `work`. Grants,
// inventory and free space are the plane's — the artifacts it holds are what it can serve.
class PlaneRunner : public agent::TaskRunner {
 public:
  PlaneRunner(std::shared_ptr<TransferPlane> plane, std::unique_ptr<agent::TaskRunner> work)
      : fetch_(plane), work_(std::move(work)) {}

  void run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
           std::stop_token stop) override {
    if (std::holds_alternative<agent::FetchSpec>(task.kind) || !work_) {
      fetch_.run(task, reporter, stop);
      return;
    }
    work_->run(task, reporter, stop);
  }
  void onGrant(const agent::GrantSpec& grant) override { fetch_.onGrant(grant); }
  std::vector<agent::ArtifactInfo> inventory() override { return fetch_.inventory(); }
  std::uint64_t freeBytes() override { return fetch_.freeBytes(); }

 private:
  FetchRunner fetch_;
  std::unique_ptr<agent::TaskRunner> work_;
};

}  // namespace imgpipe::transfer
