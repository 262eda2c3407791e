#include "agent-build/runner/result_cache.h"

#include "common/file_util.h"

namespace imgpipe::build {

namespace fs = std::filesystem;

ResultCache::ResultCache(const fs::path& cacheDir) : dir_(cacheDir / "results") {}

std::optional<ReusableResult> ResultCache::lookup(const std::string& contentDigest) const {
  try {
    auto j = nlohmann::json::parse(readFile(dir_ / (contentDigest + ".json")));
    ReusableResult r{j.at("image").get<std::string>(), j.at("manifest")};
    std::error_code ec;
    if (fs::file_size(r.image, ec) != r.manifest.at("image").at("size").get<std::uint64_t>() || ec)
      return std::nullopt;
    return r;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void ResultCache::store(const std::string& contentDigest, const fs::path& image,
                        const nlohmann::json& manifest) const {
  fs::create_directories(dir_);
  writeFileAtomic(dir_ / (contentDigest + ".json"),
                  nlohmann::json{{"image", image.string()}, {"manifest", manifest}}.dump());
}

}  // namespace imgpipe::build
