// Step 5b: extra apt repositories with their signing keys (Signed-By, no apt-key, no gpg run in
// the image — so no gpg-agent left behind either).
#include "agent-build/steps/config_files.h"
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class RepositoriesStep : public Step {
 public:
  std::string_view name() const override { return "repositories"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.repositories.empty() ? "no extra repositories" : "";
  }

  std::string run(BuildContext& ctx) override {
    auto& img = ctx.session().fs();
    std::string names;
    for (size_t i = 0; i < ctx.def.repositories.size(); ++i) {
      const auto& repo = ctx.def.repositories[i];
      const auto& key = ctx.inputs.repositoryKeys.at(i);
      auto keyPath = repositoryKeyPath(repo, key);
      img.writeFile(keyPath, key, 0644);
      img.writeFile(aptSourcePath(repo.name), renderRepositorySource(repo, keyPath));
      names += (names.empty() ? "" : ", ") + repo.name;
    }
    return "added " + names;
  }
};

}  // namespace

std::unique_ptr<Step> makeRepositoriesStep() {
  return std::make_unique<RepositoriesStep>();
}

}  // namespace imgpipe::build
