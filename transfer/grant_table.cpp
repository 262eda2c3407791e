#include "transfer/grant_table.h"

#include "protocol/ids.h"

namespace imgpipe::transfer {

void GrantTable::grant(const std::string& artifactId, const std::string& peerKey,
                       const std::string& peerName, const std::string& jobId) {
  auto& holder = grants_[artifactId][peerKey];
  if (holder.jobs.empty()) ++keys_[peerKey];
  holder.name = peerName;
  holder.jobs.insert(jobId);
  names_[peerKey] = peerName;
}

bool GrantTable::revoke(const std::string& artifactId, const std::string& peerKey,
                        const std::string& jobId) {
  auto a = grants_.find(artifactId);
  if (a == grants_.end()) return false;
  auto k = a->second.find(peerKey);
  if (k == a->second.end() || !k->second.jobs.erase(jobId)) return false;
  if (!k->second.jobs.empty()) return false;
  a->second.erase(k);
  if (a->second.empty()) grants_.erase(a);
  if (--keys_[peerKey] == 0) {
    keys_.erase(peerKey);
    if (!allowAll_.count(peerKey)) names_.erase(peerKey);
  }
  return true;
}

void GrantTable::allowAll(const std::string& peerKey, const std::string& peerName) {
  allowAll_[peerKey] = peerName;
  names_[peerKey] = peerName;
}

bool GrantTable::allows(const std::string& peerKey, const std::string& artifactId) const {
  if (allowAll_.count(peerKey)) return true;
  auto granted = [&](std::string_view id) {
    auto a = grants_.find(std::string(id));
    return a != grants_.end() && a->second.count(peerKey) != 0;
  };
  if (granted(artifactId)) return true;
  if (auto parts = ids::splitDelta(artifactId)) return granted(parts->target);
  return false;
}

bool GrantTable::knows(const std::string& peerKey) const {
  return allowAll_.count(peerKey) || keys_.count(peerKey);
}

std::string GrantTable::nameOf(const std::string& peerKey) const {
  auto it = names_.find(peerKey);
  if (it != names_.end()) return it->second;
  return "key " + ids::printable(peerKey.substr(0, 8)) + "...";
}

std::size_t GrantTable::jobs(const std::string& artifactId, const std::string& peerKey) const {
  auto a = grants_.find(artifactId);
  if (a == grants_.end()) return 0;
  auto k = a->second.find(peerKey);
  return k == a->second.end() ? 0 : k->second.jobs.size();
}

}  // namespace imgpipe::transfer
