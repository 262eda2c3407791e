// libFuzzer: the build child's event stream as the parent reads it, line by line. A line is an
// event or stray output; it never throws.
#include <cstdint>
#include <string_view>

#include "agent-build/runner/child_events.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  while (!input.empty()) {
    auto nl = input.find('\n');
    (void)imgpipe::build::decodeChildEvent(input.substr(0, nl));
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  return 0;
}
