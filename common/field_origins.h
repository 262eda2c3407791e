#pragma once

// Which file each field of a document assembled from several files came from (a definition's
// layers): field path ("files[2].mode") -> file. One rule for reading it: a field belongs to the
// file of its innermost recorded path ("files[2].mode" -> "files[2]" -> "files" -> "").

#include <map>
#include <string>

namespace imgpipe {

using FieldOrigins = std::map<std::string, std::string>;

inline const std::string* originOf(const FieldOrigins& origins, std::string path) {
  for (;;) {
    if (auto it = origins.find(path); it != origins.end()) return &it->second;
    if (path.empty()) return nullptr;
    const auto cut = path.find_last_of(".[");
    path.erase(cut == std::string::npos ? 0 : cut);
  }
}

}  // namespace imgpipe
