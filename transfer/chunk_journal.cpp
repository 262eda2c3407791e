#include "transfer/chunk_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

namespace imgpipe::transfer {
namespace {

constexpr char kMagic[8] = {'I', 'P', 'J', 'R', 'N', 'L', '0', '1'};
constexpr std::uint32_t kGood = 0x474f4f44;  // "GOOD"
constexpr std::uint32_t kDrop = 0x44524f50;  // "DROP"
constexpr size_t kHeader = 16;
constexpr size_t kRecord = 8;

void putU32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t getU32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

std::string header(std::uint32_t chunkCount) {
  std::string h(kHeader, '\0');
  std::memcpy(h.data(), kMagic, sizeof kMagic);
  putU32(h.data() + 8, chunkCount);
  return h;
}

void writeAll(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("cannot write " + path.string());
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

JournalState replayJournal(std::string_view bytes, std::uint32_t chunkCount) {
  JournalState s;
  s.present.assign(chunkCount, false);
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0 ||
      getU32(bytes.data() + 8) != chunkCount)
    return s;
  s.headerOk = true;
  size_t pos = kHeader;
  for (; pos + kRecord <= bytes.size(); pos += kRecord) {
    const std::uint32_t index = getU32(bytes.data() + pos);
    const std::uint32_t tag = getU32(bytes.data() + pos + 4);
    if (index >= chunkCount || (tag != kGood && tag != kDrop)) break;
    s.present[index] = tag == kGood;
  }
  s.validBytes = pos;
  return s;
}

ChunkJournal::ChunkJournal(const StoreDir& dir, const std::string& name, std::uint32_t chunkCount)
    : path_(dir.path(name)), chunkCount_(chunkCount) {
  std::string existing;
  if (dir.exists(name)) existing = dir.readFile(name);
  JournalState state = replayJournal(existing, chunkCount);
  fd_ = dir.open(name, O_WRONLY | O_CREAT, 0644);
  const auto& path = path_;
  if (!state.headerOk) {
    if (::ftruncate(fd_.get(), 0) != 0) throwErrno("cannot truncate " + path.string());
    writeAll(fd_.get(), header(chunkCount), path_);
  } else if (state.validBytes < existing.size()) {
    if (::ftruncate(fd_.get(), static_cast<off_t>(state.validBytes)) != 0)
      throwErrno("cannot truncate " + path.string());
  }
  if (::lseek(fd_.get(), 0, SEEK_END) < 0) throwErrno("cannot seek " + path.string());
  replayed_ = std::move(state.present);
}

void ChunkJournal::append(std::uint32_t index, std::uint32_t tag) {
  char rec[kRecord];
  putU32(rec, index);
  putU32(rec + 4, tag);
  writeAll(fd_.get(), std::string_view(rec, kRecord), path_);
}

void ChunkJournal::recordGood(std::uint32_t index) {
  append(index, kGood);
}
void ChunkJournal::recordDropped(std::uint32_t index) {
  append(index, kDrop);
}

void ChunkJournal::rewrite(const std::vector<bool>& present) {
  std::string content = header(chunkCount_);
  for (std::uint32_t i = 0; i < present.size(); ++i) {
    if (!present[i]) continue;
    char rec[kRecord];
    putU32(rec, i);
    putU32(rec + 4, kGood);
    content.append(rec, kRecord);
  }
  if (::ftruncate(fd_.get(), 0) != 0) throwErrno("cannot truncate " + path_.string());
  if (::lseek(fd_.get(), 0, SEEK_SET) < 0) throwErrno("cannot seek " + path_.string());
  writeAll(fd_.get(), content, path_);
}

void ChunkJournal::sync() {
  if (::fdatasync(fd_.get()) != 0) throwErrno("cannot sync " + path_.string());
}

}  // namespace imgpipe::transfer
