#pragma once

// Helpers shared by the tests against a real Glance.

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "agent-glance/glance/auth_provider.h"
#include "agent-glance/http/http_client.h"
#include "agent-glance/registration/registrar.h"
#include "common/agent/task_runner.h"
#include "common/subprocess.h"
#include "tests/glance/spec_for.h"
#include "tests/support/local_openstack.h"

namespace imgpipe::test {

using json = nlohmann::json;

// Reads Glance directly (raw HTTP + JSON, not through the client under test), to check what
// the registrar left behind.
class GlanceProbe {
 public:
  explicit GlanceProbe(glance::AuthProvider& auth)
      : auth_(auth), http_(glance::http::HttpOptions{}) {}

  // The image document, or null when Glance answers 404.
  json get(const std::string& id) {
    auto r = call("GET", "/v2/images/" + id);
    if (r.status == 404) return nullptr;
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  }
  // Every (non-deleted) image of a build, in any state, hidden or not.
  std::vector<json> imagesOfBuild(const std::string& buildId) {
    std::vector<json> out;
    for (const char* hidden : {"false", "true"}) {
      // visibility=all: community images are left out of a plain listing.
      auto r = call(
          "GET", "/v2/images?visibility=all&imgpipe_build_id=" + buildId + "&os_hidden=" + hidden);
      EXPECT_EQ(r.status, 200) << r.body;
      json doc = json::parse(r.body);
      for (auto& i : doc["images"])
        out.push_back(i);
    }
    return out;
  }
  glance::http::Response call(const std::string& method, const std::string& path,
                              const std::string& body = "", const std::string& contentType = "") {
    glance::http::Request req{.method = method};
    req.url = auth_.imageEndpoint({}) + path;
    req.body = body;
    req.headers = auth_.headers({}).headers;
    req.headers.push_back({"Accept", "application/json"});
    if (!contentType.empty()) req.headers.push_back({"Content-Type", contentType});
    return http_.perform(req);
  }

 private:
  glance::AuthProvider& auth_;
  glance::http::HttpClient http_;
};

// Records what a registration reports.
struct Recorder {
  std::mutex mutex;
  std::vector<agent::ProgressInfo> progress;
  std::vector<std::string> logs;
  std::function<void(std::string_view)> onCheckpoint;

  glance::RegistrationObserver observer() {
    glance::RegistrationObserver o;
    o.progress = [this](const agent::ProgressInfo& p) {
      std::lock_guard l(mutex);
      progress.push_back(p);
    };
    o.log = [this](agent::LogLevel, const std::string& m) {
      std::lock_guard l(mutex);
      logs.push_back(m);
    };
    o.checkpoint = [this](std::string_view c) {
      if (onCheckpoint) onCheckpoint(c);
    };
    return o;
  }
  // The most retries any progress report counted (0 while every report is of a first attempt:
  // `imgpipe watch` then shows no "retries").
  unsigned maxRetries() {
    std::lock_guard l(mutex);
    unsigned n = 0;
    for (const auto& p : progress)
      n = std::max(n, p.retries);
    return n;
  }
  bool logged(const std::string& fragment) {
    std::lock_guard l(mutex);
    for (const auto& m : logs)
      if (m.find(fragment) != std::string::npos) return true;
    return false;
  }
};

// A TaskReporter that keeps everything, for runner-level tests.
struct RecordingReporter : agent::TaskReporter {
  Recorder record;
  std::optional<agent::TaskResultInfo> result;
  std::optional<agent::TaskFailureInfo> failure;
  void progress(const agent::ProgressInfo& p) override { record.observer().progress(p); }
  void log(agent::LogLevel l, const std::string&, const std::string& m, std::uint64_t) override {
    record.observer().log(l, m);
  }
  void completed(const agent::TaskResultInfo& r) override { result = r; }
  void failed(const agent::TaskFailureInfo& f) override { failure = f; }
};

inline std::string uniqueBuildId(const std::string& stem) {
  static std::mt19937_64 rng(std::random_device{}());
  return stem + "-" + std::to_string(rng() % 1000000000);
}

inline void writeText(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

// Polls `f` until it returns true or `limit` passes.
template <typename F>
bool eventually(F f, std::chrono::milliseconds limit,
                std::chrono::milliseconds every = std::chrono::milliseconds(100)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(every);
  }
  return f();
}

inline glance::RegistrationRequest requestFor(const TestArtifact& a, const std::string& buildId,
                                              const definition::ResolvedGlance& spec) {
  glance::RegistrationRequest r;
  r.jobId = "test";
  r.buildId = buildId;
  r.file = a.path;
  r.sha256 = a.sha256;
  r.sha512 = a.sha512;
  r.size = a.size;
  r.spec = spec;
  return r;
}

}  // namespace imgpipe::test
