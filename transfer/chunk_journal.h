#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "transfer/store_dir.h"

namespace imgpipe::transfer {

// What a journal file says: which chunks were verified into the data file (and not dropped
// since), and how many bytes of the file are well-formed records. Pure: unit-tested on bytes.
struct JournalState {
  std::vector<bool> present;
  std::uint64_t validBytes = 0;  // a torn last record (a crash mid-append) ends the valid part
  bool headerOk = false;
};
JournalState replayJournal(std::string_view bytes, std::uint32_t chunkCount);

// The receiver's on-disk record of verified chunks of one partial artifact: a 16-byte header,
// then 8-byte records (chunk index, GOOD or DROP), appended. Appends are not fsynced one by one:
// a crash may lose the last records (those chunks are fetched again) and the data of a recorded
// chunk may not have reached the disk — which is why a restart re-verifies every chunk the
// journal lists before trusting it. Resource type (owns the file descriptor).
class ChunkJournal {
 public:
  // Opens or creates the journal `name` beneath `dir` and replays it; a torn tail is cut off, a
  // journal written for another chunk count is started afresh.
  ChunkJournal(const StoreDir& dir, const std::string& name, std::uint32_t chunkCount);

  const std::vector<bool>& replayed() const { return replayed_; }
  void recordGood(std::uint32_t index);
  void recordDropped(std::uint32_t index);
  // Rewrites the journal from a bitmap (after re-verification found chunks missing).
  void rewrite(const std::vector<bool>& present);
  void sync();

 private:
  void append(std::uint32_t index, std::uint32_t tag);

  std::filesystem::path path_;
  std::uint32_t chunkCount_;
  UniqueFd fd_;
  std::vector<bool> replayed_;
};

}  // namespace imgpipe::transfer
