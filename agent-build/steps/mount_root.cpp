// Step 4: mounts the root filesystem and prepares it for chroot work (ChrootSession: private
// /dev, /proc, /sys, /run, a real resolv.conf, policy-rc.d).
#include <sys/stat.h>

#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class MountStep : public Step {
 public:
  std::string_view name() const override { return "mount"; }

  std::string run(BuildContext& ctx) override {
    std::filesystem::create_directories(ctx.rootDir());
    ctx.rootMount.emplace(ctx.root.device.string(), ctx.rootDir(), ctx.root.fsType, MS_NOATIME);
    ctx.chroot = std::make_unique<ChrootSession>(
        ctx.rootDir(),
        ChrootOptions{ctx.config.nameservers, ctx.disk->device(), ctx.disk->partitions(ctx.exec())},
        ctx.exec());
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
