#include "transfer/key_budget.h"

namespace imgpipe::transfer {

bool KeyBudget::admit(const std::string& routingId, const std::string& key, Clock::time_point now) {
  if (auto it = connections_.find(routingId); it != connections_.end()) {
    // A routing id is one connection, and one connection is one key: a mismatch is refused.
    if (it->second.key != key) return false;
    it->second.lastHeard = now;
    return true;
  }
  Key& k = keys_[key];
  if (k.connections >= connectionsPerKey_) {
    if (k.connections == 0) keys_.erase(key);
    return false;
  }
  ++k.connections;
  connections_.emplace(routingId, Connection{key, 0, now});
  return true;
}

bool KeyBudget::take(const std::string& routingId) {
  auto it = connections_.find(routingId);
  if (it == connections_.end()) return false;
  Key& k = keys_.at(it->second.key);
  if (k.requests >= requestsPerKey_) return false;
  ++k.requests;
  ++it->second.requests;
  return true;
}

void KeyBudget::give(const std::string& routingId) {
  auto it = connections_.find(routingId);
  if (it == connections_.end() || it->second.requests == 0) return;
  --it->second.requests;
  --keys_.at(it->second.key).requests;
}

void KeyBudget::forget(const std::string& routingId) {
  auto it = connections_.find(routingId);
  if (it == connections_.end()) return;
  auto k = keys_.find(it->second.key);
  k->second.requests -= it->second.requests;
  if (--k->second.connections == 0) keys_.erase(k);
  connections_.erase(it);
}

std::vector<std::string> KeyBudget::idleSince(Clock::time_point cutoff) const {
  std::vector<std::string> idle;
  for (const auto& [routingId, c] : connections_)
    if (c.requests == 0 && c.lastHeard < cutoff) idle.push_back(routingId);
  return idle;
}

std::size_t KeyBudget::requests(const std::string& routingId) const {
  auto it = connections_.find(routingId);
  return it == connections_.end() ? 0 : it->second.requests;
}

std::string KeyBudget::keyOf(const std::string& routingId) const {
  auto it = connections_.find(routingId);
  return it == connections_.end() ? "" : it->second.key;
}

std::size_t KeyBudget::keyConnections(const std::string& key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? 0 : it->second.connections;
}

std::size_t KeyBudget::keyRequests(const std::string& key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? 0 : it->second.requests;
}

}  // namespace imgpipe::transfer
