#include "agent-build/runner/validation_checks.h"

namespace imgpipe::build {

std::vector<agent::CheckInfo> checksFromValidation(const nlohmann::json& validation) {
  std::vector<agent::CheckInfo> out;
  if (!validation.is_object()) return out;
  for (const auto& c : validation.value("checks", nlohmann::json::array()))
    out.push_back(
        {"validate", c.value("check", ""), c.value("ok", false), false, c.value("detail", "")});
  const auto bt = validation.value("boot_test", nlohmann::json::object());
  for (const auto& boot : bt.value("boots", nlohmann::json::array())) {
    // "where" is BootRun::where(); manifests of before it name the firmware or the method.
    const std::string group =
        "boot " + boot.value("where", boot.value("firmware", boot.value("method", "")));
    if (!boot.value("error", "").empty())
      out.push_back({group, "boot", false, false, boot.value("error", "")});
    for (const auto& c : boot.value("checks", nlohmann::json::array()))
      out.push_back(
          {group, c.value("check", ""), c.value("ok", false), false, c.value("detail", "")});
    for (const auto& s : boot.value("skipped", nlohmann::json::array()))
      out.push_back({group, s.value("check", ""), true, true, s.value("reason", "")});
  }
  return out;
}

}  // namespace imgpipe::build
