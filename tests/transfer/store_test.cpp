#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/temp_dir.h"
#include "transfer/artifact_store.h"

using namespace imgpipe;
using namespace imgpipe::transfer;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kStoreChunk = 64 << 10;

std::string data(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

fs::path writeFile(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

StoreOptions options(const TempDir& dir, const std::string& name) {
  StoreOptions o;
  o.dir = dir.path() / name;
  o.chunkSize = kStoreChunk;
  o.retention = 2;
  return o;
}

std::span<const std::byte> bytes(const std::string& s, size_t off, size_t len) {
  return {reinterpret_cast<const std::byte*>(s.data()) + off, std::min(len, s.size() - off)};
}

}  // namespace

TEST(ArtifactStore, ImportMakesACompleteArtifactWithItsManifest) {
  TempDir dir;
  ArtifactStore store(options(dir, "s"));
  const std::string content = data(5 * kStoreChunk + 7, 1);
  auto info = store.importFile(writeFile(dir.path() / "img", content), "img", "1", "{}");
  EXPECT_EQ(info.id, toHex(sha256(content)));
  EXPECT_EQ(info.sha512, toHex(sha512(content)));
  EXPECT_EQ(info.size, content.size());
  auto path = store.pathOf(info.id);
  ASSERT_TRUE(path);
  EXPECT_EQ(readFile(*path), content);
  auto a = store.find(info.id);
  EXPECT_EQ(manifestDigest(a->encodedManifest()), info.manifestDigest);
  ASSERT_EQ(store.inventory().size(), 1u);
  // A second store over the same directory sees it (a restarted agent).
  ArtifactStore again(options(dir, "s"));
  EXPECT_TRUE(again.pathOf(info.id));
}

TEST(ArtifactStore, AWriterVerifiesEveryChunkAndTheWholeFile) {
  TempDir dir;
  ArtifactStore src(options(dir, "src"));
  const std::string content = data(3 * kStoreChunk + 10, 2);
  auto info = src.importFile(writeFile(dir.path() / "img", content), "img", "1");
  ArtifactStore dst(options(dir, "dst"));
  auto partial = dst.openPartial(src.find(info.id)->encodedManifest());
  EXPECT_FALSE(partial->complete());
  EXPECT_FALSE(dst.pathOf(info.id));
  auto writer = Artifact::openWriter(partial);
  ASSERT_TRUE(writer);
  EXPECT_FALSE(Artifact::openWriter(partial)) << "one writer at a time";
  std::string wrong = content.substr(kStoreChunk, kStoreChunk);
  wrong[5] ^= 1;
  EXPECT_FALSE(writer->writeChunk(1, bytes(wrong, 0, kStoreChunk)));
  EXPECT_FALSE(partial->hasChunk(1));
  // Out of order: the whole-file hashes still come out right.
  for (std::uint32_t i : {2u, 0u, 3u, 1u})
    EXPECT_TRUE(writer->writeChunk(i, bytes(content, i * kStoreChunk, kStoreChunk)));
  EXPECT_EQ(partial->chunksAvailable(), 4u);
  writer->finalize();
  EXPECT_TRUE(partial->complete());
  EXPECT_EQ(readFile(*dst.pathOf(info.id)), content);
  EXPECT_FALSE(fs::exists(partial->dir() / "journal"));
}

TEST(ArtifactStore, APartialArtifactResumesFromItsJournal) {
  TempDir dir;
  ArtifactStore src(options(dir, "src"));
  const std::string content = data(4 * kStoreChunk, 3);
  auto info = src.importFile(writeFile(dir.path() / "img", content), "img", "1");
  const std::string manifest = src.find(info.id)->encodedManifest();
  {
    ArtifactStore dst(options(dir, "dst"));
    auto w = Artifact::openWriter(dst.openPartial(manifest));
    w->writeChunk(0, bytes(content, 0, kStoreChunk));
    w->writeChunk(2, bytes(content, 2 * kStoreChunk, kStoreChunk));
  }
  // Chunk 2's data did not survive the "crash"; the journal still lists it.
  {
    std::fstream f(dir.path() / "dst" / "objects" / info.id / "data",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 * kStoreChunk + 100);
    f.put('\x42');
  }
  ArtifactStore dst(options(dir, "dst"));
  auto a = dst.find(info.id);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->chunksAvailable(), 2u);
  auto w = Artifact::openWriter(a);
  EXPECT_EQ(w->reverify(), 1u);
  EXPECT_EQ(a->missingChunks(), (std::vector<std::uint32_t>{1, 2, 3}));
  for (std::uint32_t i : {1u, 2u, 3u})
    w->writeChunk(i, bytes(content, i * kStoreChunk, kStoreChunk));
  w->finalize();
  EXPECT_EQ(readFile(*dst.pathOf(info.id)), content);
}

TEST(ArtifactStore, AChunkDamagedOnDiskIsDroppedNeverServed) {
  TempDir dir;
  ArtifactStore store(options(dir, "s"));
  const std::string content = data(3 * kStoreChunk, 4);
  auto info = store.importFile(writeFile(dir.path() / "img", content), "img", "1");
  auto a = store.find(info.id);
  std::vector<StoreEvent> events;
  store.subscribe([&](const StoreEvent& e) { events.push_back(e); });
  {
    std::fstream f(a->dataPath(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kStoreChunk + 9);
    f.put('\0');
  }
  std::vector<std::byte> buf(kStoreChunk);
  EXPECT_EQ(a->readChunk(0, buf.data()), ReadStatus::ok);
  EXPECT_EQ(a->readChunk(1, buf.data()), ReadStatus::corrupt);
  EXPECT_EQ(a->readChunk(1, buf.data()), ReadStatus::missing);
  EXPECT_FALSE(a->complete());
  EXPECT_FALSE(store.pathOf(info.id));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, StoreEvent::Kind::dropped);
  EXPECT_EQ(events.back().index, 1u);
  // After a restart it is a partial artifact missing exactly that chunk.
  a.reset();
  ArtifactStore again(options(dir, "s"));
  auto b = again.find(info.id);
  EXPECT_FALSE(b->complete());
  EXPECT_EQ(b->missingChunks(), std::vector<std::uint32_t>{1});
  auto w = Artifact::openWriter(b);
  w->writeChunk(1, bytes(content, kStoreChunk, kStoreChunk));
  w->finalize();
  EXPECT_EQ(readFile(*again.pathOf(info.id)), content);
}

TEST(ArtifactStore, RefusesAnArtifactThatDoesNotFitNamingPathNeedAndAvailable) {
  TempDir dir;
  ArtifactStore src(options(dir, "src"));
  auto info = src.importFile(writeFile(dir.path() / "img", data(2 * kStoreChunk, 5)), "img", "1");
  auto o = options(dir, "dst");
  o.reserveBytes = ~0ull / 2;  // whatever the disk has, it is less than this
  ArtifactStore dst(o);
  try {
    dst.openPartial(src.find(info.id)->encodedManifest());
    FAIL() << "expected InsufficientSpace";
  } catch (const InsufficientSpace& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(o.dir.string()), std::string::npos) << what;
    EXPECT_NE(what.find("needs"), std::string::npos) << what;
    EXPECT_NE(what.find("available"), std::string::npos) << what;
  }
  EXPECT_FALSE(dst.find(info.id));
}

TEST(ArtifactStore, KeepsTheNewestVersionsOfEachImage) {
  TempDir dir;
  ArtifactStore store(options(dir, "s"));  // retention 2
  std::vector<std::string> ids;
  for (int v = 1; v <= 4; ++v)
    ids.push_back(store
                      .importFile(writeFile(dir.path() / ("v" + std::to_string(v)),
                                            data(kStoreChunk, 10 + v)),
                                  "img", std::to_string(v))
                      .id);
  store.importFile(writeFile(dir.path() / "other", data(kStoreChunk, 99)), "other", "1");
  // The isos of the same image are versions of their own: kept beside the qcow2s, never a
  // delta basis for one (nor one for them).
  std::vector<std::string> isos;
  for (int v = 3; v <= 4; ++v)
    isos.push_back(store
                       .importFile(writeFile(dir.path() / ("iso" + std::to_string(v)),
                                             data(kStoreChunk, 50 + v)),
                                   "img", std::to_string(v), "{}", definition::OutputKind::iso)
                       .id);
  EXPECT_FALSE(store.find(ids[0]));
  EXPECT_FALSE(store.find(ids[1]));
  EXPECT_TRUE(store.find(ids[2]));
  EXPECT_TRUE(store.find(ids[3]));
  EXPECT_TRUE(store.find(isos[0]));
  EXPECT_TRUE(store.find(isos[1]));
  using definition::OutputKind;
  EXPECT_EQ(store.newestImage("img", OutputKind::qcow2, "")->id(), ids[3]);
  EXPECT_EQ(store.newestImage("img", OutputKind::qcow2, ids[3])->id(), ids[2]);
  EXPECT_EQ(store.newestImage("img", OutputKind::iso, "")->id(), isos[1]);
  EXPECT_EQ(store.newestImage("img", OutputKind::iso, isos[1])->id(), isos[0]);
  EXPECT_EQ(store.find(isos[1])->info().kind, "iso");
  EXPECT_EQ(store.find(ids[3])->info().kind, "qcow2");
  EXPECT_EQ(store.inventory().size(), 5u);
  // A third iso pushes the oldest iso out, not a qcow2.
  store.importFile(writeFile(dir.path() / "iso5", data(kStoreChunk, 55)), "img", "5", "{}",
                   OutputKind::iso);
  EXPECT_FALSE(store.find(isos[0]));
  EXPECT_TRUE(store.find(ids[2]));
}

TEST(ArtifactStore, AnImportByAnotherProcessIsFoundLater) {
  TempDir dir;
  ArtifactStore serving(options(dir, "s"));
  ArtifactStore importer(options(dir, "s"));
  auto info = importer.importFile(writeFile(dir.path() / "img", data(kStoreChunk, 7)), "img", "1");
  auto a = serving.find(info.id);
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->complete());
}

// A reused build: the same bytes published again for a new version. The store hands back the
// artifact under the new version and metadata (issue 10), and a receiver already holding the
// bytes takes the new manifest without fetching anything again.
TEST(ArtifactStore, TheSameBytesUnderANewVersionTakeTheNewManifest) {
  TempDir dir;
  ArtifactStore origin(options(dir, "origin"));
  const std::string content = data(3 * kStoreChunk + 11, 4);
  const auto file = writeFile(dir.path() / "img", content);
  auto v1 = origin.importFile(file, "img", "1", R"({"v":1})");
  auto v2 = origin.importFile(file, "img", "2", R"({"v":2})");
  EXPECT_EQ(v2.id, v1.id);
  EXPECT_EQ(v2.imageVersion, "2");
  EXPECT_NE(v2.manifestDigest, v1.manifestDigest);
  EXPECT_EQ(origin.find(v1.id)->manifest().metadata, R"({"v":2})");

  // A receiver holding version 1's bytes complete.
  ArtifactStore relay(options(dir, "relay"));
  relay.importFile(file, "img", "1", R"({"v":1})");
  const auto encoded2 = origin.find(v1.id)->encodedManifest();
  auto a = relay.openPartial(encoded2);
  EXPECT_TRUE(a->complete()) << "the bytes were already here and verified";
  EXPECT_EQ(a->digest(), v2.manifestDigest);
  EXPECT_EQ(a->manifest().imageVersion, "2");
  a.reset();

  // Survives a restart.
  ArtifactStore reopened(options(dir, "relay"));
  EXPECT_EQ(reopened.find(v1.id)->manifest().imageVersion, "2");

  // While version 1 is in use (a transfer holds it), its manifest is not changed under it.
  auto held = origin.find(v1.id);
  EXPECT_THROW(origin.importFile(file, "img", "3", "{}"), Error);
  EXPECT_EQ(held->manifest().imageVersion, "2");
}
