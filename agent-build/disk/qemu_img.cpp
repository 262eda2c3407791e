#include "agent-build/disk/qemu_img.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "common/error.h"
#include "common/fd_io.h"
#include "common/unique_fd.h"

namespace imgpipe::build {

ImageInfo qemuImgInfo(const ExecContext& ctx, const std::filesystem::path& file) {
  // No -f: the format is probed here on purpose, and then always passed explicitly afterwards.
  auto out = run(ctx, {"qemu-img", "info", "--output=json", file.string()}, true);
  ImageInfo info;
  try {
    auto j = nlohmann::json::parse(out);
    info.format = j.at("format").get<std::string>();
    info.virtualSize = j.at("virtual-size").get<std::uint64_t>();
    info.actualSize = j.value("actual-size", std::uint64_t{0});
    info.backingFile = j.value("backing-filename", std::string());
    if (j.contains("format-specific") && j["format-specific"].contains("data")) {
      const auto& data = j["format-specific"]["data"];
      info.compressionType = data.value("compression-type", std::string());
      info.dataFile = data.value("data-file", std::string());
      if (data.contains("extents"))
        for (const auto& e : data["extents"])
          info.extents.push_back(e.value("filename", std::string()));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error("cannot read qemu-img info of " + file.string() + ": " + e.what());
  }
  return info;
}

std::string qemuImgVersion(const ExecContext& ctx) {
  auto out = run(ctx, {"qemu-img", "--version"}, true);
  std::smatch m;
  static const std::regex re("version ([0-9][0-9.]*)");
  if (std::regex_search(out, m, re)) return m[1];
  return "unknown";
}

void qemuImgConvert(const ExecContext& ctx, const ConvertOptions& o,
                    const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  std::vector<std::string> argv = {"qemu-img",     "convert", "-f",
                                   o.sourceFormat, "-O",      o.targetFormat};
  if (o.compress) argv.push_back("-c");
  if (o.targetFormat == "qcow2" && o.compress && o.compression == definition::Compression::zstd) {
    argv.push_back("-o");
    argv.push_back("compression_type=zstd");
  }
  if (o.outOfOrder) argv.push_back("-W");
  argv.push_back("-m");
  argv.push_back(std::to_string(o.coroutines));
  argv.push_back(o.source.string());
  argv.push_back(o.target.string());
  auto options = commandOptions(ctx, argv);
  if (progress && o.expectedReadBytes > 0)
    runWithReadProgress(ctx, options, o.expectedReadBytes, progress);
  else
    run(ctx, options);
}

std::uint64_t allocatedBytes(const std::filesystem::path& file) {
  UniqueFd fd(::open(file.c_str(), O_PATH | O_CLOEXEC));
  if (!fd) throwErrno("cannot stat " + file.string());
  return imgpipe::allocatedBytes(fd.get());
}

}  // namespace imgpipe::build
