// The acceptance boot, for real: the quickstart's own definition (deploy/examples/
// debian-12-docker.yaml) is built once on the fixture base (the same debootstrap recipe) and
// must boot clean under BIOS and UEFI; then deliberately broken variants — overlays of that one
// image, each broken offline in a few independent ways — are booted once each with
// `imgpipe-agent-build boot-test`, and must fail with exactly the checks their breakages name
// (so every check is shown to catch its fault, and no breakage to trip another check). Finally
// the same image under `method: nspawn`.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "common/unique_fd.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build::test;
using nlohmann::json;

namespace {

const fs::path kQuickstart = sourceDir() / "deploy/examples/debian-12-docker.yaml";

// Every check the quickstart's definition gets in a VM.
const std::set<std::string> kQuickstartChecks = {
    "cloud-init done",        "no failed units",
    "default user groups",    "root filesystem grown",
    "machine-id generated",   "ssh host keys generated",
    "service docker active",  "service qemu-guest-agent active",
    "service ssh active",     "dns resolves",
    "hostname from metadata", "check motd",
    "check docker-runs",      "guest agent ping"};

struct Built {
  fs::path image;
  json manifest;
  std::string log;
};

// The quickstart image, built once for the whole test program.
TestArea& area() {
  static TestArea a("boot");
  return a;
}

const Built& quickstartImage() {
  static std::once_flag once;
  static Built built;
  std::call_once(once, [] {
    fixtureBase();  // the quickstart's debootstrap base is the fixture's recipe: made once
    auto r = runAgent(area(), "build", kQuickstart, area().out(), std::chrono::minutes(40),
                      "quickstart");
    built.log = r.log;
    if (r.exitCode != 0) return;
    built.manifest = r.manifest;
    built.image = area().out() / built.manifest["image"]["file"].get<std::string>();
  });
  return built;
}

std::map<std::string, json> checksByName(const json& boot) {
  std::map<std::string, json> out;
  for (const auto& c : boot["checks"])
    out[c["check"].get<std::string>()] = c;
  return out;
}

struct BootTestRun {
  int exitCode = -1;
  json result;  // validation.boot_test
  std::string output;
};

BootTestRun bootTest(const fs::path& image, const std::string& name,
                     std::vector<std::string> extra = {},
                     const fs::path& definition = kQuickstart) {
  SubprocessOptions o;
  o.argv = {agentBinary().string(),
            "boot-test",
            image.string(),
            definition.string(),
            "--work-dir",
            (area().root() / ("boot-" + name)).string(),
            "--json"};
  o.argv.insert(o.argv.end(), extra.begin(), extra.end());
  o.captureStdout = true;
  o.timeout = std::chrono::minutes(15);
  BootTestRun run;
  // Kept, not streamed: eleven boots' consoles would bury the one that failed. A failure prints
  // its own run's output; every boot prints one line.
  o.onLine = [&](std::string_view l) { run.output += std::string(l) + "\n"; };
  const auto t0 = std::chrono::steady_clock::now();
  auto r = runCommand(o);
  run.exitCode = r.exitCode;
  run.result = json::parse(r.stdoutText, nullptr, false);
  std::string failed;
  if (run.result.is_object())
    for (const auto& boot : run.result["boots"])
      for (const auto& c : boot["checks"])
        if (!c["ok"]) failed += " [" + c["check"].get<std::string>() + "]";
  std::fprintf(stderr, "[%s] boot-test exit %d in %.0f s; failed checks:%s\n", name.c_str(),
               run.exitCode,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
               failed.empty() ? " none" : failed.c_str());
  return run;
}

// ---- the broken variants: each breaks one thing in an overlay of the good image ------------

void writeFile(const fs::path& root, const std::string& path, const std::string& content) {
  fs::create_directories((root / path.substr(1)).parent_path());
  std::ofstream(root / path.substr(1)) << content;
}

// One way of breaking the image, and the check that must catch it.
struct Breakage {
  std::string check;                // the check it must fail
  std::set<std::string> alsoFails;  // what necessarily fails with it
  std::function<void(const fs::path& root)> breakIt;
};

// The breakages, grouped into variants: the breakages of one variant touch different files and
// different checks, so each boot shows several checks catching their faults at once. A boot costs
// about 100 s here (TCG): four boots instead of eleven.
std::vector<std::vector<Breakage>> variants() {
  return {
      {
          // The original bug of the issue: a locale cloud-init cannot set. A failing module makes
          // its stage's unit fail too, so "no failed units" fails along with it by design: alone.
          {"cloud-init done",
           {"no failed units"},
           [](const fs::path& r) {
             writeFile(r, "/etc/cloud/cloud.cfg.d/99-broken-locale.cfg", "locale: xx_XX.UTF-8\n");
           }},
      },
      {
          {"no failed units",
           {},
           [](const fs::path& r) {
             writeFile(r, "/etc/systemd/system/imgpipe-broken.service",
                       "[Unit]\nDescription=broken on purpose\n[Service]\nType=oneshot\n"
                       "ExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n");
             fs::create_symlink(
                 "/etc/systemd/system/imgpipe-broken.service",
                 r / "etc/systemd/system/multi-user.target.wants/imgpipe-broken.service");
           }},
          {"default user groups",
           {},
           [](const fs::path& r) {
             const auto f = r / "etc/cloud/cloud.cfg.d/90-imgpipe-default-user.cfg";
             auto text = readFile(f);
             auto fixed = std::regex_replace(text, std::regex(",? *\\bdocker\\b"), "");
             ASSERT_NE(fixed, text) << text;
             std::ofstream(f) << fixed;
           }},
          {"machine-id generated",
           {},
           [](const fs::path& r) {
             writeFile(r, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n");
           }},
          {"check motd", {}, [](const fs::path& r) { writeFile(r, "/etc/motd", "tampered\n"); }},
      },
      {
          {"root filesystem grown",
           {},
           [](const fs::path& r) {
             writeFile(r, "/etc/cloud/cloud.cfg.d/99-broken-grow.cfg",
                       "growpart: {mode: 'off'}\nresize_rootfs: false\n");
           }},
          {"service docker active",
           {},
           [](const fs::path& r) {
             fs::remove(r / "etc/systemd/system/multi-user.target.wants/docker.service");
           }},
          {"guest agent ping",
           {},
           [](const fs::path& r) {
             // The agent runs and answers, but refuses the ping.
             writeFile(r, "/etc/qemu/qemu-ga.conf",
                       "[general]\nblock-rpcs=guest-ping\nblacklist=guest-ping\n");
           }},
      },
      {
          {"ssh host keys generated",
           {},
           [](const fs::path& r) {
             checkCommand({"ssh-keygen", "-A", "-f", r.string()});
             writeFile(r, "/etc/cloud/cloud.cfg.d/99-broken-ssh.cfg", "ssh_deletekeys: false\n");
           }},
          {"dns resolves",
           {},
           [](const fs::path& r) {
             fs::remove(r / "etc/resolv.conf");
             writeFile(r, "/etc/resolv.conf", "nameserver 127.0.0.1\n");
           }},
          {"hostname from metadata",
           {},
           [](const fs::path& r) {
             writeFile(r, "/etc/cloud/cloud.cfg.d/99-broken-hostname.cfg",
                       "preserve_hostname: true\n");
           }},
      },
  };
}

}  // namespace

TEST(AcceptanceBoot, QuickstartImageBootsCleanUnderBiosAndUefi) {
  const auto& built = quickstartImage();
  ASSERT_FALSE(built.image.empty()) << "the quickstart's build failed:\n" << built.log;
  const auto& bt = built.manifest["validation"]["boot_test"];
  ASSERT_TRUE(bt["passed"]) << bt.dump(2);
  ASSERT_EQ(bt["boots"].size(), 2u);
  std::set<std::string> firmwares;
  for (const auto& boot : bt["boots"]) {
    firmwares.insert(boot["firmware"]);
    auto checks = checksByName(boot);
    for (const auto& name : kQuickstartChecks) {
      if (name == "dns resolves" && !checks.count(name)) continue;  // host cannot resolve
      ASSERT_TRUE(checks.count(name)) << boot["firmware"] << ": no check '" << name << "'";
      EXPECT_TRUE(checks[name]["ok"])
          << boot["firmware"] << ": " << name << ": " << checks[name]["detail"];
    }
    EXPECT_EQ(boot["method"], "qemu");
    std::printf("acceptance boot (%s, %s): %.1f s\n", boot["firmware"].get<std::string>().c_str(),
                boot["accel"].get<std::string>().c_str(), boot["seconds"].get<double>());
  }
  EXPECT_EQ(firmwares, (std::set<std::string>{"bios", "uefi"}));
  // The image delivered is the image that was booted: the boots wrote only into overlays.
  EXPECT_EQ(toHex(hashFile(built.image).sha256), built.manifest["image"]["sha256"]);
}

TEST(AcceptanceBoot, EachBrokenVariantFailsWithItsOwnChecks) {
  const auto& built = quickstartImage();
  ASSERT_FALSE(built.image.empty()) << "the quickstart's build failed";
  const auto list = variants();
  // Two boots at a time: one vCPU each on a 2-core machine (the agent's default is two).
  const fs::path oneCpu = area().root() / "one-cpu.yaml";
  writeFileAtomic(oneCpu, "build:\n  boot_test: {cpus: 1}\n");
  std::vector<std::future<void>> running;
  std::mutex failures;
  std::vector<std::string> problems;
  auto runVariant = [&](const std::vector<Breakage>& breakages, size_t i) {
    const std::string name = "variant-" + std::to_string(i);
    const fs::path overlay = area().root() / (name + ".qcow2");
    checkCommand({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                  built.image.string(), overlay.string()});
    std::set<std::string> want;
    {
      WritableImage img(overlay, area().root() / (name + "-edit"));
      for (const auto& b : breakages) {
        b.breakIt(img.root());
        want.insert(b.check);
        want.insert(b.alsoFails.begin(), b.alsoFails.end());
      }
    }
    auto run = bootTest(overlay, name, {"--firmware", "bios", "--config", oneCpu.string()});
    std::set<std::string> failed;
    if (run.result.is_object())
      for (const auto& boot : run.result["boots"])
        for (const auto& c : boot["checks"])
          if (!c["ok"]) failed.insert(c["check"]);
    std::string why;
    if (run.exitCode != 1) why += " exit code " + std::to_string(run.exitCode) + " (want 1);";
    if (failed != want) {
      why += " failed checks:";
      for (const auto& f : failed)
        why += " [" + f + "]";
      why += "; want:";
      for (const auto& f : want)
        why += " [" + f + "]";
      why += ";";
    }
    // The failure names each check and shows the console's last lines.
    if (run.output.find("acceptance boot (bios) failed") == std::string::npos ||
        run.output.find("last lines of the guest's console") == std::string::npos)
      why += " the failure message does not show the console;";
    for (const auto& b : breakages)
      if (run.output.find("  " + b.check + ": ") == std::string::npos)
        why += " the failure message does not name '" + b.check + "';";
    if (!why.empty()) {
      std::lock_guard lock(failures);
      problems.push_back(name + ":" + why + "\n" + run.output);
    }
    fs::remove(overlay);
  };
  for (size_t i = 0; i < list.size(); ++i) {
    if (running.size() == 2) {
      running.front().get();
      running.erase(running.begin());
    }
    running.push_back(std::async(std::launch::async, runVariant, std::cref(list[i]), i));
  }
  for (auto& f : running)
    f.get();
  for (const auto& p : problems)
    ADD_FAILURE() << p;
  // The variants covered every check the quickstart has (but the docker-runs check, which only
  // a broken docker would fail, and which the docker service variant shows already).
  std::set<std::string> covered;
  for (const auto& v : list)
    for (const auto& b : v)
      covered.insert(b.check);
  for (const auto& name : kQuickstartChecks) {
    if (name != "check docker-runs" && name != "service qemu-guest-agent active" &&
        name != "service ssh active") {
      EXPECT_TRUE(covered.count(name)) << "no broken variant for '" << name << "'";
    }
  }
  EXPECT_TRUE(leftoversUnder(area().root()).empty());
}

TEST(AcceptanceBoot, NspawnBootsTheRootAndSaysWhatItSkips) {
  const auto& built = quickstartImage();
  ASSERT_FALSE(built.image.empty()) << "the quickstart's build failed";
  // An agent that did not allow it refuses it, naming the key (issue 23: the image's units in a
  // container on the build host are the operator's choice, not the definition's).
  auto refused = bootTest(built.image, "nspawn-refused", {"--method", "nspawn"});
  EXPECT_NE(refused.exitCode, 0);
  EXPECT_NE(refused.output.find("build.sandbox.allow_nspawn_boot"), std::string::npos)
      << refused.output;
  const fs::path allow = area().root() / "allow-nspawn.yaml";
  writeFileAtomic(allow, "build:\n  sandbox: {allow_nspawn_boot: true}\n");
  auto run = bootTest(built.image, "nspawn", {"--method", "nspawn", "--config", allow.string()});
  ASSERT_TRUE(run.result.is_object()) << run.output;
  ASSERT_EQ(run.result["boots"].size(), 1u);
  const auto& boot = run.result["boots"][0];
  EXPECT_EQ(boot["method"], "nspawn");
  std::set<std::string> skipped;
  for (const auto& s : boot["skipped"])
    skipped.insert(s["check"]);
  EXPECT_TRUE(skipped.count("root filesystem grown"));
  EXPECT_TRUE(skipped.count("guest agent ping"));
  EXPECT_TRUE(skipped.count("dns resolves"));
  EXPECT_TRUE(skipped.count("service docker active"));
  EXPECT_TRUE(skipped.count("service qemu-guest-agent active"));
  EXPECT_TRUE(skipped.count("check docker-runs"));  // nspawn: false in the definition
  auto checks = checksByName(boot);
  for (const auto& name :
       {"cloud-init done", "no failed units", "machine-id generated", "default user groups",
        "ssh host keys generated", "service ssh active", "hostname from metadata", "check motd"}) {
    ASSERT_TRUE(checks.count(name)) << name;
    EXPECT_TRUE(checks[name]["ok"]) << name << ": " << checks[name]["detail"];
  }
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(leftoversUnder(area().root()).empty());
}

// Issue 23: the guest at the acceptance boot reaches nothing of the build host. A service listens
// on the host's 127.0.0.1; QEMU's user networking used to forward the guest's 10.0.2.2 to it. A
// check in the guest (the definition's own, run at boot by a unit) tries it: refused, since QEMU
// runs in a network namespace of its own; the mirror's name still resolves (network: host).
TEST(AcceptanceBoot, TheGuestReachesNothingOfTheBuildHost) {
  const auto& built = quickstartImage();
  ASSERT_FALSE(built.image.empty()) << "the quickstart's build failed";
  HostBait bait;
  const auto port = bait.loopbackPortText();
  auto text = readFile(kQuickstart);
  const std::string anchor = "    checks:                    # on top of the standard ones";
  const auto at = text.find(anchor);
  ASSERT_NE(at, std::string::npos) << "the quickstart's checks moved";
  text.insert(text.find('\n', at) + 1,
              "      - name: host-loopback-unreachable\n"
              "        run: \"! timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.2.2/" +
                  port + "'\"\n");
  const fs::path definition = area().root() / "probe-host.yaml";
  writeFileAtomic(definition, text);
  // The definition names no bundle file the quickstart does not: it reads files beside itself.
  for (const auto& e : fs::directory_iterator(kQuickstart.parent_path()))
    if (e.is_regular_file() && !fs::exists(area().root() / e.path().filename()))
      fs::copy_file(e.path(), area().root() / e.path().filename());
  auto run = bootTest(built.image, "probe-host", {"--firmware", "bios"}, definition);
  ASSERT_TRUE(run.result.is_object()) << run.output;
  auto checks = checksByName(run.result["boots"][0]);
  ASSERT_TRUE(checks.count("check host-loopback-unreachable")) << run.output;
  EXPECT_TRUE(checks["check host-loopback-unreachable"]["ok"])
      << checks["check host-loopback-unreachable"]["detail"];
  EXPECT_TRUE(checks["dns resolves"]["ok"]) << checks["dns resolves"]["detail"];
  EXPECT_EQ(run.exitCode, 0) << run.output;
}
