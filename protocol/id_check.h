#pragma once

#include <optional>
#include <string>

#include "protocol/schema/control.capnp.h"

namespace imgpipe::proto {

// Checks every identifier a control message carries against its grammar (protocol/ids.h): task
// and job ids, artifact ids and digests in results, inventories, tasks and grants, image names
// and versions, agent names, keys, bundle paths. Returns the first problem, naming the field
// ("taskEvent.completed.artifact.id: '...' is not a valid image id ..."); nullopt when all are
// well formed. Called right after decode by the coordinator and by every agent, so no handler
// ever sees a malformed id. Free-text fields (messages, details, step labels) are not ids.
std::optional<std::string> checkIds(Envelope::Reader envelope);

// The same for one artifact summary, under `field` (the coordinator re-checks a build result's
// artifact with it before it stores or forwards anything).
std::optional<std::string> checkArtifactIds(const std::string& field,
                                            ArtifactSummary::Reader artifact);

}  // namespace imgpipe::proto
