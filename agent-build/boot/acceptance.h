#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "definition/image_definition.h"

namespace imgpipe::build {

// Value types shared by the acceptance boot's pieces (docs/build-agent.md, "The acceptance
// boot"): what the guest must show, and what one boot found.

enum class Firmware { bios, uefi };
std::string_view toString(Firmware f);

// What the checks inside the guest compare against: the definition's promises and the image's
// own state before its first boot (read offline), so that "generated at first boot" can be told
// apart from "baked into the image".
struct GuestExpectations {
  std::string user;                 // the default user; empty: cloud-init's merged config
  std::vector<std::string> groups;  // the definition's groups for it
  std::vector<std::string> services;
  std::string imageMachineId;
  std::vector<std::string> imageSshHostKeys;  // sha256 hex of each /etc/ssh/ssh_host_*_key.pub
  std::uint64_t imageVirtualSize = 0;
  std::string hostname;  // what the seed's meta-data says
  std::string resolve;   // a name the guest must resolve through its /etc/resolv.conf
  std::vector<definition::BootCheck> checks;
  std::map<std::string, std::string> skip;  // check name -> why it does not apply
  std::vector<std::string> ignoreFailedUnits;
  std::chrono::seconds settleTimeout{120};
};

// The config the in-guest script reads (guest_checks.py): `results` says where it writes.
nlohmann::json guestConfigJson(const GuestExpectations& e, const nlohmann::json& results);

struct CheckResult {
  std::string check;
  bool ok = false;
  std::string detail;
};

// One boot of the image and what its checks found. Value type.
struct BootRun {
  std::string method;           // qemu | nspawn
  std::string medium = "disk";  // disk | iso (the live ISO, outputs: [iso])
  std::string firmware;         // bios | uefi (qemu)
  std::string accel;            // kvm | tcg (qemu)
  double seconds = 0;           // power-on to the last in-guest check
  std::vector<CheckResult> checks;
  std::map<std::string, std::string> skipped;  // check -> why
  std::string error;        // the boot itself failed (no results, QEMU exited, timeout)
  std::string consoleTail;  // the guest console's last lines, for a failure
  std::filesystem::path consoleLog;

  bool passed() const;
  // How reports name this boot: "bios", "uefi", "nspawn", "iso bios", "iso uefi".
  std::string where() const;
  std::vector<std::string> failedChecks() const;
};

nlohmann::json toJson(const BootRun& r);

// Parses the results channel's JSON lines; `done` tells whether the guest finished.
struct GuestResults {
  std::vector<CheckResult> checks;
  bool started = false, done = false;
  double uptimeAtDone = 0;
};
GuestResults parseGuestResults(const std::string& text);

// validation.boot_test of the manifest: passed, method, accel, seconds (all boots), boots.
nlohmann::json bootTestJson(const std::vector<BootRun>& runs);
// What a failed acceptance boot reports: per failed boot, each failed check's name and detail
// (or why the boot itself failed) and the last lines of the guest's console.
std::string bootTestFailure(const std::vector<BootRun>& runs);

// The last `n` lines of a console log, without terminal escape sequences.
std::string consoleTail(const std::string& text, size_t n);

}  // namespace imgpipe::build
