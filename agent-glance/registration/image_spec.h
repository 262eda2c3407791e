#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "definition/outputs.h"
#include "definition/resolved_glance.h"

namespace imgpipe::glance {

// Where an image came from; imgpipe records it as properties so that every image in Glance can
// be traced back to its build.
struct Provenance {
  std::string buildId;
  std::string sha256;          // hex of the artifact (the artifact id)
  std::string manifestDigest;  // digest of the transfer manifest, if known
  definition::OutputKind output = definition::OutputKind::qcow2;
};

// The custom properties of the image: the spec's, plus imgpipe's own:
//   imgpipe_build_id         the build (the image id is derived from it)
//   imgpipe_image            the definition's image name (finds older versions)
//   imgpipe_version          the definition's version (orders versions)
//   imgpipe_sha256           SHA-256 of the uploaded file (Glance itself reports SHA-512)
//   imgpipe_manifest_digest  the transfer manifest the artifact was verified against
//   imgpipe_output           which of the build's outputs this image is (qcow2, raw)
std::map<std::string, std::string> glanceProperties(const definition::ResolvedGlance& spec,
                                                    const Provenance& provenance);

// Orders version strings naturally: digit runs compare as numbers, the rest as text, so
// "2026.11.22-10" > "2026.11.22-9" > "2026.2.1". Returns <0, 0, >0.
int compareVersions(std::string_view a, std::string_view b);

}  // namespace imgpipe::glance
