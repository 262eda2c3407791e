// libFuzzer: the text formats read from operators and peers: the image definition (strict
// YAML), bundle paths, authorized_keys. Each either parses or fails with imgpipe::Error naming
// the place; no other exception, no crash.
#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/net/authorized_keys.h"
#include "definition/bundle.h"
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
