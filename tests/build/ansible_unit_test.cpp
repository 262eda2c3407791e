// The Ansible step's parts without an image: the definition's `ansible:` section, the
// controller's sandbox and inventory, the results callback's lines turned into messages, and the
// exec broker with the real `imgpipe-agent-build ansible-exec` client, a hostile client among
// them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <thread>

#include "agent-build/ansible/controller.h"
#include "agent-build/ansible/exec_broker.h"
#include "agent-build/ansible/results.h"
#include "agent-build/sandbox/sandbox.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "definition/bundle.h"
#include "definition/parse_definition.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build;
namespace fs = std::filesystem;

namespace {

const std::string kHead = "name: a\nbase: {path: base.qcow2}\n";

std::string errorOf(auto&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

bool has(const std::vector<std::string>& v, std::initializer_list<std::string> seq) {
  return std::search(v.begin(), v.end(), seq.begin(), seq.end()) != v.end();
}

}  // namespace

TEST(AnsibleDefinition, PlaybookIncludeAndVars) {
  auto def = definition::parseDefinition(kHead + R"(ansible:
  playbook: playbook/provision.yml
  roles_path: [playbook/common_roles, playbook/provision_roles]
  extra_vars: {site: berlin}
  tags: [base]
  timeout: 5m
)",
                                         "d.yaml");
  ASSERT_TRUE(def.ansible);
  EXPECT_EQ(def.ansible->playbook, "playbook/provision.yml");
  EXPECT_EQ(def.ansible->include, (std::vector<std::string>{"playbook"}));  // its directory
  EXPECT_EQ(def.ansible->rolesPath.size(), 2u);
  EXPECT_EQ(def.ansible->extraVars.at("site"), "berlin");
  EXPECT_EQ(def.ansible->timeout, std::chrono::minutes(5));
  for (const auto& [yaml, want] : std::vector<std::pair<std::string, std::string>>{
           {"ansible: {playbook: /etc/ansible/site.yml}", "ansible.playbook: '/etc/ansible"},
           {"ansible: {playbook: ../x.yml}", "must be a relative path beside the definition"},
           {"ansible: {playbook: p.yml, include: [../roles]}", "ansible.include[0]"},
           {"ansible: {playbook: p.yml, tags: ['a,b']}", "not a valid tag"},
           {"ansible: {playbook: p.yml, extra_vars: {'1x': y}}", "not a valid Ansible variable"},
           {"ansible: {playbook: p.yml, inventory: hosts}", "unknown key 'inventory'"},
           {"ansible: {include: [roles]}", "missing required field 'playbook'"}}) {
    auto e = errorOf([&] { definition::parseDefinition(kHead + yaml + "\n", "d.yaml"); });
    EXPECT_NE(e.find(want), std::string::npos) << yaml << " -> " << e;
  }
}

TEST(AnsibleDefinition, ThePlaybooksTreeTravelsInTheBundle) {
  TempDir dir;
  fs::create_directories(dir.path() / "playbook/roles/web/tasks");
  std::ofstream(dir.path() / "d.yaml") << kHead << "ansible: {playbook: playbook/site.yml}\n";
  std::ofstream(dir.path() / "playbook/site.yml") << "- hosts: default\n";
  std::ofstream(dir.path() / "playbook/roles/web/tasks/main.yml") << "- debug: {msg: hi}\n";
  std::ofstream(dir.path() / "elsewhere.txt") << "not sent\n";
  auto bundle = definition::loadBundle(dir.path() / "d.yaml");
  EXPECT_TRUE(bundle.find("playbook/site.yml"));
  EXPECT_TRUE(bundle.find("playbook/roles/web/tasks/main.yml"));
  EXPECT_FALSE(bundle.find("elsewhere.txt"));
  // A symlink out of the definition's directory is refused, naming the field.
  fs::create_symlink("/etc/shadow", dir.path() / "playbook/roles/web/shadow");
  auto e = errorOf([&] { definition::loadBundle(dir.path() / "d.yaml"); });
  EXPECT_NE(e.find("ansible.include[0]"), std::string::npos) << e;
  // The coordinator's check: a tree the bundle does not hold is refused.
  fs::remove(dir.path() / "playbook/roles/web/shadow");
  bundle = definition::loadBundle(dir.path() / "d.yaml");
  std::erase_if(bundle.files, [](const auto& f) { return f.first.starts_with("playbook/roles"); });
  bundle.files.erase("playbook/site.yml");
  auto def = definition::parseBundle(bundle);
  e = errorOf([&] { definition::checkBundle(bundle, def); });
  EXPECT_NE(e.find("ansible.playbook"), std::string::npos) << e;
}

TEST(AnsibleController, SandboxedWithoutNetworkCapabilitiesOrTheHostsFiles) {
  definition::AnsibleSpec spec;
  spec.playbook = "playbook/provision.yml";
  spec.tags = {"base", "web"};
  spec.rolesPath = {"playbook/common_roles"};
  auto argv = controllerCommand(
      {"/usr/bin/imgpipe-agent-build", "/w/bundle-1", "/w/root", "/w/ansible"}, spec);
  EXPECT_EQ(argv[1], "sandbox-exec");
  EXPECT_TRUE(has(argv, {"--unshare-net"}));
  EXPECT_TRUE(has(argv, {"--cap-drop", "ALL"}));
  EXPECT_FALSE(has(argv, {"--cap-add"}));
  // The bundle, the image and the work dir, each as sandbox-exec's idmapped clone of it.
  EXPECT_TRUE(has(argv, {"--idmap", "/w/bundle-1"}));
  EXPECT_TRUE(has(argv, {"--ro-bind", stagedTree(0), "/run/imgpipe/bundle"}));
  EXPECT_TRUE(has(argv, {"--ro-bind", stagedTree(1), "/run/imgpipe/image"}));
  EXPECT_TRUE(has(argv, {"--bind", stagedTree(2), "/run/imgpipe/work"}));
  // The one containment model, as for the image's commands: the unprivileged host range, what it
  // owns idmapped, /proc/sys and /sys read-only (the controller's /proc/sys was writable once).
  EXPECT_TRUE(has(argv, {"--userns", std::to_string(UidRange::kDefaultBase)}));
  EXPECT_TRUE(has(argv, {"--idmap", "/w/ansible"}));
  EXPECT_TRUE(has(argv, {"--idmap", "/w/root"}));
  EXPECT_TRUE(has(argv, {"--ro-bind", "/proc/sys", "/proc/sys"}));
  EXPECT_TRUE(has(argv, {"--ro-bind", "/sys", "/sys"}));
  EXPECT_TRUE(has(argv, {"--chdir", "/run/imgpipe/bundle/playbook"}));
  EXPECT_TRUE(has(argv, {"--tags", "base,web"}));
  EXPECT_EQ(argv.back(), "/run/imgpipe/bundle/playbook/provision.yml");
  // The host's root, its /etc, the agent's keys and state are not in the sandbox.
  for (std::size_t i = 0; i + 2 < argv.size(); ++i)
    if (argv[i] == "--bind" || argv[i] == "--ro-bind" || argv[i] == "--ro-bind-try") {
      EXPECT_NE(argv[i + 1], "/");
      EXPECT_NE(argv[i + 1], "/etc");
      EXPECT_FALSE(argv[i + 1].starts_with("/etc/imgpipe")) << argv[i + 1];
      EXPECT_FALSE(argv[i + 1].starts_with("/var")) << argv[i + 1];
      EXPECT_FALSE(argv[i + 1].starts_with("/root")) << argv[i + 1];
    }
  auto env = controllerEnvironment(spec);
  EXPECT_EQ(env.at("ANSIBLE_ROLES_PATH"), "/run/imgpipe/bundle/playbook/common_roles");
  EXPECT_EQ(env.at("LC_ALL"), "C.UTF-8");
  auto files = controllerFiles(spec);
  const auto& inventory = files.at("inventory.yml");
  EXPECT_NE(inventory.find("\"default\""), std::string::npos) << inventory;
  EXPECT_NE(inventory.find("community.general.chroot"), std::string::npos);
  EXPECT_NE(inventory.find("/run/imgpipe/ansible"), std::string::npos);  // remote tmp: tmpfs
  EXPECT_NE(files.at("chroot").find("ansible-exec /run/imgpipe/work/exec.sock"), std::string::npos);
  EXPECT_NE(files.at("callback_plugins/imgpipe_results.py").find("imgpipe_results"),
            std::string::npos);
}

TEST(AnsibleResults, FailuresAreNamedWithWhatToDoInstead) {
  const std::string lines =
      R"({"kind":"failed","task":"Enable SSH service","action":"ansible.builtin.systemd","args":{"name":"ssh","enabled":true,"state":"started"},"path":"/run/imgpipe/bundle/playbook/roles/vm_init/tasks/main.yml:23","ignored":false,"msg":"Service is in unknown state","rc":null})"
      "\n"
      R"({"kind":"failed","task":"Disable firewall","action":"systemd","args":{"name":"ufw","state":"stopped"},"path":"x.yml:3","ignored":true,"msg":"Could not find"})"
      "\n"
      R"({"kind":"failed","task":"Install Telegraf","action":"apt","args":{"deb":"https://x/t.deb"},"path":"/run/imgpipe/bundle/m.yml:2","ignored":false,"msg":"Failure downloading /run/imgpipe/bundle/t.deb","rc":1})"
      "\n"
      R"({"kind":"ok","task":"Enable ssh","action":"ansible.builtin.systemd","args":{"name":"ssh","enabled":"True"},"path":"p.yml:4","ignored":false,"msg":""})"
      "\n"
      R"({"kind":"ok","task":"Start qga","action":"ansible.builtin.systemd","args":{"name":"qemu-guest-agent","state":"started"},"path":"/run/imgpipe/bundle/p.yml:9","ignored":false,"msg":""})"
      "\n"
      "{not json, a line cut by a kill\n"
      R"({"kind":"stats","host":"default","ok":7,"changed":3,"failures":2,"unreachable":0,"skipped":1,"rescued":0,"ignored":1})"
      "\n";
  auto r = parsePlaybookResults(lines);
  EXPECT_EQ(r.ok, 7);
  EXPECT_EQ(r.changed, 3);
  EXPECT_EQ(r.failed, 2);
  EXPECT_EQ(r.ignored, 1);
  // The ignored one is not a failure; a start systemd offline ignored (ok) is.
  ASSERT_EQ(r.failures.size(), 3u);
  EXPECT_NE(r.failures[0].find("task 'Enable SSH service' (ansible.builtin.systemd, "
                               "playbook/roles/vm_init/tasks/main.yml:23): services cannot be "
                               "started while an image is built"),
            std::string::npos)
      << r.failures[0];
  EXPECT_NE(r.failures[0].find("services.enable"), std::string::npos);
  EXPECT_NE(r.failures[1].find("task 'Install Telegraf' (apt, m.yml:2): Failure downloading "
                               "t.deb (exit code 1)"),
            std::string::npos)
      << r.failures[1];
  EXPECT_NE(r.failures[2].find("task 'Start qga' (ansible.builtin.systemd, p.yml:9): services "
                               "cannot be started"),
            std::string::npos)
      << r.failures[2];
  EXPECT_EQ(chrootAdvice("ansible.builtin.systemd", R"({"name":"ssh","enabled":true})"), "");
  EXPECT_NE(chrootAdvice("ansible.builtin.reboot", "{}"), "");
}

TEST(ExecBroker, RunsTheCommandWithTheClientsStdioAndExitStatus) {
  TempDir dir;
  std::vector<std::string> refused;
  std::vector<std::vector<std::string>> asked;
  ExecBroker broker(
      dir.path() / "exec.sock",
      [&](std::vector<std::string> argv) {
        asked.push_back(argv);
        SubprocessOptions o;
        o.argv = std::move(argv);
        return o;
      },
      [&](const std::string& line) { refused.push_back(line); });
  const std::string sock = (dir.path() / "exec.sock").string();
  // As the chroot connection calls it: ROOT first (ignored), then the command.
  SubprocessOptions o;
  o.argv = {build::test::agentBinary().string(),
            "ansible-exec",
            sock,
            "/ignored/root",
            "/bin/sh",
            "-c",
            "read x; echo got $x; echo warn >&2; exit 3"};
  o.input = "hello\n";
  o.captureStdout = true;
  auto r = runCommand(o);
  EXPECT_EQ(r.exitCode, 3);
  EXPECT_EQ(r.stdoutText, "got hello\n");
  EXPECT_NE(std::find(r.tail.begin(), r.tail.end(), "warn"), r.tail.end());
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].front(), "/bin/sh");  // the root argument is not the command's

  // A hostile client: a frame without descriptors, then garbage. Refused; the broker serves on.
  for (const std::string& junk : {std::string("\x05\0\0\0abcd\0", 9), std::string(64, '\xff')}) {
    int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::send(s, junk.data(), junk.size(), MSG_NOSIGNAL), ssize_t(junk.size()));
    char c;
    EXPECT_LE(::recv(s, &c, 1, 0), 0);  // closed without running anything
    ::close(s);
  }
  for (int i = 0; i < 100 && refused.size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_NE(refused[0].find("0 descriptors instead of stdin, stdout and stderr"), std::string::npos)
      << refused[0];
  EXPECT_EQ(asked.size(), 1u);
  o.argv = {build::test::agentBinary().string(), "ansible-exec", sock, "/", "/bin/true"};
  o.input.clear();
  EXPECT_EQ(runCommand(o).exitCode, 0);
  EXPECT_EQ(broker.commandsRun(), 2u);
}

TEST(ExecBroker, AClientThatDiesTakesItsCommandWithIt) {
  TempDir dir;
  const fs::path marker = dir.path() / "still-running";
  ExecBroker broker(
      dir.path() / "exec.sock",
      [&](std::vector<std::string> argv) {
        SubprocessOptions o;
        o.argv = std::move(argv);
        return o;
      },
      [](const std::string&) {});
  SubprocessOptions o;
  o.argv = {build::test::agentBinary().string(),
            "ansible-exec",
            (dir.path() / "exec.sock").string(),
            "/",
            "/bin/sh",
            "-c",
            "sleep 2; touch " + marker.string()};
  Subprocess client(std::move(o));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(client.pid(), SIGKILL);
  client.wait();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(fs::exists(marker)) << "the command outlived the controller that asked for it";
}
