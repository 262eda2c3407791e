#include "agent-glance/raw_expansion.h"

#include "agent-glance/qcow2_check.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "common/units.h"

namespace imgpipe::glance {

namespace fs = std::filesystem;

ExpandedRaw::ExpandedRaw(const fs::path& qcow2, const fs::path& scratchDir,
                         const definition::OutputDigests& expected,
                         std::chrono::milliseconds timeout, std::stop_token stop)
    : dir_(scratchDir, "raw-"), file_(dir_.path() / (expected.sha256.substr(0, 16) + ".raw")) {
  SubprocessOptions convert;
  // -f: the format was checked; never probed again on a file a peer sent.
  convert.argv = limitedQemuImg(
      {"qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2.string(), file_.string()}, timeout);
  convert.timeout = timeout;
  convert.stop = stop;
  try {
    checkCommand(convert);
  } catch (const Error& e) {
    const std::uint64_t free = freeBytes(scratchDir);
    throw Error("cannot expand " + qcow2.filename().string() + " to raw in " + scratchDir.string() +
                    " (" + formatBytes(free) + " free, the raw is " + formatBytes(expected.size) +
                    " sparse): " + e.what(),
                kindOf(e));
  }
  const FileDigests got = hashFile(file_);
  std::string problems;
  if (got.size != expected.size)
    problems += "; size is " + std::to_string(got.size) + " bytes, the build made " +
                std::to_string(expected.size);
  if (toHex(got.sha256) != expected.sha256)
    problems += "; sha256 is " + toHex(got.sha256) + ", the build made " + expected.sha256;
  if (toHex(got.sha512) != expected.sha512)
    problems += "; sha512 is " + toHex(got.sha512) + ", the build made " + expected.sha512;
  if (!problems.empty())
    throw Error("the raw expanded from " + qcow2.filename().string() +
                " does not match its build manifest" + problems + "; nothing was registered");
}

}  // namespace imgpipe::glance
