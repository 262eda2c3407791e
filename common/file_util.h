#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace imgpipe {

std::string readFile(const std::filesystem::path& path);

// Writes to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs the
// directory: a reader sees the old or the new content, never a torn one, even after a crash.
void writeFileAtomic(const std::filesystem::path& path, std::string_view content,
                     mode_t mode = 0644);

void fsyncDirectory(const std::filesystem::path& dir);

// Bytes available to an unprivileged writer on the filesystem holding `path`.
std::uint64_t freeBytes(const std::filesystem::path& path);

}  // namespace imgpipe
