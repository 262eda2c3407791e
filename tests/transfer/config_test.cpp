#include <gtest/gtest.h>

#include "common/yaml_reader.h"
#include "transfer/transfer_config.h"

using namespace imgpipe;
using namespace imgpipe::transfer;
using namespace std::chrono_literals;

namespace {
TransferConfig parse(const std::string& yaml, bool serve = true) {
  auto doc = YamlReader::fromString(yaml, "agent.yaml");
  auto c = parseTransferConfig(doc.at("transfer"), "/var/lib/imgpipe", serve);
  return c;
}
}  // namespace

TEST(TransferConfig, DefaultsWhenTheSectionIsAbsent) {
  auto c = parse("name: x\n");
  EXPECT_EQ(c.listen, "tcp://*:7701");
  EXPECT_EQ(c.storeDir, "/var/lib/imgpipe/artifacts");
  EXPECT_EQ(c.retention, 3u);
  EXPECT_EQ(c.chunkSize, 1u << 20);
  EXPECT_EQ(c.rateLimit, 0u);
  EXPECT_TRUE(c.delta);
  EXPECT_EQ(c.connection.congestion, "bbr");
  EXPECT_EQ(c.serverOptions().connection.congestion, "bbr");  // both ends of a hop: one setting
  EXPECT_FALSE(c.advertise.empty());
  EXPECT_EQ(c.advertise.find('*'), std::string::npos) << c.advertise;
  auto glance = parse("name: x\n", false);
  EXPECT_TRUE(glance.listen.empty());
  EXPECT_TRUE(glance.advertise.empty());
}

TEST(TransferConfig, ReadsEveryOption) {
  auto c = parse(R"(
transfer:
  listen: tcp://10.0.0.2:7801
  advertise: tcp://relay-1.example:7801
  store: /srv/artifacts
  retention: 5
  reserve: 2G
  chunk_size: 4M
  rate_limit: 30mbit
  window: {initial: 8M, min: 2M, max: 64M}
  heartbeat: {interval: 500ms, timeout: 2s}
  reconnect: {initial: 50ms, max: 2s}
  congestion: system
  ping_interval: 2s
  dead_after: 8s
  stall_after: 4s
  auth_fail_timeout: 30s
  delta: {enabled: false, block_size: 2048, content_block_size: 512, max_ratio: 0.5, xz_preset: 6}
)");
  EXPECT_EQ(c.listen, "tcp://10.0.0.2:7801");
  EXPECT_EQ(c.advertise, "tcp://relay-1.example:7801");
  EXPECT_EQ(c.storeDir, "/srv/artifacts");
  EXPECT_EQ(c.retention, 5u);
  EXPECT_EQ(c.reserve, 2ull << 30);
  EXPECT_EQ(c.chunkSize, 4u << 20);
  EXPECT_EQ(c.rateLimit, 30'000'000u / 8);
  EXPECT_EQ(c.window.initial, 8u << 20);
  EXPECT_EQ(c.window.min, 2u << 20);
  EXPECT_EQ(c.window.max, 64u << 20);
  EXPECT_EQ(c.connection.heartbeatInterval, 500ms);
  EXPECT_EQ(c.connection.heartbeatTimeout, 2s);
  EXPECT_EQ(c.connection.reconnectInitial, 50ms);
  EXPECT_EQ(c.connection.reconnectMax, 2s);
  EXPECT_EQ(c.connection.congestion, "system");
  EXPECT_EQ(c.serverOptions().connection.heartbeatTimeout, 2s);
  EXPECT_EQ(c.liveness.pingInterval, 2s);
  EXPECT_EQ(c.liveness.deadAfter, 8s);
  EXPECT_EQ(c.liveness.stallAfter, 4s);
  EXPECT_EQ(c.liveness.authFailTimeout, 30s);
  EXPECT_FALSE(c.delta);
  EXPECT_EQ(c.deltaBlockSize, 2048u);
  EXPECT_EQ(c.deltaContentBlockSize, 512u);
  EXPECT_DOUBLE_EQ(c.deltaMaxRatio, 0.5);
  EXPECT_EQ(c.deltaXzPreset, 6);
}

TEST(TransferConfig, UnknownKeysAndBadValuesNameTheField) {
  auto fails = [](const std::string& yaml, const std::string& expect) {
    try {
      parse(yaml);
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const YamlError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  fails("transfer:\n  retension: 3\n", "retension");
  fails("transfer:\n  window: {max: 1M, min: 4M}\n", "window.max");
  fails("transfer:\n  chunk_size: 1K\n", "chunk_size");
  fails("transfer:\n  heartbeat: {interval: 3s, timeout: 1s}\n", "heartbeat.timeout");
  fails("transfer:\n  delta: {blocksize: 10}\n", "blocksize");
  fails("transfer:\n  rate_limit: fast\n", "rate_limit");
  fails("transfer:\n  congestion: BBR;rm\n", "congestion");
}
