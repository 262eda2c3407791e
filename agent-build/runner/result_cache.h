#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "agent-build/steps/build_context.h"

namespace imgpipe::build {

// Finished builds by content digest (<cache_dir>/results/<digest>.json -> image + manifest), so
// a build whose definition, inputs, base and recipe are unchanged reuses the earlier image
// instead of building it again. An entry whose image is gone (pruned) or whose size changed
// is ignored.
class ResultCache {
 public:
  explicit ResultCache(const std::filesystem::path& cacheDir);
  std::optional<ReusableResult> lookup(const std::string& contentDigest) const;
  void store(const std::string& contentDigest, const std::filesystem::path& image,
             const nlohmann::json& manifest) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace imgpipe::build
