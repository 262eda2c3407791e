#pragma once

#include <string>
#include <vector>

namespace imgpipe::cli {

// `imgpipe doctor`: checks what the roles configured on this host need — tools, devices, keys
// and their modes, disk space, reaching the coordinator — and says how to fix each failure.
// Configs default to the ones present in /etc/imgpipe. Exit 0 when nothing failed.
int cmdDoctor(const std::vector<std::string>& configs, const std::string& roleHint, bool json);

}  // namespace imgpipe::cli
