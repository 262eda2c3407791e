#include "agent-build/mount/apt_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "agent-build/sandbox/user_namespace.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/unique_fd.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

std::string quote(std::string_view s, std::string_view bad) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (bad.find(c) != std::string_view::npos || c == '%' || u <= 0x20 || u >= 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string sha256Hex(int fd) {
  Hasher h(HashAlgo::sha256);
  std::string buf(1 << 20, '\0');
  for (;;) {
    const auto n = ::read(fd, buf.data(), buf.size());
    if (n < 0) throwErrno("apt store: read");
    if (n == 0) break;
    h.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
  return toHex(h.finish());
}

void copyFd(int from, int to) {
  std::string buf(1 << 20, '\0');
  if (::lseek(from, 0, SEEK_SET) != 0) throwErrno("apt store: lseek");
  for (;;) {
    const auto n = ::read(from, buf.data(), buf.size());
    if (n < 0) throwErrno("apt store: read");
    if (n == 0) return;
    for (ssize_t done = 0; done < n;) {
      const auto w = ::write(to, buf.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0) throwErrno("apt store: write");
      done += w;
    }
  }
}

}  // namespace

std::string aptArchiveName(std::string_view package, std::string_view version,
                           std::string_view architecture) {
  return quote(package, "_:") + "_" + quote(version, "_:") + "_" + quote(architecture, "_:.") +
         ".deb";
}

std::vector<IndexedDeb> indexedDebs(const ImageFs& image) {
  std::vector<IndexedDeb> out;
  for (const auto& name : image.list("/var/lib/apt/lists")) {
    if (!name.ends_with("_Packages")) continue;
    auto text = image.readFile("/var/lib/apt/lists/" + name);
    if (!text) continue;
    std::istringstream in(*text);
    std::string pkg, ver, arch, sha;
    std::uint64_t size = 0;
    auto flush = [&] {
      if (!pkg.empty() && !ver.empty() && !arch.empty() && isHex64(sha))
        out.push_back({aptArchiveName(pkg, ver, arch), sha, size});
      pkg.clear(), ver.clear(), arch.clear(), sha.clear(), size = 0;
    };
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) {
        flush();
        continue;
      }
      auto value = [&](std::string_view key) -> std::optional<std::string> {
        if (!line.starts_with(key) || line.size() <= key.size() + 1 || line[key.size()] != ':')
          return std::nullopt;
        auto v = line.substr(key.size() + 1);
        v.erase(0, v.find_first_not_of(' '));
        return v;
      };
      if (auto v = value("Package"))
        pkg = *v;
      else if (auto v2 = value("Version"))
        ver = *v2;
      else if (auto v3 = value("Architecture"))
        arch = *v3;
      else if (auto v4 = value("SHA256"))
        sha = *v4;
      else if (auto v5 = value("Size"))
        size = std::strtoull(v5->c_str(), nullptr, 10);
    }
    flush();
  }
  return out;
}

AptStore::AptStore(fs::path dir) : dir_(std::move(dir)) {
  fs::create_directories(dir_);
}

std::size_t AptStore::seed(const std::vector<IndexedDeb>& wanted, const fs::path& archives) {
  std::size_t linked = 0;
  for (const auto& w : wanted) {
    const auto stored = dir_ / (w.sha256 + ".deb");
    struct stat st {};
    if (::lstat(stored.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_size) != w.size)
      continue;
    const auto target = archives / w.archiveName;
    std::error_code ec;
    if (fs::exists(fs::symlink_status(target, ec))) continue;
    // A hard link where the store and the work dir share a filesystem: the sandbox sees a file
    // of an owner it does not map, mode 0444, which it can read and unlink but never change.
    if (::link(stored.c_str(), target.c_str()) != 0) {
      UniqueFd from(::open(stored.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      UniqueFd to(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
      if (!from || !to) continue;
      copyFd(from.get(), to.get());
    }
    ::utimensat(AT_FDCWD, stored.c_str(), nullptr, 0);  // used now: pruning keeps it
    ++linked;
  }
  return linked;
}

std::size_t AptStore::ingest(const fs::path& archives) {
  std::size_t added = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(archives, ec)) {
    if (e.path().extension() != ".deb") continue;
    UniqueFd in(::open(e.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    struct stat st {};
    if (!in || ::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (st.st_uid == UidRange::kUnmappedOwner) continue;  // the store's own, seeded
    const auto hex = sha256Hex(in.get());
    const auto stored = dir_ / (hex + ".deb");
    if (fs::exists(stored, ec)) continue;
    const auto tmp = dir_ / ("." + hex + ".tmp");
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0444));
    if (!out) throwErrno("apt store: creating " + tmp.string());
    copyFd(in.get(), out.get());
    if (::fchown(out.get(), UidRange::kUnmappedOwner, UidRange::kUnmappedOwner) != 0 ||
        ::fchmod(out.get(), 0444) != 0 || ::fsync(out.get()) != 0)
      throwErrno("apt store: sealing " + tmp.string());
    out.reset();
    fs::rename(tmp, stored);
    ++added;
  }
  return added;
}

std::uint64_t AptStore::prune(std::uint64_t maxSize) {
  struct Deb {
    fs::path path;
    fs::file_time_type time;
    std::uint64_t size;
  };
  std::vector<Deb> debs;
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".deb" || !e.is_regular_file()) continue;
    debs.push_back({e.path(), e.last_write_time(), e.file_size()});
    total += debs.back().size;
  }
  if (total <= maxSize) return 0;
  std::sort(debs.begin(), debs.end(), [](const Deb& a, const Deb& b) { return a.time < b.time; });
  const auto recent = fs::file_time_type::clock::now() - std::chrono::hours(1);
  std::uint64_t freed = 0;
  for (const auto& d : debs) {
    if (total <= maxSize || d.time > recent) break;
    fs::remove(d.path, ec);
    total -= d.size;
    freed += d.size;
  }
  return freed;
}

}  // namespace imgpipe::build
