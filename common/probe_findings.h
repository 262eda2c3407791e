#pragma once

#include <string_view>

namespace imgpipe {

// What an agent's --probe says that `imgpipe doctor` turns into a warning: written by the probe,
// looked for by doctor, so the two agree on one text.
inline constexpr std::string_view kInsecureHttpWarning =
    "WARNING: plain http:// allowed by allow_insecure_http: true; tokens and passwords cross "
    "the network unencrypted";

}  // namespace imgpipe
