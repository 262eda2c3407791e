#pragma once

#include <sys/un.h>

#include <filesystem>

namespace imgpipe {

// The address of a unix socket at `path`. Throws Error when the path does not fit sun_path
// (108 bytes): a truncated path would name another socket.
sockaddr_un unixAddress(const std::filesystem::path& path);

}  // namespace imgpipe
