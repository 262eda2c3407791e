#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace imgpipe::glance {

// Where a credential comes from. Value type that never holds the secret itself: the secret is
// read when it is needed (so a rotated file is picked up) and is not printable, so it cannot end
// up in a log line or in --json output by accident.
struct SecretSource {
  std::filesystem::path file;  // first line of the file, trailing newline removed
  std::string env;             // name of an environment variable

  // Takes the variable's value out of the environment, into this source: no child process
  // (qemu-img, anything a library starts) can inherit it. Called once, when the config is read.
  void takeFromEnvironment();

  bool empty() const { return file.empty() && env.empty(); }
  // "file /etc/imgpipe/glance-password" or "environment variable OS_PASSWORD" — safe to show.
  std::string describe() const;
  // Throws Error naming the file or variable (never the value) when it is missing or empty.
  std::string read() const;

 private:
  // The environment variable's value, once taken; shared by copies, never printed.
  std::shared_ptr<const std::string> taken_;
};

}  // namespace imgpipe::glance
