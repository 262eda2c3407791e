// The store's file layer with validation bypassed: whatever path it is handed, nothing outside
// the store's root is opened, created, renamed or removed. Each case lists the directory around
// the store before and after.
#include "transfer/store_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "protocol/ids.h"
#include "transfer/artifact_store.h"

using namespace imgpipe;
using namespace imgpipe::transfer;
namespace fs = std::filesystem;

namespace {

// Every path under `dir` but `skip` with its kind, size and content: what "nothing changed" is
// compared on.
std::string listing(const fs::path& dir, const fs::path& skip) {
  std::string out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    const auto& e = *it;
    if (e.path() == skip) {
      it.disable_recursion_pending();
      continue;
    }
    out += fs::relative(e.path(), dir).string();
    if (e.is_symlink())
      out += " -> " + fs::read_symlink(e.path()).string();
    else if (e.is_regular_file())
      out += " " + std::to_string(e.file_size()) + " " + readFile(e.path());
    out += "\n";
  }
  return out;
}

class StoreDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(outside() / "victim");
    std::ofstream(outside() / "victim" / "keep") << "precious";
    std::ofstream(outside() / "secret") << "secret";
    fs::create_directories(root());
    // What an attacker (or a bug) planted inside the store: links pointing out of it.
    fs::create_directory_symlink(outside() / "victim", root() / "link");
    fs::create_symlink(outside() / "secret", root() / "evil");
    before_ = listing(top_.path(), root());
  }
  void TearDown() override {
    EXPECT_EQ(listing(top_.path(), root()), before_) << "outside the store";
  }

  fs::path outside() const { return top_.path() / "outside"; }
  fs::path root() const { return top_.path() / "store"; }

  TempDir top_;
  std::string before_;
};

}  // namespace

TEST_F(StoreDirTest, DotDotAndAbsolutePathsCannotLeaveTheRoot) {
  StoreDir dir(root());
  const std::string absolute = (outside() / "abs").string();
  for (const std::string& rel :
       {std::string("../x"), std::string("a/../../x"), std::string("../outside/victim/keep"),
        absolute, std::string("link/../../outside/y")}) {
    SCOPED_TRACE(rel);
    EXPECT_THROW(dir.open(rel, O_WRONLY | O_CREAT | O_TRUNC, 0644), Error);
    EXPECT_THROW(dir.writeFileAtomic(rel, "attacker"), Error);
    EXPECT_THROW(dir.mkdir(rel), Error);
    EXPECT_THROW(dir.sub(rel, true), Error);
    EXPECT_THROW(dir.readFile(rel), Error);
    EXPECT_FALSE(dir.exists(rel));
  }
  std::ofstream(root() / "inside") << "x";
  EXPECT_THROW(dir.rename("inside", "../moved"), Error);
  EXPECT_THROW(dir.rename("../outside/secret", "stolen"), Error);
  EXPECT_THROW(dir.unlink("../outside/secret"), Error);
  EXPECT_THROW(dir.removeTree("../outside/victim"), Error);
  EXPECT_THROW(dir.removeTree(".."), Error);
  EXPECT_THROW(dir.linkOrCopyIn(outside() / "secret", "../copy"), Error);
  EXPECT_FALSE(fs::exists(outside() / "abs"));
  EXPECT_TRUE(fs::exists(root() / "inside"));
}

TEST_F(StoreDirTest, ASymlinkPlantedInsideIsNeverFollowed) {
  StoreDir dir(root());
  // Through a directory link.
  EXPECT_THROW(dir.open("link/keep", O_WRONLY | O_TRUNC), Error);
  EXPECT_THROW(dir.open("link/new", O_WRONLY | O_CREAT, 0644), Error);
  EXPECT_THROW(dir.writeFileAtomic("link/new", "attacker"), Error);
  EXPECT_THROW(dir.mkdir("link/sub"), Error);
  EXPECT_THROW(dir.sub("link"), Error);
  EXPECT_THROW(dir.list("link"), Error);
  EXPECT_THROW(dir.unlink("link/keep"), Error);
  EXPECT_THROW(dir.rename("link/keep", "mine"), Error);
  // A link as the last component: not opened for reading or writing.
  EXPECT_THROW(dir.open("evil", O_WRONLY | O_TRUNC), Error);
  EXPECT_THROW(dir.readFile("evil"), Error);
  // Removing a tree that holds links removes the links, not what they point to.
  dir.mkdir("objects");
  fs::create_directory_symlink(outside() / "victim", root() / "objects" / "inner");
  std::ofstream(root() / "objects" / "file") << "mine";
  dir.removeTree("objects");
  EXPECT_FALSE(fs::exists(root() / "objects"));
  dir.removeTree("link");
  EXPECT_FALSE(fs::is_symlink(root() / "link"));
}

TEST_F(StoreDirTest, AStagedDirectoryIsGoneTheMomentItsOperationFails) {
  StoreDir dir(root());
  try {
    StagedDir stage(dir, ".stage-x");
    stage.dir().writeFileAtomic("manifest", "half");
    EXPECT_TRUE(fs::exists(root() / ".stage-x" / "manifest"));
    throw Error("no space");
  } catch (const Error&) {
  }
  EXPECT_FALSE(fs::exists(root() / ".stage-x"));
  {
    StagedDir stage(dir, ".stage-y");
    stage.commit("done");
  }
  EXPECT_TRUE(fs::is_directory(root() / "done"));
  EXPECT_THROW(StagedDir(dir, "link/.stage"), Error);
}

TEST_F(StoreDirTest, TheStoreRefusesEveryIdThatIsNotAnArtifactId) {
  StoreOptions so;
  so.dir = root();
  ArtifactStore store(so);
  for (const std::string& id :
       {std::string("../x"), std::string("delta-a-b/../../../victim"), std::string("link"),
        std::string("evil"), std::string("a\0b", 3), std::string(300, 'a'), std::string(64, 'G'),
        (outside() / "secret").string()}) {
    SCOPED_TRACE(ids::printable(id));
    EXPECT_THROW(store.find(id), ids::InvalidId);
    EXPECT_THROW(store.pathOf(id), ids::InvalidId);
    EXPECT_THROW(store.remove(id), ids::InvalidId);
  }
  std::ofstream(root() / "image") << "bytes";
  EXPECT_THROW(store.importFile(root() / "image", "../x", "1"), ids::InvalidId);
  EXPECT_THROW(store.importFile(root() / "image", "name", "../1"), ids::InvalidId);
  fs::remove(root() / "image");
}

TEST_F(StoreDirTest, TmpIsSweptAtStartButNotUnderALivingStore) {
  StoreOptions so;
  so.dir = root();
  {
    ArtifactStore first(so);
    const fs::path mine = first.scratch().path();
    std::ofstream(mine / "upload") << "in use";
    fs::create_directories(root() / "tmp" / "left-by-a-crash" / "deep");
    std::ofstream(root() / "tmp" / "junk.sig") << "junk";
    ArtifactStore second(so);  // an operator's import on the same store, while `first` runs
    EXPECT_TRUE(fs::exists(mine / "upload")) << "swept what a living store holds";
    EXPECT_FALSE(fs::exists(root() / "tmp" / "left-by-a-crash"));
    EXPECT_FALSE(fs::exists(root() / "tmp" / "junk.sig"));
  }
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
  fs::remove_all(root() / "tmp");
  fs::remove_all(root() / "objects");
}
