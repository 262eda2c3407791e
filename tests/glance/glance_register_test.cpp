// Registration against a real glance-api (Debian's, trusted-headers pipeline) on loopback: one
// instance for the whole binary.
#include <signal.h>

#include <fstream>

#include "agent-glance/glance_runner.h"
#include "agent-glance/registration/image_id.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "tests/glance/glance_test_util.h"
#include "tests/glance/spec_for.h"

using namespace imgpipe;
using namespace imgpipe::glance;
using namespace imgpipe::test;
using namespace std::chrono_literals;

namespace {

const char* kDefinition = R"(
name: debian-12-docker
version: "2026.11.22-1"
glance:
  display_name: "Debian 12 Docker"
  visibility: community
  min_disk: 10
  min_ram: 1024
  tags: [docker, debian]
  protected: true
  metadata:
    os_admin_user: debian
    os_distro: debian12
    os_version: '12'
    os_type: linux
    mcs_name: debian-12-docker
    mcs_os_type: linux
    mcs_os_distro: debian
    mcs_os_version: '12'
    hw_qemu_guest_agent: 'yes'
    os_require_quiesce: 'yes'
    team: xaas
    sid: hidden
  properties: {hw_disk_bus: virtio, hw_vif_model: virtio, marketplace_category: containers}
)";

class GlanceRegistration : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    const auto t0 = std::chrono::steady_clock::now();
    openstack = std::make_unique<LocalOpenStack>();
    work =
        std::make_unique<TempDir>(std::filesystem::temp_directory_path(), "imgpipe-glance-test-");
    image = std::make_unique<TestArtifact>(makeQcow2(work->path() / "image.qcow2", 64, 16));
    std::cerr << "glance up at " << openstack->glanceUrl() << " in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0)
                     .count()
              << " ms\n";
  }
  static void TearDownTestSuite() {
    // In reverse order of making: the image lives in the work dir.
    image.reset();
    work.reset();
    openstack.reset();
  }

 protected:
  static inline std::unique_ptr<LocalOpenStack> openstack;
  static inline std::unique_ptr<TempDir> work;
  static inline std::unique_ptr<TestArtifact> image;

  void SetUp() override {
    if (!openstack->glanceRunning()) openstack->startGlance();
    config = configFor(configYaml());
    auth = makeAuthProvider(config);
    probe.emplace(*auth);
  }

  std::string configYaml(const std::string& extra = "") {
    return "glance:\n  auth: trusted-headers\n  allow_insecure_http: true\n  endpoint: " +
           openstack->glanceUrl() +
           "\n  trusted_headers: {project_id: " + LocalOpenStack::kProjectId +
           ", user_id: imgpipe, roles: [member, reader]}\n"
           "  retry: {initial: 500ms, max: 2s, give_up_after: 2m}\n  saving_grace: 2s\n" +
           extra;
  }
  static GlanceConfig configFor(const std::string& yaml) {
    return parseGlanceConfig(YamlReader::fromString(yaml, "agent.yaml").at("glance"));
  }

  RegistrationResult registerImage(const RegistrationRequest& req, Recorder& rec) {
    Registrar r(config, *auth, rec.observer());
    return r.run(req, {});
  }

  // The child process helper, for crashes and kills.
  Subprocess startChild(const std::string& buildId, const std::filesystem::path& file,
                        const std::string& configText, const std::string& crashAt = "") {
    writeText(work->path() / (buildId + ".yaml"), configText);
    writeText(work->path() / (buildId + ".def.yaml"), kDefinition);
    SubprocessOptions o;
    o.argv = {GLANCE_REGISTER_CHILD,
              "--config",
              (work->path() / (buildId + ".yaml")).string(),
              "--definition",
              (work->path() / (buildId + ".def.yaml")).string(),
              "--file",
              file.string(),
              "--build-id",
              buildId};
    if (!crashAt.empty()) o.argv.insert(o.argv.end(), {"--crash-at", crashAt});
    o.onLine = [](std::string_view l) { std::cerr << "  child: " << l << "\n"; };
    return Subprocess(std::move(o));
  }

  definition::ResolvedGlance spec(const std::string& yaml = kDefinition) {
    return glance::test::specFor(yaml);
  }

  GlanceConfig config;
  std::shared_ptr<AuthProvider> auth;
  std::optional<GlanceProbe> probe;
};

TEST_F(GlanceRegistration, EveryPropertyCheckedThroughTheApi) {
  const auto build = uniqueBuildId("props");
  Recorder rec;
  auto req = requestFor(*image, build, spec());
  req.manifestDigest = "m-digest";
  auto result = registerImage(req, rec);

  json img = probe->get(imageIdFor(build, 0));
  ASSERT_FALSE(img.is_null());
  EXPECT_EQ(result.image.id, img["id"]);
  EXPECT_EQ(img["status"], "active");
  EXPECT_EQ(img["name"], "Debian 12 Docker");
  EXPECT_EQ(img["disk_format"], "qcow2");
  EXPECT_EQ(img["container_format"], "bare");
  EXPECT_EQ(img["visibility"], "community");
  EXPECT_EQ(img["protected"], true);
  EXPECT_EQ(img["os_hidden"], false);
  EXPECT_EQ(img["min_disk"], 10);
  EXPECT_EQ(img["min_ram"], 1024);
  EXPECT_EQ(img["owner"], LocalOpenStack::kProjectId);
  auto tags = img["tags"].get<std::vector<std::string>>();
  std::sort(tags.begin(), tags.end());
  EXPECT_EQ(tags, (std::vector<std::string>{"debian", "docker"}));
  EXPECT_EQ(img["size"], image->size);
  EXPECT_EQ(img["virtual_size"], 64u << 20);
  EXPECT_EQ(img["os_hash_algo"], "sha512");
  EXPECT_EQ(img["os_hash_value"], image->sha512);
  const std::map<std::string, std::string> expected = {{"os_admin_user", "debian"},
                                                       {"os_distro", "debian12"},
                                                       {"os_version", "12"},
                                                       {"os_type", "linux"},
                                                       {"mcs_name", "debian-12-docker"},
                                                       {"mcs_os_type", "linux"},
                                                       {"mcs_os_distro", "debian"},
                                                       {"mcs_os_version", "12"},
                                                       {"hw_qemu_guest_agent", "yes"},
                                                       {"os_require_quiesce", "yes"},
                                                       {"team", "xaas"},
                                                       {"sid", "hidden"},
                                                       {"hw_disk_bus", "virtio"},
                                                       {"hw_vif_model", "virtio"},
                                                       {"marketplace_category", "containers"},
                                                       {"imgpipe_build_id", build},
                                                       {"imgpipe_image", "debian-12-docker"},
                                                       {"imgpipe_version", "2026.11.22-1"},
                                                       {"imgpipe_sha256", image->sha256},
                                                       {"imgpipe_manifest_digest", "m-digest"}};
  for (const auto& [k, v] : expected)
    EXPECT_EQ(img.value(k, "<missing>"), v) << k;
  EXPECT_EQ(probe->imagesOfBuild(build).size(), 1u);
  // Progress: verification first, then the upload reaching the whole file.
  ASSERT_FALSE(rec.progress.empty());
  EXPECT_EQ(rec.progress.front().state, "verifying");
  EXPECT_EQ(rec.progress.back().done, image->size);
  EXPECT_EQ(rec.maxRetries(), 0u);
}

TEST_F(GlanceRegistration, RegisteringAgainFindsTheSameImage) {
  const auto build = uniqueBuildId("twice");
  Recorder rec;
  auto req = requestFor(*image, build, spec("name: twice\nversion: '1'\n"));
  auto first = registerImage(req, rec);
  auto second = registerImage(req, rec);
  EXPECT_FALSE(first.reused);
  EXPECT_TRUE(second.reused);
  EXPECT_EQ(second.bytesUploaded, 0u);
  EXPECT_EQ(first.image.id, second.image.id);
  EXPECT_EQ(probe->imagesOfBuild(build).size(), 1u);
}

TEST_F(GlanceRegistration, RetryAfterACrashBetweenCreateAndUpload) {
  const auto build = uniqueBuildId("crash");
  auto child = startChild(build, image->path, configYaml(), "created");
  auto r = child.wait();
  ASSERT_EQ(r.exitCode, 137);
  json left = probe->get(imageIdFor(build, 0));
  ASSERT_FALSE(left.is_null());
  EXPECT_EQ(left["status"], "queued");  // what the crash left behind

  Recorder rec;
  auto result = registerImage(requestFor(*image, build, spec()), rec);
  EXPECT_EQ(result.image.id, imageIdFor(build, 0));  // the queued image was reused
  EXPECT_EQ(result.generation, 0u);
  EXPECT_EQ(result.image.status, "active");
  auto all = probe->imagesOfBuild(build);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["status"], "active");
  EXPECT_EQ(all[0]["os_hash_value"], image->sha512);
}

TEST_F(GlanceRegistration, UploadCutOffByAKillThenResumedByTheAgent) {
  const auto build = uniqueBuildId("cutoff");
  // 16 MiB of data at 4 MB/s: about 4 s of upload to interrupt.
  auto child = startChild(build, image->path, configYaml("  upload_rate_limit: 4MB/s\n"));
  const auto id = imageIdFor(build, 0);
  ASSERT_TRUE(eventually(
      [&] {
        json i = probe->get(id);
        return !i.is_null() && i["status"] == "saving";
      },
      30s));
  std::this_thread::sleep_for(1s);
  ::kill(child.pid(), SIGKILL);
  EXPECT_EQ(child.wait().exitCode, 128 + SIGKILL);
  // Glance notices the dropped connection and returns the image to queued.
  EXPECT_TRUE(eventually([&] { return probe->get(id)["status"] == "queued"; }, 10s))
      << probe->get(id).dump();

  Recorder rec;
  auto result = registerImage(requestFor(*image, build, spec()), rec);
  EXPECT_EQ(result.image.id, id);
  EXPECT_EQ(result.generation, 0u);
  EXPECT_EQ(result.bytesUploaded, image->size);
  auto all = probe->imagesOfBuild(build);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["status"], "active");
  EXPECT_EQ(all[0]["os_hash_value"], image->sha512);
}

TEST_F(GlanceRegistration, WrongHashInTheManifestRegistersNothing) {
  const auto build = uniqueBuildId("badmanifest");
  auto req = requestFor(*image, build, spec());
  req.sha512 = std::string(128, 'a');
  Recorder rec;
  try {
    registerImage(req, rec);
    FAIL() << "registered despite a wrong sha512";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failed);
    EXPECT_NE(std::string(e.what()).find("does not match its manifest"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(probe->imagesOfBuild(build).empty());
  EXPECT_TRUE(probe->get(imageIdFor(build, 0)).is_null());
}

TEST_F(GlanceRegistration, ContentChangedAfterVerificationLeavesNoActiveImage) {
  const auto build = uniqueBuildId("changed");
  // A private copy that the test corrupts right after the registrar verified it.
  auto copy = work->path() / (build + ".qcow2");
  std::filesystem::copy_file(image->path, copy);
  auto req = requestFor(describeFile(copy), build, spec());
  Recorder rec;
  rec.onCheckpoint = [&](std::string_view c) {
    if (c != "verified") return;
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(req.size / 2));
    f.write("corrupted!", 10);
  };
  try {
    registerImage(req, rec);
    FAIL() << "registered a file that no longer matches its manifest";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failed);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("does not match the manifest"), std::string::npos) << msg;
    EXPECT_NE(msg.find("the file changed after it was verified"), std::string::npos) << msg;
    EXPECT_NE(msg.find("the image was deleted"), std::string::npos) << msg;
  }
  EXPECT_TRUE(probe->imagesOfBuild(build).empty());
  EXPECT_TRUE(probe->get(imageIdFor(build, 0)).is_null());
}

TEST_F(GlanceRegistration, GlanceStoppedDuringTheUploadAndStartedAgain) {
  const auto build = uniqueBuildId("outage");
  // Through the TaskRunner, as the agent runs it: progress must show the retries.
  auto cfg = configFor(configYaml("  upload_rate_limit: 4MB/s\n"));
  GlanceRunner runner(
      cfg,
      [&](const std::string&) {
        return LocatedArtifact{image->path, glance::test::buildManifestFor(spec()), ""};
      },
      auth);
  agent::TaskSpec task;
  task.taskId = "t1";
  task.jobId = "job-outage";
  task.step = "register";
  task.kind = agent::RegisterSpec{.artifactId = image->sha256,
                                  .buildId = build,
                                  .imageName = "debian-12-docker",
                                  .imageVersion = "2026.11.22-1",
                                  .sha256 = image->sha256,
                                  .sha512 = image->sha512,
                                  .size = image->size};
  RecordingReporter reporter;
  std::jthread worker([&](std::stop_token stop) { runner.run(task, reporter, stop); });

  const auto gen0 = imageIdFor(build, 0);
  ASSERT_TRUE(eventually(
      [&] {
        json i = probe->get(gen0);
        return !i.is_null() && i["status"] == "saving";
      },
      30s));
  std::this_thread::sleep_for(1s);
  openstack->killGlance();
  ASSERT_TRUE(eventually([&] { return reporter.record.maxRetries() >= 2; }, 30s));
  openstack->startGlance();
  worker.join();

  ASSERT_TRUE(reporter.result.has_value())
      << (reporter.failure ? reporter.failure->message : "no result");
  EXPECT_GE(reporter.record.maxRetries(), 2u);
  // Glance died mid-upload: gen 0 stayed 'saving' and was replaced by generation 1.
  EXPECT_EQ(reporter.result->glanceImageId, imageIdFor(build, 1));
  EXPECT_TRUE(reporter.record.logged("deleted image " + gen0 + " (saving)"));
  auto all = probe->imagesOfBuild(build);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["id"], imageIdFor(build, 1));
  EXPECT_EQ(all[0]["status"], "active");
  EXPECT_EQ(all[0]["os_hash_value"], image->sha512);
  EXPECT_TRUE(probe->get(gen0).is_null());
}

TEST_F(GlanceRegistration, CancelMidUploadStopsPromptlyAndLeavesAReusableImage) {
  const auto build = uniqueBuildId("cancel");
  auto cfg = configFor(configYaml("  upload_rate_limit: 4MB/s\n"));
  GlanceRunner runner(
      cfg,
      [&](const std::string&) {
        return LocatedArtifact{image->path, glance::test::buildManifestFor(spec()), ""};
      },
      auth);
  agent::TaskSpec task;
  task.jobId = "job-cancel";
  task.kind = agent::RegisterSpec{.artifactId = image->sha256,
                                  .buildId = build,
                                  .imageName = "debian-12-docker",
                                  .imageVersion = "2026.11.22-1",
                                  .sha256 = image->sha256,
                                  .sha512 = image->sha512,
                                  .size = image->size};
  RecordingReporter reporter;
  std::jthread worker([&](std::stop_token stop) { runner.run(task, reporter, stop); });
  const auto id = imageIdFor(build, 0);
  ASSERT_TRUE(eventually(
      [&] {
        json i = probe->get(id);
        return !i.is_null() && i["status"] == "saving";
      },
      30s));
  const auto t0 = std::chrono::steady_clock::now();
  worker.request_stop();
  worker.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  ASSERT_TRUE(reporter.failure.has_value());
  EXPECT_TRUE(reporter.failure->retryable);
  EXPECT_NE(reporter.failure->message.find("stopped"), std::string::npos)
      << reporter.failure->message;
  EXPECT_TRUE(eventually([&] { return probe->get(id)["status"] == "queued"; }, 10s));

  Recorder rec;
  auto result = registerImage(requestFor(*image, build, spec()), rec);
  EXPECT_EQ(result.image.id, id);
  EXPECT_EQ(probe->imagesOfBuild(build).size(), 1u);
}

TEST_F(GlanceRegistration, QcowWithABackingFileIsRefused) {
  const auto build = uniqueBuildId("backing");
  auto overlay = work->path() / "overlay.qcow2";
  checkCommand({"qemu-img", "create", "-q", "-f", "qcow2", "-b", image->path.string(), "-F",
                "qcow2", overlay.string()});
  Recorder rec;
  try {
    registerImage(requestFor(describeFile(overlay), build, spec()), rec);
    FAIL() << "registered a qcow2 with a backing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has a backing file"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(probe->imagesOfBuild(build).empty());
}

TEST_F(GlanceRegistration, ImportFlowGlanceDirect) {
  const auto build = uniqueBuildId("import");
  config = configFor(configYaml("  upload_method: import\n"));
  Recorder rec;
  auto result =
      registerImage(requestFor(*image, build, spec("name: imported\nversion: '1'\n")), rec);
  json img = probe->get(result.image.id);
  EXPECT_EQ(img["status"], "active");
  EXPECT_EQ(img["os_hash_value"], image->sha512);
  EXPECT_EQ(img["size"], image->size);
  EXPECT_TRUE(rec.logged("importing image"));
  EXPECT_EQ(probe->imagesOfBuild(build).size(), 1u);
}

TEST_F(GlanceRegistration, OlderVersionsHiddenOrRenamed) {
  auto def = [](const std::string& version, const std::string& mode) {
    return "name: versioned\nversion: '" + version +
           "'\nglance: {display_name: Versioned, older_versions: " + mode + "}\n";
  };
  Recorder rec;
  // v1 is a community image: plain listings leave those out, the search must not.
  auto v1 = registerImage(requestFor(*image, uniqueBuildId("v1"),
                                     spec(def("2026.1.1-9", "keep, visibility: community"))),
                          rec);
  auto v3 =
      registerImage(requestFor(*image, uniqueBuildId("v3"), spec(def("2026.3.1-1", "keep"))), rec);
  // v2 is older than v3: hiding applies to v1 only.
  auto v2 =
      registerImage(requestFor(*image, uniqueBuildId("v2"), spec(def("2026.1.1-10", "hide"))), rec);
  EXPECT_EQ(v2.olderVersions, std::vector<std::string>{v1.image.id});
  EXPECT_EQ(probe->get(v1.image.id)["os_hidden"], true);
  EXPECT_EQ(probe->get(v2.image.id)["os_hidden"], false);
  EXPECT_EQ(probe->get(v3.image.id)["os_hidden"], false);
  // v4 renames v2 and v3 (v1 is hidden, so not listed and not renamed again).
  auto v4 = registerImage(
      requestFor(*image, uniqueBuildId("v4"), spec(def("2026.4.1-1", "rename"))), rec);
  EXPECT_EQ(v4.olderVersions.size(), 2u);
  EXPECT_EQ(probe->get(v2.image.id)["name"], "Versioned (old)");
  EXPECT_EQ(probe->get(v3.image.id)["name"], "Versioned (old)");
  EXPECT_EQ(probe->get(v4.image.id)["name"], "Versioned");
  EXPECT_EQ(probe->get(v1.image.id)["name"], "Versioned");
}

TEST_F(GlanceRegistration, ClientErrorFailsWithGlancesOwnMessage) {
  // A member may not publicize an image: Glance answers 403, no retry, its message is shown.
  const auto build = uniqueBuildId("forbidden");
  Recorder rec;
  try {
    registerImage(
        requestFor(*image, build, spec("name: pub\nversion: '1'\nglance: {visibility: public}\n")),
        rec);
    FAIL() << "a member published a public image";
  } catch (const http::ApiError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_EQ(e.kind(), ErrorKind::refused);
    EXPECT_NE(std::string(e.what()).find("Glance refused PATCH"), std::string::npos) << e.what();
    EXPECT_NE(e.serviceMessage().find("publicize"), std::string::npos) << e.serviceMessage();
  }
  EXPECT_EQ(rec.maxRetries(), 0u);
  // Verified and active, just not public: a retry by an admin finds and publishes it.
  auto all = probe->imagesOfBuild(build);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["visibility"], "private");
}

TEST_F(GlanceRegistration, ClientTagsPatchListAndImportInfo) {
  // The parts of the Glance client the registrar itself does not exercise.
  http::HttpClient http(config.http);
  GlanceClient client(http, *auth, {});
  const auto id = imageIdFor(uniqueBuildId("client"), 0);
  Image img = client.create({{"id", id},
                             {"name", "client-test"},
                             {"disk_format", "qcow2"},
                             {"container_format", "bare"},
                             {"tags", {"a"}}});
  EXPECT_EQ(img.status, "queued");
  client.addTag(id, "b c");
  client.removeTag(id, "a");
  img = client.patch(
      id, json::array({{{"op", "add"}, {"path", "/purpose"}, {"value", "client test"}}}));
  EXPECT_EQ(img.tags, std::vector<std::string>{"b c"});
  EXPECT_EQ(img.property("purpose"), "client test");
  auto found =
      client.list({.tags = {"b c"}, .properties = {{"purpose", "client test"}}, .pageSize = 1});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].id, id);
  auto methods = client.importMethods();
  EXPECT_NE(std::find(methods.begin(), methods.end(), "glance-direct"), methods.end());
  try {
    client.create({{"id", id}, {"name", "again"}});
    FAIL() << "second create with the same id";
  } catch (const http::ApiError& e) {
    EXPECT_EQ(e.status(), 409);
    EXPECT_NE(e.serviceMessage().find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(client.remove(id));
  EXPECT_FALSE(client.remove(id));
  EXPECT_FALSE(client.get(id).has_value());
}

// A raw output (Ceph RBD sites): the delivered qcow2 is verified, expanded in the store's
// scratch space, checked against the build's digests of the raw and registered as an image of
// its own beside the qcow2; nothing of the expansion stays behind.
TEST_F(GlanceRegistration, RawOutputIsExpandedCheckedAndRegisteredBesideTheQcow2) {
  const auto build = uniqueBuildId("raw");
  const auto scratch = work->path() / ("scratch-" + build);
  std::filesystem::create_directories(scratch);
  const auto expectedRaw = work->path() / (build + ".raw");
  checkCommand(std::vector<std::string>{"qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                                        image->path.string(), expectedRaw.string()});
  const TestArtifact raw = describeFile(expectedRaw);
  std::filesystem::remove(expectedRaw);

  Recorder rec;
  const auto qcow2 = registerImage(requestFor(*image, build, spec()), rec);
  // The raw through the runner, as the agent gets it: the output named by the task, its digests
  // from the build manifest the artifact carries.
  const std::vector<definition::OutputDigests> outputs = {
      {definition::OutputKind::qcow2, image->size, image->sha256, image->sha512},
      {definition::OutputKind::raw, raw.size, raw.sha256, raw.sha512}};
  const std::string manifest =
      json{{"glance", definition::toJson(spec())}, {"outputs", definition::toJson(outputs)}}.dump();
  GlanceRunner runner(
      configFor(configYaml()),
      [&](const std::string&) {
        return LocatedArtifact{image->path, manifest, "", scratch};
      },
      auth);
  agent::TaskSpec task;
  task.jobId = "job-raw";
  agent::RegisterSpec rawTask{.artifactId = image->sha256,
                              .buildId = build,
                              .imageName = "debian-12-docker",
                              .imageVersion = "2026.11.22-1",
                              .sha256 = image->sha256,
                              .sha512 = image->sha512,
                              .size = image->size,
                              .output = "raw"};
  task.kind = rawTask;
  RecordingReporter reporter;
  runner.run(task, reporter, {});
  ASSERT_FALSE(reporter.failure.has_value()) << reporter.failure->message;
  ASSERT_TRUE(reporter.result.has_value());
  EXPECT_NE(reporter.result->detail.find("(raw) active"), std::string::npos)
      << reporter.result->detail;
  const std::string rawId = reporter.result->glanceImageId;

  EXPECT_EQ(rawId, imageIdFor(build, 0, definition::OutputKind::raw));
  EXPECT_NE(rawId, qcow2.image.id);
  json img = probe->get(rawId);
  ASSERT_FALSE(img.is_null());
  EXPECT_EQ(img["status"], "active");
  EXPECT_EQ(img["disk_format"], "raw");
  EXPECT_EQ(img["size"], 64u << 20);
  EXPECT_EQ(img["os_hash_value"], raw.sha512);
  EXPECT_EQ(img.value("imgpipe_output", ""), "raw");
  EXPECT_EQ(img.value("imgpipe_build_id", ""), build);
  EXPECT_EQ(img["visibility"], "community");
  // The qcow2 stays as it was: not an older version of the raw, nor the raw of it.
  json q = probe->get(qcow2.image.id);
  EXPECT_EQ(q["disk_format"], "qcow2");
  EXPECT_EQ(q.value("imgpipe_output", ""), "qcow2");
  EXPECT_EQ(q["os_hidden"], false);
  EXPECT_EQ(probe->imagesOfBuild(build).size(), 2u);
  EXPECT_TRUE(std::filesystem::is_empty(scratch));
  // Again: the raw found verified, not uploaded twice.
  RecordingReporter again;
  runner.run(task, again, {});
  ASSERT_TRUE(again.result.has_value());
  EXPECT_EQ(again.result->glanceImageId, rawId);
  EXPECT_NE(again.result->detail.find("found verified"), std::string::npos) << again.result->detail;
  EXPECT_TRUE(std::filesystem::is_empty(scratch));
  // A build that made no raw cannot have one registered: its digests are the expansion's check.
  rawTask.buildId = uniqueBuildId("noraw");
  task.kind = rawTask;
  GlanceRunner qcow2Only(
      configFor(configYaml()),
      [&](const std::string&) {
        return LocatedArtifact{image->path, glance::test::buildManifestFor(spec()), "", scratch};
      },
      auth);
  RecordingReporter refused;
  qcow2Only.run(task, refused, {});
  ASSERT_TRUE(refused.failure.has_value());
  EXPECT_NE(refused.failure->message.find("the build manifest has no raw output"),
            std::string::npos)
      << refused.failure->message;
  EXPECT_TRUE(probe->imagesOfBuild(rawTask.buildId).empty());
}

TEST_F(GlanceRegistration, ARawThatIsNotTheBuildsRegistersNothing) {
  const auto build = uniqueBuildId("badraw");
  const auto scratch = work->path() / ("scratch-" + build);
  std::filesystem::create_directories(scratch);
  auto req = requestFor(*image, build, spec());
  req.output = definition::OutputKind::raw;
  // The size is right; the digests are of some other raw.
  req.expanded = {definition::OutputKind::raw, 64u << 20, std::string(64, 'b'),
                  std::string(128, 'c')};
  req.scratchDir = scratch;
  Recorder rec;
  try {
    registerImage(req, rec);
    FAIL() << "registered a raw whose digests are not the build's";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failed);
    const std::string what = e.what();
    EXPECT_NE(what.find("does not match its build manifest; sha256 is "), std::string::npos)
        << what;
    EXPECT_NE(what.find("nothing was registered"), std::string::npos) << what;
  }
  EXPECT_TRUE(probe->imagesOfBuild(build).empty());
  EXPECT_TRUE(std::filesystem::is_empty(scratch));
}

TEST_F(GlanceRegistration, RunnerRefusesAMissingArtifactClearly) {
  auto cfg = configFor(configYaml());
  GlanceRunner runner(
      cfg,
      [&](const std::string& id) {
        return LocatedArtifact{work->path() / ("missing-" + id),
                               glance::test::buildManifestFor(spec("name: x\nversion: '1'\n")), "",
                               work->path()};
      },
      auth);
  agent::TaskSpec task;
  task.jobId = "job-missing";
  task.kind = agent::RegisterSpec{.artifactId = "abc",
                                  .buildId = uniqueBuildId("missing"),
                                  .imageName = "x",
                                  .imageVersion = "1",
                                  .sha256 = "abc",
                                  .sha512 = "def",
                                  .size = 1};
  RecordingReporter reporter;
  runner.run(task, reporter, {});
  ASSERT_TRUE(reporter.failure.has_value());
  EXPECT_EQ(reporter.failure->step, "register");
  EXPECT_NE(reporter.failure->message.find("cannot open the artifact"), std::string::npos)
      << reporter.failure->message;
}

// A live ISO (issue 12): delivered as an artifact of its own, checked to be an ISO 9660 image
// and the one its build manifest names, registered with disk_format iso as its own image.
TEST_F(GlanceRegistration, IsoOutputIsCheckedAndRegisteredWithDiskFormatIso) {
  const auto build = uniqueBuildId("iso");
  const auto tree = work->path() / ("tree-" + build);
  std::filesystem::create_directories(tree);
  writeFileAtomic(tree / "marker", "live " + build + "\n");
  const auto isoPath = work->path() / (build + ".iso");
  checkCommand({"xorriso", "-as", "mkisofs", "-quiet", "-V", "IMGPIPE_TEST", "-o", isoPath.string(),
                tree.string()});
  const TestArtifact iso = describeFile(isoPath);
  const std::vector<definition::OutputDigests> outputs = {
      {definition::OutputKind::qcow2, image->size, image->sha256, image->sha512},
      {definition::OutputKind::iso, iso.size, iso.sha256, iso.sha512, isoPath.filename()}};
  const std::string manifest =
      json{{"glance", definition::toJson(spec())}, {"outputs", definition::toJson(outputs)}}.dump();
  auto runnerFor = [&](const std::filesystem::path& file, definition::OutputKind kind) {
    return GlanceRunner(
        configFor(configYaml()),
        [=](const std::string&) {
          return LocatedArtifact{file, manifest, "", work->path(), kind};
        },
        auth);
  };
  agent::TaskSpec task;
  task.jobId = "job-iso";
  agent::RegisterSpec isoTask{.artifactId = iso.sha256,
                              .buildId = build,
                              .imageName = "debian-12-docker",
                              .imageVersion = "2026.11.22-1",
                              .sha256 = iso.sha256,
                              .sha512 = iso.sha512,
                              .size = iso.size,
                              .output = "iso"};
  task.kind = isoTask;
  RecordingReporter reporter;
  runnerFor(isoPath, definition::OutputKind::iso).run(task, reporter, {});
  ASSERT_FALSE(reporter.failure.has_value()) << reporter.failure->message;
  ASSERT_TRUE(reporter.result.has_value());
  EXPECT_NE(reporter.result->detail.find("(iso) active"), std::string::npos)
      << reporter.result->detail;
  const std::string isoId = reporter.result->glanceImageId;
  EXPECT_EQ(isoId, imageIdFor(build, 0, definition::OutputKind::iso));
  json img = probe->get(isoId);
  ASSERT_FALSE(img.is_null());
  EXPECT_EQ(img["status"], "active");
  EXPECT_EQ(img["disk_format"], "iso");
  EXPECT_EQ(img["container_format"], "bare");
  EXPECT_EQ(img["size"], iso.size);
  EXPECT_EQ(img["os_hash_value"], iso.sha512);
  EXPECT_EQ(img.value("imgpipe_output", ""), "iso");
  EXPECT_EQ(probe->imagesOfBuild(build).size(), 1u);

  // Refused before anything reaches Glance: a qcow2 artifact named for the iso output, a file
  // that is not an ISO, an ISO that is not the build manifest's.
  auto refusal = [&](const std::filesystem::path& file, definition::OutputKind kind,
                     agent::RegisterSpec spec) {
    spec.buildId = uniqueBuildId("iso-refused");
    task.kind = spec;
    RecordingReporter r;
    runnerFor(file, kind).run(task, r, {});
    EXPECT_TRUE(probe->imagesOfBuild(spec.buildId).empty());
    return r.failure ? r.failure->message : std::string("registered");
  };
  EXPECT_NE(refusal(image->path, definition::OutputKind::qcow2, isoTask)
                .find("(made from the iso artifact), and artifact " + iso.sha256 +
                      " here is the qcow2 artifact"),
            std::string::npos);
  auto notIso = isoTask;
  notIso.sha256 = image->sha256;
  notIso.sha512 = image->sha512;
  notIso.size = image->size;
  EXPECT_NE(
      refusal(image->path, definition::OutputKind::iso, notIso).find("is not an ISO 9660 image"),
      std::string::npos);
  const auto otherIso = work->path() / (build + "-other.iso");
  writeFileAtomic(tree / "marker", "another build\n");
  checkCommand({"xorriso", "-as", "mkisofs", "-quiet", "-o", otherIso.string(), tree.string()});
  const TestArtifact other = describeFile(otherIso);
  auto otherTask = isoTask;
  otherTask.sha256 = other.sha256;
  otherTask.sha512 = other.sha512;
  otherTask.size = other.size;
  EXPECT_NE(refusal(otherIso, definition::OutputKind::iso, otherTask)
                .find("is not the one its build manifest names"),
            std::string::npos);
}

}  // namespace
