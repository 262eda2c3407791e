#include "agent-build/steps/cleanup_rules.h"

#include <sys/stat.h>

#include <algorithm>
#include <functional>

namespace imgpipe::build {
namespace {

const std::vector<std::string> kHistoryNames = {
    ".bash_history",   ".zsh_history",  ".sh_history",       ".ash_history",
    ".python_history", ".lesshst",      ".viminfo",          ".wget-hsts",
    ".mysql_history",  ".psql_history", ".node_repl_history"};

std::vector<std::string> homeDirs(const ImageFs& img) {
  std::vector<std::string> dirs = {"/root"};
  for (const auto& h : img.list("/home"))
    dirs.push_back("/home/" + h);
  return dirs;
}

bool isRotatedLog(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  auto ext = name.substr(dot + 1);
  if (ext == "gz" || ext == "xz" || ext == "bz2" || ext == "zst" || ext == "old") return true;
  return !ext.empty() && ext.find_first_not_of("0123456789") == std::string::npos;
}

// Calls fn(path, stat) for every entry below dir (not following symlinks), depth first.
void walk(const ImageFs& img, const std::string& dir,
          const std::function<void(const std::string&, const struct stat&)>& fn) {
  for (const auto& name : img.list(dir)) {
    std::string p = dir + "/" + name;
    auto st = img.lstat(p);
    if (!st) continue;
    if (S_ISDIR(st->st_mode)) walk(img, p, fn);
    fn(p, *st);
  }
}

std::uint64_t treeBytes(const ImageFs& img, const std::string& path) {
  auto st = img.lstat(path);
  if (!st) return 0;
  std::uint64_t total = S_ISREG(st->st_mode) ? static_cast<std::uint64_t>(st->st_size) : 0;
  if (S_ISDIR(st->st_mode))
    walk(img, path, [&](const std::string&, const struct stat& s) {
      if (S_ISREG(s.st_mode)) total += static_cast<std::uint64_t>(s.st_size);
    });
  return total;
}

std::vector<std::string> dirEntries(const ImageFs& img, const std::string& dir,
                                    const std::vector<std::string>& keep = {}) {
  std::vector<std::string> out;
  for (const auto& name : img.list(dir))
    if (std::find(keep.begin(), keep.end(), name) == keep.end()) out.push_back(dir + "/" + name);
  return out;
}

// Everything cleanImage removes, as image paths (the same list drives the checks).
std::vector<std::string> removableNow(const ImageFs& img, const definition::CleanupSpec& spec) {
  std::vector<std::string> paths;
  auto add = [&](const std::vector<std::string>& v) {
    paths.insert(paths.end(), v.begin(), v.end());
  };
  add(dirEntries(img, "/var/lib/apt/lists", {"lock", "partial"}));
  add(dirEntries(img, "/var/lib/apt/lists/partial"));
  add(img.glob("/var/cache/apt/*.bin"));
  add(img.glob("/var/cache/apt/archives/*.deb"));
  add(dirEntries(img, "/var/cache/apt/archives/partial"));
  for (const auto& home : homeDirs(img))
    for (const auto& h : kHistoryNames)
      if (img.exists(home + "/" + h)) paths.push_back(home + "/" + h);
  add(img.glob("/etc/ssh/ssh_host_*"));
  if (img.exists("/var/lib/dbus/machine-id")) paths.push_back("/var/lib/dbus/machine-id");
  add(dirEntries(img, "/var/lib/cloud"));
  add(dirEntries(img, "/tmp"));
  add(dirEntries(img, "/var/tmp"));
  add(dirEntries(img, "/var/log/journal"));
  for (const char* p : {"/var/lib/systemd/random-seed", "/var/lib/systemd/credential.secret"})
    if (img.exists(p)) paths.push_back(p);
  add(img.glob("/var/lib/dhcp/*.leases"));
  add(img.glob("/var/cache/debconf/*-old"));
  add(img.glob("/var/lib/dpkg/*-old"));
  for (const auto& pattern : spec.remove)
    add(img.glob(pattern));
  walk(img, "/var/log", [&](const std::string& p, const struct stat& st) {
    if (S_ISREG(st.st_mode) && isRotatedLog(p.substr(p.rfind('/') + 1))) paths.push_back(p);
  });
  return paths;
}

}  // namespace

CleanupReport cleanImage(ImageFs& img, const definition::CleanupSpec& spec) {
  CleanupReport r;
  for (const auto& p : removableNow(img, spec)) {
    if (!img.exists(p)) continue;  // inside something removed before
    r.bytes += treeBytes(img, p);
    img.removeTree(p);
    ++r.removed;
  }
  walk(img, "/var/log", [&](const std::string& p, const struct stat& st) {
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
      r.bytes += static_cast<std::uint64_t>(st.st_size);
      img.truncate(p);
      ++r.truncated;
    }
  });
  // Empty, not absent: systemd then treats the first boot as such and writes a new id.
  img.writeFile("/etc/machine-id", "", 0444);
  return r;
}

std::vector<Check> checkImageIsClean(const ImageFs& img, const definition::CleanupSpec& spec) {
  std::vector<Check> checks;
  auto check = [&](std::string name, std::vector<std::string> found) {
    std::string detail;
    for (size_t i = 0; i < found.size() && i < 5; ++i)
      detail += (detail.empty() ? "" : ", ") + found[i];
    if (found.size() > 5) detail += ", ... (" + std::to_string(found.size()) + " in all)";
    checks.push_back({std::move(name), found.empty(), found.empty() ? "" : "found " + detail});
  };
  auto mid = img.lstat("/etc/machine-id");
  checks.push_back(
      {"machine-id empty", mid && S_ISREG(mid->st_mode) && mid->st_size == 0,
       !mid ? "/etc/machine-id missing"
            : (mid->st_size != 0 ? "/etc/machine-id has " + std::to_string(mid->st_size) + " bytes"
                                 : "")});
  check("no /var/lib/dbus/machine-id", img.exists("/var/lib/dbus/machine-id")
                                           ? std::vector<std::string>{"/var/lib/dbus/machine-id"}
                                           : std::vector<std::string>{});
  check("no ssh host keys", img.glob("/etc/ssh/ssh_host_*"));
  std::vector<std::string> histories;
  for (const auto& home : homeDirs(img))
    for (const auto& h : kHistoryNames)
      if (img.exists(home + "/" + h)) histories.push_back(home + "/" + h);
  check("no shell histories", histories);
  auto lists = dirEntries(img, "/var/lib/apt/lists", {"lock", "partial"});
  auto partial = dirEntries(img, "/var/lib/apt/lists/partial");
  lists.insert(lists.end(), partial.begin(), partial.end());
  check("no apt lists", lists);
  auto caches = img.glob("/var/cache/apt/*.bin");
  auto debs = img.glob("/var/cache/apt/archives/*.deb");
  caches.insert(caches.end(), debs.begin(), debs.end());
  check("no apt caches", caches);
  check("no cloud-init state", dirEntries(img, "/var/lib/cloud"));
  auto tmp = dirEntries(img, "/tmp");
  auto vartmp = dirEntries(img, "/var/tmp");
  tmp.insert(tmp.end(), vartmp.begin(), vartmp.end());
  check("no temp files", tmp);
  std::vector<std::string> logs;
  walk(img, "/var/log", [&](const std::string& p, const struct stat& st) {
    if (S_ISREG(st.st_mode) && (st.st_size > 0 || isRotatedLog(p.substr(p.rfind('/') + 1))))
      logs.push_back(p);
  });
  check("logs empty", logs);
  std::vector<std::string> seeds;
  if (img.exists("/var/lib/systemd/random-seed")) seeds.push_back("/var/lib/systemd/random-seed");
  check("no random seed", seeds);
  std::vector<std::string> extra;
  for (const auto& pattern : spec.remove) {
    auto m = img.glob(pattern);
    extra.insert(extra.end(), m.begin(), m.end());
  }
  if (!spec.remove.empty()) check("cleanup.remove paths gone", extra);
  return checks;
}

}  // namespace imgpipe::build
