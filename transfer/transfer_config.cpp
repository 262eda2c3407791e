#include "transfer/transfer_config.h"

#include <unistd.h>

#include "common/net/tcp_options.h"
#include "transfer/manifest.h"

namespace imgpipe::transfer {

ServerOptions TransferConfig::serverOptions() const {
  ServerOptions o;
  o.listen = listen;
  o.connection = connection;
  o.deltaBlockSize = deltaBlockSize;
  o.deltaContentBlockSize = deltaContentBlockSize;
  o.deltaXzPreset = deltaXzPreset;
  o.deltaMaxRatio = deltaMaxRatio;
  o.limits = limits;
  return o;
}

FetchOptions TransferConfig::fetchOptions(std::uint64_t rateLimitOverride,
                                          std::uint64_t size) const {
  FetchOptions o;
  o.liveness = liveness;
  o.window = window;
  o.rateLimit = rateLimitOverride ? rateLimitOverride : rateLimit;
  o.liveness.noProgressAfter = noProgressDeadline(liveness.noProgressAfter, size, o.rateLimit);
  return o;
}

namespace {

std::string defaultAdvertise(const std::string& listen) {
  auto star = listen.find("://*");
  if (star == std::string::npos) {
    star = listen.find("://0.0.0.0");
    if (star == std::string::npos) return listen;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return listen.substr(0, star + 3) + host + listen.substr(star + 10);
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return listen.substr(0, star + 3) + host + listen.substr(star + 4);
}

}  // namespace

TransferConfig parseTransferConfig(const YamlReader& s, const std::filesystem::path& stateDir,
                                   bool serveByDefault) {
  TransferConfig c;
  if (!serveByDefault) c.listen.clear();
  c.storeDir = stateDir / "artifacts";
  if (s.isNull()) {
    c.advertise = c.listen.empty() ? "" : defaultAdvertise(c.listen);
    return c;
  }
  if (!s.isMap()) s.fail("must be a map");
  c.listen = s.get<std::string>("listen", c.listen);
  c.advertise = s.get<std::string>("advertise", "");
  if (c.advertise.empty() && !c.listen.empty()) c.advertise = defaultAdvertise(c.listen);
  c.storeDir = s.get<std::string>("store", c.storeDir.string());
  c.retention = s.get<unsigned>("retention", c.retention);
  if (c.retention == 0) s.at("retention").fail("must be at least 1 (the newest version)");
  if (auto v = s.at("reserve"); !v.isNull()) c.reserve = v.asSize();
  if (auto v = s.at("chunk_size"); !v.isNull()) {
    auto size = v.asSize();
    if (size < kMinChunkSize || size > kMaxChunkSize) v.fail("must be between 64K and 16M");
    c.chunkSize = static_cast<std::uint32_t>(size);
  }
  if (auto v = s.at("rate_limit"); !v.isNull()) c.rateLimit = v.asRate();
  if (auto w = s.at("window"); !w.isNull()) {
    if (auto v = w.at("initial"); !v.isNull()) c.window.initial = v.asSize();
    if (auto v = w.at("min"); !v.isNull()) c.window.min = v.asSize();
    if (auto v = w.at("max"); !v.isNull()) c.window.max = v.asSize();
    w.rejectUnknownKeys();
    if (c.window.min == 0) w.at("min").fail("must be positive");
    if (c.window.max < c.window.min) w.at("max").fail("must not be below min");
  }
  if (auto h = s.at("heartbeat"); !h.isNull()) {
    if (auto v = h.at("interval"); !v.isNull()) c.connection.heartbeatInterval = v.asDuration();
    if (auto v = h.at("timeout"); !v.isNull()) c.connection.heartbeatTimeout = v.asDuration();
    h.rejectUnknownKeys();
    if (c.connection.heartbeatTimeout <= c.connection.heartbeatInterval)
      h.at("timeout").fail("must be longer than the interval");
  }
  if (auto r = s.at("reconnect"); !r.isNull()) {
    if (auto v = r.at("initial"); !v.isNull()) c.connection.reconnectInitial = v.asDuration();
    if (auto v = r.at("max"); !v.isNull()) c.connection.reconnectMax = v.asDuration();
    r.rejectUnknownKeys();
    if (c.connection.reconnectMax < c.connection.reconnectInitial)
      r.at("max").fail("must not be shorter than initial");
  }
  if (auto v = s.at("congestion"); !v.isNull()) {
    c.connection.congestion = v.as<std::string>();
    if (!net::validCongestionControlName(c.connection.congestion))
      v.fail("must be a TCP congestion control's name (bbr, cubic, ...) or \"system\"");
  }
  if (auto v = s.at("ping_interval"); !v.isNull()) c.liveness.pingInterval = v.asDuration();
  if (auto v = s.at("dead_after"); !v.isNull()) c.liveness.deadAfter = v.asDuration();
  if (auto v = s.at("stall_after"); !v.isNull()) c.liveness.stallAfter = v.asDuration();
  if (auto v = s.at("auth_fail_timeout"); !v.isNull()) c.liveness.authFailTimeout = v.asDuration();
  if (auto v = s.at("no_progress_after"); !v.isNull()) {
    c.liveness.noProgressAfter = v.asDuration();
    if (c.liveness.noProgressAfter < std::chrono::seconds(10)) v.fail("must be at least 10s");
  }
  if (c.liveness.deadAfter <= c.liveness.pingInterval)
    s.at("dead_after").fail("must be longer than ping_interval");
  if (auto d = s.at("delta"); !d.isNull()) {
    c.delta = d.get("enabled", c.delta);
    c.deltaBlockSize = d.get("block_size", c.deltaBlockSize);
    c.deltaContentBlockSize = d.get("content_block_size", c.deltaContentBlockSize);
    c.deltaMaxRatio = d.get("max_ratio", c.deltaMaxRatio);
    c.deltaXzPreset = d.get("xz_preset", c.deltaXzPreset);
    d.rejectUnknownKeys();
    if (c.deltaBlockSize < 256 || c.deltaBlockSize > (1u << 20))
      d.at("block_size").fail("must be between 256 and 1M");
    if (c.deltaContentBlockSize < 256 || c.deltaContentBlockSize > (1u << 20))
      d.at("content_block_size").fail("must be between 256 and 1M");
    if (c.deltaMaxRatio <= 0 || c.deltaMaxRatio > 1) d.at("max_ratio").fail("must be in (0, 1]");
    if (c.deltaXzPreset < 0 || c.deltaXzPreset > 9) d.at("xz_preset").fail("must be 0..9");
  }
  if (auto l = s.at("limits"); !l.isNull()) {
    auto& x = c.limits;
    if (auto v = l.at("peer_queue"); !v.isNull()) x.peerQueueBytes = v.asSize();
    x.peerRequests = l.get<std::size_t>("peer_requests", x.peerRequests);
    x.connectionsPerKey = l.get<std::size_t>("connections_per_key", x.connectionsPerKey);
    x.deltaJobs = l.get<std::size_t>("delta_jobs", x.deltaJobs);
    if (auto v = l.at("signature_max"); !v.isNull()) x.signatureMax = v.asSize();
    x.signatureUploads = l.get<std::size_t>("signature_uploads", x.signatureUploads);
    if (auto v = l.at("upload_timeout"); !v.isNull()) x.uploadTimeout = v.asDuration();
    l.rejectUnknownKeys();
    if (x.peerQueueBytes < c.chunkSize)
      l.at("peer_queue").fail("must hold at least one chunk (chunk_size)");
    if (x.peerRequests == 0) l.at("peer_requests").fail("must be at least 1");
    if (x.connectionsPerKey == 0) l.at("connections_per_key").fail("must be at least 1");
    if (x.deltaJobs == 0) l.at("delta_jobs").fail("must be at least 1");
    if (x.signatureUploads == 0) l.at("signature_uploads").fail("must be at least 1");
    if (x.uploadTimeout.count() <= 0) l.at("upload_timeout").fail("must be positive");
  }
  s.rejectUnknownKeys();
  return c;
}

}  // namespace imgpipe::transfer
