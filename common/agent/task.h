#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <variant>
#include <vector>

namespace imgpipe::agent {

// Value types for the work the coordinator hands out and what agents report back. They mirror
// protocol/schema/control.capnp but keep Cap'n Proto out of the task runners' code.

struct ArtifactInfo {
  std::string id;  // sha256 hex of the image
  std::string sha512;
  std::uint64_t size = 0;
  std::uint64_t virtualSize = 0;
  std::string manifestDigest;
  std::string imageName;
  std::string imageVersion;
  std::vector<std::string> outputs;  // output kinds (definition/outputs.h), by name
  // The output kind the file is: "qcow2" ("" from agents before 0.5), "iso".
  std::string kind;
};

struct BuildSpec {
  std::string definition;
  std::string definitionName;
  std::string definitionDigest;
  std::string imageVersion;  // fixed at submit: the one version of the job, everywhere
  std::string imageName;
  // The files the definition refers to, by bundle path (definition/bundle.h); not the
  // definition itself.
  std::map<std::string, std::string> bundleFiles;
};

struct FetchSpec {
  std::string artifactId;
  std::string manifestDigest;
  std::string imageName;
  std::string imageVersion;
  std::string upstreamName;
  std::string upstreamEndpoint;
  std::string upstreamKey;
  std::uint64_t rateLimit = 0;  // bytes/s, 0 = unlimited
  std::uint64_t size = 0;
};

struct RegisterSpec {
  std::string artifactId;
  std::string manifestDigest;
  std::string buildId;
  std::string imageName;
  std::string imageVersion;
  std::string sha256;
  std::string sha512;
  std::uint64_t size = 0;
  // "" or "qcow2", "iso": the delivered file itself; "raw": expanded from the qcow2 here
  std::string output;
};

struct TaskSpec {
  std::string taskId;
  std::string jobId;
  std::string step;
  std::uint32_t attempt = 0;
  std::variant<BuildSpec, FetchSpec, RegisterSpec> kind;

  // Only builds may move to another agent; fetches and registrations belong to their agent.
  bool reassignable() const { return std::holds_alternative<BuildSpec>(kind); }
};

struct GrantSpec {
  std::string artifactId;
  std::string peerName;
  std::string peerKey;
  std::string jobId;
  bool revoke = false;
};

enum class LogLevel { info, warn, error };

struct ProgressInfo {
  std::string step;
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  std::uint64_t rateBps = 0;
  std::uint32_t etaS = 0;
  std::uint32_t retries = 0;  // retries so far: 0 on a first attempt (Progress.attempt on the wire)
  std::string state;          // "", "stalled", "retrying", "waiting for upstream"
  std::string unit;           // what done/total count: "" (bytes), "seconds", "permille"
};

// One check a build made of its image: the offline validation's, or the acceptance boot's.
struct CheckInfo {
  std::string group;  // validate, boot bios, boot uefi, boot nspawn
  std::string check;
  bool ok = false;
  bool skipped = false;
  std::string detail;
};

struct TaskResultInfo {
  std::optional<ArtifactInfo> artifact;
  std::vector<ArtifactInfo> moreArtifacts;  // builds: the outputs travelling on their own (iso)
  std::string glanceImageId;
  std::string detail;
  std::vector<CheckInfo> checks;
};

struct TaskFailureInfo {
  std::string step;
  std::string message;
  int exitCode = 0;
  std::vector<std::string> outputTail;
  bool retryable = false;
  std::vector<CheckInfo> checks;
};

}  // namespace imgpipe::agent
