// The agent's build: section, and the configuration files a definition turns into.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "agent-build/config/build_config.h"
#include "agent-build/steps/config_files.h"

using namespace imgpipe;
using namespace imgpipe::build;

namespace {
std::string configError(std::string_view yaml) {
  try {
    parseBuildConfig(YamlReader::fromString(yaml, "agent.yaml").at("build"));
  } catch (const YamlError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(BuildConfig, DefaultsWhenAbsent) {
  auto c = parseBuildConfig(YamlReader::fromString("name: a\n", "agent.yaml").at("build"));
  EXPECT_EQ(c.workDir, "/var/lib/imgpipe/build/work");
  EXPECT_EQ(c.compression, definition::Compression::zlib);
  EXPECT_TRUE(c.parallelCompression);
  EXPECT_TRUE(c.aptCache);
  EXPECT_TRUE(c.reuseResults);
  EXPECT_EQ(c.attach, AttachMethod::auto_);
  EXPECT_EQ(c.bootAccel, "auto");
}

TEST(BuildConfig, ReadsEverySectionAndRoundTripsThroughJson) {
  auto doc = YamlReader::fromString(R"(build:
  work_dir: /w
  cache_dir: /c
  output_dir: /o
  keep_failed_work_dir: true
  min_free_space: 1G
  attach: loop
  compression: {type: zstd, parallel: false, coroutines: 4}
  apt_cache: {enabled: false, max_size: 2G}
  base_cache: {max_size: 5G, debootstrap_max_age: 24h}
  results: {reuse: false, keep_per_image: 2}
  download: {timeout: 10m, retries: 2}
  nameservers: [192.0.2.1]
  command_timeout: 1h
  boot_test: {qemu: /usr/bin/qemu-system-x86_64, accel: kvm, cpus: 2}
)",
                                    "agent.yaml");
  auto c = parseBuildConfig(doc.at("build"));
  EXPECT_EQ(c.workDir, "/w");
  EXPECT_TRUE(c.keepFailedWorkDir);
  EXPECT_EQ(c.attach, AttachMethod::loop);
  EXPECT_EQ(c.compression, definition::Compression::zstd);
  EXPECT_FALSE(c.parallelCompression);
  EXPECT_EQ(c.compressionCoroutines, 4u);
  EXPECT_FALSE(c.aptCache);
  EXPECT_EQ(c.debootstrapMaxAge, std::chrono::hours(24));
  EXPECT_EQ(c.keepOutputs, 2u);
  EXPECT_EQ(c.nameservers, std::vector<std::string>{"192.0.2.1"});
  EXPECT_EQ(c.bootCpus, 2u);
  auto back = buildConfigFromJson(toJson(c));
  EXPECT_EQ(toJson(back), toJson(c));
}

TEST(BuildConfig, UnknownKeysAndBadValuesAreNamed) {
  auto msg = configError("build:\n  work_dri: /w\n");
  EXPECT_EQ(msg.substr(0, msg.find(" (known keys")),
            "agent.yaml:2:3: build: unknown key 'work_dri'");
  EXPECT_EQ(configError("build:\n  work_dir: relative\n"),
            "agent.yaml:2:13: build.work_dir: must be an absolute path, got 'relative'");
  EXPECT_EQ(configError("build:\n  compression: {type: lz4}\n"),
            "agent.yaml:2:23: build.compression.type: must be zlib, zstd or none, got 'lz4'");
  auto nested = configError("build:\n  apt_cache: {enable: true}\n");
  EXPECT_EQ(nested.substr(0, nested.find(" (known keys")),
            "agent.yaml:2:15: build.apt_cache: unknown key 'enable'");
}

TEST(BuildConfig, ProxyIsParsedCheckedAndCarried) {
  auto c = parseBuildConfig(
      YamlReader::fromString("build:\n  proxy: {http: 'http://proxy.site:3128/', no_proxy: "
                             "'.site,10.0.0.1'}\n",
                             "agent.yaml")
          .at("build"));
  ASSERT_TRUE(c.proxy);
  EXPECT_EQ(c.proxy->httpsOrHttp(), "http://proxy.site:3128/");
  auto env = proxyEnvironment(*c.proxy);
  EXPECT_EQ(env.at("https_proxy"), "http://proxy.site:3128/");
  EXPECT_EQ(env.at("NO_PROXY"), ".site,10.0.0.1");
  auto back = buildConfigFromJson(toJson(c));
  ASSERT_TRUE(back.proxy);
  EXPECT_EQ(back.proxy->noProxy, ".site,10.0.0.1");
  EXPECT_FALSE(buildConfigFromJson(toJson(BuildConfig{})).proxy);
  auto e = parseProxyUrl("http://[::1]:8080", "p");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 8080);
  EXPECT_EQ(parseProxyUrl("http://proxy", "p").port, 3128);

  EXPECT_NE(configError("build:\n  proxy: {https: 'http://p:1'}\n").find("needs http:"),
            std::string::npos);
  for (const auto* bad : {"https://p:1", "http://user:pw@p:1", "http://p:0", "http://p:99999",
                          "http://p:1/path", "http://:1", "socks5://p:1"}) {
    EXPECT_NE(configError(std::string("build:\n  proxy: {http: '") + bad + "'}\n")
                  .find("build.proxy.http"),
              std::string::npos)
        << bad;
  }
  EXPECT_NE(configError("build:\n  proxy: {http: 'http://p:1', socks: x}\n").find("socks"),
            std::string::npos);
}

TEST(ConfigFiles, Deb822Source) {
  definition::AptSource s;
  s.name = "debian";
  s.uris = {"http://deb.debian.org/debian"};
  s.suites = {"bookworm", "bookworm-updates"};
  s.components = {"main"};
  s.signedBy = "/usr/share/keyrings/debian-archive-keyring.gpg";
  EXPECT_EQ(renderAptSource(s),
            "# written by imgpipe\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: "
            "bookworm bookworm-updates\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n");
  EXPECT_EQ(aptSourcePath("debian"), "/etc/apt/sources.list.d/debian.sources");
}

TEST(ConfigFiles, ContainerdHostsToml) {
  definition::ContainerdRegistry r;
  r.host = "docker.io";
  r.mirrors.push_back({.url = "https://docker.example", .skipVerify = true});
  EXPECT_EQ(renderHostsToml(r),
            "# written by imgpipe\nserver = "
            "\"https://registry-1.docker.io\"\n\n[host.\"https://docker.example\"]\n"
            "  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n");
  definition::ContainerdMirrors c;
  EXPECT_EQ(hostsTomlPath(c, r), "/etc/containerd/certs.d/docker.io/hosts.toml");
}

TEST(ConfigFiles, DaemonJsonKeepsOtherKeys) {
  definition::DockerMirrors m;
  m.registryMirrors = {"https://docker.example"};
  EXPECT_EQ(mergeDaemonJson(std::nullopt, m),
            "{\n  \"registry-mirrors\": [\n    \"https://docker.example\"\n  ]\n}\n");
  auto merged = mergeDaemonJson(
      std::string(R"({"log-driver": "journald", "registry-mirrors": ["https://old"]})"), m);
  EXPECT_NE(merged.find("\"log-driver\": \"journald\""), std::string::npos) << merged;
  EXPECT_EQ(merged.find("https://old"), std::string::npos) << merged;
  EXPECT_THROW(mergeDaemonJson(std::string("[1]"), m), Error);
}

TEST(BuildConfig, DeployedExampleConfigIsValid) {
  const char* src = std::getenv("IMGPIPE_SOURCE_DIR");
  auto doc = YamlReader::fromFile(std::filesystem::path(src ? src : IMGPIPE_TEST_SOURCE_DIR) /
                                  "deploy/config/agent-build.yaml");
  auto c = parseBuildConfig(doc.at("build"));
  EXPECT_EQ(c.workDir, BuildConfig{}.workDir);
  EXPECT_EQ(toJson(c), toJson(BuildConfig{}));  // the example shows the defaults
}
