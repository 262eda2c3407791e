// Registration through a real Keystone (uwsgi, fernet tokens that expire after a few seconds)
// and a Glance that validates every token with it; and the reference client, `openstack image
// create`, against the same Glance. One Keystone + Glance for the whole binary.
#include <sys/stat.h>

#include <set>

#include "agent-glance/keystone/keystone_auth.h"
#include "agent-glance/registration/image_id.h"
#include "common/net/curve_keys.h"
#include "common/temp_dir.h"
#include "tests/glance/glance_test_util.h"
#include "tests/glance/spec_for.h"
#include "tests/support/process.h"

using namespace imgpipe;
using namespace imgpipe::glance;
using namespace imgpipe::test;
using namespace std::chrono_literals;

namespace {

// Short enough that a slowed-down upload outlives its token.
constexpr int kTokenLifetimeS = 6;

const char* kDefinition = R"(
name: ubuntu-24-docker
version: "2026.11.22-1"
glance:
  display_name: "Ubuntu 24.04 Docker CE"
  visibility: private
  min_disk: 10
  min_ram: 1024
  tags: [docker]
  older_versions: keep
  metadata: {os_admin_user: ubuntu, os_distro: ubuntu2404, os_version: '24', hw_qemu_guest_agent: 'yes', os_require_quiesce: 'yes'}
  properties: {hw_disk_bus: virtio, hw_vif_model: virtio, os_type: linux, marketplace_category: containers}
)";

class KeystoneRegistration : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    const auto t0 = std::chrono::steady_clock::now();
    openstack = std::make_unique<LocalOpenStack>(
        LocalOpenStackOptions{.keystone = true, .tokenExpirationS = kTokenLifetimeS});
    work =
        std::make_unique<TempDir>(std::filesystem::temp_directory_path(), "imgpipe-keystone-test-");
    image = std::make_unique<TestArtifact>(makeQcow2(work->path() / "image.qcow2", 64, 16));
    writeSecret("imgpipe-password", "imgpipe-secret");
    writeSecret("uploader-password", "uploader-secret");
    writeSecret("wrong-password", "not-the-password");
    std::cerr << "keystone + glance up in "
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

  static std::filesystem::path writeSecret(const std::string& name, const std::string& value) {
    auto p = work->path() / name;
    writeText(p, value + "\n");
    ::chmod(p.c_str(), 0600);
    return p;
  }
  static GlanceConfig configFor(const std::string& keystoneYaml, const std::string& extra = "") {
    const std::string yaml =
        "glance:\n  auth: keystone\n  allow_insecure_http: true\n  keystone:\n    auth_url: " +
        openstack->keystoneUrl() + "\n" + keystoneYaml +
        "  retry: {initial: 500ms, max: 2s, give_up_after: 1m}\n" + extra;
    return parseGlanceConfig(YamlReader::fromString(yaml, "agent.yaml").at("glance"));
  }
  static std::string imgpipeUser(const std::string& passwordFile = "imgpipe-password") {
    return "    username: imgpipe\n    user_domain_name: Default\n    password_file: " +
           (work->path() / passwordFile).string() +
           "\n    project_name: imgpipe\n    project_domain_name: Default\n";
  }

  RegistrationResult registerWith(const GlanceConfig& config, AuthProvider& auth,
                                  const std::string& build, Recorder& rec,
                                  const std::string& definition = kDefinition) {
    Registrar r(config, auth, rec.observer());
    return r.run(requestFor(*image, build, glance::test::specFor(definition)), {});
  }
};

TEST_F(KeystoneRegistration, PasswordAuthInAnotherDomainFindsGlanceInTheCatalog) {
  auto config = configFor(
      "    username: uploader\n    user_domain_name: site1\n    password_file: " +
      (work->path() / "uploader-password").string() +
      "\n    project_name: images\n    project_domain_name: site1\n    interface: internal\n"
      "    region: RegionOne\n");
  keystone::KeystoneAuth auth(config.keystone, config.http);
  EXPECT_EQ(auth.imageEndpoint({}), openstack->glanceUrl());
  Recorder rec;
  const auto build = uniqueBuildId("password");
  auto result = registerWith(config, auth, build, rec);
  GlanceProbe probe(auth);
  json img = probe.get(result.image.id);
  EXPECT_EQ(img["status"], "active");
  EXPECT_EQ(img["owner"], openstack->id("IMAGES_PROJECT_ID"));
  EXPECT_EQ(img["os_hash_value"], image->sha512);
}

TEST_F(KeystoneRegistration, ApplicationCredential) {
  // The user makes an application credential for its project through Keystone's API.
  auto pwConfig = configFor(imgpipeUser());
  keystone::KeystoneAuth pwAuth(pwConfig.keystone, pwConfig.http);
  http::HttpClient http({});
  http::Request req{.method = "POST"};
  req.url = openstack->keystoneUrl() + "/users/" + openstack->id("IMGPIPE_USER_ID") +
            "/application_credentials";
  req.headers = pwAuth.headers({}).headers;
  req.headers.push_back({"Content-Type", "application/json"});
  req.body = json{{"application_credential", {{"name", uniqueBuildId("imgpipe-appcred")}}}}.dump();
  auto resp = http.perform(req);
  ASSERT_EQ(resp.status, 201) << resp.body;
  auto cred = json::parse(resp.body)["application_credential"];
  writeSecret("appcred-secret", cred["secret"].get<std::string>());

  auto config =
      configFor("    method: application_credential\n    application_credential_id: " +
                cred["id"].get<std::string>() + "\n    application_credential_secret_file: " +
                (work->path() / "appcred-secret").string() + "\n");
  keystone::KeystoneAuth auth(config.keystone, config.http);
  Recorder rec;
  auto result = registerWith(config, auth, uniqueBuildId("appcred"), rec);
  EXPECT_EQ(result.image.status, "active");
  EXPECT_EQ(result.image.owner, openstack->id("IMGPIPE_PROJECT_ID"));
}

TEST_F(KeystoneRegistration, WrongPasswordFailsWithKeystonesMessage) {
  auto config = configFor(imgpipeUser("wrong-password"));
  keystone::KeystoneAuth auth(config.keystone, config.http);
  Recorder rec;
  const auto build = uniqueBuildId("wrongpw");
  try {
    registerWith(config, auth, build, rec);
    FAIL() << "registered with a wrong password";
  } catch (const http::ApiError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(e.kind(), ErrorKind::refused);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Keystone refused POST " + openstack->keystoneUrl() +
                       "/auth/tokens (401 Unauthorized)"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("The request you have made requires authentication."), std::string::npos)
        << msg;
    EXPECT_EQ(msg.find("not-the-password"), std::string::npos) << msg;
  }
  EXPECT_EQ(rec.maxRetries(), 0u);
}

TEST_F(KeystoneRegistration, TokenExpiringMidJob) {
  // The ~8 s upload outlives the token; the next request must not use it. With the default
  // renew_before (5m, capped at half the lifetime) it is renewed before Glance can refuse it.
  auto config = configFor(imgpipeUser(), "  upload_rate_limit: 2MB/s\n");
  keystone::KeystoneAuth auth(config.keystone, config.http);
  Recorder rec;
  const auto build = uniqueBuildId("expiry");
  const auto t0 = std::chrono::steady_clock::now();
  auto result = registerWith(config, auth, build, rec);
  EXPECT_GT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(kTokenLifetimeS));
  EXPECT_EQ(result.image.status, "active");
  EXPECT_GE(auth.tokensIssued(), 2u);
  EXPECT_EQ(auth.tokensRefused(), 0u);
  EXPECT_EQ(rec.maxRetries(), 0u);
  GlanceProbe probe(auth);
  EXPECT_EQ(probe.imagesOfBuild(build).size(), 1u);
}

TEST_F(KeystoneRegistration, TokenRevokedMidJobIsReplacedAfterGlanceRefusesIt) {
  // A token Glance refuses although it looked valid to us (revoked, or Keystone's clock ahead):
  // the upload is answered 401, a new token is fetched and the upload repeated from the start.
  auto config = configFor(imgpipeUser());
  keystone::KeystoneAuth auth(config.keystone, config.http);
  Recorder rec;
  rec.onCheckpoint = [&](std::string_view c) {
    if (c != "created") return;
    const std::string token = auth.headers({}).headers.at(0).value;
    http::HttpClient http({});
    http::Request req{.method = "DELETE"};
    req.url = openstack->keystoneUrl() + "/auth/tokens";
    req.headers = {{"X-Auth-Token", token}, {"X-Subject-Token", token}};
    EXPECT_EQ(http.perform(req).status, 204);
  };
  const auto build = uniqueBuildId("revoked");
  auto result = registerWith(config, auth, build, rec);
  EXPECT_EQ(result.image.status, "active");
  EXPECT_EQ(result.image.osHashValue, image->sha512);
  EXPECT_EQ(auth.tokensRefused(), 1u);
  EXPECT_EQ(rec.maxRetries(), 0u);  // renewed inside the attempt, not by a retry
  GlanceProbe probe(auth);
  EXPECT_EQ(probe.imagesOfBuild(build).size(), 1u);
}

// `imgpipe doctor` on a controller asks the glance agent to authenticate and reach Glance, as a
// registration would; a wrong password is named as Keystone's refusal, never shown.
TEST_F(KeystoneRegistration, DoctorProbesGlanceThroughKeystone) {
  TempDir dir;
  net::writeKeyPair(net::generateKeyPair("ctrl-probe"), dir.path());
  net::writeKeyPair(net::generateKeyPair("coordinator"), dir.path());
  auto doctor = [&](const std::string& passwordFile) {
    const auto config = dir.path() / "agent-glance.yaml";
    writeText(config, "name: ctrl-probe\nkey: " + (dir.path() / "ctrl-probe.key").string() +
                          "\ncoordinator: {endpoint: 'tcp://127.0.0.1:1', public_key: " +
                          (dir.path() / "coordinator.pub").string() +
                          "}\nstate_dir: " + (dir.path() / "state").string() +
                          "\nglance:\n  auth: keystone\n  allow_insecure_http: true\n" +
                          "  keystone:\n    auth_url: " + openstack->keystoneUrl() + "\n" +
                          imgpipeUser(passwordFile));
    auto r = run({(buildDir() / "bin/imgpipe").string(), "--json", "doctor", "--role", "glance",
                  config.string()},
                 60s);
    for (const auto& c : json::parse(r.out))
      if (c["check"] == "glance") return c;
    ADD_FAILURE() << "no glance check in: " << r.out << r.err;
    return json();
  };
  auto good = doctor("imgpipe-password");
  // It answers, and doctor warns: this test's Keystone and Glance speak plain http, allowed
  // only by allow_insecure_http.
  EXPECT_EQ(good["status"], "warn") << good.dump(2);
  const std::string found = good["detail"];
  EXPECT_NE(found.find("allow_insecure_http"), std::string::npos) << found;
  EXPECT_NE(found.find("Glance at " + openstack->glanceUrl()), std::string::npos) << found;
  EXPECT_NE(found.find("answers as project"), std::string::npos) << found;

  auto bad = doctor("wrong-password");
  EXPECT_EQ(bad["status"], "fail") << bad.dump(2);
  const std::string said = bad["detail"];
  EXPECT_NE(said.find("Keystone refused POST"), std::string::npos) << said;
  EXPECT_EQ(said.find("not-the-password"), std::string::npos) << said;
}

TEST_F(KeystoneRegistration, ExplicitEndpointSkipsTheCatalog) {
  auto config = configFor(imgpipeUser(), "  endpoint: " + openstack->glanceUrl() + "/v2/\n");
  keystone::KeystoneAuth auth(config.keystone, config.http);
  EXPECT_EQ(auth.imageEndpoint({}), openstack->glanceUrl());
  Recorder rec;
  auto result = registerWith(config, auth, uniqueBuildId("endpoint"), rec,
                             "name: endpoint-test\nversion: '1'\n");
  EXPECT_EQ(result.image.status, "active");
}

TEST_F(KeystoneRegistration, SameFieldsAsTheReferenceClient) {
  auto config = configFor(imgpipeUser());
  keystone::KeystoneAuth auth(config.keystone, config.http);
  Recorder rec;
  auto ours = registerWith(config, auth, uniqueBuildId("reference"), rec);

  // The same image and options through `openstack image create`.
  SubprocessOptions o;
  o.argv = {"openstack", "image",         "create",        "-f",
            "json",      "--disk-format", "qcow2",         "--container-format",
            "bare",      "--private",     "--unprotected", "--min-disk",
            "10",        "--min-ram",     "1024",          "--tag",
            "docker"};
  for (const auto& [k, v] : glance::test::specFor(kDefinition).properties)
    o.argv.insert(o.argv.end(), {"--property", k + "=" + v});
  o.argv.insert(o.argv.end(), {"--file", image->path.string(), "Ubuntu 24.04 Docker CE"});
  o.env = {{"OS_AUTH_URL", openstack->keystoneUrl()},
           {"OS_IDENTITY_API_VERSION", "3"},
           {"OS_USERNAME", "imgpipe"},
           {"OS_PASSWORD", "imgpipe-secret"},
           {"OS_PROJECT_NAME", "imgpipe"},
           {"OS_USER_DOMAIN_NAME", "Default"},
           {"OS_PROJECT_DOMAIN_NAME", "Default"},
           {"OS_INTERFACE", "public"},
           {"OS_REGION_NAME", "RegionOne"}};
  o.captureStdout = true;
  o.timeout = 2min;
  const std::string out = checkCommand(o);
  const std::string refId = json::parse(out)["id"];

  GlanceProbe probe(auth);
  json a = probe.get(ours.image.id), b = probe.get(refId);
  ASSERT_EQ(b["status"], "active") << b.dump(2);
  // Fields that identify the object, not the image, differ by nature; imgpipe's provenance
  // properties and the SDK's "owner_specified.openstack.*" bookkeeping are each client's own.
  const std::set<std::string> perObject = {"id", "created_at", "updated_at", "self", "file"};
  auto ownExtra = [](const std::string& k) {
    return k.starts_with("imgpipe_") || k.starts_with("owner_specified.openstack.");
  };
  std::set<std::string> keys;
  for (auto& [k, v] : a.items())
    keys.insert(k);
  for (auto& [k, v] : b.items())
    keys.insert(k);
  std::string onlyImgpipe, onlyReference;
  for (const auto& k : keys) {
    if (perObject.count(k)) continue;
    if (!a.contains(k)) {
      onlyReference += " " + k;
      EXPECT_TRUE(ownExtra(k)) << "only the reference client set " << k << " = " << b[k];
      continue;
    }
    if (!b.contains(k)) {
      onlyImgpipe += " " + k;
      EXPECT_TRUE(ownExtra(k)) << "only imgpipe set " << k << " = " << a[k];
      continue;
    }
    if (k == "tags") {
      EXPECT_EQ(std::set<std::string>(a[k].begin(), a[k].end()),
                std::set<std::string>(b[k].begin(), b[k].end()));
      continue;
    }
    EXPECT_EQ(a[k], b[k]) << "field " << k;
  }
  std::cerr << "compared " << keys.size() << " fields; only imgpipe:" << onlyImgpipe
            << "; only the reference client:" << onlyReference << "\n";
}

}  // namespace
