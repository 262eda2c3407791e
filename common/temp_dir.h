#pragma once

#include <filesystem>
#include <string_view>

namespace imgpipe {

// A directory created on construction and removed, with everything in it, on destruction —
// unless keep() was called (a failed build kept for inspection).
class TempDir {
 public:
  // Creates <parent>/<prefix>XXXXXX.
  explicit TempDir(const std::filesystem::path& parent = std::filesystem::temp_directory_path(),
                   std::string_view prefix = "imgpipe-");
  ~TempDir();
  TempDir(TempDir&&) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

// A file or directory (with everything in it) removed on destruction unless release()d: what
// an operation stages must not outlive it when it fails. Resource type.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::filesystem::path path) : path_(std::move(path)) {}
  ~RemoveOnExit();
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;

  // The operation succeeded: the path stays (or was renamed away).
  void release() { path_.clear(); }

 private:
  std::filesystem::path path_;
};

}  // namespace imgpipe
