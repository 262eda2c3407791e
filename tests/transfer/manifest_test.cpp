#include "transfer/manifest.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/hash.h"
#include "common/temp_dir.h"
#include "protocol/schema/transfer.capnp.h"

using namespace imgpipe;
using namespace imgpipe::transfer;

namespace {

std::filesystem::path writeFile(const TempDir& dir, const std::string& name,
                                const std::string& data) {
  auto p = dir.path() / name;
  std::ofstream(p, std::ios::binary) << data;
  return p;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 2654435761u) >> 13);
  return s;
}

}  // namespace

TEST(Manifest, BuiltFromAFileDescribesEveryChunk) {
  TempDir dir;
  const std::string data = pattern(3 * 65536 + 100);
  ManifestOptions o;
  o.imageName = "img";
  o.imageVersion = "7";
  o.chunkSize = 65536;
  auto m = buildManifest(writeFile(dir, "f", data), o);
  EXPECT_EQ(m.size, data.size());
  EXPECT_EQ(m.chunkCount(), 4u);
  EXPECT_EQ(m.chunkLength(3), 100u);
  EXPECT_EQ(m.chunkLength(4), 0u);
  EXPECT_EQ(m.chunkHash(1), sha256(data.substr(65536, 65536)));
  EXPECT_EQ(m.chunkHash(3), sha256(data.substr(3 * 65536)));
  EXPECT_EQ(m.sha256, sha256(data));
  EXPECT_EQ(m.sha512, sha512(data));
  EXPECT_EQ(m.id(), toHex(sha256(data)));
  EXPECT_EQ(m.virtualSize, data.size());  // not a qcow2
}

TEST(Manifest, ReadsTheVirtualSizeOfAQcow2) {
  TempDir dir;
  std::string header = pattern(70000);
  header.replace(0, 4, "QFI\xfb");
  const std::uint64_t vsize = 10ull << 30;
  for (int i = 0; i < 8; ++i)
    header[24 + i] = static_cast<char>(vsize >> (56 - 8 * i));
  auto m = buildManifest(writeFile(dir, "q", header), {});
  EXPECT_EQ(m.virtualSize, vsize);
}

TEST(Manifest, EncodingRoundTripsAndTheDigestIsOverTheBytes) {
  TempDir dir;
  ManifestOptions o;
  o.imageName = "img";
  o.imageVersion = "1";
  o.metadata = R"({"packages": ["curl"]})";
  o.chunkSize = 65536;
  auto m = buildManifest(writeFile(dir, "f", pattern(200000)), o);
  const std::string encoded = encodeManifest(m);
  EXPECT_EQ(encodeManifest(m), encoded) << "encoding must be deterministic";
  EXPECT_EQ(manifestDigest(encoded), toHex(sha256(encoded)));
  std::string why;
  auto back = decodeManifest(encoded, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(back->id(), m.id());
  EXPECT_EQ(back->chunkHashes, m.chunkHashes);
  EXPECT_EQ(back->metadata, o.metadata);
  EXPECT_EQ(back->imageVersion, "1");
}

namespace {

// `encoded` with its output field replaced (or, with nullopt, absent: a manifest before 0.5).
std::string withOutput(const std::string& encoded, std::optional<std::string> output) {
  kj::ArrayPtr<const capnp::word> words(reinterpret_cast<const capnp::word*>(encoded.data()),
                                        encoded.size() / sizeof(capnp::word));
  capnp::FlatArrayMessageReader reader(words);
  capnp::MallocMessageBuilder message;
  message.setRoot(reader.getRoot<proto::Manifest>());
  auto root = message.getRoot<proto::Manifest>();
  if (output)
    root.setOutput(*output);
  else
    root.disownOutput();
  auto flat = capnp::messageToFlatArray(message);
  auto out = flat.asBytes();
  return std::string(reinterpret_cast<const char*>(out.begin()), out.size());
}

}  // namespace

TEST(Manifest, NamesTheOutputItIsAndAManifestWithoutOneIsTheQcow2) {
  TempDir dir;
  ManifestOptions o;
  o.imageName = "img";
  o.imageVersion = "1";
  o.chunkSize = 65536;
  o.output = definition::OutputKind::iso;
  const std::string encoded = encodeManifest(buildManifest(writeFile(dir, "f", pattern(1000)), o));
  std::string why;
  auto iso = decodeManifest(encoded, &why);
  ASSERT_TRUE(iso) << why;
  EXPECT_EQ(iso->output, definition::OutputKind::iso);
  auto old = decodeManifest(withOutput(encoded, std::nullopt), &why);
  ASSERT_TRUE(old) << why;
  EXPECT_EQ(old->output, definition::OutputKind::qcow2);
  // A raw is made at the controller, never carried; an unknown kind is refused by name.
  EXPECT_FALSE(decodeManifest(withOutput(encoded, "raw"), &why));
  EXPECT_NE(why.find("output 'raw'"), std::string::npos) << why;
  EXPECT_FALSE(decodeManifest(withOutput(encoded, "vmdk"), &why));
  EXPECT_NE(why.find("output 'vmdk'"), std::string::npos) << why;
}

TEST(Manifest, DecodingRefusesGarbageAndInconsistency) {
  std::string why;
  EXPECT_FALSE(decodeManifest("not a manifest at all!!!", &why));
  EXPECT_FALSE(why.empty());
  EXPECT_FALSE(decodeManifest("", &why));

  Manifest m;
  m.imageName = "img";
  m.imageVersion = "1";
  m.size = 100000;
  m.sha256 = std::string(32, 'a');
  m.sha512 = std::string(64, 'b');
  m.chunkSize = 65536;
  m.chunkHashes = std::string(32, 'c');  // one hash for two chunks
  EXPECT_FALSE(decodeManifest(encodeManifest(m), &why));
  EXPECT_NE(why.find("chunk hashes"), std::string::npos) << why;

  m.chunkHashes = std::string(64, 'c');
  m.chunkSize = 1000;  // below the minimum
  EXPECT_FALSE(decodeManifest(encodeManifest(m), &why));

  m.chunkSize = 65536;
  EXPECT_TRUE(decodeManifest(encodeManifest(m), &why)) << why;
  m.kind = ArtifactKind::delta;  // a delta must name basis and target
  EXPECT_FALSE(decodeManifest(encodeManifest(m), &why));
}

TEST(Manifest, DeltaIdsNameBasisAndTarget) {
  Manifest m;
  m.kind = ArtifactKind::delta;
  m.basisId = std::string(64, 'a');
  m.targetId = std::string(64, 'b');
  EXPECT_EQ(m.id(), "delta-" + m.basisId + "-" + m.targetId);
}

TEST(Manifest, RefusesAChunkSizeOutOfRange) {
  TempDir dir;
  ManifestOptions o;
  o.chunkSize = 100;
  EXPECT_THROW(buildManifest(writeFile(dir, "f", "x"), o), Error);
}
