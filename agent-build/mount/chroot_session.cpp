#include "agent-build/mount/chroot_session.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/file_util.h"
#include "common/log.h"
#include "protocol/ids.h"

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

void addDiskToSandbox(SandboxSpec& spec, const fs::path& diskDevice,
                      const std::vector<Partition>& partitions) {
  if (diskDevice.empty()) return;
  // The build's own disk, not a host disk: grub-probe (update-grub after a kernel upgrade) finds
  // the root device by the dev_t of / and reads its UUID from it, and grub-install writes the
  // boot code to it. Writing to it changes the image only; without CAP_SYS_ADMIN it cannot be
  // re-partitioned (BLKPG, BLKRRPART) and its loop device cannot be re-pointed at another file.
  spec.devices.push_back({diskDevice, diskDevice.filename().string()});
  for (const auto& part : partitions) {
    const auto name = part.device.filename().string();
    spec.devices.push_back({part.device, name});
    // Defence in depth: listPartitions already dropped what fails the grammar.
    if (!part.uuid.empty() && ids::valid(ids::Kind::fsUuid, part.uuid))
      spec.links.push_back({"disk/by-uuid/" + part.uuid, "../../" + name});
    if (!part.label.empty() && ids::valid(ids::Kind::fsLabel, part.label))
      spec.links.push_back({"disk/by-label/" + part.label, "../../" + name});
  }
}

ChrootOptions chrootOptionsFor(const BuildConfig& config, fs::path diskDevice,
                               std::vector<Partition> partitions) {
  ChrootOptions o;
  o.nameservers = config.nameservers;
  o.diskDevice = std::move(diskDevice);
  o.partitions = std::move(partitions);
  o.helper = config.helper;
  o.proxy = config.proxy;
  o.ids = config.sandboxIds;
  return o;
}

ChrootSession::ChrootSession(const fs::path& root, ChrootOptions options, ExecContext ctx)
    : root_(root),
      ctx_(std::move(ctx)),
      fs_(root),
      proxy_(std::move(options.proxy)),
      network_(options.network) {
  requireBubblewrap();
  if (network_ == definition::Network::proxy) {
    if (!proxy_)
      throw Error(
          "the definition asks for network: proxy, but this build agent has no build.proxy in "
          "its config");
    if (options.gateFile.empty()) throw std::logic_error("network: proxy without a gate file");
    gate_ = std::make_unique<ProxyGate>(options.gateFile, *proxy_);
    sandbox_.netns = gate_->netnsFile();
  }
  sandbox_.root = root_;
  sandbox_.ids = options.ids;
  netnsParent_ = options.netnsDir;
  sandbox_.helper =
      options.helper == "/proc/self/exe" ? fs::read_symlink("/proc/self/exe") : options.helper;
  addDiskToSandbox(sandbox_, options.diskDevice, options.partitions);
  try {
    prepareMountPoints();
    mountAt("imgpipe-run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");

    resolvConf_ = save(fs_, kResolvConf);
    auto nameservers = options.nameservers.empty() ? hostNameservers() : options.nameservers;
    if (nameservers.empty())
      throw Error(
          "no nameservers for the image: the host's /etc/resolv.conf lists none; set "
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
    restoreResolvConf();
    removePolicyRcd();
  } catch (const std::exception& e) {
    log::named("chroot")->warn("cannot restore {}: {}", root_.string(), e.what());
  }
  while (!mounts_.empty())
    mounts_.pop_back();
}

void ChrootSession::requireMountPoint(std::string_view imagePath) {
  // The kernel resolves a mount's target on the host: a symlink anywhere on the way (the base's
  // /var/cache -> /srv) would put the mount outside the image. Nothing of the image runs while
  // the build mounts, so what is checked here is what the kernel then resolves.
  std::string prefix;
  for (const auto& part : splitImagePath(imagePath)) {
    prefix += "/" + part;
    auto st = fs_.lstat(prefix);
    if (!st) break;  // mkdirs creates the rest as directories
    if (!S_ISDIR(st->st_mode))
      throw Error(prefix + " in the image is " +
                  (S_ISLNK(st->st_mode) ? "a symlink" : "not a directory") + "; cannot mount " +
                  std::string(imagePath) + " there");
  }
  fs_.mkdirs(imagePath);
}

void ChrootSession::mountAt(const std::string& source, std::string_view imagePath,
                            const std::string& type, unsigned long flags, const std::string& data) {
  requireMountPoint(imagePath);
  mounts_.emplace_back(source, fs_.hostPath(imagePath), type, flags, data);
}

void ChrootSession::prepareMountPoints() {
  // bwrap mounts /dev, /proc and /sys at these paths of the image, following symlinks as it
  // goes: a base whose /proc is a symlink to /oldroot/etc would have it mount (and create files)
  // on the host's side of its namespace. Nothing in the image runs outside a sandbox, and inside
  // one these are mount points that cannot be removed or replaced, so checking them here, before
  // the first command, holds for the whole session.
  for (const char* dir : {"/dev", "/proc", "/sys"})
    requireMountPoint(dir);
}

SubprocessOptions ChrootSession::commandOptions(std::vector<std::string> argv,
                                                const std::map<std::string, std::string>& env,
                                                definition::Network network) const {
  if (network == definition::Network::host && network_ == definition::Network::proxy)
    network = definition::Network::proxy;
  auto spec = sandbox_;
  if (network == definition::Network::host) spec.netns = hostNetns();
  auto o = build::commandOptions(ctx_, sandboxCommand(spec, network, argv));
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
  if (network == definition::Network::proxy)
    o.env.merge(proxyEnvironment(gate_->insideProxy()));
  else if (network == definition::Network::host && proxy_)
    o.env.merge(proxyEnvironment(*proxy_));
  for (const auto& [k, v] : env)
    o.env[k] = v;
  return o;
}

const fs::path& ChrootSession::hostNetns() const {
  if (!slirp_) {
    // The build child's private mount namespace holds the name (a bind mount on the file).
    if (!netnsDir_)
      netnsDir_.emplace(netnsParent_.empty() ? root_.parent_path() : netnsParent_, "host-netns-");
    slirp_ = std::make_unique<SlirpGate>(netnsDir_->path() / "netns",
                                         netnsDir_->path() / "slirp4netns.log");
  }
  return slirp_->netnsFile();
}

std::string ChrootSession::run(std::vector<std::string> argv, bool capture) const {
  auto o = commandOptions(std::move(argv));
  o.captureStdout = capture;
  return run(std::move(o));
}

std::string ChrootSession::run(SubprocessOptions options) const {
  auto command = describeSandboxed(options.argv);
  if (!options.stop.stop_possible()) options.stop = ctx_.stop;
  if (!options.onLine) options.onLine = ctx_.output;
  if (options.timeout.count() == 0) options.timeout = ctx_.timeout;
  auto result = runCommand(std::move(options));
  if (result.exitCode != 0 || result.timedOut || result.stopped)
    throw CommandError(std::move(command), std::move(result));
  return std::move(result.stdoutText);
}

Mount ChrootSession::bindInto(const fs::path& hostDir, std::string_view imagePath) {
  requireMountPoint(imagePath);
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

void ChrootSession::finish() {
  slirp_.reset();
  restoreResolvConf();
  removePolicyRcd();
  while (!mounts_.empty()) {
    mounts_.back().unmount();
    mounts_.pop_back();
  }
  finished_ = true;
}

}  // namespace imgpipe::build
