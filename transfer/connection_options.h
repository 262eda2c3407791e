#pragma once

#include <chrono>
#include <string>

namespace imgpipe::transfer {

// How the transfer plane's TCP connections are kept, on both ends of a hop (the fetcher's DEALER
// and the artifact server's ROUTER): the one owner of these settings (`transfer:` in an agent's
// config, transfer_config.h).
struct ConnectionOptions {
  // ZMTP heartbeats: a connection silent for `heartbeatTimeout` is dropped (a link that went
  // down) instead of waiting for TCP's ~15 minutes. The last resort only: the fetch's own
  // liveness (LivenessOptions, which adapts to the path's round trip) decides first, so this is
  // long enough never to cut a slow, lossy path that still delivers.
  std::chrono::milliseconds heartbeatInterval{1000};
  std::chrono::milliseconds heartbeatTimeout{30000};
  // Reconnect backoff. The cap is short on purpose: after an outage the transfer must resume
  // within about a second of the link coming back.
  std::chrono::milliseconds reconnectInitial{100};
  std::chrono::milliseconds reconnectMax{1000};
  // TCP congestion control of every transfer connection (common/net/tcp_options.h): "bbr"
  // keeps a long lossy path near its rate where cubic falls to a tenth; "system" leaves the
  // host's default (a link shared with users, where BBR's share would be unwelcome).
  std::string congestion = "bbr";
};

}  // namespace imgpipe::transfer
