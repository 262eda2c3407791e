#include "common/net/unix_address.h"

#include <sys/socket.h>

#include <cstring>

#include "common/error.h"

namespace imgpipe {

sockaddr_un unixAddress(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string& p = path.native();
  if (p.empty() || p.size() >= sizeof addr.sun_path)
    throw Error("the unix socket path " + p + " is " +
                (p.empty() ? std::string("empty")
                           : "too long (" + std::to_string(p.size()) + " bytes; at most " +
                                 std::to_string(sizeof addr.sun_path - 1) + ")"));
  std::memcpy(addr.sun_path, p.data(), p.size());
  return addr;
}

}  // namespace imgpipe
