#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "common/yaml_reader.h"
#include "transfer/artifact_server.h"
#include "transfer/credit_window.h"
#include "transfer/fetch_session.h"
#include "transfer/fetcher.h"

namespace imgpipe::transfer {

// The `transfer:` section of an agent's config. Every key, with its default:
//
//   transfer:
//     listen: tcp://*:7701          # artifact server; "" = serve nothing (default "" for glance)
//     advertise: ""                 # endpoint the coordinator gives to the next hop; default:
//                                   #   `listen` with a wildcard host replaced by this host's name
//     store: <state_dir>/artifacts  # the artifact store
//     retention: 3                  # complete versions kept per image name (delta bases)
//     reserve: 1G                   # free space never used by artifacts
//     chunk_size: 1M                # for artifacts made here (imports, deltas); 64K..16M
//     rate_limit: 0                 # per-link cap for fetches, e.g. 30mbit; 0 = none. A fetch
//                                   #   task's own limit, when set, wins
//     window: {initial: 4M, min: 4M, max: 128M}   # credit window bounds, bytes
//     heartbeat: {interval: 1s, timeout: 30s}     # ZMTP heartbeats on transfer connections
//                                   #   (the last resort: dead_after decides first)
//     congestion: bbr               # TCP congestion control of transfer connections; "system"
//                                   #   = the host's default (a link shared with users)
//     reconnect: {initial: 100ms, max: 1s}        # reconnect backoff
//     ping_interval: 1s             # application-level ping while fetching
//     dead_after: 5s                # nothing heard for this long: new connection; at least,
//                                   #   and 8 RTO of the path as TCP measures it
//     stall_after: 3s               # no chunk for this long: reported "stalled"
//     auth_fail_timeout: 60s        # upstream refusing our key this long: the fetch fails
//     delta:
//       enabled: true               # ask for deltas when an older version is here
//       block_size: 4096            # librsync block over a whole file (measured best for the
//                                   #   plain format on compressed qcow2)
//       content_block_size: 1024    # librsync block over qcow2 cluster contents (qcow2 format)
//       max_ratio: 0.6              # offer no delta larger than this share of the image
//       xz_preset: 3                # xz level of delta streams (6: ~5% smaller, twice the time)
//     limits:                       # what one peer (key) can make the artifact server hold
//       peer_queue: 16M             # bytes queued to one key, not yet taken by its connections
//       peer_requests: 4096         # requests held per key (parked or owed)
//       connections_per_key: 8      # connections of one key served; others are ignored
//       delta_jobs: 2               # deltas computed at once
//       signature_max: 256M         # the largest basis signature accepted
//       signature_uploads: 4        # signature uploads (and deltas from them) per key
//       upload_timeout: 60s         # an unfinished or unused upload is removed after this
struct TransferConfig {
  std::string listen = "tcp://*:7701";
  std::string advertise;
  std::filesystem::path storeDir;
  unsigned retention = 3;
  std::uint64_t reserve = 1ull << 30;
  std::uint32_t chunkSize = 1 << 20;
  std::uint64_t rateLimit = 0;
  WindowOptions window;
  ConnectionOptions connection;
  LivenessOptions liveness;
  bool delta = true;
  std::uint32_t deltaBlockSize = 4096;
  std::uint32_t deltaContentBlockSize = 1024;
  double deltaMaxRatio = 0.6;
  int deltaXzPreset = 3;
  ServerLimits limits;

  ServerOptions serverOptions() const;
  // For a hop of `size` bytes: the link's rate (the task's own limit, else the configured one)
  // and the no-progress deadline derived from both (noProgressDeadline).
  FetchOptions fetchOptions(std::uint64_t rateLimitOverride, std::uint64_t size) const;
};

// `section` may be null (all defaults). `stateDir` locates the default store; `serveByDefault`
// is false for roles that only receive (glance).
TransferConfig parseTransferConfig(const YamlReader& section, const std::filesystem::path& stateDir,
                                   bool serveByDefault);

}  // namespace imgpipe::transfer
