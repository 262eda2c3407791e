// Step 4: mounts the root filesystem and prepares it for running the image's programs
// (ChrootSession: an empty /run, a real resolv.conf, policy-rc.d; every command then runs in a
// sandbox with its own /dev, /proc and namespaces, see sandbox/sandbox.h).
#include <sys/stat.h>

#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class MountStep : public Step {
 public:
  std::string_view name() const override { return "mount"; }

  std::string run(BuildContext& ctx) override {
    std::filesystem::create_directories(ctx.rootDir());
    // nodev, nosuid: the image is data here, whatever device nodes or setuid files it carries.
    ctx.rootMount.emplace(ctx.root.device.string(), ctx.rootDir(), ctx.root.fsType,
                          MS_NOATIME | MS_NODEV | MS_NOSUID);
    auto partitions = ctx.disk->partitions(ctx.exec());
    for (const auto& p : partitions)
      for (const auto& why : p.ignored)
        ctx.log.warn(why);
    auto options = chrootOptionsFor(ctx.config, ctx.disk->device(), partitions);
    options.network = ctx.def.network;
    options.gateFile = ctx.workDir / "proxy-netns";
    options.netnsDir = ctx.workDir;
    ctx.chroot = std::make_unique<ChrootSession>(ctx.rootDir(), std::move(options), ctx.exec());
    const auto& rc = ctx.chroot->originalResolvConf();
    ctx.resolvConfBefore = rc;
    ctx.policyRcdBefore = ctx.chroot->originalPolicyRcd();
    std::string was = rc.kind == SavedEntry::Kind::symlink ? "a symlink to " + rc.content
                      : rc.kind == SavedEntry::Kind::file  ? "a regular file"
                                                           : "absent";
    return "root mounted at " + ctx.rootDir().string() + "; /etc/resolv.conf was " + was +
           " (replaced for the build, restored at cleanup); policy-rc.d installed";
  }
};

}  // namespace

std::unique_ptr<Step> makeMountStep() {
  return std::make_unique<MountStep>();
}

}  // namespace imgpipe::build
