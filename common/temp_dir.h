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

}  // namespace imgpipe
