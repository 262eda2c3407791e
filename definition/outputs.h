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
// BIOS/UEFI live ISO of the same root (docs/image-definition.md, "A live ISO"): an artifact of
// its own, carried by the relays beside the qcow2 (deltas against the previous iso).
enum class OutputKind { qcow2, raw, iso };

std::string_view toString(OutputKind kind);
std::optional<OutputKind> parseOutputKind(std::string_view name);
// An output kind as records and messages carry it, where "" is the qcow2: what everything made
// before outputs existed (a step row, a register task, a transfer manifest) meant.
std::optional<OutputKind> parseOutputField(std::string_view name);
// Glance's disk_format of an output.
std::string_view diskFormatOf(OutputKind kind);
// The output whose file the relays carry to make `kind` at a controller: itself, or (raw) the
// qcow2 it is expanded from. The kinds that are their own carrier are the job's artifacts.
OutputKind carrierOf(OutputKind kind);
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
