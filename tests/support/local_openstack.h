#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "common/temp_dir.h"

namespace imgpipe::test {

struct LocalOpenStackOptions {
  bool keystone = false;        // also run Keystone; Glance then validates its tokens
  int tokenExpirationS = 3600;  // Keystone's [token] expiration
  int firstPort = 19292;        // ports are taken from here upwards, checked free
  // Prepended to the servers' command lines and health checks, e.g. {"ip", "netns", "exec", NS}
  // to run them in another network namespace (where 127.0.0.1 is that namespace's own).
  std::vector<std::string> launchPrefix;
};

// Debian's glance-api (and Keystone under uwsgi) on loopback, each under one temporary
// directory with its own config, sqlite database and file store. Resource type: the servers are
// child processes of the test (they die with it, even on SIGKILL of the test) and the directory
// is removed on destruction, whether the test passed or not. Setup is done by
// tests/support/openstack-local.sh, which the quickstart uses too.
//
// Without Keystone, Glance runs the trusted-headers ("fakeauth") pipeline: requests need
// X-Identity-Status: Confirmed, X-Roles and X-Project-Id (projectId() below).
class LocalOpenStack {
 public:
  explicit LocalOpenStack(LocalOpenStackOptions options = {});
  ~LocalOpenStack();
  LocalOpenStack(const LocalOpenStack&) = delete;
  LocalOpenStack& operator=(const LocalOpenStack&) = delete;

  std::string glanceUrl() const;    // http://127.0.0.1:PORT
  std::string keystoneUrl() const;  // http://127.0.0.1:PORT/v3 ("" without Keystone)
  const std::filesystem::path& dir() const { return dir_.path(); }
  // The project of the trusted-headers mode.
  static constexpr const char* kProjectId = "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6";
  // Ids written by the Keystone seed (IMGPIPE_USER_ID, IMGPIPE_PROJECT_ID, ...).
  std::string id(const std::string& key) const;

  void killGlance();   // SIGKILL: an outage mid-request, as a crash would cause
  void startGlance();  // again, same database and store; waits until healthy
  bool glanceRunning() const { return glance_.has_value(); }

  static std::filesystem::path script();  // tests/support/openstack-local.sh

 private:
  void spawn(std::optional<Subprocess>& slot, const std::string& command,
             const std::string& healthUrl);

  LocalOpenStackOptions options_;
  TempDir dir_;
  int glancePort_ = 0;
  int keystonePort_ = 0;
  std::map<std::string, std::string> ids_;
  std::optional<Subprocess> keystone_;
  std::optional<Subprocess> glance_;
};

struct TestArtifact {
  std::filesystem::path path;
  std::string sha256, sha512;  // hex
  std::uint64_t size = 0;
};

// A real qcow2 with `dataMiB` of random data in a `virtualMiB` disk (qemu-img convert from raw).
TestArtifact makeQcow2(const std::filesystem::path& path, unsigned virtualMiB, unsigned dataMiB);
// Hashes an existing file.
TestArtifact describeFile(const std::filesystem::path& path);

}  // namespace imgpipe::test
