// libFuzzer: the text formats read from operators and peers: the image definition (strict
// YAML), a layered definition (the input split at its first form feed into a layer and the
// definition that extends it: the merge walks both), bundle paths, authorized_keys. Each either
// parses or fails with imgpipe::Error naming the place; no other exception, no crash, no hang.
#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/net/authorized_keys.h"
#include "definition/bundle.h"
#include "definition/layers.h"
#include "definition/parse_definition.h"
#include "protocol/ids.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto def = imgpipe::definition::parseDefinition(text, "fuzz.yaml");
    for (const auto& ref : imgpipe::definition::localReferences(def))
      if (!imgpipe::ids::valid(imgpipe::ids::Kind::bundlePath, ref.path)) __builtin_trap();
  } catch (const imgpipe::Error&) {
  }
  try {
    const auto split = text.find('\f');
    const std::string site = split == std::string::npos ? text : text.substr(0, split);
    const std::string base = split == std::string::npos ? "name: b\n" : text.substr(split + 1);
    auto merged = imgpipe::definition::MergedDefinition::merge(
        "site.yaml", [&](const std::string& path) -> std::optional<std::string> {
          if (path == "site.yaml") return site;
          if (path == "base.yaml") return base;
          return std::nullopt;
        });
    (void)merged.reader();
    (void)merged.origins();
  } catch (const imgpipe::Error&) {
  }
  try {
    (void)imgpipe::net::AuthorizedKeys::parse(text, "authorized_keys");
  } catch (const imgpipe::Error&) {
  }
  // A normalised path is relative and has no ".." component; "..x.." is a plain name.
  if (auto p = imgpipe::definition::normaliseBundlePath(text)) {
    const std::string wrapped = "/" + *p + "/";
    if (p->empty() || p->front() == '/' || wrapped.find("/../") != std::string::npos)
      __builtin_trap();
  }
  return 0;
}
