#include "agent-glance/qcow2_check.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/subprocess.h"
#include "common/units.h"

namespace imgpipe::glance {
namespace {
using json = nlohmann::json;
}  // namespace

std::vector<std::string> limitedQemuImg(std::vector<std::string> argv,
                                        std::chrono::milliseconds timeout) {
  // 2 GiB of address space and the timeout as CPU time; qemu-img needs far less for a sane image.
  const auto cpuSeconds = std::max<long long>(10, timeout.count() / 1000);
  std::vector<std::string> out = {"prlimit", "--as=2147483648",
                                  "--cpu=" + std::to_string(cpuSeconds), "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

ImageFileInfo parseQemuImgInfo(const std::string& text) {
  auto doc = json::parse(text, nullptr, false);
  if (!doc.is_object() || !doc.contains("format"))
    throw Error("qemu-img info did not print the expected JSON: " + text.substr(0, 200));
  ImageFileInfo info;
  info.format = doc.value("format", "");
  info.virtualSize = doc.value("virtual-size", std::uint64_t{0});
  info.backingFile = doc.value("backing-filename", "");
  if (info.backingFile.empty()) info.backingFile = doc.value("full-backing-filename", "");
  info.encrypted = doc.value("encrypted", false);
  if (auto fs = doc.find("format-specific"); fs != doc.end() && fs->is_object()) {
    if (auto data = fs->find("data"); data != fs->end() && data->is_object()) {
      info.dataFile = data->value("data-file", "");
      info.corruptFlag = data->value("corrupt", false);
      if (data->contains("encrypt")) info.encrypted = true;
    }
  }
  return info;
}

ImageFileInfo checkQcow2(const std::filesystem::path& file, const Qcow2Limits& limits,
                         std::stop_token stop) {
  const std::string name = file.string();
  SubprocessOptions info;
  // The format is probed, not forced: a raw file must be reported as raw, not misread.
  info.argv = limitedQemuImg({"qemu-img", "info", "--output=json", name}, limits.timeout);
  info.captureStdout = true;
  info.timeout = limits.timeout;
  info.stop = stop;
  ImageFileInfo result = parseQemuImgInfo(checkCommand(info));

  if (result.format != "qcow2")
    throw Error(name + " is not a qcow2 image (qemu-img reports format '" + result.format +
                "'); imgpipe registers qcow2 only");
  if (!result.backingFile.empty())
    throw Error(name + " has a backing file ('" + result.backingFile +
                "'); an image for Glance must be self-contained (qemu-img convert -O qcow2 "
                "flattens it)");
  if (!result.dataFile.empty())
    throw Error(name + " uses an external data file ('" + result.dataFile +
                "'); an image for Glance must be self-contained");
  if (result.encrypted) throw Error(name + " is encrypted; imgpipe registers plain qcow2 only");
  if (result.corruptFlag) throw Error(name + " is marked corrupt in its qcow2 header");
  if (result.virtualSize > limits.maxVirtualSize)
    throw Error(name + " has a virtual size of " + formatBytes(result.virtualSize) +
                ", over the limit of " + formatBytes(limits.maxVirtualSize) +
                " (glance.max_virtual_size)");

  SubprocessOptions check;
  check.argv =
      limitedQemuImg({"qemu-img", "check", "-f", "qcow2", "--output=json", name}, limits.timeout);
  check.captureStdout = true;
  check.timeout = limits.timeout;
  check.stop = stop;
  CommandResult r = runCommand(check);
  // Exit codes: 0 clean, 3 leaked clusters only (harmless), 2 corruption, 1 check failed.
  if (r.exitCode == 0 || r.exitCode == 3) return result;
  auto doc = json::parse(r.stdoutText, nullptr, false);
  if (r.exitCode == 2 && doc.is_object())
    throw Error(name + " is corrupt: qemu-img check found " +
                std::to_string(doc.value("corruptions", 0)) + " corruption(s)");
  throw CommandError(joinCommand(check.argv), r);
}

}  // namespace imgpipe::glance
