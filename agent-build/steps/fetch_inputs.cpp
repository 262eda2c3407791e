// Step: fetches what the definition points at (files, scripts, repository keys) and computes the
// content digest — the key under which the finished image can be reused.
#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "agent-build/base/download.h"
#include "agent-build/steps/step.h"
#include "common/beneath.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "definition/bundle.h"
#include "definition/definition_json.h"
#include "definition/parse_definition.h"

namespace imgpipe::build {
namespace {

std::string readSource(const BuildContext& ctx, const std::string& path) {
  const definition::BundleLimits limits;
  if (!ctx.job.bundleDir.empty()) {
    try {
      return readFileBeneath(ctx.job.bundleDir, path, limits.fileBytes);
    } catch (const Error&) {
      if (ctx.config.sourcesDir.empty()) throw;
    }
  }
  if (ctx.config.sourcesDir.empty())
    throw Error("'" + path +
                "' did not come with the definition and this agent has no build.sources_dir");
  return readFileBeneath(ctx.config.sourcesDir, path, std::numeric_limits<std::size_t>::max());
}

// The playbook's files (everything under ansible.include and roles_path, by bundle path) and the
// agent's Ansible version: a changed role or another Ansible builds another image.
nlohmann::json ansibleInputs(BuildContext& ctx) {
  const auto& a = *ctx.def.ansible;
  auto wanted = [&](const std::string& path) {
    auto under = [&](const std::string& dir) { return path == dir || path.starts_with(dir + "/"); };
    return path == a.playbook || std::any_of(a.include.begin(), a.include.end(), under) ||
           std::any_of(a.rolesPath.begin(), a.rolesPath.end(), under);
  };
  nlohmann::json files = nlohmann::json::object();
  const auto& dir = ctx.job.bundleDir;
  std::error_code ec;
  if (!dir.empty())
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      const auto rel = std::filesystem::relative(it->path(), dir).generic_string();
      if (wanted(rel)) files[rel] = toHex(sha256(readFile(it->path())));
    }
  std::string version = "not installed";  // the ansible step says what to install
  try {
    auto out = runUnchecked(ctx.exec(std::chrono::seconds(60)),
                            {"/usr/bin/ansible-playbook", "--version"}, true);
    version = out.stdoutText.substr(0, out.stdoutText.find('\n'));
  } catch (const Error&) {
  }
  return {{"files", files}, {"version", version}};
}

class FetchInputsStep : public Step {
 public:
  std::string_view name() const override { return "fetch_inputs"; }
  bool runsWhenReused() const override { return true; }

  std::string run(BuildContext& ctx) override {
    int fetched = 0;
    auto resolve = [&](const definition::ContentSource& c,
                       const std::string& field) -> std::string {
      switch (c.kind) {
        case definition::ContentSource::Kind::inline_:
          return c.text;
        case definition::ContentSource::Kind::file: {
          // From the definition's bundle, else from the agent's sources_dir: beneath one of
          // them, never from anywhere else on this host.
          std::string data;
          try {
            data = readSource(ctx, c.text);
          } catch (const Error& e) {
            throw Error(field + ": " + e.what());
          }
          if (!c.sha256.empty() && toHex(sha256(data)) != c.sha256)
            throw Error(field + ": " + c.text + " has sha256 " + toHex(sha256(data)) +
                        ", expected " + c.sha256);
          ++fetched;
          return data;
        }
        case definition::ContentSource::Kind::url: {
          DownloadOptions o;
          o.expectedSha256 = c.sha256;
          o.stop = ctx.stop;
          o.retries = ctx.config.downloadRetries;
          o.timeout = std::chrono::minutes(10);
          o.proxy = ctx.config.proxy;
          ctx.log.info("fetching " + c.text);
          ++fetched;
          try {
            return downloadText(c.text, o);
          } catch (const Error& e) {
            throw Error(field + ": " + e.what());
          }
        }
      }
      return {};
    };
    const auto& def = ctx.def;
    for (size_t i = 0; i < def.files.size(); ++i)
      ctx.inputs.files.push_back(resolve(def.files[i].content, "files[" + std::to_string(i) + "]"));
    for (size_t i = 0; i < def.scripts.size(); ++i)
      ctx.inputs.scripts.push_back(
          resolve(def.scripts[i].content, "scripts[" + std::to_string(i) + "]"));
    for (size_t i = 0; i < def.repositories.size(); ++i)
      ctx.inputs.repositoryKeys.push_back(
          resolve(def.repositories[i].key, "repositories[" + std::to_string(i) + "].key"));

    // What decides the image's bytes: the definition without its version, description and
    // Glance section (those change the registration, not the disk), the base, every fetched
    // input, the compression and the recipe version.
    auto content = toJson(def);
    content.erase("version");
    content.erase("description");
    content.erase("glance");
    nlohmann::json key = {{"recipe", kRecipeVersion},
                          {"definition", content},
                          {"base_sha256", ctx.base.sha256Hex},
                          {"compression", toString(effectiveCompression(def, ctx.config))}};
    auto digests = [](const std::vector<std::string>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& s : v)
        a.push_back(toHex(sha256(s)));
      return a;
    };
    key["files"] = digests(ctx.inputs.files);
    key["scripts"] = digests(ctx.inputs.scripts);
    key["repository_keys"] = digests(ctx.inputs.repositoryKeys);
    if (def.ansible) key["ansible"] = ansibleInputs(ctx);
    ctx.contentDigest = toHex(sha256(key.dump()));
    return std::to_string(def.files.size()) + " files, " + std::to_string(def.scripts.size()) +
           " scripts, " + std::to_string(def.repositories.size()) + " repository keys (" +
           std::to_string(fetched) + " fetched); content digest " +
           ctx.contentDigest.substr(0, 16) + "...";
  }
};

}  // namespace

std::unique_ptr<Step> makeFetchInputsStep() {
  return std::make_unique<FetchInputsStep>();
}

}  // namespace imgpipe::build
