// Pure-code tests of the glance agent: ids, the definition's glance: section, config parsing,
// JSON handling (Glance images, error bodies, Keystone tokens and catalogs), qcow2 checks.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "agent-glance/glance/auth_provider.h"
#include "agent-glance/glance/glance_client.h"
#include "agent-glance/glance/image.h"
#include "agent-glance/glance_config.h"
#include "agent-glance/http/api_error.h"
#include "agent-glance/keystone/keystone_auth.h"
#include "agent-glance/qcow2_check.h"
#include "agent-glance/registration/image_id.h"
#include "agent-glance/registration/image_spec.h"
#include "agent-glance/registration/registrar.h"
#include "common/hash.h"
#include "common/net/curve_keys.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "tests/glance/spec_for.h"

using namespace imgpipe;
using namespace imgpipe::glance;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------- ids

TEST(Uuid5, MatchesKnownVectors) {
  // RFC 4122 namespaces; values as Python's uuid.uuid5 computes them.
  const char* dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
  const char* url = "6ba7b811-9dad-11d1-80b4-00c04fd430c8";
  EXPECT_EQ(uuid5(dns, "www.example.com"), "2ed6657d-e927-568b-95e1-2665a8aea6a2");
  EXPECT_EQ(uuid5(dns, "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  EXPECT_EQ(uuid5(url, "http://example.com/"), "0a300ee9-f9e4-5697-a51a-efc7fafaba67");
}

TEST(Uuid5, ImgpipeNamespaceIsDerivedAsDocumented) {
  EXPECT_EQ(uuid5("6ba7b811-9dad-11d1-80b4-00c04fd430c8", "imgpipe:glance-image"),
            std::string(kImageIdNamespace));
}

TEST(Uuid5, ImageIdsPerGeneration) {
  EXPECT_EQ(imageIdFor("build-42", 0), "657a9d1b-7898-525c-bdfc-f9683770bb49");
  EXPECT_EQ(imageIdFor("build-42", 1), "1142a82a-9cae-5dba-99ec-6677b85b1b32");
  EXPECT_EQ(imageIdFor("build-42", 2), "28d716a5-5af2-5fd5-aa71-da4225cb718e");
  EXPECT_NE(imageIdFor("build-43", 0), imageIdFor("build-42", 0));
  // Another output of the build is its own image, fixed forever as the qcow2's is (values from
  // Python's uuid.uuid5 with the same namespace and names).
  EXPECT_EQ(imageIdFor("build-42", 0, definition::OutputKind::raw),
            "dd9c4c6b-4ac4-58f1-85d6-10ada8ecb19b");
  EXPECT_EQ(imageIdFor("build-42", 1, definition::OutputKind::raw),
            "3a108cc0-4c59-51ad-8a5d-dde0356379ad");
}

TEST(Uuid5, RejectsMalformedNamespace) {
  EXPECT_THROW(uuid5("not-a-uuid", "x"), Error);
  EXPECT_THROW(uuid5("6ba7b8109dad11d180b400c04fd430c8", "x"), Error);  // no dashes
}

// ------------------------------------------------------------------ definition glance:

const char* kDefinition = R"(
name: debian-12-docker        # image name
version: "2026.11.22-1"
build: {whatever: the build agent reads this}
glance:
  display_name: "Debian 12 Docker"
  visibility: public
  min_disk: 10
  min_ram: 1024
  tags: [docker, debian]
  protected: true
  older_versions: hide
  metadata:
    os_admin_user: 'debian'
    os_distro: debian12
    os_version: '12'
    os_type: 'linux'
    mcs_name: debian-12-docker
    hw_qemu_guest_agent: 'yes'
    os_require_quiesce: yes
    sid: hidden
    hw_disk_bus: scsi
  properties: {hw_disk_bus: virtio, hw_vif_model: virtio, marketplace_category: containers}
)";

TEST(ResolvedGlance, ResolvesTheGlanceSection) {
  auto s = glance::test::specFor(kDefinition);
  EXPECT_EQ(s.name, "debian-12-docker");
  EXPECT_EQ(s.version, "2026.11.22-1");
  EXPECT_EQ(s.displayName, "Debian 12 Docker");
  EXPECT_EQ(s.visibility, definition::Visibility::public_);
  EXPECT_EQ(s.minDiskGiB, 10u);
  EXPECT_EQ(s.minRamMiB, 1024u);
  EXPECT_EQ(s.tags, (std::vector<std::string>{"docker", "debian"}));
  EXPECT_TRUE(s.protectedFlag);
  EXPECT_EQ(s.olderVersions, definition::OlderVersions::hide);
}

TEST(ResolvedGlance, MetadataMapsOverAsStringsAndPropertiesWin) {
  auto s = glance::test::specFor(kDefinition);
  EXPECT_EQ(s.properties.at("os_admin_user"), "debian");
  EXPECT_EQ(s.properties.at("hw_qemu_guest_agent"), "yes");
  EXPECT_EQ(s.properties.at("os_require_quiesce"), "yes");  // unquoted YAML yes stays "yes"
  EXPECT_EQ(s.properties.at("os_version"), "12");
  EXPECT_EQ(s.properties.at("sid"), "hidden");
  EXPECT_EQ(s.properties.at("hw_disk_bus"), "virtio");  // properties override metadata
  EXPECT_EQ(s.properties.at("marketplace_category"), "containers");
  EXPECT_EQ(s.properties.size(), 11u);
}

TEST(ResolvedGlance, DefaultsWithoutGlanceSectionComeFromTheImage) {
  auto s = glance::test::specFor("name: plain\nversion: '3'\n", (10ull << 30) + 1);
  EXPECT_EQ(s.displayName, "plain 3");
  EXPECT_EQ(s.visibility, definition::Visibility::private_);
  EXPECT_EQ(s.minDiskGiB, 11u);  // the virtual size, rounded up: no flavor smaller than the disk
  EXPECT_FALSE(s.protectedFlag);
  EXPECT_FALSE(s.olderVersions.has_value());
  EXPECT_TRUE(s.properties.empty());
}

// The build writes it into the manifest; the glance agent reads exactly that back.
TEST(ResolvedGlance, TravelsThroughTheBuildManifestUnchanged) {
  auto s = glance::test::specFor(kDefinition);
  auto back = definition::resolvedGlanceFromJson(definition::toJson(s));
  EXPECT_EQ(definition::toJson(back), definition::toJson(s));
  auto j = definition::toJson(s);
  j["properties"]["kernel_id"] = "x";
  try {
    definition::resolvedGlanceFromJson(j);
    FAIL() << "a reserved property was read from a manifest";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'kernel_id' is reserved by Glance"), std::string::npos)
        << e.what();
  }
  j = definition::toJson(s);
  j["min_disk"] = "ten";
  EXPECT_THROW(definition::resolvedGlanceFromJson(j), Error);
}

void expectSpecError(const std::string& yaml, const std::string& fragment) {
  try {
    glance::test::specFor(yaml);
    FAIL() << "accepted: " << yaml;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(ResolvedGlance, RefusesWhatGlanceWouldRefuse) {
  // The wording is the definition parser's (definition::parseGlance), the one reader of this
  // section; the reserved names are definition/glance_names.h's, the one table.
  expectSpecError("name: a\nglance: {visibility: secret}\n",
                  "glance.visibility: must be private, shared, community or public");
  expectSpecError("name: a\nglance: {older_versions: drop}\n", "must be keep, hide or rename");
  expectSpecError("name: a\nglance: {tagz: [x]}\n", "unknown key 'tagz'");
  expectSpecError("name: a\nglance: {properties: {os_hash_value: x}}\n",
                  "'os_hash_value' is reserved by Glance");
  expectSpecError("name: a\nglance: {metadata: {visibility: public}}\n",
                  "'visibility' is reserved by Glance; use glance.visibility");
  for (const char* key : {"kernel_id", "ramdisk_id", "instance_uuid", "os_glance_import_task"})
    expectSpecError(std::string("name: a\nglance: {properties: {") + key + ": x}}\n", "reserved");
  expectSpecError("name: a\nglance: {properties: {imgpipe_build_id: x}}\n", "reserved");
  expectSpecError("name: a\nglance: {properties: {k: [1, 2]}}\n",
                  "glance.properties.k: must be a single value");
  expectSpecError("name: a\nglance: {properties: {k: " + std::string(256, 'v') + "}}\n",
                  "limited to 255 characters");
  expectSpecError("name: a\nglance: {min_disk: -1}\n", "non-negative");
  expectSpecError("version: '1'\n", "missing required field 'name'");
}

TEST(ResolvedGlance, ProvenanceProperties) {
  auto s = glance::test::specFor(kDefinition);
  auto p = glanceProperties(s, {"build-7", "abc", "mdigest"});
  EXPECT_EQ(p.at("imgpipe_build_id"), "build-7");
  EXPECT_EQ(p.at("imgpipe_image"), "debian-12-docker");
  EXPECT_EQ(p.at("imgpipe_version"), "2026.11.22-1");
  EXPECT_EQ(p.at("imgpipe_sha256"), "abc");
  EXPECT_EQ(p.at("imgpipe_manifest_digest"), "mdigest");
  EXPECT_EQ(p.at("os_admin_user"), "debian");
}

TEST(Versions, NaturalOrder) {
  EXPECT_LT(compareVersions("2026.11.22-9", "2026.11.22-10"), 0);
  EXPECT_GT(compareVersions("2026.11.22-1", "2026.2.30-1"), 0);
  EXPECT_EQ(compareVersions("1.02", "1.2"), 0);
  EXPECT_LT(compareVersions("1.2", "1.2.1"), 0);
  EXPECT_LT(compareVersions("1.2a", "1.2b"), 0);
  EXPECT_GT(compareVersions("99999999999999999999999", "2"), 0);  // no overflow
}

// ------------------------------------------------------------------------------- config

struct ConfigFiles {
  TempDir dir;
  std::filesystem::path secret;
  ConfigFiles() : secret(dir.path() / "password") {
    std::ofstream(secret) << "s3cret-value\n";
    ::chmod(secret.c_str(), 0600);
  }
};

GlanceConfig parseConfig(const std::string& yaml) {
  auto doc = YamlReader::fromString(yaml, "agent.yaml");
  return parseGlanceConfig(doc.at("glance"));
}

void expectConfigError(const std::string& yaml, const std::string& fragment) {
  try {
    parseConfig(yaml);
    FAIL() << "accepted: " << yaml;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(GlanceConfig, KeystonePasswordWithDefaults) {
  ConfigFiles f;
  auto c = parseConfig(
      "glance:\n  keystone:\n    auth_url: https://ks:5000/v3\n    username: imgpipe\n"
      "    password_file: " +
      f.secret.string() + "\n    project_name: images\n");
  EXPECT_EQ(c.auth, AuthMode::keystone);
  EXPECT_EQ(c.keystone.authUrl, "https://ks:5000/v3");
  EXPECT_EQ(c.keystone.interface, "public");
  EXPECT_EQ(c.keystone.serviceType, "image");
  EXPECT_EQ(c.keystone.renewBefore, std::chrono::minutes(5));
  EXPECT_EQ(c.uploadMethod, UploadMethod::put);
  EXPECT_EQ(c.maxVirtualSize, 1ull << 40);
  EXPECT_EQ(c.olderVersions, definition::OlderVersions::keep);
  EXPECT_EQ(c.retry.initial, std::chrono::seconds(1));
  EXPECT_EQ(c.retry.max, std::chrono::minutes(1));
  EXPECT_EQ(c.retry.giveUpAfter, std::chrono::hours(1));
  EXPECT_EQ(c.http.connectTimeout, std::chrono::seconds(10));
  EXPECT_EQ(c.http.stallTimeout, std::chrono::minutes(2));
  EXPECT_EQ(c.savingGrace, std::chrono::seconds(15));
  EXPECT_EQ(c.keystone.password.read(), "s3cret-value");
  auto bare = parseConfig(
      "glance:\n  keystone:\n    auth_url: https://ks:5000/\n    username: u\n"
      "    password_file: " +
      f.secret.string() + "\n    project_id: p\n");
  EXPECT_EQ(bare.keystone.authUrl, "https://ks:5000/v3");
}

TEST(GlanceConfig, EveryOption) {
  ConfigFiles f;
  ::setenv("IMGPIPE_TEST_APPCRED", "appcred-secret", 1);
  auto c = parseConfig(
      "glance:\n"
      "  auth: keystone\n"
      "  endpoint: https://glance.site1:9292/v2/\n"
      "  keystone:\n"
      "    auth_url: https://ks:5000/v3\n"
      "    method: application_credential\n"
      "    application_credential_id: abc123\n"
      "    application_credential_secret_env: IMGPIPE_TEST_APPCRED\n"
      "    interface: internal\n"
      "    region: RegionTwo\n"
      "    service_type: image\n"
      "    renew_before: 30s\n"
      "  ca_bundle: " +
      f.secret.string() +
      "\n"
      "  timeouts: {connect: 3s, request: 20s, stall: 40s}\n"
      "  upload_method: import\n"
      "  upload_rate_limit: 40mbit\n"
      "  max_virtual_size: 200G\n"
      "  older_versions: rename\n"
      "  retry: {initial: 2s, max: 10s, give_up_after: 5m, max_attempts: 7}\n"
      "  saving_grace: 3s\n"
      "  import_timeout: 10m\n"
      "  qemu_img_timeout: 1m\n");
  EXPECT_EQ(c.keystone.method, keystone::AuthMethod::applicationCredential);
  EXPECT_EQ(c.keystone.endpointOverride, "https://glance.site1:9292/v2/");
  EXPECT_EQ(c.keystone.interface, "internal");
  EXPECT_EQ(c.keystone.region, "RegionTwo");
  EXPECT_EQ(c.keystone.renewBefore, std::chrono::seconds(30));
  EXPECT_EQ(c.keystone.applicationCredentialSecret.read(), "appcred-secret");
  EXPECT_EQ(c.http.connectTimeout, std::chrono::seconds(3));
  EXPECT_EQ(c.http.requestTimeout, std::chrono::seconds(20));
  EXPECT_EQ(c.http.stallTimeout, std::chrono::seconds(40));
  EXPECT_EQ(c.http.uploadRateLimit, 5'000'000u);
  EXPECT_EQ(c.uploadMethod, UploadMethod::import);
  EXPECT_EQ(c.maxVirtualSize, 200ull << 30);
  EXPECT_EQ(c.olderVersions, definition::OlderVersions::rename);
  EXPECT_EQ(c.retry.maxAttempts, 7u);
  EXPECT_EQ(c.retry.giveUpAfter, std::chrono::minutes(5));
  EXPECT_EQ(c.savingGrace, std::chrono::seconds(3));
  EXPECT_EQ(c.importTimeout, std::chrono::minutes(10));
  EXPECT_EQ(c.qemuImgTimeout, std::chrono::minutes(1));
}

TEST(GlanceConfig, TrustedHeadersAndNone) {
  auto c = parseConfig(
      "glance:\n  auth: trusted-headers\n  endpoint: https://127.0.0.1:9292\n"
      "  trusted_headers: {project_id: p1, roles: [admin]}\n");
  EXPECT_EQ(c.auth, AuthMode::trustedHeaders);
  EXPECT_EQ(c.trustedHeaders.projectId, "p1");
  EXPECT_EQ(c.trustedHeaders.roles, std::vector<std::string>{"admin"});
  auto n = parseConfig("glance: {auth: none, endpoint: 'https://g:9292'}\n");
  EXPECT_EQ(n.auth, AuthMode::none);
}

TEST(GlanceConfig, RefusesMistakes) {
  ConfigFiles f;
  const std::string pw = "    password_file: " + f.secret.string() + "\n";
  expectConfigError("glance: {auth: ldap}\n", "expected keystone, trusted-headers or none");
  expectConfigError("glance: {auth: none}\n", "missing required field 'endpoint'");
  expectConfigError("glance: {auth: none, endpoint: 'glance:9292'}\n",
                    "expected an http:// or https:// URL");
  expectConfigError("glance: {auth: none, endpoint: 'https://g', uplaod_method: put}\n",
                    "unknown key 'uplaod_method'");
  expectConfigError(
      "glance:\n  keystone:\n    auth_url: https://ks/v3\n    username: u\n"
      "    password: hunter2\n    project_name: p\n",
      "inline secrets are not accepted");
  expectConfigError("glance:\n  keystone:\n    auth_url: https://ks/v3\n    username: u\n" + pw,
                    "needs a project");
  expectConfigError("glance:\n  keystone:\n    auth_url: https://ks/v3\n    project_name: p\n" + pw,
                    "needs 'username'");
  expectConfigError(
      "glance:\n  keystone:\n    auth_url: https://ks/v3\n    username: u\n"
      "    project_name: p\n    pasword_file: x\n",
      "needs 'password_file' or 'password_env'");
  expectConfigError(
      "glance:\n  keystone:\n    auth_url: https://ks/v3\n    method: application_credential\n"
      "    application_credential_id: x\n    application_credential_secret_env: E\n"
      "    project_name: p\n",
      "bound to its project");
  expectConfigError("glance: {auth: none, endpoint: 'https://g', retry: {initial: 5s, max: 1s}}\n",
                    "must not be less than retry.initial");
  expectConfigError("glance: {auth: none, endpoint: 'https://g', upload_method: scp}\n",
                    "expected put or import");
  ::chmod(f.secret.c_str(), 0644);
  expectConfigError("glance:\n  keystone:\n    auth_url: https://ks/v3\n    username: u\n" + pw +
                        "    project_name: p\n",
                    "accessible by its group or others");
  ::chmod(f.secret.c_str(), 0640);
  expectConfigError("glance:\n  keystone:\n    auth_url: https://ks/v3\n    username: u\n" + pw +
                        "    project_name: p\n",
                    "accessible by its group or others; chmod 600");
}

// Tokens and passwords never cross plain http unless the site says so (issue 9).
TEST(GlanceConfig, PlainHttpOnlyWhereTheSiteAllowsIt) {
  ConfigFiles f;
  const std::string pw = "    password_file: " + f.secret.string() + "\n";
  expectConfigError("glance: {auth: none, endpoint: 'http://g:9292'}\n",
                    "'http://g:9292' is plain http");
  expectConfigError("glance:\n  keystone:\n    auth_url: http://ks/v3\n    username: u\n" + pw +
                        "    project_name: p\n",
                    "glance.keystone.auth_url: 'http://ks/v3' is plain http");
  auto c =
      parseConfig("glance: {auth: none, endpoint: 'http://g:9292', allow_insecure_http: true}\n");
  EXPECT_TRUE(c.allowInsecureHttp);
  EXPECT_EQ(c.endpoint, "http://g:9292");
}

// A password from the environment is taken out of it when the config is read: no child
// process (qemu-img, anything a library starts) inherits it.
TEST(GlanceConfig, APasswordFromTheEnvironmentReachesNoChildProcess) {
  ::setenv("IMGPIPE_TEST_OS_PASSWORD", "s3cret-from-env", 1);
  auto c = parseConfig(
      "glance:\n  keystone:\n    auth_url: https://ks/v3\n    username: u\n"
      "    password_env: IMGPIPE_TEST_OS_PASSWORD\n    project_name: p\n");
  EXPECT_EQ(c.keystone.password.read(), "s3cret-from-env");
  EXPECT_EQ(std::getenv("IMGPIPE_TEST_OS_PASSWORD"), nullptr);
  SubprocessOptions o;
  o.argv = {"/usr/bin/env"};
  o.captureStdout = true;
  auto env = checkCommand(o);
  EXPECT_EQ(env.find("s3cret-from-env"), std::string::npos);
  EXPECT_NE(env.find("PATH="), std::string::npos) << "the child saw an environment at all";
  EXPECT_EQ(describe(c).find("s3cret"), std::string::npos);
}

TEST(GlanceConfig, DescribeNamesSecretSourcesNeverSecrets) {
  ConfigFiles f;
  auto c = parseConfig(
      "glance:\n  keystone:\n    auth_url: https://ks:5000/v3\n    username: imgpipe\n"
      "    password_file: " +
      f.secret.string() + "\n    project_name: images\n");
  const std::string d = describe(c);
  EXPECT_NE(d.find(f.secret.string()), std::string::npos) << d;
  EXPECT_EQ(d.find("s3cret-value"), std::string::npos) << d;
  EXPECT_NE(d.find("user imgpipe"), std::string::npos) << d;
}

// --------------------------------------------------------------------------------- JSON

TEST(GlanceJson, ParsesAnImageDocument) {
  auto doc = json::parse(R"({"foo": "bar", "name": "t1", "disk_format": "qcow2",
    "container_format": "bare", "visibility": "shared", "size": 4096, "virtual_size": null,
    "status": "active", "checksum": "c", "protected": true, "min_ram": 1024, "min_disk": 10,
    "owner": "o", "os_hidden": false, "os_hash_algo": "sha512", "os_hash_value": "ab",
    "id": "11111111-2222-5333-8444-555555555555", "created_at": "2026-11-22T03:15:36Z",
    "updated_at": "2026-11-22T03:15:36Z", "tags": ["a", "b"], "self": "/v2/images/x",
    "file": "/v2/images/x/file", "schema": "/v2/schemas/image", "stores": "fs"})");
  Image img = parseImage(doc);
  EXPECT_EQ(img.id, "11111111-2222-5333-8444-555555555555");
  EXPECT_EQ(img.status, "active");
  EXPECT_EQ(img.size, 4096u);
  EXPECT_FALSE(img.virtualSize.has_value());
  EXPECT_EQ(img.minDisk, 10u);
  EXPECT_EQ(img.minRam, 1024u);
  EXPECT_TRUE(img.protectedFlag);
  EXPECT_EQ(img.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(img.osHashValue, "ab");
  // Only custom properties land in properties; core attributes (stores, self...) do not.
  EXPECT_EQ(img.properties, (std::map<std::string, std::string>{{"foo", "bar"}}));
  EXPECT_THROW(parseImage(json::parse(R"({"images": []})")), Error);
}

TEST(GlanceJson, ExtractsServiceMessages) {
  EXPECT_EQ(
      http::extractServiceMessage(
          R"({"message": "Image ID 1 already exists!<br /><br />\n\n\n", "code": "409 Conflict", "title": "Conflict"})"),
      "Image ID 1 already exists!");
  EXPECT_EQ(
      http::extractServiceMessage(
          R"({"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}})"),
      "The request you have made requires authentication.");
  EXPECT_EQ(http::extractServiceMessage("<html><head><title>503</title></head><body><h1>Service\n "
                                        "Unavailable</h1></body></html>"),
            "503 Service Unavailable");
  http::ApiError e("Glance", "POST", "http://g/v2/images", 409, "Image ID 1 already exists!");
  EXPECT_STREQ(e.what(),
               "Glance refused POST http://g/v2/images (409 Conflict): Image ID 1 already exists!");
  EXPECT_EQ(e.kind(), ErrorKind::failed);
  EXPECT_EQ(http::ApiError("Glance", "GET", "u", 503, "").kind(), ErrorKind::transient);
  EXPECT_EQ(http::ApiError("Glance", "GET", "u", 429, "").kind(), ErrorKind::transient);
  EXPECT_EQ(http::ApiError("Keystone", "POST", "u", 401, "").kind(), ErrorKind::refused);
}

TEST(GlanceJson, ListQueryEncodesFilters) {
  ListFilter f{.name = "Debian 12 Docker",
               .tags = {"a&b"},
               .properties = {{"imgpipe_image", "x/y"}},
               .status = "active",
               .owner = "p",
               .osHidden = false,
               .pageSize = 50};
  EXPECT_EQ(listQuery(f),
            "limit=50&name=Debian%2012%20Docker&tag=a%26b&imgpipe_image=x%2Fy&status=active&owner="
            "p&os_hidden=false");
}

TEST(GlanceJson, NormalizesImageEndpoints) {
  EXPECT_EQ(normalizeImageEndpoint("http://g:9292/"), "http://g:9292");
  EXPECT_EQ(normalizeImageEndpoint("http://g:9292/v2"), "http://g:9292");
  EXPECT_EQ(normalizeImageEndpoint("https://cloud/image/v2.16/"), "https://cloud/image");
  EXPECT_EQ(normalizeImageEndpoint("https://cloud/image"), "https://cloud/image");
}

TEST(KeystoneJson, PasswordRequestWithDomainsAndScope) {
  keystone::KeystoneOptions o;
  o.userName = "uploader";
  o.userDomainName = "site1";
  o.projectName = "images";
  o.projectDomainId = "d1";
  auto body = keystone::buildAuthRequest(o, "pw");
  EXPECT_EQ(body,
            json::parse(R"({"auth": {"identity": {"methods": ["password"], "password": {"user":
    {"name": "uploader", "domain": {"name": "site1"}, "password": "pw"}}},
    "scope": {"project": {"name": "images", "domain": {"id": "d1"}}}}})"));
  o.userName.clear();
  o.userId = "u1";
  o.projectId = "p1";
  body = keystone::buildAuthRequest(o, "pw");
  EXPECT_EQ(body["auth"]["identity"]["password"]["user"],
            json::parse(R"({"id": "u1", "password": "pw"})"));
  EXPECT_EQ(body["auth"]["scope"], json::parse(R"({"project": {"id": "p1"}})"));
}

TEST(KeystoneJson, ApplicationCredentialRequestHasNoScope) {
  keystone::KeystoneOptions o;
  o.method = keystone::AuthMethod::applicationCredential;
  o.applicationCredentialId = "ac1";
  auto body = keystone::buildAuthRequest(o, "sec");
  EXPECT_EQ(body, json::parse(R"({"auth": {"identity": {"methods": ["application_credential"],
    "application_credential": {"id": "ac1", "secret": "sec"}}}})"));
  o.applicationCredentialId.clear();
  o.applicationCredentialName = "imgpipe";
  o.userName = "u";
  body = keystone::buildAuthRequest(o, "sec");
  EXPECT_EQ(body["auth"]["identity"]["application_credential"]["user"],
            json::parse(R"({"name": "u", "domain": {"name": "Default"}})"));
}

TEST(KeystoneJson, TimestampsAndRenewal) {
  using namespace std::chrono;
  auto t = keystone::parseTimestamp("2026-11-22T03:16:57.250000Z");
  EXPECT_EQ(duration_cast<milliseconds>(t.time_since_epoch()).count() % 1000, 250);
  EXPECT_EQ(keystone::parseTimestamp("1970-01-01T00:01:00Z").time_since_epoch(), minutes(1));
  EXPECT_EQ(keystone::parseTimestamp("1970-01-01T00:01:00+00:00").time_since_epoch(), minutes(1));
  EXPECT_THROW(keystone::parseTimestamp("yesterday"), Error);

  const std::string body = R"({"token": {"issued_at": "2026-11-22T03:00:00.000000Z",
    "expires_at": "2026-11-22T04:00:00.000000Z", "project": {"id": "p1"}, "user": {"id": "u1"},
    "catalog": []}})";
  const auto now = steady_clock::now();
  auto tok = keystone::parseTokenResponse("tok", body, now, minutes(5));
  EXPECT_EQ(tok.projectId, "p1");
  EXPECT_EQ(tok.renewAt - now, minutes(55));
  // A short-lived token renews at half its life, not constantly.
  tok = keystone::parseTokenResponse("tok", body, now, hours(2));
  EXPECT_EQ(tok.renewAt - now, minutes(30));
  EXPECT_THROW(keystone::parseTokenResponse("", body, now, minutes(5)), Error);
}

TEST(KeystoneJson, CatalogLookup) {
  auto catalog = json::parse(R"([
    {"type": "identity", "endpoints": [{"interface": "public", "region_id": "R1", "url": "http://ks"}]},
    {"type": "image", "endpoints": [
      {"interface": "public", "region_id": "R1", "url": "https://glance.r1:9292"},
      {"interface": "internal", "region_id": "R1", "url": "http://10.0.0.1:9292"},
      {"interface": "public", "region_id": "R2", "url": "https://glance.r2:9292/v2/"}]}])");
  EXPECT_EQ(keystone::findEndpoint(catalog, "image", "public", ""), "https://glance.r1:9292");
  EXPECT_EQ(keystone::findEndpoint(catalog, "image", "public", "R2"), "https://glance.r2:9292/v2/");
  EXPECT_EQ(keystone::findEndpoint(catalog, "image", "internal", "R1"), "http://10.0.0.1:9292");
  try {
    keystone::findEndpoint(catalog, "image", "admin", "R1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("public@R1, internal@R1, public@R2"), std::string::npos)
        << e.what();
  }
}

// ------------------------------------------------------------------------- qcow2 checks

class Qcow2Check : public ::testing::Test {
 protected:
  TempDir dir;
  std::filesystem::path p(const char* name) { return dir.path() / name; }
  void sh(const std::string& cmd) { checkCommand({"sh", "-c", cmd}); }
  std::string refusal(const std::filesystem::path& file, Qcow2Limits limits = {}) {
    try {
      checkQcow2(file, limits);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(Qcow2Check, AcceptsAPlainQcow2) {
  sh("qemu-img create -q -f qcow2 " + p("ok.qcow2").string() + " 64M");
  auto info = checkQcow2(p("ok.qcow2"), {});
  EXPECT_EQ(info.format, "qcow2");
  EXPECT_EQ(info.virtualSize, 64u << 20);
}

TEST_F(Qcow2Check, RefusesRawBackingDataFileSizeAndCorruption) {
  sh("head -c 1048576 /dev/urandom > " + p("x.raw").string());
  EXPECT_NE(refusal(p("x.raw")).find("is not a qcow2 image (qemu-img reports format 'raw')"),
            std::string::npos);

  sh("qemu-img create -q -f qcow2 " + p("base.qcow2").string() +
     " 16M && qemu-img create -q -f qcow2 -b " + p("base.qcow2").string() + " -F qcow2 " +
     p("overlay.qcow2").string());
  EXPECT_NE(refusal(p("overlay.qcow2")).find("has a backing file"), std::string::npos);
  // A backing file that does not exist here is refused the same way (not a qemu-img error).
  sh("qemu-img create -q -f qcow2 -u -b /nonexistent.qcow2 -F qcow2 " +
     p("dangling.qcow2").string() + " 16M");
  EXPECT_NE(refusal(p("dangling.qcow2")).find("has a backing file ('/nonexistent.qcow2')"),
            std::string::npos);

  sh("qemu-img create -q -f qcow2 -o data_file=" + p("data.raw").string() + " " +
     p("ext.qcow2").string() + " 16M");
  EXPECT_NE(refusal(p("ext.qcow2")).find("external data file"), std::string::npos);

  sh("qemu-img create -q -f qcow2 " + p("big.qcow2").string() + " 2G");
  EXPECT_NE(
      refusal(p("big.qcow2"), {.maxVirtualSize = 1ull << 30}).find("over the limit of 1.0 GiB"),
      std::string::npos)
      << refusal(p("big.qcow2"), {.maxVirtualSize = 1ull << 30});

  sh("qemu-img create -q -f qcow2 " + p("bad.qcow2").string() +
     " 16M && printf '\\377\\377\\377\\377' | "
     "dd of=" +
     p("bad.qcow2").string() + " bs=1 seek=196608 conv=notrunc status=none");
  EXPECT_NE(refusal(p("bad.qcow2")).find("is corrupt"), std::string::npos)
      << refusal(p("bad.qcow2"));
}

TEST(QemuImgInfo, ParsesJson) {
  auto info = parseQemuImgInfo(R"({"virtual-size": 16777216, "format": "qcow2",
    "format-specific": {"type": "qcow2", "data": {"corrupt": true, "data-file": "/d"}},
    "backing-filename": "/b"})");
  EXPECT_EQ(info.virtualSize, 16777216u);
  EXPECT_EQ(info.backingFile, "/b");
  EXPECT_EQ(info.dataFile, "/d");
  EXPECT_TRUE(info.corruptFlag);
  EXPECT_THROW(parseQemuImgInfo("qemu-img: error"), Error);
}

// ------------------------------------------------------------------ artifact verification

TEST(VerifyArtifact, NamesEveryMismatch) {
  TempDir dir;
  auto f = dir.path() / "a.qcow2";
  std::ofstream(f) << "hello";
  RegistrationRequest r;
  r.file = f;
  r.size = 5;
  r.sha256 = toHex(sha256("hello"));
  r.sha512 = toHex(sha512("hello"));
  EXPECT_NO_THROW(verifyArtifact(r, {}, nullptr));
  r.sha512 = std::string(128, '0');
  r.size = 6;
  try {
    verifyArtifact(r, {}, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failed);
    EXPECT_NE(std::string(e.what()).find("size is 5 bytes, expected 6"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("sha512 is "), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("sha256 is "), std::string::npos) << e.what();
  }
}

// ----------------------------------------------------------------------- example config

TEST(ExampleConfig, PassesCheckConfig) {
  // deploy/config/agent-glance.yaml, with its key and password paths pointed at test files.
  TempDir dir;
  net::writeKeyPair(net::generateKeyPair("glance-site1"), dir.path());
  net::writeKeyPair(net::generateKeyPair("coordinator"), dir.path());
  std::ofstream(dir.path() / "pw") << "pw\n";
  ::chmod((dir.path() / "pw").c_str(), 0600);
  std::ifstream in(std::string(IMGPIPE_TEST_SOURCE_DIR) + "/deploy/config/agent-glance.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  auto replace = [&](const std::string& from, const std::string& to) {
    auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  replace("/etc/imgpipe/keys/glance-site1.key", (dir.path() / "glance-site1.key").string());
  replace("/etc/imgpipe/keys/coordinator.pub", (dir.path() / "coordinator.pub").string());
  replace("/etc/imgpipe/glance-password", (dir.path() / "pw").string());
  std::ofstream(dir.path() / "agent.yaml") << text;
  SubprocessOptions o;
  o.argv = {IMGPIPE_AGENT_GLANCE, "--check-config", "--config",
            (dir.path() / "agent.yaml").string()};
  o.captureStdout = true;
  auto r = runCommand(o);
  EXPECT_EQ(r.exitCode, 0) << r.stdoutText << ::testing::PrintToString(r.tail);

  // An unknown key in the glance section is refused with exit code 2, naming the key.
  text += "  uplod_method: put\n";
  std::ofstream(dir.path() / "bad.yaml") << text;
  o.argv.back() = (dir.path() / "bad.yaml").string();
  r = runCommand(o);
  EXPECT_EQ(r.exitCode, 2);
  ASSERT_FALSE(r.tail.empty());
  EXPECT_NE(r.tail.back().find("unknown key 'uplod_method'"), std::string::npos) << r.tail.back();
}

// ---------------------------------------------------------------------------- TLS (https)

TEST(HttpClientTls, TrustsTheConfiguredCaBundleOnly) {
  // A self-signed server certificate for 127.0.0.1, served by Python's https server.
  TempDir dir;
  const auto cert = dir.path() / "cert.pem", key = dir.path() / "key.pem",
             portFile = dir.path() / "port";
  checkCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key.string(),
                "-out", cert.string()});
  SubprocessOptions o;
  o.argv = {
      "python3",
      "-c",
      "import http.server, ssl, sys\n"
      "class H(http.server.BaseHTTPRequestHandler):\n"
      "  def do_GET(self):\n"
      "    self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers();"
      " self.wfile.write(b'ok')\n"
      "  def log_message(self, *a): pass\n"
      "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
      "c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[1], sys.argv[2])\n"
      "s.socket = c.wrap_socket(s.socket, server_side=True)\n"
      "open(sys.argv[3], 'w').write(str(s.server_address[1]))\n"
      "s.serve_forever()\n",
      cert.string(),
      key.string(),
      portFile.string()};
  Subprocess server(std::move(o));  // killed when the test ends
  std::string port;
  for (int i = 0; i < 100 && port.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream(portFile) >> port;
  }
  ASSERT_FALSE(port.empty());
  const std::string url = "https://127.0.0.1:" + port + "/";

  http::HttpClient trusting({.caBundle = cert});
  auto r = trusting.perform({.method = "GET", .url = url});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");

  http::HttpClient systemCas({});
  try {
    systemCas.perform({.method = "GET", .url = url});
    FAIL() << "a self-signed certificate was accepted without the CA bundle";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::transient);
    EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
  }
}
