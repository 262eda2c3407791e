#include "agent-build/boot/acceptance.h"

#include <regex>
#include <sstream>

namespace imgpipe::build {

std::string_view toString(Firmware f) {
  return f == Firmware::uefi ? "uefi" : "bios";
}

nlohmann::json guestConfigJson(const GuestExpectations& e, const nlohmann::json& results) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& c : e.checks)
    checks.push_back(
        {{"name", c.name},
         {"run", c.run},
         {"exit_code", c.exitCode},
         {"output", c.output},
         {"timeout", std::chrono::duration_cast<std::chrono::seconds>(c.timeout).count()}});
  nlohmann::json j = {{"user", e.user},
                      {"groups", e.groups},
                      {"services", e.services},
                      {"image_machine_id", e.imageMachineId},
                      {"image_ssh_host_keys", e.imageSshHostKeys},
                      {"image_virtual_size", e.imageVirtualSize},
                      {"hostname", e.hostname},
                      {"resolve", e.resolve},
                      {"checks", checks},
                      {"skip", e.skip},
                      {"ignore_failed_units", e.ignoreFailedUnits},
                      {"settle_timeout", e.settleTimeout.count()}};
  j.update(results);
  return j;
}

bool BootRun::passed() const {
  return error.empty() && failedChecks().empty() && !checks.empty();
}

std::string BootRun::where() const {
  if (method != "qemu") return method;
  return medium == "disk" ? firmware : medium + " " + firmware;
}

std::vector<std::string> BootRun::failedChecks() const {
  std::vector<std::string> out;
  for (const auto& c : checks)
    if (!c.ok) out.push_back(c.check);
  return out;
}

nlohmann::json toJson(const BootRun& r) {
  nlohmann::json checks = nlohmann::json::array(), skipped = nlohmann::json::array();
  for (const auto& c : r.checks)
    checks.push_back({{"check", c.check}, {"ok", c.ok}, {"detail", c.detail}});
  for (const auto& [check, why] : r.skipped)
    skipped.push_back({{"check", check}, {"reason", why}});
  nlohmann::json j = {{"method", r.method},   {"where", r.where()}, {"passed", r.passed()},
                      {"seconds", r.seconds}, {"checks", checks},   {"skipped", skipped},
                      {"error", r.error}};
  if (r.method == "qemu") {
    j["medium"] = r.medium;
    j["firmware"] = r.firmware;
    j["accel"] = r.accel;
  }
  return j;
}

GuestResults parseGuestResults(const std::string& text) {
  GuestResults out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    // A line still being written has no newline yet; json::parse refuses it, next poll has it.
    if (in.eof()) break;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    if (j.contains("check"))
      out.checks.push_back({j.value("check", ""), j.value("ok", false), j.value("detail", "")});
    if (j.value("started", false)) out.started = true;
    if (j.value("done", false)) {
      out.done = true;
      out.uptimeAtDone = j.value("uptime_s", 0.0);
    }
  }
  return out;
}

std::string consoleTail(const std::string& text, size_t n) {
  static const std::regex escapes("\x1b\\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>c78]");
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    l = std::regex_replace(l, escapes, "");
    std::string clean;
    for (char c : l)
      if (c == '\t' || static_cast<unsigned char>(c) >= 0x20) clean += c;
    if (!clean.empty()) lines.push_back(clean);
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += "\n  | " + lines[i];
  return out;
}

nlohmann::json bootTestJson(const std::vector<BootRun>& runs) {
  nlohmann::json boots = nlohmann::json::array();
  bool passed = !runs.empty();
  double seconds = 0;
  std::string accel;
  for (const auto& r : runs) {
    boots.push_back(toJson(r));
    passed &= r.passed();
    seconds += r.seconds;
    if (!r.accel.empty()) accel = r.accel;
  }
  return {{"passed", passed},
          {"method", runs.empty() ? "" : runs.front().method},
          {"accel", accel},
          {"seconds", seconds},
          {"boots", boots}};
}

std::string bootTestFailure(const std::vector<BootRun>& runs) {
  std::string msg;
  for (const auto& r : runs) {
    if (r.passed()) continue;
    msg += (msg.empty() ? "" : "\n") + std::string("acceptance boot (") + r.where() + ") failed";
    if (!r.error.empty()) msg += ": " + r.error;
    auto failed = r.failedChecks();
    if (!failed.empty()) {
      msg += ": " + std::to_string(failed.size()) + " of " + std::to_string(r.checks.size()) +
             " checks failed";
      for (const auto& c : r.checks)
        if (!c.ok) msg += "\n  " + c.check + ": " + c.detail;
    }
    msg += "\nlast lines of the guest's console (" + r.consoleLog.filename().string() +
           "):" + r.consoleTail;
  }
  return msg;
}

}  // namespace imgpipe::build
