#include "definition/outputs.h"

#include <algorithm>
#include <array>

#include "common/error.h"

namespace imgpipe::definition {
namespace {

struct KindName {
  OutputKind kind;
  std::string_view name, diskFormat;
  OutputKind carrier;
};
constexpr std::array kKinds{KindName{OutputKind::qcow2, "qcow2", "qcow2", OutputKind::qcow2},
                            KindName{OutputKind::raw, "raw", "raw", OutputKind::qcow2},
                            KindName{OutputKind::iso, "iso", "iso", OutputKind::iso}};

const KindName& entry(OutputKind kind) {
  for (const auto& k : kKinds)
    if (k.kind == kind) return k;
  throw Error("unknown output kind");
}

std::string kindList() {
  std::string out;
  for (const auto& k : kKinds)
    out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

bool isHex(const std::string& s, size_t length) {
  return s.size() == length && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

std::string_view toString(OutputKind kind) {
  return entry(kind).name;
}

std::optional<OutputKind> parseOutputKind(std::string_view name) {
  for (const auto& k : kKinds)
    if (k.name == name) return k.kind;
  return std::nullopt;
}

std::optional<OutputKind> parseOutputField(std::string_view name) {
  return name.empty() ? OutputKind::qcow2 : parseOutputKind(name);
}

std::string_view diskFormatOf(OutputKind kind) {
  return entry(kind).diskFormat;
}

OutputKind carrierOf(OutputKind kind) {
  return entry(kind).carrier;
}

bool lists(const std::vector<OutputKind>& kinds, OutputKind kind) {
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

std::string namesOf(const std::vector<OutputKind>& kinds) {
  std::string out;
  for (auto k : kinds)
    out += (out.empty() ? "" : ", ") + std::string(toString(k));
  return out;
}

std::vector<OutputKind> parseOutputs(const YamlReader& node, std::vector<OutputKind> fallback) {
  if (node.isNull()) return fallback;
  std::vector<OutputKind> out;
  auto items = node.items();
  if (items.empty()) node.fail("lists no output (" + kindList() + ")");
  for (const auto& item : items) {
    const auto name = item.as<std::string>();
    const auto kind = parseOutputKind(name);
    if (!kind) {
      item.fail("'" + name + "' is not an output this version builds (" + kindList() + ")");
    }
    if (std::find(out.begin(), out.end(), *kind) != out.end())
      item.fail("output '" + name + "' is listed twice");
    out.push_back(*kind);
  }
  return out;
}

nlohmann::json toJson(const std::vector<OutputDigests>& outputs) {
  auto section = nlohmann::json::array();
  for (const auto& o : outputs) {
    nlohmann::json entry = {{"kind", toString(o.kind)},
                            {"disk_format", diskFormatOf(o.kind)},
                            {"size", o.size},
                            {"sha256", o.sha256},
                            {"sha512", o.sha512}};
    if (!o.file.empty()) entry["file"] = o.file;
    section.push_back(std::move(entry));
  }
  return section;
}

std::vector<OutputDigests> outputDigestsFromJson(const nlohmann::json& section) {
  if (!section.is_array()) throw Error("the build manifest's outputs section is not a list");
  std::vector<OutputDigests> out;
  for (const auto& o : section) {
    if (!o.is_object() || !o.contains("kind") || !o["kind"].is_string())
      throw Error("an entry of the build manifest's outputs has no kind");
    const auto name = o["kind"].get<std::string>();
    const auto kind = parseOutputKind(name);
    if (!kind) throw Error("the build manifest lists output '" + name + "', unknown here");
    OutputDigests d{.kind = *kind};
    if (!o.contains("size") || !o["size"].is_number_unsigned())
      throw Error("output " + name + " in the build manifest has no size");
    d.size = o["size"].get<std::uint64_t>();
    d.sha256 = o.value("sha256", "");
    d.sha512 = o.value("sha512", "");
    if (!isHex(d.sha256, 64) || !isHex(d.sha512, 128))
      throw Error("output " + name + " in the build manifest has no valid sha256 and sha512");
    if (o.contains("file")) {
      if (!o["file"].is_string()) throw Error("output " + name + "'s file is not a name");
      d.file = o["file"].get<std::string>();
      // A name beside the manifest, never a path: whoever reads the manifest opens it there.
      if (d.file.empty() || d.file.find('/') != std::string::npos || d.file == "." ||
          d.file == "..")
        throw Error("output " + name + "'s file '" + d.file +
                    "' is not a file name beside the manifest");
    }
    for (const auto& seen : out)
      if (seen.kind == d.kind) throw Error("the build manifest lists output " + name + " twice");
    out.push_back(std::move(d));
  }
  return out;
}

const OutputDigests& digestsOf(const std::vector<OutputDigests>& outputs, OutputKind kind) {
  for (const auto& o : outputs)
    if (o.kind == kind) return o;
  std::vector<OutputKind> kinds;
  for (const auto& o : outputs)
    kinds.push_back(o.kind);
  const std::string have = namesOf(kinds);
  throw Error("the build manifest has no " + std::string(toString(kind)) + " output (" +
              (have.empty() ? "it lists no outputs: the definition built only the qcow2"
                            : "it has " + have) +
              "); add " + std::string(toString(kind)) +
              " to the definition's outputs and build again");
}

}  // namespace imgpipe::definition
