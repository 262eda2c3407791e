#pragma once

#include <filesystem>
#include <string>

namespace imgpipe::glance {

// Where a credential comes from. Value type that never holds the secret itself: the secret is
// read when it is needed (so a rotated file is picked up) and is not printable, so it cannot end
// up in a log line or in --json output by accident.
struct SecretSource {
  std::filesystem::path file;  // first line of the file, trailing newline removed
  std::string env;             // name of an environment variable

  bool empty() const { return file.empty() && env.empty(); }
  // "file /etc/imgpipe/glance-password" or "environment variable OS_PASSWORD" — safe to show.
  std::string describe() const;
  // Throws Error naming the file or variable (never the value) when it is missing or empty.
  std::string read() const;
};

}  // namespace imgpipe::glance
