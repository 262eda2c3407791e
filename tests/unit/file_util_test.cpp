#include "common/file_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>
#include <vector>

#include "common/temp_dir.h"

using namespace imgpipe;

// Found by two parallel builds remembering the same base digest: with a temp name shared by
// the threads of one process, one rename took the other's file away.
TEST(FileUtil, ConcurrentAtomicWritesOfOnePathAllSucceed) {
  TempDir dir;
  const auto target = dir.path() / "entry.json";
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        try {
          writeFileAtomic(target, "writer " + std::to_string(t));
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  for (auto& w : writers)
    w.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(readFile(target).substr(0, 7), "writer ");
  // No temp file is left behind.
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path()))
    ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(FileUtil, AtomicWriteSetsTheModeAskedFor) {
  TempDir dir;
  const auto target = dir.path() / "secret";
  writeFileAtomic(target, "k", 0600);
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}
