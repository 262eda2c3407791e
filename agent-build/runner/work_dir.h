#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "agent-build/util/file_lock.h"

namespace imgpipe::build {

// A build's work directory <work_dir>/<job>-<attempt>-<random>, with a lock file beside it
// (<dir>.lock) held for the build's lifetime. Removed in the destructor unless kept. A build
// killed with SIGKILL leaves its directory, but its lock dies with it, so the next build (or the
// agent at start) recognises the directory as stale and removes it: cleanStaleWorkDirs().
// Resource type.
class WorkDir {
 public:
  WorkDir(const std::filesystem::path& parent, const std::string& label);
  ~WorkDir();
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  std::filesystem::path lockPath_;
  std::optional<FileLock> lock_;
  bool keep_ = false;
};

// Removes work directories whose build is gone (lock not held). Returns how many.
// `keepFailed`: leave them for inspection (only their lock files are removed).
int cleanStaleWorkDirs(const std::filesystem::path& workDir, bool keepFailed);

}  // namespace imgpipe::build
