#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/process.h"

namespace imgpipe::test {

// A real HTTP proxy (Debian's tinyproxy) on 127.0.0.1, logging every request it forwards.
// Resource type: stopped on destruction.
class Tinyproxy {
 public:
  explicit Tinyproxy(const std::filesystem::path& dir);
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const;

 private:
  int port_;
  std::filesystem::path log_;
  std::unique_ptr<Daemon> daemon_;
};

// A real OCI distribution registry (Debian's docker-registry) on all addresses, plain HTTP,
// storing under `dir`. Resource type: stopped on destruction.
class Registry {
 public:
  explicit Registry(const std::filesystem::path& dir);
  int port() const { return port_; }
  std::string log() const { return daemon_->log(); }

 private:
  int port_;
  std::unique_ptr<Daemon> daemon_;
};

}  // namespace imgpipe::test
