#include "agent-glance/glance_runner.h"

#include <nlohmann/json.hpp>

#include "agent-glance/http/api_error.h"
#include "agent-glance/registration/registrar.h"
#include "common/agent/task_failure.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "definition/outputs.h"
#include "definition/resolved_glance.h"

namespace imgpipe::glance {
namespace {

nlohmann::json parseBuildManifest(const std::string& buildManifest) {
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(buildManifest);
  } catch (const nlohmann::json::exception&) {
    throw Error("the artifact's build manifest is not JSON; it was not made by an imgpipe build");
  }
  if (!m.is_object()) throw Error("the artifact's build manifest is not a JSON object");
  return m;
}

// The registration resolved at build time, from the build manifest the artifact carries.
definition::ResolvedGlance registrationOf(const nlohmann::json& m) {
  if (!m.contains("glance")) throw Error("the artifact's build manifest has no glance section");
  return definition::resolvedGlanceFromJson(m.at("glance"));
}

}  // namespace

GlanceRunner::GlanceRunner(GlanceConfig config, ArtifactLocator locateArtifact)
    : GlanceRunner(config, std::move(locateArtifact), makeAuthProvider(config)) {}

GlanceRunner::GlanceRunner(GlanceConfig config, ArtifactLocator locateArtifact,
                           std::shared_ptr<AuthProvider> auth)
    : config_(std::move(config)),
      locateArtifact_(std::move(locateArtifact)),
      auth_(std::move(auth)) {}

void GlanceRunner::run(const agent::TaskSpec& task, agent::TaskReporter& reporter,
                       std::stop_token stop) {
  const auto* spec = std::get_if<agent::RegisterSpec>(&task.kind);
  if (spec == nullptr) {
    reporter.failed({.step = "register", .message = "the glance agent only runs register tasks"});
    return;
  }
  auto logger = log::forJob(task.jobId, "register");
  try {
    RegistrationRequest req;
    req.jobId = task.jobId;
    req.buildId = spec->buildId;
    req.sha256 = spec->sha256.empty() ? spec->artifactId : spec->sha256;
    req.sha512 = spec->sha512;
    req.size = spec->size;
    req.manifestDigest = spec->manifestDigest;
    if (req.buildId.empty()) throw Error("the register task carries no build id");
    const LocatedArtifact located = locateArtifact_(spec->artifactId);
    if (!spec->manifestDigest.empty() && located.manifestDigest != spec->manifestDigest)
      throw Error("the artifact here was verified against manifest " + located.manifestDigest +
                  ", the task names " + spec->manifestDigest);
    req.file = located.file;
    const auto manifest = parseBuildManifest(located.buildManifest);
    req.spec = registrationOf(manifest);
    const auto output = definition::parseOutputField(spec->output);
    if (!output) throw Error("the task asks for output '" + spec->output + "', unknown here");
    const auto carrier = definition::carrierOf(*output);
    if (located.kind != carrier)
      throw Error("the task asks for output " + std::string(definition::toString(*output)) +
                  " (made from the " + std::string(definition::toString(carrier)) +
                  " artifact), and artifact " + spec->artifactId + " here is the " +
                  std::string(definition::toString(located.kind)) + " artifact");
    req.output = *output;
    if (req.output != definition::OutputKind::qcow2) {
      // Only what the build made digests for can be registered: for a raw they are the
      // expansion's check, for an iso the delivered file's own.
      req.expanded = definition::digestsOf(
          definition::outputDigestsFromJson(manifest.value("outputs", nlohmann::json::array())),
          req.output);
    }
    if (req.output == definition::OutputKind::raw) {
      req.scratchDir = located.scratchDir;
      if (req.scratchDir.empty())
        throw Error("this agent has no scratch space to expand a " +
                    std::string(definition::toString(req.output)) + " output in");
    }
    // One version from submit to Glance: the build's resolution must be of this job's.
    if (req.spec.name != spec->imageName || req.spec.version != spec->imageVersion)
      throw Error("the artifact's manifest registers " + req.spec.name + " " + req.spec.version +
                  ", the task is for " + spec->imageName + " " + spec->imageVersion);

    RegistrationObserver observer;
    observer.progress = [&](const agent::ProgressInfo& p) { reporter.progress(p); };
    observer.log = [&](agent::LogLevel level, const std::string& msg) {
      reporter.log(level, "register", msg);
    };
    Registrar registrar(config_, *auth_, observer);
    RegistrationResult r = registrar.run(req, stop);

    agent::TaskResultInfo out;
    out.glanceImageId = r.image.id;
    out.detail = "image " + r.image.id + " '" + r.image.name + "' (" + r.image.diskFormat +
                 ") active" + (r.reused ? " (found verified from an earlier attempt)" : "") +
                 (r.generation > 0 ? " (generation " + std::to_string(r.generation) + ")" : "") +
                 "; " + r.image.osHashAlgo + " " + r.image.osHashValue;
    logger->info("{}", out.detail);
    reporter.completed(out);
  } catch (const std::exception& e) {
    if (kindOf(e) == ErrorKind::stopped)
      logger->warn("{}", e.what());
    else
      logger->error("{} ({})", e.what(), toString(kindOf(e)));
    reporter.failed(agent::failureFrom(e, "register"));
  }
}

}  // namespace imgpipe::glance
