#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/yaml_reader.h"

namespace imgpipe::definition {

// The kinds of image a definition can deliver (`outputs:`), each registered in Glance as its own
// image. The qcow2 is always built: it is what travels over the WAN. A raw is expanded from the
// delivered qcow2 at the controller (Ceph RBD sites want raw so Nova can clone it copy-on-write)
// and checked against the digests the build computed of the same expansion. An iso is a hybrid
// BIOS/UEFI live ISO of the same root (docs/image-definition.md, "A live ISO"): it is built,
// booted and published by the build agent; controllers do not receive it yet.
enum class OutputKind { qcow2, raw, iso };

std::string_view toString(OutputKind kind);
std::optional<OutputKind> parseOutputKind(std::string_view name);
// Glance's disk_format of an output.
std::string_view diskFormatOf(OutputKind kind);
// Whether a controller can register the kind from what the relays deliver (the qcow2).
bool reachesControllers(OutputKind kind);
bool lists(const std::vector<OutputKind>& kinds, OutputKind kind);
// "qcow2, raw": kinds as messages and summaries name them.
std::string namesOf(const std::vector<OutputKind>& kinds);

// `outputs:` of a definition or of a topology site: a non-empty list of known kinds, each once.
// Null gives `fallback`. Fails naming the entry that is not a kind or is listed twice.
std::vector<OutputKind> parseOutputs(const YamlReader& node, std::vector<OutputKind> fallback);

// One output as the build made it, in the build manifest's "outputs" section: what the
// controller checks the image it registers against.
struct OutputDigests {
  OutputKind kind = OutputKind::qcow2;
  std::uint64_t size = 0;
  std::string sha256, sha512;  // hex
  std::string file;            // beside the manifest; empty for a raw (expanded at controllers)
};

nlohmann::json toJson(const std::vector<OutputDigests>& outputs);
// Throws Error naming what is missing or malformed.
std::vector<OutputDigests> outputDigestsFromJson(const nlohmann::json& section);
// The entry of `kind`, or Error naming the kinds the manifest has.
const OutputDigests& digestsOf(const std::vector<OutputDigests>& outputs, OutputKind kind);

}  // namespace imgpipe::definition
