#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace imgpipe::transfer {

// The chunks the artifact server owes one peer while that peer's connection is full. Entries are
// small (an id and an index; the bytes are read from disk only when they can be sent), each
// (artifact, index) is owed at most once, and there are at most `capacity` of them: a peer that
// asks for chunk 0 a hundred thousand times without reading costs one entry. A receiver that
// keeps to its credit window never comes near the capacity. Value type, no sockets.
class PeerOutbox {
 public:
  struct Owed {
    std::string artifactId;
    std::uint32_t index = 0;
    std::chrono::steady_clock::time_point since;
  };

  explicit PeerOutbox(std::size_t capacity) : capacity_(capacity) {}

  // False (and nothing kept) when that chunk is already owed or the outbox is full.
  bool add(Owed owed) {
    if (queue_.size() >= capacity_) return false;
    if (!owed_.emplace(owed.artifactId, owed.index).second) return false;
    queue_.push_back(std::move(owed));
    return true;
  }
  std::optional<Owed> next() {
    if (queue_.empty()) return std::nullopt;
    Owed o = std::move(queue_.front());
    queue_.pop_front();
    owed_.erase({o.artifactId, o.index});
    return o;
  }
  bool empty() const { return queue_.empty(); }
  std::size_t size() const { return queue_.size(); }

 private:
  std::size_t capacity_;
  std::deque<Owed> queue_;
  std::set<std::pair<std::string, std::uint32_t>> owed_;
};

}  // namespace imgpipe::transfer
