#include "agent-build/runner/job_spec.h"

namespace imgpipe::build {

nlohmann::json toJson(const JobSpec& job) {
  return {{"job_id", job.jobId},
          {"attempt", job.attempt},
          {"agent", job.agentName},
          {"definition", job.definitionText},
          {"definition_source", job.definitionSource},
          {"bundle_dir", job.bundleDir.string()},
          {"definition_digest", job.definitionDigest},
          {"image_version", job.imageVersion},
          {"config", toJson(job.config)},
          {"out_dir", job.outDir.string()},
          {"keep_work_dir", job.keepWorkDir},
          {"base_only", job.baseOnly}};
}

JobSpec jobSpecFromJson(const nlohmann::json& j) {
  JobSpec job;
  job.jobId = j.at("job_id");
  job.attempt = j.at("attempt");
  job.agentName = j.at("agent");
  job.definitionText = j.at("definition");
  job.definitionSource = j.at("definition_source");
  job.bundleDir = j.at("bundle_dir").get<std::string>();
  job.definitionDigest = j.at("definition_digest");
  job.imageVersion = j.at("image_version");
  job.config = buildConfigFromJson(j.at("config"));
  job.outDir = j.at("out_dir").get<std::string>();
  job.keepWorkDir = j.at("keep_work_dir");
  job.baseOnly = j.value("base_only", false);
  return job;
}

}  // namespace imgpipe::build
