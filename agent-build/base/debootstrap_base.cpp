#include "agent-build/base/debootstrap_base.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent-build/base/bootable_tree.h"
#include "agent-build/base/tree_disk.h"
#include "agent-build/mount/chroot_session.h"
#include "agent-build/util/file_lock.h"
#include "agent-build/util/image_fs.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

void unmountBelow(const fs::path& dir) {
  // debootstrap mounts /proc and /sys in the target for its second stage and normally unmounts
  // them; mke2fs -d would otherwise copy a live /proc into the image.
  std::vector<std::string> below;
  std::ifstream in("/proc/self/mountinfo");
  const std::string prefix = fs::weakly_canonical(dir).string() + "/";
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string a, b, c, d, mp;
    f >> a >> b >> c >> d >> mp;
    if (mp.starts_with(prefix)) below.push_back(mp);
  }
  std::sort(below.begin(), below.end(),
            [](const auto& x, const auto& y) { return x.size() > y.size(); });
  for (const auto& mp : below)
    ::umount2(mp.c_str(), MNT_DETACH);
}

}  // namespace

std::string debootstrapRecipeKey(const definition::DebootstrapBase& spec,
                                 const std::string& keyringSha256) {
  auto packages = spec.tree.packages;
  std::sort(packages.begin(), packages.end());
  nlohmann::json j = {{"recipe", kTreeRecipe},
                      {"suite", spec.suite},
                      {"mirror", spec.mirror},
                      {"variant", spec.variant},
                      {"components", spec.components},
                      {"packages", packages},
                      {"keyring", keyringSha256},
                      {"size", spec.tree.size},
                      {"root_label", spec.tree.rootLabel},
                      {"bootloader", spec.tree.bootloader},
                      {"kernel_cmdline", spec.tree.kernelCmdline}};
  return toHex(sha256(j.dump())).substr(0, 32);
}

void makeDebootstrapBase(const definition::DebootstrapBase& spec, const fs::path& output,
                         const fs::path& scratch, const BuildConfig& config,
                         const ExecContext& exec, BuildLog& log) {
  fs::create_directories(scratch);
  const fs::path rootfs = scratch / "rootfs";
  fs::create_directories(rootfs);

  // debootstrap makes a minimal system only; the boot packages are installed with apt in the
  // sandbox afterwards. debootstrap's own dependency handling configures packages in an order
  // that breaks on python3 modules (cloud-init's), apt's does not.
  // Its first stage (--foreign) runs host tools only: it downloads, verifies and unpacks. The
  // second stage runs the target's own dpkg and maintainer scripts, so it runs in the sandbox
  // like every other command in an image, never in a chroot of the host.
  std::string components;
  for (const auto& c : spec.components)
    components += (components.empty() ? "" : ",") + c;
  std::vector<std::string> argv = {"debootstrap", "--foreign", "--components=" + components};
  if (spec.variant != "default") argv.push_back("--variant=" + spec.variant);
  if (!spec.keyring.empty()) argv.push_back("--keyring=" + spec.keyring);
  // Packages fetched for one base are kept for the next (a different recipe, a refresh).
  const fs::path debCache = config.cacheDir / "apt" / "debootstrap";
  fs::create_directories(debCache);
  argv.push_back("--cache-dir=" + debCache.string());
  argv.insert(argv.end(), {spec.suite, rootfs.string(), spec.mirror});
  log.info("debootstrap " + spec.suite + " from " + spec.mirror + " (" + spec.variant +
           "), first stage");
  {
    FileLock cacheLock(config.cacheDir / "apt" / "debootstrap.lock", exec.stop);
    try {
      auto o = commandOptions(exec, argv);
      if (config.proxy) o.env = proxyEnvironment(*config.proxy);
      run(exec, std::move(o));
    } catch (...) {
      unmountBelow(rootfs);
      throw;
    }
  }
  unmountBelow(rootfs);
  {
    // The first stage leaves /proc a symlink to the host's /proc (its second stage would replace
    // it with a directory); the sandbox mounts its own /proc there and refuses a symlink.
    ImageFs img(rootfs);
    if (auto st = img.lstat("/proc"); st && S_ISLNK(st->st_mode)) {
      img.remove("/proc");
      img.mkdirs("/proc", 0555);
    }
  }

  {
    ChrootSession session(rootfs, chrootOptionsFor(config), exec);
    log.info("debootstrap second stage (in the sandbox)");
    // container=lxc: debootstrap's self-test for nodev targets (mknod in the target) cannot pass
    // without CAP_MKNOD; lxc is the container it knows to skip that test for.
    session.run(session.commandOptions({"/debootstrap/debootstrap", "--second-stage"},
                                       {{"container", "lxc"}}));
    session.finish();
  }
  makeTreeBootable(rootfs, spec.tree, "debootstrap " + spec.suite + " from " + spec.mirror, config,
                   exec, log);
  writeTreeDisk(rootfs, spec.tree, output, scratch, config, exec, log);
}

}  // namespace imgpipe::build
