#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent-build/disk/partitions.h"
#include "agent-build/mount/mount.h"
#include "agent-build/util/exec.h"
#include "agent-build/util/image_fs.h"

namespace imgpipe::build {

struct ChrootOptions {
  // Nameservers written to the chroot's /etc/resolv.conf; empty: the host's upstream resolvers.
  std::vector<std::string> nameservers;
  // The disk the root lives on: its node and its partitions' nodes are created in the chroot's
  // private /dev, with /dev/disk/by-uuid and by-label links. Without them (no udev on these
  // hosts) update-grub would write root=/dev/loopNp1 into grub.cfg and the image would not boot.
  std::filesystem::path diskDevice;
  std::vector<Partition> partitions;
};

// What /etc/resolv.conf (or policy-rc.d) was before the session replaced it. Value type.
struct SavedEntry {
  enum class Kind { absent, file, symlink } kind = Kind::absent;
  std::string content;  // file content or symlink target
  mode_t mode = 0644;
};

// A root filesystem made ready for running package managers in it: a private /dev (tmpfs with
// the basic nodes and the build disk's nodes), /dev/pts, /dev/shm, a /proc of the build's PID
// namespace, /sys read-only, an empty /run; a real /etc/resolv.conf in place of the image's
// (often a dangling symlink into /run/systemd/resolve); a policy-rc.d so packages do not start
// services. The destructor kills anything still running inside, restores resolv.conf and
// policy-rc.d and unmounts everything in reverse order. Resource type.
class ChrootSession {
 public:
  ChrootSession(const std::filesystem::path& root, ChrootOptions options, ExecContext ctx);
  ~ChrootSession();
  ChrootSession(const ChrootSession&) = delete;
  ChrootSession& operator=(const ChrootSession&) = delete;

  const std::filesystem::path& root() const { return root_; }
  ImageFs& fs() { return fs_; }

  // `chroot ROOT argv...` with a clean environment (PATH, DEBIAN_FRONTEND=noninteractive, ...)
  // plus `env`; output to the build log; throws CommandError.
  SubprocessOptions commandOptions(std::vector<std::string> argv,
                                   const std::map<std::string, std::string>& env = {}) const;
  std::string run(std::vector<std::string> argv, bool capture = false) const;
  std::string run(SubprocessOptions options) const;

  // Bind-mounts a host directory into the image for as long as the returned Mount lives.
  Mount bindInto(const std::filesystem::path& hostDir, std::string_view imagePath);

  const SavedEntry& originalResolvConf() const { return resolvConf_; }
  const SavedEntry& originalPolicyRcd() const { return policyRcd_; }
  // Puts back what the session replaced. Idempotent; the cleanup step calls them explicitly.
  void restoreResolvConf();
  void removePolicyRcd();

  // Processes whose root is this chroot (daemons a package started despite policy-rc.d, a
  // gpg-agent...): SIGKILLed and waited for. Returns how many there were.
  int killStrays();

  // Orderly teardown for the success path: throws when something stays mounted.
  void finish();

 private:
  void mountApiFilesystems(const ChrootOptions& options);
  void populateDev(const ChrootOptions& options);
  void mountAt(const std::string& source, std::string_view imagePath, const std::string& type,
               unsigned long flags, const std::string& data);

  std::filesystem::path root_;
  ExecContext ctx_;
  ImageFs fs_;
  std::vector<Mount> mounts_;  // in mount order; unmounted in reverse
  SavedEntry resolvConf_;
  SavedEntry policyRcd_;
  bool resolvConfReplaced_ = false;
  bool policyRcdInstalled_ = false;
  bool finished_ = false;
};

// The nameservers the host uses, skipping systemd-resolved's 127.0.0.53 stub (it would not
// answer inside the chroot) in favour of its upstream list.
std::vector<std::string> hostNameservers();

}  // namespace imgpipe::build
