#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "agent-build/util/exec.h"

namespace imgpipe::build {

// Where the in-guest check script and its config land (written by cloud-init's write_files).
inline constexpr const char* kGuestCheckDir = "/run/imgpipe-acceptance";
inline constexpr const char* kGuestCheckUnit = "imgpipe-acceptance";

// A NoCloud seed as a cloud gives one: meta-data (instance-id, local-hostname) and a user-data
// the acceptance boot controls — write_files puts the check script and its config into the
// guest, and bootcmd queues a transient unit that runs it once cloud-final.service is done.
// Value type.
struct NoCloudSeed {
  std::string metaData;
  std::string userData;
};

NoCloudSeed makeSeed(const std::string& instanceId, const std::string& hostname,
                     const nlohmann::json& guestConfig);

// The seed as a small FAT filesystem labelled CIDATA (mkfs.fat + mcopy, no mount), attached as
// a second disk — what cloud-localds makes, with the tools the ESP needs anyway.
void writeSeedImage(const NoCloudSeed& seed, const std::filesystem::path& image,
                    const ExecContext& exec);

// The seed as a directory, for a container: bound to /var/lib/cloud/seed/nocloud.
void writeSeedDir(const NoCloudSeed& seed, const std::filesystem::path& dir);

}  // namespace imgpipe::build
