// Step 5d: files the definition writes into the image (owner resolved in the image's own
// /etc/passwd and /etc/group; symlinks resolved inside the image, never on the agent).
#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

class FilesStep : public Step {
 public:
  std::string_view name() const override { return "files"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.files.empty() ? "no files" : "";
  }

  std::string run(BuildContext& ctx) override {
    auto& img = ctx.session().fs();
    std::uint64_t bytes = 0;
    for (size_t i = 0; i < ctx.def.files.size(); ++i) {
      const auto& f = ctx.def.files[i];
      const auto& content = ctx.inputs.files.at(i);
      uid_t uid;
      gid_t gid;
      try {
        uid = img.userId(f.owner);
        gid = img.groupId(f.group);
      } catch (const Error& e) {
        throw Error("files[" + std::to_string(i) + "] " + f.path + ": " + e.what());
      }
      img.writeFile(f.path, content, f.mode, uid, gid);
      bytes += content.size();
      ctx.log.detail("wrote " + f.path);
    }
    return "wrote " + std::to_string(ctx.def.files.size()) + " files (" + std::to_string(bytes) +
           " bytes)";
  }
};

}  // namespace

std::unique_ptr<Step> makeFilesStep() {
  return std::make_unique<FilesStep>();
}

}  // namespace imgpipe::build
