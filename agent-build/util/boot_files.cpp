#include "agent-build/util/boot_files.h"

#include <algorithm>
#include <cstring>

namespace imgpipe::build {

std::vector<std::string> kernelVersions(const ImageFs& img) {
  constexpr std::string_view prefix = "vmlinuz-";
  std::vector<std::string> versions;
  for (const auto& name : img.list("/boot"))
    if (name.starts_with(prefix)) versions.push_back(name.substr(prefix.size()));
  std::sort(versions.begin(), versions.end(), [](const std::string& a, const std::string& b) {
    return ::strverscmp(a.c_str(), b.c_str()) > 0;
  });
  return versions;
}

}  // namespace imgpipe::build
