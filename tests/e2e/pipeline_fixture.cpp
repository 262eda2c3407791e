#include "tests/e2e/pipeline_fixture.h"

#include <thread>

#include "common/file_util.h"

namespace imgpipe::test {

using namespace std::chrono_literals;

void PipelineTest::SetUp() {
  std::string why;
  if (!NetTopology::available(&why)) GTEST_SKIP() << why;
  const auto& base = build::test::fixtureBase();  // made (or found cached) before any clock runs
  (void)base;

  net_ = std::make_unique<NetTopology>();
  for (const auto* h : {"build", "relay", "ctrl"})
    net_->addHost(h);
  net_->uplink("build");
  net_->link("build", "relay", {kRate});
  net_->link("relay", "ctrl", {kRate});
  // The controller reaches the coordinator (on the build host) through the relay.
  net_->forwarding("relay");
  net_->addRoute("ctrl", "build", "relay", "relay");
  net_->addRoute("build", "ctrl", "relay", "relay");

  LocalOpenStackOptions gopts;
  gopts.launchPrefix = {"ip", "netns", "exec", net_->ns("ctrl")};
  glance_ = std::make_unique<LocalOpenStack>(gopts);

  const std::map<std::string, std::string> hostOf = {{"coordinator", "build"},
                                                     {"cli", "build"},
                                                     {"build-1", "build"},
                                                     {"relay-1", "relay"},
                                                     {"ctrl-a", "ctrl"}};
  NetTopology* net = net_.get();
  cluster_ = std::make_unique<Cluster>(
      net_->address("build", "relay"),
      [net, hostOf](const std::string& who, std::vector<std::string> argv) {
        return net->inHost(hostOf.at(who), std::move(argv));
      });
  cluster_->setCoordinatorExtra(R"(
heartbeat: {interval: 1s, liveness: 3}
build_grace: 20s
retry_delay: 2s
max_attempts: 5
topology:
  sites: [{name: site-a, controller: ctrl-a}]
  links:
    - {from: build, to: relay-1}
    - {from: relay-1, to: ctrl-a}
  default_targets: [site-a]
)");
  cluster_->startCoordinator();

  area_ = std::make_unique<build::test::TestArea>("e2e");
  const auto buildSection = readFile(area_->writeConfig(area_->config()));
  const std::string fast =
      "heartbeat: {interval: 1s, liveness: 3, reconnect_initial: 500ms, reconnect_max: 2s}\n";
  const std::string buildAddr = net_->address("build", "relay"),
                    relayAddr = net_->address("relay", "ctrl");
  agentConfigs_["build-1"] = cluster_->commonAgentConfig("build-1") + fast + buildSection +
                             "transfer: {listen: 'tcp://" + buildAddr +
                             ":7701', advertise: 'tcp://" + buildAddr + ":7701'}\n";
  agentConfigs_["relay-1"] = cluster_->commonAgentConfig("relay-1") + fast +
                             "transfer: {listen: 'tcp://" + relayAddr +
                             ":7701', advertise: 'tcp://" + relayAddr + ":7701'}\n";
  agentConfigs_["ctrl-a"] =
      cluster_->commonAgentConfig("ctrl-a") + fast +
      "glance:\n  auth: trusted-headers\n  allow_insecure_http: true\n  endpoint: " +
      glance_->glanceUrl() + "\n  trusted_headers: {project_id: " + LocalOpenStack::kProjectId +
      "}\n  retry: {initial: 1s, max: 5s}\n";
  agentArgv_["build-1"] = {(buildDir() / "bin/imgpipe-agent-build").string()};
  agentArgv_["relay-1"] = {(buildDir() / "bin/imgpipe-agent-relay").string()};
  agentArgv_["ctrl-a"] = {(buildDir() / "bin/imgpipe-agent-glance").string()};
  cluster_->addKey("build-1", "build");
  cluster_->addKey("relay-1", "relay");
  cluster_->addKey("ctrl-a", "glance");
  for (const auto& [name, config] : agentConfigs_)
    cluster_->startAgent(name, agentArgv_[name], config);
  ASSERT_TRUE(waitUntil(
      [&] {
        auto a = cluster_->agentsOnline();
        return a["build-1"] && a["relay-1"] && a["ctrl-a"];
      },
      30s))
      << cluster_->logs();
}

void PipelineTest::TearDown() {
  if (HasFailure() && cluster_) std::cerr << cluster_->logs();
  cluster_.reset();  // agents first: a build unwinds its mounts on SIGTERM
  if (area_) {
    for (const auto& l : buildLeftovers())
      ADD_FAILURE() << "left behind on the build host: " << l;
  }
  area_.reset();
  glance_.reset();
  net_.reset();
}

void PipelineTest::restartAgent(const std::string& name) {
  cluster_->startAgent(name, agentArgv_.at(name), agentConfigs_.at(name));
}

std::vector<std::string> PipelineTest::buildLeftovers() const {
  return build::test::leftoversUnder(area_->root());
}

std::string PipelineTest::definition(const std::string& name, const std::string& version,
                                     const std::vector<std::string>& packages,
                                     const std::string& extra) {
  const auto& base = build::test::fixtureBase();
  std::string list;
  for (const auto& p : packages)
    list += (list.empty() ? "" : ", ") + p;
  // No version: the coordinator fixes one at submit (issue 10), as for every example definition.
  const std::string versionLine = version.empty() ? "" : "version: '" + version + "'\n";
  return cluster_->writeDefinition(
      name + "-" + (version.empty() ? "unversioned" : version) + ".yaml",
      "name: " + name + "\n" + versionLine + "base: {path: " + base.file.string() +
          ", sha256: " + base.sha256 + "}\ndisk: {size: 3G}\npackages: {install: [" + list +
          "]}\nfiles: [{path: /etc/e2e-version, content: '" + version +
          "'}]\nvalidation: {require_qemu_guest_agent: false}\n"
          "glance:\n  visibility: private\n  older_versions: hide\n  properties: {hw_disk_bus: "
          "virtio}\n"
          "  metadata: {os_distro: debian, os_version: '12', hw_qemu_guest_agent: 'no'}\n" +
          extra);
}

std::string PipelineTest::submit(const std::string& definitionPath) {
  return cluster_->cliJson({"submit", definitionPath})["id"];
}

std::string PipelineTest::waitForEnd(const std::string& job, std::chrono::seconds timeout) {
  std::string state;
  waitUntil(
      [&] {
        stepProgress(job, "");  // prints what it sees now and then
        auto r = cluster_->cli({"show", job});
        if (r.exitCode == 0) state = nlohmann::json::parse(r.out)["state"];
        return state == "done" || state == "failed" || state == "cancelled";
      },
      timeout);
  return state;
}

std::pair<std::uint64_t, std::uint64_t> PipelineTest::stepProgress(const std::string& job,
                                                                   const std::string& step) {
  auto r = cluster_->cli({"show", job});
  std::pair<std::uint64_t, std::uint64_t> out{0, 0};
  std::string seen;
  if (r.exitCode != 0) {
    seen = "imgpipe show failed (" + std::to_string(r.exitCode) + "): " + r.err;
  } else {
    auto j = nlohmann::json::parse(r.out);
    seen = "job " + j["state"].get<std::string>();
    for (const auto& s : j["steps"]) {
      seen += "; " + s["name"].get<std::string>() + " " + s["state"].get<std::string>() + " " +
              std::to_string(s["done"].get<std::uint64_t>()) + "/" +
              std::to_string(s["total"].get<std::uint64_t>());
      if (s["name"] == step && s["state"] == "running") out = {s["done"], s["total"]};
    }
  }
  // A wait that never ends should say what it saw.
  const auto now = std::chrono::steady_clock::now();
  if (now - lastProgressPrint_ > 10s) {
    std::printf("[e2e] %s\n", seen.c_str());
    std::fflush(stdout);
    lastProgressPrint_ = now;
  }
  return out;
}

std::vector<nlohmann::json> PipelineTest::glanceImages(const std::string& query) {
  std::vector<nlohmann::json> out;
  for (const auto* hidden : {"false", "true"}) {
    auto r = run(net_->inHost(
        "ctrl",
        {"curl", "-sf", "-H", "X-Identity-Status: Confirmed", "-H", "X-Roles: admin,member,reader",
         "-H", std::string("X-Project-Id: ") + LocalOpenStack::kProjectId,
         glance_->glanceUrl() + "/v2/images?" + query + "&os_hidden=" + hidden}));
    if (r.exitCode != 0) throw std::runtime_error("Glance query failed: " + r.err);
    // Named: a range-for over a member of parse()'s temporary would iterate a destroyed object.
    const auto page = nlohmann::json::parse(r.out);
    for (const auto& img : page.at("images"))
      out.push_back(img);
  }
  return out;
}

}  // namespace imgpipe::test
