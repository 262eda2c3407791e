// Step 5e: the definition's scripts, in order, each in its own sandbox (sandbox/sandbox.h), with
// the network the definition asks for. A script lives in the session's /run tmpfs, never on the
// image's disk, so nothing of it is left in the image.
#include <sstream>

#include "agent-build/steps/step.h"

namespace imgpipe::build {
namespace {

std::vector<std::string> splitWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

class ScriptsStep : public Step {
 public:
  std::string_view name() const override { return "scripts"; }
  std::string skipReason(const definition::ImageDefinition& def) const override {
    return def.scripts.empty() ? "no scripts" : "";
  }

  std::string run(BuildContext& ctx) override {
    auto& session = ctx.session();
    for (size_t i = 0; i < ctx.def.scripts.size(); ++i) {
      ctx.checkStop();
      const auto& sc = ctx.def.scripts[i];
      const auto& text = ctx.inputs.scripts.at(i);
      const std::string path = "/run/imgpipe/scripts/" + std::to_string(i + 1) + "-" + sc.name;
      session.fs().writeFile(path, text, 0700);
      std::vector<std::string> argv;
      if (!sc.interpreter.empty())
        argv = splitWords(sc.interpreter);
      else if (!text.starts_with("#!"))
        argv = {"/bin/sh", "-e"};
      argv.push_back(path);
      ctx.log.info("running script " + sc.name + " (" + std::to_string(i + 1) + " of " +
                   std::to_string(ctx.def.scripts.size()) + ")");
      std::map<std::string, std::string> env = sc.env;
      env["IMGPIPE_IMAGE_NAME"] = ctx.def.name;
      env["IMGPIPE_IMAGE_VERSION"] = ctx.version;
      auto o = session.commandOptions(argv, env, ctx.def.network);
      o.timeout = sc.timeout;
      auto result = runCommand(std::move(o));
      session.fs().remove(path);
      if (result.exitCode != 0 || result.timedOut || result.stopped) {
        ctx.checkStop();
        throw CommandError("script '" + sc.name + "'", result);
      }
    }
    return "ran " + std::to_string(ctx.def.scripts.size()) + " scripts";
  }
};

}  // namespace

std::unique_ptr<Step> makeScriptsStep() {
  return std::make_unique<ScriptsStep>();
}

}  // namespace imgpipe::build
