#include "agent-build/runner/work_dir.h"

#include <cctype>
#include <random>

#include "common/error.h"

namespace imgpipe::build {

namespace fs = std::filesystem;

namespace {

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s)
    out.push_back(
        std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_');
  return out.substr(0, 64);
}

}  // namespace

WorkDir::WorkDir(const fs::path& parent, const std::string& label) {
  fs::create_directories(parent);
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = sanitize(label) + "-" + std::to_string(rd() % 1000000);
    fs::path dir = parent / name;
    fs::path lockPath = parent / (name + ".lock");
    // The lock comes first: a directory without a held lock is stale by definition.
    auto lock = FileLock::tryLock(lockPath);
    if (!lock.locked()) continue;
    std::error_code ec;
    if (!fs::create_directory(dir, ec)) continue;
    path_ = dir;
    lockPath_ = lockPath;
    lock_.emplace(std::move(lock));
    return;
  }
  throw Error("cannot create a work directory in " + parent.string());
}

WorkDir::~WorkDir() {
  std::error_code ec;
  if (!keep_) fs::remove_all(path_, ec);
  fs::remove(lockPath_, ec);
  lock_.reset();
}

int cleanStaleWorkDirs(const fs::path& workDir, bool keepFailed) {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(workDir, ec)) {
    if (e.path().extension() != ".lock") continue;
    fs::path dir = e.path();
    dir.replace_extension();
    auto lock = FileLock::tryLock(e.path());
    if (!lock.locked()) continue;  // its build is running
    if (!keepFailed) fs::remove_all(dir, ec);
    fs::remove(e.path(), ec);
    ++removed;
  }
  return removed;
}

}  // namespace imgpipe::build
