#pragma once

#include <string>
#include <string_view>

#include "definition/outputs.h"

namespace imgpipe::glance {

// RFC 4122 name-based UUID, version 5 (SHA-1), in the canonical lower-case form.
// `namespaceUuid` is a canonical UUID string; throws Error when it is not one.
std::string uuid5(std::string_view namespaceUuid, std::string_view name);

// The namespace of imgpipe's Glance image ids: uuid5(NAMESPACE_URL, "imgpipe:glance-image").
// Fixed forever: changing it would make every agent lose track of the images it registered.
inline constexpr std::string_view kImageIdNamespace = "057f2921-edea-5e65-a064-e25c856ace05";

// The Glance image id of `buildId` in registration generation `generation`:
//   generation 0: uuid5(ns, buildId)            — the id in all normal cases
//   generation n: uuid5(ns, buildId + "/" + n)  — after n leftover images had to be deleted
// Glance keeps a deleted image's id reserved forever (a create with it answers 409), so a build
// whose unusable leftover was deleted moves on to the next generation; see registrar.h.
// Another output of the same build (a raw beside the qcow2) is its own image: its name is
// buildId + "/" + kind before the generation (a kind is never a number, so the two never meet).
std::string imageIdFor(std::string_view buildId, unsigned generation,
                       definition::OutputKind output = definition::OutputKind::qcow2);

}  // namespace imgpipe::glance
