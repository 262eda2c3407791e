#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/disk/partitions.h"
#include "agent-build/mount/mount.h"
#include "agent-build/sandbox/proxy_gate.h"
#include "agent-build/sandbox/sandbox.h"
#include "agent-build/sandbox/slirp_gate.h"
#include "agent-build/util/exec.h"
#include "agent-build/util/image_fs.h"
#include "common/temp_dir.h"

namespace imgpipe::build {

struct ChrootOptions {
  // Nameservers written to the chroot's /etc/resolv.conf; empty: the host's upstream resolvers.
  std::vector<std::string> nameservers;
  // The disk the root lives on: its node and its partitions' nodes appear in the sandbox's
  // /dev, with /dev/disk/by-uuid and by-label links. Without them (no udev on these hosts)
  // update-grub would write root=/dev/loopNp1 into grub.cfg and the image would not boot.
  std::filesystem::path diskDevice;
  std::vector<Partition> partitions;
  // The agent binary, which runs `sandbox-exec` in front of bwrap (BuildConfig::helper).
  std::filesystem::path helper = "/proc/self/exe";
  // build.proxy: every command that reaches the network gets it in its environment.
  std::optional<BuildProxy> proxy;
  // The definition's `network:`. proxy: a command that reaches the network reaches only
  // `proxy`, through a ProxyGate whose namespace is bind-mounted on `gateFile`.
  definition::Network network = definition::Network::host;
  std::filesystem::path gateFile;
  // The host ids every command of the session runs as (build.sandbox.uid_base).
  UidRange ids;
  // Where network: host's namespace is named (the build's work dir, gone with it); empty: beside
  // the root (a base's scratch dir), never /run, where a killed build would leave it.
  std::filesystem::path netnsDir;
};

// What every session of this agent takes from its config (nameservers, the helper, build.proxy),
// for a root on `diskDevice` (none for a plain directory). The caller adds the definition's
// network policy where there is one.
ChrootOptions chrootOptionsFor(const BuildConfig& config, std::filesystem::path diskDevice = {},
                               std::vector<Partition> partitions = {});

// What /etc/resolv.conf (or policy-rc.d) was before the session replaced it. Value type.
struct SavedEntry {
  enum class Kind { absent, file, symlink } kind = Kind::absent;
  std::string content;  // file content or symlink target
  mode_t mode = 0644;
};

// A root filesystem made ready for running the image's own programs (package managers, the
// definition's scripts): a real /etc/resolv.conf in place of the image's (often a dangling
// symlink into /run/systemd/resolve), a policy-rc.d so packages do not start services, an empty
// /run. Every command runs in its own sandbox (sandbox.h): bubblewrap with its own mount, PID,
// IPC and UTS namespaces, a fresh /dev and /proc, /sys read-only, no_new_privs and a bounded
// capability set; nothing it starts outlives it. The destructor restores resolv.conf and
// policy-rc.d and unmounts /run. Resource type.
class ChrootSession {
 public:
  ChrootSession(const std::filesystem::path& root, ChrootOptions options, ExecContext ctx);
  ~ChrootSession();
  ChrootSession(const ChrootSession&) = delete;
  ChrootSession& operator=(const ChrootSession&) = delete;

  const std::filesystem::path& root() const { return root_; }
  ImageFs& fs() { return fs_; }

  // `argv` in the sandbox with a clean environment (PATH, DEBIAN_FRONTEND=noninteractive, ...)
  // plus `env`; output to the build log. Without network unless asked: imgpipe's own commands
  // in the image need none, apt's downloads and the definition's scripts say so. host is a
  // network namespace of the session's own through slirp4netns (sandbox/slirp_gate.h), never
  // the host's; a session whose network is proxy gives every command that asks for host the
  // proxy gate instead.
  SubprocessOptions commandOptions(std::vector<std::string> argv,
                                   const std::map<std::string, std::string>& env = {},
                                   definition::Network network = definition::Network::none) const;
  // Throws CommandError.
  std::string run(std::vector<std::string> argv, bool capture = false) const;
  std::string run(SubprocessOptions options) const;

  // Bind-mounts a host directory into the image for as long as the returned Mount lives.
  Mount bindInto(const std::filesystem::path& hostDir, std::string_view imagePath);

  const SavedEntry& originalResolvConf() const { return resolvConf_; }
  const SavedEntry& originalPolicyRcd() const { return policyRcd_; }
  // Puts back what the session replaced. Idempotent; the cleanup step calls them explicitly.
  void restoreResolvConf();
  void removePolicyRcd();

  // Orderly teardown for the success path: throws when something stays mounted.
  void finish();

 private:
  void prepareMountPoints();
  // `imagePath` as a directory, with no symlink on the way; throws Error naming it otherwise.
  void requireMountPoint(std::string_view imagePath);
  void mountAt(const std::string& source, std::string_view imagePath, const std::string& type,
               unsigned long flags, const std::string& data);

  std::filesystem::path root_;
  ExecContext ctx_;
  ImageFs fs_;
  SandboxSpec sandbox_;
  std::optional<BuildProxy> proxy_;
  definition::Network network_;
  std::unique_ptr<ProxyGate> gate_;  // network: proxy only
  // network: host — made for the first command that asks for it, gone with the session.
  const std::filesystem::path& hostNetns() const;
  std::filesystem::path netnsParent_;
  mutable std::optional<TempDir> netnsDir_;
  mutable std::unique_ptr<SlirpGate> slirp_;
  std::vector<Mount> mounts_;  // in mount order; unmounted in reverse
  SavedEntry resolvConf_;
  SavedEntry policyRcd_;
  bool resolvConfReplaced_ = false;
  bool policyRcdInstalled_ = false;
  bool finished_ = false;
};

// The nameservers the host uses, skipping systemd-resolved's 127.0.0.53 stub (it would not
// answer inside the sandbox) in favour of its upstream list.
std::vector<std::string> hostNameservers();

// What the sandbox's /dev holds for a build disk: the disk's and its partitions' nodes, and
// /dev/disk/by-uuid and by-label links for the UUIDs and labels that passed their grammar
// (listPartitions dropped the others).
void addDiskToSandbox(SandboxSpec& spec, const std::filesystem::path& diskDevice,
                      const std::vector<Partition>& partitions);

}  // namespace imgpipe::build
