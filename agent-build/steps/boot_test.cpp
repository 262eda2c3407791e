// Step 9b: boots the finished image under QEMU (TCG where KVM is unusable, as on the machines
// this was developed on) with the image's own kernel and initrd, and waits for the login prompt
// on the serial console. The drive is opened with snapshot=on: the image is not modified.
#include <fstream>
#include <sstream>
#include <thread>

#include "agent-build/steps/step.h"
#include "common/file_util.h"
#include "common/units.h"

namespace imgpipe::build {
namespace {

namespace fs = std::filesystem;

std::string lastLines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    lines.push_back(l);
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += "\n  " + lines[i];
  return out;
}

class BootTestStep : public Step {
 public:
  std::string_view name() const override { return "boot_test"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.validation.bootTest.enabled ? "" : "boot test disabled (validation.boot_test)";
  }

  std::string run(BuildContext& ctx) override {
    const auto& bt = ctx.def.validation.bootTest;
    const fs::path console = ctx.workDir / "boot" / "console.log";
    fs::create_directories(console.parent_path());
    std::string accel = ctx.config.bootAccel == "auto" ? "kvm:tcg" : ctx.config.bootAccel;
    std::vector<std::string> argv = {
        ctx.config.qemuSystem,
        "-machine",
        "q35",
        "-accel",
        accel,
        "-m",
        std::to_string(bt.memory >> 20),
        "-smp",
        std::to_string(ctx.config.bootCpus),
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "file:" + console.string(),
        "-kernel",
        ctx.bootKernel.string(),
        "-initrd",
        ctx.bootInitrd.string(),
        "-append",
        "root=UUID=" + ctx.outputRootUuid + " ro console=ttyS0,115200",
        "-drive",
        "file=" + ctx.output.string() + ",if=virtio,format=qcow2,snapshot=on",
        "-nic",
        "user,model=virtio-net-pci"};
    auto o = commandOptions(ctx.exec(), argv);
    o.timeout = std::chrono::milliseconds(0);  // bounded by the wait below
    o.env["TMPDIR"] = ctx.workDir.string();    // where snapshot=on puts its overlay
    ctx.log.info("booting " + ctx.output.filename().string() + " (" + accel + ", " +
                 formatBytes(bt.memory) + "), waiting for \"" + bt.expect +
                 "\" on the serial console");
    const auto start = std::chrono::steady_clock::now();
    Subprocess qemu(std::move(o));
    std::string text;
    for (;;) {
      ctx.checkStop();
      try {
        text = readFile(console);
      } catch (const Error&) {
      }
      if (text.find(bt.expect) != std::string::npos) break;
      auto elapsed = std::chrono::steady_clock::now() - start;
      if (elapsed > bt.timeout) {
        qemu.terminate();
        throw Error("boot test: no \"" + bt.expect + "\" on the serial console within " +
                    formatDuration(bt.timeout) + "; last console lines:" + lastLines(text, 20));
      }
      ctx.log.progress(static_cast<std::uint64_t>(
                           std::chrono::duration_cast<std::chrono::seconds>(elapsed).count()),
                       static_cast<std::uint64_t>(
                           std::chrono::duration_cast<std::chrono::seconds>(bt.timeout).count()),
                       "seconds");
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    qemu.terminate();
    for (std::istringstream in(text); !in.eof();) {
      std::string l;
      std::getline(in, l);
      if (!l.empty() && l.back() == '\r') l.pop_back();
      ctx.log.output(l);
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", secs);
    ctx.validation["boot_test"] = {
        {"passed", true}, {"seconds", secs}, {"accel", accel}, {"expect", bt.expect}};
    return std::string("\"") + bt.expect + "\" on the serial console after " + buf + " s (" +
           accel + ")";
  }
};

}  // namespace

std::unique_ptr<Step> makeBootTestStep() {
  return std::make_unique<BootTestStep>();
}

}  // namespace imgpipe::build
