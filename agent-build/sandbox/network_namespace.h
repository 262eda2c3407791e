#pragma once

// A network namespace of the build's own, named by a bind mount on a file in the build child's
// private mount namespace (so nothing of it is left on the host when the build ends): what
// `sandbox-exec --netns` joins. Its loopback is up; `setup` runs on a thread inside it before it
// is named, for what must be made in it (the proxy gate's listening sockets).

#include <filesystem>
#include <functional>

namespace imgpipe::build {

// Resource type: the bind mount (and with it the namespace, once nothing else holds it).
class NetworkNamespace {
 public:
  // Throws Error (with errno) when the namespace cannot be made or named; anything `setup`
  // throws comes through, with nothing left behind.
  explicit NetworkNamespace(std::filesystem::path file, const std::function<void()>& setup = {});
  ~NetworkNamespace();
  NetworkNamespace(const NetworkNamespace&) = delete;
  NetworkNamespace& operator=(const NetworkNamespace&) = delete;

  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
};

}  // namespace imgpipe::build
