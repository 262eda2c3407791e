#include <gtest/gtest.h>

#include <fstream>

#include "common/file_util.h"
#include "common/temp_dir.h"
#include "transfer/chunk_journal.h"

using namespace imgpipe;
using namespace imgpipe::transfer;

TEST(ChunkJournal, RecordsGoodAndDroppedChunksAcrossReopen) {
  TempDir dir;
  const auto path = dir.path() / "journal";
  {
    ChunkJournal j(StoreDir(dir.path()), "journal", 10);
    EXPECT_EQ(j.replayed(), std::vector<bool>(10, false));
    j.recordGood(3);
    j.recordGood(7);
    j.recordGood(0);
    j.recordDropped(7);
  }
  ChunkJournal j(StoreDir(dir.path()), "journal", 10);
  std::vector<bool> expect(10, false);
  expect[0] = expect[3] = true;
  EXPECT_EQ(j.replayed(), expect);
}

TEST(ChunkJournal, ATornLastRecordIsCutOff) {
  TempDir dir;
  const auto path = dir.path() / "journal";
  {
    ChunkJournal j(StoreDir(dir.path()), "journal", 4);
    j.recordGood(1);
    j.recordGood(2);
  }
  // A crash in the middle of an append leaves half a record.
  std::string bytes = readFile(path);
  bytes.resize(bytes.size() - 3);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  {
    ChunkJournal j(StoreDir(dir.path()), "journal", 4);
    EXPECT_TRUE(j.replayed()[1]);
    EXPECT_FALSE(j.replayed()[2]);
    j.recordGood(3);  // appended after the valid part, not after the torn bytes
  }
  ChunkJournal j(StoreDir(dir.path()), "journal", 4);
  EXPECT_TRUE(j.replayed()[1]);
  EXPECT_TRUE(j.replayed()[3]);
}

TEST(ChunkJournal, ReplayStopsAtGarbage) {
  TempDir dir;
  const auto path = dir.path() / "journal";
  {
    ChunkJournal j(StoreDir(dir.path()), "journal", 4);
    j.recordGood(0);
  }
  std::string bytes = readFile(path);
  bytes += std::string("\x09\x00\x00\x00GOOD", 8);       // index 9 of 4: garbage
  bytes += std::string("\x01\x00\x00\x00", 4) + "DOOG";  // would be valid, but after garbage
  auto s = replayJournal(bytes, 4);
  EXPECT_TRUE(s.headerOk);
  EXPECT_TRUE(s.present[0]);
  EXPECT_FALSE(s.present[1]);
  EXPECT_EQ(s.validBytes, 16u + 8u);
}

TEST(ChunkJournal, AJournalForAnotherChunkCountStartsAfresh) {
  TempDir dir;
  const auto path = dir.path() / "journal";
  {
    ChunkJournal j(StoreDir(dir.path()), "journal", 4);
    j.recordGood(2);
  }
  ChunkJournal j(StoreDir(dir.path()), "journal", 5);
  EXPECT_EQ(j.replayed(), std::vector<bool>(5, false));
}

TEST(ChunkJournal, RewriteKeepsExactlyThePresentSet) {
  TempDir dir;
  const auto path = dir.path() / "journal";
  std::vector<bool> present{true, false, true, true};
  {
    ChunkJournal j(StoreDir(dir.path()), "journal", 4);
    j.recordGood(1);
    j.rewrite(present);
  }
  ChunkJournal j(StoreDir(dir.path()), "journal", 4);
  EXPECT_EQ(j.replayed(), present);
}
