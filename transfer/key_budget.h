#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace imgpipe::transfer {

// What the artifact server holds for one peer key (its CURVE public key, as the ZAP handler
// reports it) across all of that key's connections: a key that opens 200 connections gets no
// more than a key with one. Counts connections (routing ids) and the requests held for them
// (parked plus owed); the server asks before it holds anything more. Value type, no sockets.
class KeyBudget {
 public:
  using Clock = std::chrono::steady_clock;

  KeyBudget(std::size_t connectionsPerKey, std::size_t requestsPerKey)
      : connectionsPerKey_(connectionsPerKey), requestsPerKey_(requestsPerKey) {}

  // A message from connection `routingId` of `key` at `now`: true when that connection may be
  // served (it already is, or its key has fewer than connectionsPerKey; it then takes a slot).
  // A connection refused here has no state at all: nothing is kept for it.
  bool admit(const std::string& routingId, const std::string& key, Clock::time_point now);
  // One more request held for an admitted connection; false when its key holds requestsPerKey
  // already (or the connection is not admitted).
  bool take(const std::string& routingId);
  // A request held for the connection went (served, answered, expired).
  void give(const std::string& routingId);
  // The connection is gone: its slot and every request held for it return to its key.
  void forget(const std::string& routingId);

  // Admitted connections that hold no request and said nothing since `cutoff`.
  std::vector<std::string> idleSince(Clock::time_point cutoff) const;

  std::size_t requests(const std::string& routingId) const;  // held for that connection
  std::string keyOf(const std::string& routingId) const;     // "" when not admitted
  std::size_t keyConnections(const std::string& key) const;
  std::size_t keyRequests(const std::string& key) const;
  bool admitted(const std::string& routingId) const { return connections_.count(routingId) > 0; }

 private:
  struct Connection {
    std::string key;
    std::size_t requests = 0;
    Clock::time_point lastHeard;
  };
  struct Key {
    std::size_t connections = 0;
    std::size_t requests = 0;
  };

  std::size_t connectionsPerKey_;
  std::size_t requestsPerKey_;
  std::map<std::string, Connection> connections_;  // routing id ->
  std::map<std::string, Key> keys_;                // only keys with a connection
};

}  // namespace imgpipe::transfer
