// Step 6: seals the image — records the installed packages, cleans what must not ship (see
// cleanImage), and puts back the image's own resolv.conf and policy-rc.d.
#include <sstream>

#include "agent-build/steps/cleanup_rules.h"
#include "agent-build/steps/step.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

class CleanupStep : public Step {
 public:
  std::string_view name() const override { return "cleanup"; }

  std::string run(BuildContext& ctx) override {
    auto& session = ctx.session();
    auto& img = session.fs();
    // Nothing a package started is still running: each command's sandbox took its processes
    // along when it ended (its PID namespace).
    auto list = session.run({"dpkg-query", "-W", "-f",
                             "${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n"},
                            true);
    ctx.packages.clear();
    std::istringstream in(list);
    for (std::string line; std::getline(in, line);) {
      if (!line.starts_with("ii")) continue;
      std::istringstream f(line);
      std::string status;
      PackageInfo p;
      std::getline(f, status, '\t');
      std::getline(f, p.name, '\t');
      std::getline(f, p.version, '\t');
      std::getline(f, p.architecture, '\t');
      ctx.packages.push_back(p);
    }
    if (img.exists("/usr/bin/apt-get")) session.run({"apt-get", "clean"});

    auto report = cleanImage(img, ctx.def.cleanup);
    session.restoreResolvConf();
    session.removePolicyRcd();
    return std::to_string(ctx.packages.size()) + " packages installed; removed " +
           std::to_string(report.removed) + " entries and emptied " +
           std::to_string(report.truncated) + " logs (" + formatBytes(report.bytes) +
           "); resolv.conf and policy-rc.d restored";
  }
};

}  // namespace

std::unique_ptr<Step> makeCleanupStep() {
  return std::make_unique<CleanupStep>();
}

}  // namespace imgpipe::build
