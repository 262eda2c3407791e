#include "agent-build/mount/chroot_session.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

const char* kPolicyRcd = "/usr/sbin/policy-rc.d";
const char* kResolvConf = "/etc/resolv.conf";

SavedEntry save(const ImageFs& img, std::string_view path) {
  SavedEntry e;
  auto st = img.lstat(path);
  if (!st) return e;
  if (S_ISLNK(st->st_mode)) {
    e.kind = SavedEntry::Kind::symlink;
    e.content = img.readLink(path).value_or("");
  } else if (S_ISREG(st->st_mode)) {
    e.kind = SavedEntry::Kind::file;
    e.content = img.readFile(path).value_or("");
    e.mode = st->st_mode & 07777;
  }
  return e;
}

void restore(ImageFs& img, std::string_view path, const SavedEntry& e) {
  switch (e.kind) {
    case SavedEntry::Kind::absent:
      img.remove(path);
      break;
    case SavedEntry::Kind::symlink:
      img.symlink(e.content, path);
      break;
    case SavedEntry::Kind::file:
      img.writeFile(path, e.content, e.mode);
      break;
  }
}

std::vector<std::string> nameserversIn(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == "nameserver") out.push_back(value);
  }
  return out;
}

}  // namespace

std::vector<std::string> hostNameservers() {
  std::vector<std::string> ns;
  try {
    ns = nameserversIn(readFile("/etc/resolv.conf"));
  } catch (const Error&) {
  }
  bool stubOnly = !ns.empty() && std::all_of(ns.begin(), ns.end(), [](const std::string& s) {
    return s.starts_with("127.0.0.53");
  });
  if (ns.empty() || stubOnly) {
    try {
      auto upstream = nameserversIn(readFile("/run/systemd/resolve/resolv.conf"));
      if (!upstream.empty()) return upstream;
    } catch (const Error&) {
    }
  }
  return ns;
}

ChrootSession::ChrootSession(const fs::path& root, ChrootOptions options, ExecContext ctx)
    : root_(root), ctx_(std::move(ctx)), fs_(root) {
  try {
    mountApiFilesystems(options);

    resolvConf_ = save(fs_, kResolvConf);
    auto nameservers = options.nameservers.empty() ? hostNameservers() : options.nameservers;
    if (nameservers.empty())
      throw Error(
          "no nameservers for the chroot: the host's /etc/resolv.conf lists none; set "
          "build.nameservers");
    std::string text =
        "# written by imgpipe for the build; the image's own resolv.conf is restored afterwards\n";
    for (const auto& n : nameservers)
      text += "nameserver " + n + "\n";
    fs_.writeFile(kResolvConf, text, 0644);
    resolvConfReplaced_ = true;

    policyRcd_ = save(fs_, kPolicyRcd);
    fs_.writeFile(kPolicyRcd,
                  "#!/bin/sh\n# imgpipe: no service starts while the image is built\nexit 101\n",
                  0755);
    policyRcdInstalled_ = true;
  } catch (...) {
    // The destructor does not run for a half-built object: undo what was done here.
    try {
      if (resolvConfReplaced_) restoreResolvConf();
    } catch (const std::exception&) {
    }
    while (!mounts_.empty())
      mounts_.pop_back();
    throw;
  }
}

ChrootSession::~ChrootSession() {
  if (finished_) return;
  try {
    killStrays();
  } catch (const std::exception& e) {
    log::named("chroot")->warn("cannot kill processes left in {}: {}", root_.string(), e.what());
  }
  try {
    restoreResolvConf();
    removePolicyRcd();
  } catch (const std::exception& e) {
    log::named("chroot")->warn("cannot restore {}: {}", root_.string(), e.what());
  }
  while (!mounts_.empty())
    mounts_.pop_back();
}

void ChrootSession::mountAt(const std::string& source, std::string_view imagePath,
                            const std::string& type, unsigned long flags, const std::string& data) {
  // A symlink here would make the kernel mount wherever it points (outside the image, even).
  if (auto st = fs_.lstat(imagePath); st && !S_ISDIR(st->st_mode))
    throw Error(std::string(imagePath) + " in the image is not a directory; cannot mount " + type +
                " there");
  fs_.mkdirs(imagePath);
  mounts_.emplace_back(source, fs_.hostPath(imagePath), type, flags, data);
}

void ChrootSession::mountApiFilesystems(const ChrootOptions& options) {
  mountAt("imgpipe-dev", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=16m");
  populateDev(options);
  mountAt("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620,gid=5");
  mountAt("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mountAt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  if (auto st = fs_.lstat("/sys"); st && !S_ISDIR(st->st_mode))
    throw Error("/sys in the image is not a directory");
  fs_.mkdirs("/sys");
  mounts_.push_back(Mount::bind("/sys", fs_.hostPath("/sys"), true));
  mountAt("imgpipe-run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

void ChrootSession::populateDev(const ChrootOptions& options) {
  const fs::path dev = fs_.hostPath("/dev");
  struct Node {
    const char* name;
    unsigned maj, min;
    mode_t mode;
  };
  for (const Node& n :
       {Node{"null", 1, 3, 0666}, Node{"zero", 1, 5, 0666}, Node{"full", 1, 7, 0666},
        Node{"random", 1, 8, 0666}, Node{"urandom", 1, 9, 0666}, Node{"tty", 5, 0, 0666},
        Node{"console", 5, 1, 0600}}) {
    auto p = dev / n.name;
    if (::mknod(p.c_str(), S_IFCHR | n.mode, makedev(n.maj, n.min)) != 0)
      throwErrno("mknod " + p.string());
    ::chmod(p.c_str(), n.mode);
  }
  for (auto [name, target] :
       {std::pair{"ptmx", "pts/ptmx"}, std::pair{"fd", "/proc/self/fd"},
        std::pair{"stdin", "/proc/self/fd/0"}, std::pair{"stdout", "/proc/self/fd/1"},
        std::pair{"stderr", "/proc/self/fd/2"}}) {
    fs::create_symlink(target, dev / name);
  }
  fs::create_directories(dev / "pts");
  fs::create_directories(dev / "shm");

  auto copyNode = [&](const fs::path& hostNode) {
    struct stat st {};
    if (::stat(hostNode.c_str(), &st) != 0) throwErrno("cannot stat " + hostNode.string());
    auto p = dev / hostNode.filename();
    if (::mknod(p.c_str(), S_IFBLK | 0660, st.st_rdev) != 0) throwErrno("mknod " + p.string());
  };
  if (!options.diskDevice.empty()) {
    copyNode(options.diskDevice);
    fs::create_directories(dev / "disk/by-uuid");
    fs::create_directories(dev / "disk/by-label");
    for (const auto& part : options.partitions) {
      copyNode(part.device);
      auto rel = "../../" + part.device.filename().string();
      if (!part.uuid.empty()) fs::create_symlink(rel, dev / "disk/by-uuid" / part.uuid);
      if (!part.label.empty() && part.label.find('/') == std::string::npos)
        fs::create_symlink(rel, dev / "disk/by-label" / part.label);
    }
  }
}

SubprocessOptions ChrootSession::commandOptions(
    std::vector<std::string> argv, const std::map<std::string, std::string>& env) const {
  std::vector<std::string> full = {"chroot", root_.string()};
  full.insert(full.end(), argv.begin(), argv.end());
  auto o = build::commandOptions(ctx_, std::move(full));
  o.clearEnv = true;
  o.env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
           {"HOME", "/root"},
           {"LANG", "C.UTF-8"},
           {"LC_ALL", "C.UTF-8"},
           {"TERM", "dumb"},
           {"DEBIAN_FRONTEND", "noninteractive"},
           {"DEBCONF_NONINTERACTIVE_SEEN", "true"},
           {"APT_LISTCHANGES_FRONTEND", "none"},
           {"TMPDIR", "/tmp"}};
  for (const auto& [k, v] : env)
    o.env[k] = v;
  return o;
}

std::string ChrootSession::run(std::vector<std::string> argv, bool capture) const {
  auto o = commandOptions(std::move(argv));
  o.captureStdout = capture;
  return build::run(ctx_, std::move(o));
}

std::string ChrootSession::run(SubprocessOptions options) const {
  return build::run(ctx_, std::move(options));
}

Mount ChrootSession::bindInto(const fs::path& hostDir, std::string_view imagePath) {
  if (auto st = fs_.lstat(imagePath); st && !S_ISDIR(st->st_mode))
    throw Error(std::string(imagePath) + " in the image is not a directory");
  fs_.mkdirs(imagePath);
  return Mount::bind(hostDir, fs_.hostPath(imagePath));
}

void ChrootSession::restoreResolvConf() {
  if (!resolvConfReplaced_) return;
  restore(fs_, kResolvConf, resolvConf_);
  resolvConfReplaced_ = false;
}

void ChrootSession::removePolicyRcd() {
  if (!policyRcdInstalled_) return;
  restore(fs_, kPolicyRcd, policyRcd_);
  policyRcdInstalled_ = false;
}

int ChrootSession::killStrays() {
  const std::string rootStr = fs::weakly_canonical(root_).string();
  auto strays = [&] {
    std::vector<pid_t> pids;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
      auto name = e.path().filename().string();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      pid_t pid = static_cast<pid_t>(std::stol(name));
      if (pid == ::getpid()) continue;
      std::error_code lec;
      auto procRoot = fs::read_symlink(e.path() / "root", lec).string();
      if (!lec && (procRoot == rootStr || procRoot.starts_with(rootStr + "/"))) pids.push_back(pid);
    }
    return pids;
  };
  auto first = strays();
  for (pid_t p : first) {
    log::named("chroot")->warn("killing process {} left running in {}", p, rootStr);
    ::kill(p, SIGKILL);
  }
  for (int i = 0; i < 100 && !strays().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return static_cast<int>(first.size());
}

void ChrootSession::finish() {
  killStrays();
  restoreResolvConf();
  removePolicyRcd();
  while (!mounts_.empty()) {
    mounts_.back().unmount();
    mounts_.pop_back();
  }
  finished_ = true;
}

}  // namespace imgpipe::build
