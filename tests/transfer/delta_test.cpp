// The delta formats on real qcow2 files made by qemu-img (zlib and zstd compressed).
#include "transfer/delta.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/file_util.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "transfer/qcow2.h"

using namespace imgpipe;
using namespace imgpipe::transfer;
namespace fs = std::filesystem;

namespace {

std::string content(size_t size, std::uint64_t seed) {
  std::string s(size, '\0');
  std::uint64_t x = seed;
  for (size_t i = 0; i + 8 <= size; i += 8) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const bool noise = (i / (192 << 10)) % 3 == 0;
    for (int b = 0; b < 8; ++b)
      s[i + b] = noise ? static_cast<char>(x >> (8 * b)) : "cluster "[b];
  }
  return s;
}

fs::path qcow2(const fs::path& dir, const std::string& name, const std::string& data,
               const std::string& compression = "zlib") {
  const auto raw = dir / (name + ".raw");
  std::ofstream(raw, std::ios::binary) << data;
  const auto out = dir / (name + ".qcow2");
  checkCommand({"qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=" + compression,
                raw.string(), out.string()});
  return out;
}

bool qemuImg() {
  SubprocessOptions o;
  o.argv = {"qemu-img", "--version"};
  try {
    return runCommand(o).exitCode == 0;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

TEST(Qcow2Delta, RebuildsTheTargetByteForByteFromFewBytes) {
  if (!qemuImg()) GTEST_SKIP() << "qemu-img is not installed";
  TempDir dir;
  const std::string a = content(12 << 20, 1);
  std::string b = a;
  b.replace(5 << 20, 8192, 8192, 'q');                      // changed blocks
  b.replace(9 << 20, 1 << 20, a.substr(1 << 20, 1 << 20));  // moved data
  auto va = qcow2(dir.path(), "a", a), vb = qcow2(dir.path(), "b", b);
  std::string why;
  auto layout = readQcow2Layout(vb, &why);
  ASSERT_TRUE(layout) << why;
  EXPECT_EQ(layout->clusterSize(), 65536u);
  EXPECT_EQ(layout->guestOrder.size(), layout->clusters.size());
  fs::create_directories(dir.path() / "w1");
  fs::create_directories(dir.path() / "w2");
  auto stats = makeQcow2Delta(va, vb, dir.path() / "delta", dir.path() / "w1", 1024, 3);
  EXPECT_LT(stats.deltaBytes, fs::file_size(vb) / 10) << stats.deltaBytes;
  applyQcow2Delta(va, dir.path() / "delta", dir.path() / "out", dir.path() / "w2");
  EXPECT_EQ(readFile(dir.path() / "out"), readFile(vb));
}

TEST(Qcow2Delta, RefusesWhatItCannotTakeApart) {
  if (!qemuImg()) GTEST_SKIP() << "qemu-img is not installed";
  TempDir dir;
  const std::string a = content(2 << 20, 2);
  auto zlib = qcow2(dir.path(), "zlib", a);
  auto zstd = qcow2(dir.path(), "zstd", a, "zstd");
  const auto plain = dir.path() / "plain";
  std::ofstream(plain, std::ios::binary) << a;
  fs::create_directories(dir.path() / "w");
  EXPECT_THROW(makeQcow2Delta(zlib, zstd, dir.path() / "d", dir.path() / "w", 1024),
               DeltaUnsupported);
  EXPECT_THROW(makeQcow2Delta(plain, zlib, dir.path() / "d", dir.path() / "w", 1024),
               DeltaUnsupported);
  std::string why;
  EXPECT_FALSE(readQcow2Layout(zstd, &why));
  EXPECT_NE(why.find("zstd"), std::string::npos) << why;
}

TEST(Qcow2Delta, ADamagedDeltaFailsLoudly) {
  if (!qemuImg()) GTEST_SKIP() << "qemu-img is not installed";
  TempDir dir;
  const std::string a = content(4 << 20, 3);
  std::string b = a;
  b.replace(1 << 20, 4096, 4096, 'z');
  auto va = qcow2(dir.path(), "a", a), vb = qcow2(dir.path(), "b", b);
  fs::create_directories(dir.path() / "w1");
  fs::create_directories(dir.path() / "w2");
  makeQcow2Delta(va, vb, dir.path() / "delta", dir.path() / "w1", 1024, 3);
  std::string d = readFile(dir.path() / "delta");
  d.resize(d.size() - 100);
  std::ofstream(dir.path() / "delta", std::ios::binary | std::ios::trunc) << d;
  EXPECT_THROW(applyQcow2Delta(va, dir.path() / "delta", dir.path() / "out", dir.path() / "w2"),
               Error);
}

TEST(PlainDelta, RoundTripsAnyFile) {
  TempDir dir;
  std::string a = content(3 << 20, 4), b = a;
  b.insert(100000, "inserted bytes shift everything after them");
  b.replace(2 << 20, 5000, 5000, '!');
  std::ofstream(dir.path() / "a", std::ios::binary) << a;
  std::ofstream(dir.path() / "b", std::ios::binary) << b;
  makeSignature(dir.path() / "a", dir.path() / "sig", 4096);
  auto s = makeDelta(dir.path() / "sig", dir.path() / "b", dir.path() / "delta", 3);
  EXPECT_LT(s.deltaBytes, 64u << 10);
  applyDelta(dir.path() / "a", dir.path() / "delta", dir.path() / "out");
  EXPECT_EQ(readFile(dir.path() / "out"), b);
}
