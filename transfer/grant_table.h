#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>

namespace imgpipe::transfer {

// Who may fetch what from this agent's artifact server: the coordinator's grants, counted per
// job. Two jobs may move one artifact over the same hop to the same peer; cancelling or finishing
// one of them revokes only its own grant, and the peer keeps the artifact as long as any job
// still holds one. Value type, no sockets: the server asks it, tests drive it directly.
class GrantTable {
 public:
  void grant(const std::string& artifactId, const std::string& peerKey, const std::string& peerName,
             const std::string& jobId);
  // Removes `jobId`'s grant only; returns true when that was the last one for (artifact, key).
  bool revoke(const std::string& artifactId, const std::string& peerKey, const std::string& jobId);
  // A key allowed everything (the standalone tool's --allow).
  void allowAll(const std::string& peerKey, const std::string& peerName);

  // A grant for an image covers the deltas that produce it.
  bool allows(const std::string& peerKey, const std::string& artifactId) const;
  // The key holds some grant (the ZAP handler admits it).
  bool knows(const std::string& peerKey) const;
  // For log lines: the name the coordinator gave the key, or a prefix of the key.
  std::string nameOf(const std::string& peerKey) const;
  // How many jobs hold a grant of `artifactId` for `peerKey`.
  std::size_t jobs(const std::string& artifactId, const std::string& peerKey) const;

 private:
  struct Holder {
    std::string name;
    std::set<std::string> jobs;
  };
  std::map<std::string, std::map<std::string, Holder>> grants_;  // artifact -> key -> holder
  std::map<std::string, int> keys_;                              // key -> (artifact, key) pairs
  std::map<std::string, std::string> names_;                     // key -> name
  std::map<std::string, std::string> allowAll_;                  // key -> name
};

}  // namespace imgpipe::transfer
