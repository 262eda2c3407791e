#include "agent-build/ansible/results.h"

#include <nlohmann/json.hpp>
#include <set>

#include "agent-build/ansible/controller.h"

namespace imgpipe::build {
namespace {

using nlohmann::json;

// "ansible.builtin.systemd" -> "systemd"
std::string shortName(std::string_view action) {
  auto dot = action.rfind('.');
  return std::string(dot == std::string_view::npos ? action : action.substr(dot + 1));
}

std::string text(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

}  // namespace

std::string chrootAdvice(std::string_view action, const std::string& argsJson) {
  const std::string module = shortName(action);
  json args = json::parse(argsJson, nullptr, false);
  if (!args.is_object()) args = json::object();
  const std::string state = text(args, "state");
  static const std::set<std::string> services = {"systemd", "systemd_service", "service",
                                                 "sysvinit"};
  if (services.contains(module) &&
      (state == "started" || state == "stopped" || state == "restarted" || state == "reloaded"))
    return "services cannot be " + state +
           " while an image is built: nothing runs in it (it is a chroot, not a booted system). "
           "Keep `enabled: true` and drop `state:`, or list the service under services.enable "
           "in the definition; it starts when an instance boots";
  const std::string reload = text(args, "daemon_reload");
  if (services.contains(module) && (reload == "true" || reload == "True" || reload == "yes"))
    return "systemd is not running while an image is built, so there is no daemon to reload; "
           "drop `daemon_reload` (units are read when an instance boots)";
  if (module == "reboot" || module == "wait_for_connection")
    return "an image being built is not a running machine and cannot reboot; the acceptance "
           "boot (validation.boot_test) boots it once it is finished";
  if (module == "service_facts")
    return "no service manager runs while an image is built; use `systemctl is-enabled` in a "
           "command task instead";
  return "";
}

PlaybookResults parsePlaybookResults(std::string_view jsonLines) {
  PlaybookResults r;
  std::size_t start = 0;
  while (start < jsonLines.size()) {
    auto end = jsonLines.find('\n', start);
    if (end == std::string_view::npos) end = jsonLines.size();
    json j = json::parse(jsonLines.substr(start, end - start), nullptr, false);
    start = end + 1;
    if (!j.is_object()) continue;
    const std::string kind = text(j, "kind");
    if (kind == "stats") {
      auto n = [&](const char* k) {
        return j.contains(k) && j[k].is_number() ? j[k].get<int>() : 0;
      };
      r.ok += n("ok");
      r.changed += n("changed");
      r.failed += n("failures");
      r.unreachable += n("unreachable");
      r.skipped += n("skipped");
      r.ignored += n("ignored");
      continue;
    }
    if (kind != "failed" && kind != "unreachable" && kind != "ok") continue;
    if (j.value("ignored", false)) continue;
    const std::string action = text(j, "action");
    const std::string args = j.contains("args") ? j["args"].dump() : "{}";
    // An ok result is a failure only for what cannot have happened (a start systemd ignored).
    if (kind == "ok" && chrootAdvice(action, args).empty()) continue;
    std::string m = "task '" + text(j, "task") + "' (" + action;
    if (auto path = withBundlePaths(text(j, "path")); !path.empty()) m += ", " + path;
    m += ")";
    if (auto advice = chrootAdvice(action, args); !advice.empty()) {
      m += ": " + advice;
    } else {
      std::string msg = text(j, "msg");
      if (msg.empty() || msg == "non-zero return code") {
        if (auto err = text(j, "stderr"); !err.empty()) msg += (msg.empty() ? "" : ": ") + err;
      }
      if (auto rc = text(j, "rc"); !rc.empty() && rc != "0") msg += " (exit code " + rc + ")";
      m += (kind == "unreachable" ? ": the image could not be reached: " : ": ") +
           withBundlePaths(msg);
    }
    r.failures.push_back(std::move(m));
  }
  return r;
}

}  // namespace imgpipe::build
