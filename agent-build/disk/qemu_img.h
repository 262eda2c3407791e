#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// What `qemu-img info` says about an image file. Value type.
struct ImageInfo {
  std::string format;  // qcow2, raw, ...
  std::uint64_t virtualSize = 0;
  std::uint64_t actualSize = 0;      // allocated on disk
  std::string backingFile;           // non-empty: refused as a base or output
  std::string compressionType;       // qcow2 only: zlib or zstd
  std::string dataFile;              // qcow2 only: an external data file
  std::vector<std::string> extents;  // vmdk only: the files holding its data
};

ImageInfo qemuImgInfo(const ExecContext& ctx, const std::filesystem::path& file);
std::string qemuImgVersion(const ExecContext& ctx);  // "7.2.22"

struct ConvertOptions {
  std::filesystem::path source;
  std::string sourceFormat;
  std::filesystem::path target;
  std::string targetFormat;  // raw or qcow2
  bool compress = false;
  definition::Compression compression = definition::Compression::zlib;
  // -W: coroutines write out of order. Much faster compression (it runs in parallel), but two
  // conversions of the same input are no longer byte-identical.
  bool outOfOrder = false;
  unsigned coroutines = 8;
  std::uint64_t expectedReadBytes = 0;  // for progress; 0 = unknown
};

// Runs qemu-img convert; `progress(done, total)` follows the bytes read.
void qemuImgConvert(const ExecContext& ctx, const ConvertOptions& options,
                    const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

// Bytes a file really occupies (st_blocks), for sizing and progress.
std::uint64_t allocatedBytes(const std::filesystem::path& file);

}  // namespace imgpipe::build
