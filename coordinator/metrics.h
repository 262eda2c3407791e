#pragma once

#include <memory>
#include <string>

#include "common/net/reactor.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace imgpipe::coord {

class Server;

// The Prometheus text endpoint (GET /metrics). The HTTP server runs on prometheus-cpp's own
// thread; the values are copied from the engine once a second on the event loop thread, so the
// engine is never read concurrently. Metric names are documented in docs/operations.md.
class Metrics {
 public:
  Metrics(const std::string& listen, Server& server, net::Reactor& reactor);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

 private:
  struct Families;
  void update();

  Server& server_;
  net::Reactor& reactor_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<Families> families_;
  net::Reactor::TimerId timer_ = 0;
};

}  // namespace imgpipe::coord
