// A hostile definition on a hostile base (issue 9), in ONE build: the base carries two LUKS
// headers whose UUIDs are paths ("../../tmp/x", and one deep enough to reach the host's /tmp
// from the old private /dev); the definition's script tries to mount, to mknod block and char
// devices, to load a kernel module, to read the agent's secret key and state dir by path, via
// /proc/1/root and via a chroot escape, to write outside the root, and to reach the network
// (network: none). Each attempt's outcome is printed; the last attempt fails the build. The test
// checks every outcome, that the build failed naming the step and the script, and that nothing
// on the host changed.
#include <gtest/gtest.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "agent-build/disk/loop_device.h"
#include "agent-build/runner/build_task_runner.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/subprocess.h"
#include "common/unique_fd.h"
#include "tests/build/support/build_fixture.h"

using namespace imgpipe;
using namespace imgpipe::build;
using namespace imgpipe::build::test;

namespace {

// Everything about a directory tree that a write, a removal or a read-with-atime could change.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    std::string v = std::to_string(st.st_mode) + " " + std::to_string(st.st_size) + " " +
                    std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    // A digest, not the bytes: a tree of hundreds of MB compared (and printed by a failing
    // EXPECT_EQ) once took the test process to 23 GB.
    if (S_ISREG(st.st_mode)) v += " sha256 " + toHex(hashFile(e.path()).sha256);
    out[e.path().string()] = v;
  }
  return out;
}

std::set<std::string> boundLoops() {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator("/sys/block")) {
    auto name = e.path().filename().string();
    if (name.starts_with("loop") && loopBound(name)) out.insert(name + " " + loopBackingFile(name));
  }
  return out;
}

std::vector<std::string> linesWith(const fs::path& file, const std::string& needle) {
  std::vector<std::string> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

// A LUKS1 header (what blkid reads of one: magic, version, cipher, UUID) at `offset` of `disk`.
// Written by hand: cryptsetup refuses a UUID that is not one.
void writeLuks1Header(const fs::path& disk, std::uint64_t offset, const std::string& uuid) {
  ASSERT_LT(uuid.size(), 40u);
  std::string h(592, '\0');
  h.replace(0, 6, std::string("LUKS\xba\xbe", 6));
  h[7] = 1;  // version, big-endian
  h.replace(8, 3, "aes");
  h.replace(40, 11, "xts-plain64");
  h.replace(72, 6, "sha256");
  h[104 + 2] = 0x10;  // payload offset 4096 sectors
  h[108 + 3] = 64;    // key bytes
  h.replace(168, uuid.size(), uuid);
  std::fstream f(disk, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  ASSERT_TRUE(f.good());
}

// The fixture base plus two small partitions carrying LUKS headers with these UUIDs.
fs::path hostileBase(const TestArea& area, const std::string& uuid2, const std::string& uuid3) {
  const auto raw = area.root() / "hostile-base.raw";
  const auto qcow = area.root() / "hostile-base.qcow2";
  checkCommand({"qemu-img", "convert", "-f", "qcow2", "-O", "raw", fixtureBase().file.string(),
                raw.string()});
  fs::resize_file(raw, fs::file_size(raw) + (16ull << 20));
  checkCommand({"sgdisk", "-e", raw.string()});
  checkCommand(
      {"sgdisk", "-n", "2:0:+4M", "-t", "2:8309", "-n", "3:0:+4M", "-t", "3:8309", raw.string()});
  auto table = nlohmann::json::parse(checkCommand({"sfdisk", "--json", raw.string()}));
  std::map<std::string, std::uint64_t> starts;
  for (const auto& p : table.at("partitiontable").at("partitions")) {
    auto node = p.at("node").get<std::string>();
    starts[node.substr(raw.string().size())] = p.at("start").get<std::uint64_t>() * 512;
  }
  writeLuks1Header(raw, starts.at("2"), uuid2);
  writeLuks1Header(raw, starts.at("3"), uuid3);
  // The test must exercise blkid's view, not just our bytes.
  for (auto [part, uuid] : {std::pair{"2", uuid2}, std::pair{"3", uuid3}}) {
    auto seen = checkCommand(
        {"blkid", "-p", "-o", "export", "-O", std::to_string(starts.at(part)), raw.string()});
    EXPECT_NE(seen.find("TYPE=crypto_LUKS"), std::string::npos) << seen;
    EXPECT_NE(seen.find("UUID=" + uuid), std::string::npos) << seen;
  }
  checkCommand({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.string(), qcow.string()});
  fs::remove(raw);
  return qcow;
}

std::string randomSuffix() {
  std::random_device rd;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%03x", rd() & 0xfff);
  return buf;
}

}  // namespace

TEST(BuildIsolation, HostileDefinitionAndBaseReachNothingOfTheHost) {
  fixtureBase();
  TestArea area("isolation");

  // What a build agent holds on the host, laid out as in its config (key: and state_dir:), with
  // contents the probes would print if they could read them.
  const auto etc = area.root() / "etc/imgpipe";
  const auto key = etc / "keys/build-1.key";
  const auto state = area.root() / "var/lib/imgpipe";
  const auto outside = area.root() / "outside";
  fs::create_directories(key.parent_path());
  fs::create_directories(state / "artifacts");
  fs::create_directories(outside);
  const std::string secret = "SECRET-" + randomSuffix() + randomSuffix();
  writeFileAtomic(key, secret + "\n");
  ::chmod(key.c_str(), 0600);
  writeFileAtomic(etc / "agent-build.yaml", "name: build-1\nkey: " + key.string() + "\n");
  writeFileAtomic(state / "artifacts/index", "state of the agent\n");

  // "../" x 10 climbs from <root>/dev/disk/by-uuid to the host's / on the old private /dev.
  const std::string hostTmpName = "ip" + randomSuffix();
  std::string deep;
  for (int i = 0; i < 10; ++i)
    deep += "../";
  deep += "tmp/" + hostTmpName;
  const fs::path hostTmp = fs::path("/tmp") / hostTmpName;
  ASSERT_FALSE(fs::exists(fs::symlink_status(hostTmp)));
  const bool tmpXBefore = fs::exists(fs::symlink_status("/tmp/x"));
  const auto base = hostileBase(area, "../../tmp/x", deep);

  const auto watched = snapshot(area.root() / "etc");
  const auto watchedState = snapshot(area.root() / "var");
  const auto loopsBefore = boundLoops();
  const auto hostname = readFile("/proc/sys/kernel/hostname");
  const auto corePattern = readFile("/proc/sys/kernel/core_pattern");

  const std::string definition = "name: imgpipe-test-hostile\nbase:\n  path: " + base.string() +
                                 R"(
disk: {compression: zstd}
network: none
validation: {require_qemu_guest_agent: false}
packages: {install: [tree]}
scripts:
  - name: probe
    env:
      KEY: )" + key.string() + R"(
      ETC: )" + etc.string() + R"(
      STATE: )" + state.string() +
                                 R"(
      OUTSIDE: )" + outside.string() +
                                 R"SCRIPT(
    run: |
      #!/bin/bash
      # One line per attempt: "PROBE <name>: ESCAPED|refused: <what it said>".
      probe() {
        local name=$1; shift
        local out rc
        out=$("$@" 2>&1 </dev/null); rc=$?
        out=$(printf '%s' "$out" | head -c 300 | tr '\n' ' ')
        if [ "$rc" = 0 ]; then echo "PROBE $name: ESCAPED: $out"; else echo "PROBE $name: refused: $out"; fi
      }
      mkdir -p /mnt/probe
      probe mount_tmpfs mount -t tmpfs imgpipe-probe /mnt/probe
      probe mount_bind mount --bind / /mnt/probe
      probe mount_disk sh -c 'mount -o ro "$(ls /dev/loop*p1 | head -n1)" /mnt/probe'
      probe mknod_block mknod /tmp/imgpipe-probe-sda b 8 0
      probe mknod_char mknod /tmp/imgpipe-probe-mem c 1 1
      probe finit_module perl -e 'open(F, "<", "/etc/hostname") or die "open: $!\n"; my $args = ""; syscall(313, fileno(F), $args, 0) == 0 or die "finit_module: $!\n"'
      probe init_module perl -e 'my $m = "\0" x 64; my $args = ""; syscall(175, $m, 64, $args) == 0 or die "init_module: $!\n"'
      probe modprobe modprobe dummy
      probe key_by_path cat "$KEY"
      probe key_by_proc1 cat "/proc/1/root$KEY"
      probe key_by_any_proc sh -c 'for p in /proc/[0-9]*; do cat "$p/root$KEY" 2>/dev/null && exit 0; done; echo "no process root shows it"; exit 1'
      probe config_by_proc1 cat "/proc/1/root$ETC/agent-build.yaml"
      probe state_by_path ls "$STATE"
      probe state_by_proc1 ls "/proc/1/root$STATE"
      probe key_by_chroot_escape perl -e 'mkdir "/tmp/imgpipe-esc"; chroot "/tmp/imgpipe-esc" or die "chroot: $!\n"; chdir ".." for 1..64; chroot "." or die "chroot .: $!\n"; open(F, "<", $ENV{KEY}) or die "open key: $!\n"; print <F>'
      probe key_by_userns unshare -Urm sh -c 'cat "/proc/1/root$KEY"'
      probe write_by_proc1 sh -c 'echo pwned > "/proc/1/root$OUTSIDE/pwned"'
      probe write_proc_sys sh -c 'cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname'
      probe write_core_pattern sh -c 'cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern'
      probe write_sysfs sh -c 'f=/sys/block/$(ls /dev | grep -m1 "^loop[0-9]*$")/queue/read_ahead_kb; cat $f > $f'
      probe host_block_devices sh -c 'for d in /dev/* /dev/*/*; do [ -b "$d" ] && [ ! -L "$d" ] && case "${d##*/}" in loop*) ;; *) echo "$d"; exit 0;; esac; done; echo "only the build disk"; exit 1'
      probe dev_links_outside ls -d /dev/tmp /dev/disk/tmp /tmp/x
      probe network bash -c 'exec 3<>/dev/tcp/deb.debian.org/80'
      probe other_interfaces sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | grep -v "^lo$" && exit 0; echo "only lo"; exit 1'
      grep -E '^Cap(Bnd|Eff)' /proc/self/status
      echo "INFO by-uuid: $(ls /dev/disk/by-uuid | tr '\n' ' ')"
      # The last attempt's failure fails the build.
      cat "/proc/1/root$KEY"
  - name: never
    run: "touch /never"
)SCRIPT";

  BuildTaskRunner runner(area.config(),
                         [](const BuildOutput&, const OutputFile&) -> agent::ArtifactInfo {
                           throw std::logic_error("published a build that should have failed");
                         });
  RecordingReporter reporter;
  runner.run(buildTask("job-hostile", definition), reporter, {});

  ASSERT_TRUE(reporter.failure()) << "the hostile build did not fail";
  const auto f = *reporter.failure();
  EXPECT_EQ(f.step, "scripts");
  EXPECT_EQ(f.message, "command failed: script 'probe' (exit code 1)");
  EXPECT_FALSE(reporter.result());

  std::map<std::string, std::string> probes;
  std::string all;
  for (const auto& l : f.outputTail) {
    all += l + "\n";
    if (l.starts_with("PROBE ")) {
      auto colon = l.find(':');
      probes[l.substr(6, colon - 6)] = l.substr(colon + 2);
    }
  }
  std::printf("%s", all.c_str());
  // Each attempt failed, and for the reason that shows the sandbox stopped it (not, say, a
  // missing tool).
  const std::map<std::string, std::string> expected = {
      {"mount_tmpfs", "permission denied"},
      {"mount_bind", "permission denied"},
      {"mount_disk", "permission denied"},
      {"mknod_block", "Operation not permitted"},
      {"mknod_char", "Operation not permitted"},
      // EPERM without CAP_SYS_MODULE; ENOSYS on kernels without module support (this machine's,
      // even with every capability): the capability sets below are what proves the point there.
      {"finit_module", "finit_module: "},
      {"init_module", "init_module: "},
      {"modprobe", ""},
      {"key_by_path", "No such file or directory"},
      {"key_by_proc1", "No such file or directory"},
      {"key_by_any_proc", "no process root shows it"},
      {"config_by_proc1", "No such file or directory"},
      {"state_by_path", "No such file or directory"},
      {"state_by_proc1", "No such file or directory"},
      {"key_by_chroot_escape", "open key: No such file or directory"},
      {"key_by_userns", ""},
      {"write_by_proc1", "cannot create"},
      {"write_proc_sys", "Read-only file system"},
      {"write_core_pattern", "Read-only file system"},
      {"write_sysfs", "Read-only file system"},
      {"host_block_devices", "only the build disk"},
      {"dev_links_outside", "No such file or directory"},
      {"network", ""},
      {"other_interfaces", "only lo"},
  };
  for (const auto& [name, why] : expected) {
    auto it = probes.find(name);
    if (it == probes.end()) {
      ADD_FAILURE() << "probe " << name << " printed nothing";
      continue;
    }
    EXPECT_TRUE(it->second.starts_with("refused")) << name << ": " << it->second;
    EXPECT_NE(it->second.find(why), std::string::npos) << name << ": " << it->second;
    EXPECT_EQ(it->second.find(secret), std::string::npos) << name << " printed the secret";
  }
  EXPECT_EQ(all.find(secret), std::string::npos) << "the secret reached the build's output";
  // The capability sets the script ran with.
  for (const char* set : {"CapBnd", "CapEff"}) {
    auto at = all.find(std::string(set) + ":\t");
    ASSERT_NE(at, std::string::npos) << set << " not printed";
    const auto mask = std::stoull(all.substr(at + std::strlen(set) + 2, 16), nullptr, 16);
    for (auto [name, bit] : {std::pair{"CAP_SYS_ADMIN", 21}, std::pair{"CAP_SYS_MODULE", 16},
                             std::pair{"CAP_SYS_RAWIO", 17}, std::pair{"CAP_MKNOD", 27},
                             std::pair{"CAP_SYS_PTRACE", 19}, std::pair{"CAP_SYS_BOOT", 22},
                             std::pair{"CAP_NET_ADMIN", 12}, std::pair{"CAP_DAC_READ_SEARCH", 2}})
      EXPECT_EQ(mask & (1ull << bit), 0u) << set << " holds " << name;
    EXPECT_NE(mask & (1ull << 0), 0u) << set << " lacks CAP_CHOWN (dpkg needs it)";
  }

  // The base's UUIDs were refused by name at the mount step; the build went on.
  std::string mountWarnings;
  for (const auto& l : reporter.logs())
    if (l.step == "mount" && l.level == agent::LogLevel::warn) mountWarnings += l.message + "\n";
  EXPECT_NE(mountWarnings.find("UUID: '../../tmp/x' is not a valid filesystem UUID"),
            std::string::npos)
      << mountWarnings;
  EXPECT_NE(mountWarnings.find("UUID: '" + deep + "' is not a valid filesystem UUID"),
            std::string::npos)
      << mountWarnings;
  EXPECT_NE(reporter.stepsLogged().find("packages"), std::string::npos)
      << "network: none still installs packages (apt downloads, dpkg offline): "
      << reporter.stepsLogged();

  // Nothing on the host changed.
  EXPECT_EQ(snapshot(area.root() / "etc"), watched);
  EXPECT_EQ(snapshot(area.root() / "var"), watchedState);
  EXPECT_TRUE(fs::is_empty(outside)) << "a file was written outside the image";
  EXPECT_FALSE(fs::exists(fs::symlink_status(hostTmp))) << hostTmp << " was created";
  EXPECT_EQ(fs::exists(fs::symlink_status("/tmp/x")), tmpXBefore);
  EXPECT_EQ(readFile("/proc/sys/kernel/hostname"), hostname);
  EXPECT_EQ(readFile("/proc/sys/kernel/core_pattern"), corePattern);
  for (const char* ns : {"/proc/1/mountinfo", "/proc/self/mountinfo"})
    EXPECT_TRUE(linesWith(ns, "imgpipe-probe").empty()) << ns << " holds the probe's mount";
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
  for (const auto& loop : boundLoops())
    if (!loopsBefore.contains(loop) && loop.find(area.root().string()) != std::string::npos)
      ADD_FAILURE() << "new loop device: " << loop;
}

namespace {

// What the probes may never reach, laid out on the host for one test.
struct PlacesBait {
  explicit PlacesBait(const TestArea& area)
      : key(area.root() / "etc/imgpipe/keys/build-1.key"),
        state(area.root() / "var/lib/imgpipe"),
        otherJob(area.work() / "job-other/secret"),
        aptStore(area.cache() / "apt/by-sha256"),
        keyName("imgpipe-bait-" + randomSuffix()) {
    fs::create_directories(key.parent_path());
    fs::create_directories(state / "artifacts");
    fs::create_directories(otherJob.parent_path());
    fs::create_directories(aptStore);
    writeFileAtomic(key, secret + "\n");
    ::chmod(key.c_str(), 0600);
    writeFileAtomic(state / "artifacts/index", "state of the agent\n");
    writeFileAtomic(otherJob, secret + "\n");
    ::chmod(otherJob.c_str(), 0600);
    // A key in root's user keyring, as an operator's tooling might leave one.
    hostKey = ::syscall(SYS_add_key, "user", keyName.c_str(), secret.data(), secret.size(),
                        KEY_SPEC_USER_KEYRING);
    EXPECT_GE(hostKey, 0) << "add_key on the host: " << std::strerror(errno);
  }
  ~PlacesBait() {
    if (hostKey >= 0) ::syscall(SYS_keyctl, KEYCTL_UNLINK, hostKey, KEY_SPEC_USER_KEYRING);
  }

  std::map<std::string, std::string> env() const {
    return {{"KEY", key.string()},
            {"STATE", state.string()},
            {"OTHER_JOB", otherJob.string()},
            {"APT_STORE", aptStore.string()},
            {"HOST_PORT", sockets.loopbackPortText()},
            {"HOST_ABSTRACT", sockets.abstractName()},
            {"HOST_KEY", keyName}};
  }
  // The keys the probes could have added to root's user keyring: none but the bait's own.
  bool keyringHoldsOnlyTheBait() const {
    return ::syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", "imgpipe-probe", 0) <
               0 &&
           ::syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", keyName.c_str(),
                     0) == hostKey;
  }

  const std::string secret = "SECRET-" + randomSuffix() + randomSuffix();
  fs::path key, state, otherJob, aptStore;
  std::string keyName;
  HostBait sockets;  // a service on the host's 127.0.0.1, an abstract socket of the host
  long hostKey = -1;
};

std::string indented(const std::string& text, const std::string& pad) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out += pad + line + "\n";
  return out;
}

// "PROBE <place>:<name>: refused: ..." anywhere in `text` (also inside Ansible's JSON output):
// place:name -> "refused..." or "ESCAPED...", the rest up to a quote, backslash or newline (at
// most 400 characters). Read by hand, in one pass: a std::regex iterated over a build log of
// several megabytes is no tool for this (the test process was OOM-killed at 23 GB once).
std::map<std::string, std::string> probeResults(const std::string& text) {
  std::map<std::string, std::string> out;
  const auto word = [&](std::size_t from) {
    std::size_t to = from;
    while (to < text.size() && ((text[to] >= 'a' && text[to] <= 'z') || text[to] == '_'))
      ++to;
    return to;
  };
  for (std::size_t at = text.find("PROBE "); at != std::string::npos;
       at = text.find("PROBE ", at + 1)) {
    const std::size_t place = at + 6, colon = word(place);
    if (colon == place || colon >= text.size() || text[colon] != ':') continue;
    const std::size_t nameEnd = word(colon + 1);
    if (nameEnd == colon + 1 || text.compare(nameEnd, 2, ": ") != 0) continue;
    const std::size_t verdict = nameEnd + 2;
    if (text.compare(verdict, 7, "refused") != 0 && text.compare(verdict, 7, "ESCAPED") != 0)
      continue;
    std::size_t end = std::min(text.find_first_of("\"\\\n", verdict + 7), verdict + 7 + 400);
    end = std::min(end, text.size());
    out[text.substr(place, nameEnd - place)] = text.substr(verdict, end - verdict);
  }
  return out;
}

}  // namespace

// Issue 23: the same probes from every place a definition's code runs on the build host — an
// image script, a package's maintainer script (a .deb the script builds and dpkg installs, its
// postinst run by dpkg), and the Ansible controller (`delegate_to: localhost`, `local_action`,
// `lookup('pipe')`, a `hosts: localhost` play with `connection: local`) — each refused, the host
// unchanged: core_pattern, root's keyring, the agent's state, the apt store.
TEST(BuildIsolation, EveryPlaceADefinitionsCodeRunsIsRefusedTheSameProbes) {
  fixtureBase();
  TestArea area("isolation-places");
  // This build's agent gets an apt store of its own (the area's cache shares the machine's by
  // default): "unchanged" must mean unchanged by this build, while other tests running at the
  // same time add to the shared one. The probe build installs no package, so it costs nothing.
  fs::remove(area.cache() / "apt");
  PlacesBait bait(area);
  const auto probes = readFile(sourceDir() / "tests/build/support/isolation-probes.sh");
  const auto corePattern = readFile("/proc/sys/kernel/core_pattern");
  const auto watchedState = snapshot(bait.state);
  const auto watchedStore = snapshot(bait.aptStore.parent_path());

  std::string env;
  for (const auto& [k, v] : bait.env())
    env += "      " + k + ": \"" + v + "\"\n";
  std::string vars, taskEnv, inline_;
  for (const auto& [k, v] : bait.env()) {
    vars += "    " + k + ": \"" + v + "\"\n";
    taskEnv += "        " + k + ": \"{{ " + k + " }}\"\n";
    inline_ += k + "={{ " + k + " }} ";
  }
  const std::string definition =
      "name: imgpipe-test-places\nbase:\n  path: " + fixtureBase().file.string() + R"(
disk: {compression: zstd}
network: host
validation: {require_qemu_guest_agent: false}
scripts:
  - name: probe
    env:
)" + env +
      R"(    run: |
      #!/bin/bash
      set -e
      cat > /usr/local/sbin/imgpipe-probes <<'PROBES'
)" + indented(probes, "      ") +
      R"(      PROBES
      chmod 755 /usr/local/sbin/imgpipe-probes
      /usr/local/sbin/imgpipe-probes script
      # A package whose maintainer script runs them, installed by dpkg as apt would.
      mkdir -p /tmp/pkg/DEBIAN
      printf 'Package: imgpipe-probe\nVersion: 1\nArchitecture: all\nMaintainer: imgpipe <t@localhost>\nDescription: probes\n' > /tmp/pkg/DEBIAN/control
      printf '#!/bin/sh\nexec /usr/local/sbin/imgpipe-probes postinst\n' > /tmp/pkg/DEBIAN/postinst
      chmod 755 /tmp/pkg/DEBIAN/postinst
      dpkg-deb -b /tmp/pkg /tmp/imgpipe-probe.deb >/dev/null
      dpkg -i /tmp/imgpipe-probe.deb
ansible:
  playbook: playbook/probe.yml
  extra_vars:
)" + vars;
  const std::string playbook = R"(- hosts: default
  gather_facts: false
  tasks:
    - name: delegate_to localhost
      ansible.builtin.command: bash {{ playbook_dir }}/probes.sh delegate_to
      delegate_to: localhost
      environment:
)" + taskEnv + R"(      register: delegated
    - ansible.builtin.debug: {var: delegated.stdout_lines}
    - name: local_action
      local_action:
        module: ansible.builtin.command
        cmd: bash {{ playbook_dir }}/probes.sh local_action
      environment:
)" + taskEnv + R"(      register: local
    - ansible.builtin.debug: {var: local.stdout_lines}
    - name: lookup pipe
      ansible.builtin.debug:
        msg: "{{ lookup('pipe', 'env )" +
                               inline_ + R"(bash ' ~ playbook_dir ~ '/probes.sh lookup') }}"
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: connection local
      ansible.builtin.command: bash {{ playbook_dir }}/probes.sh connection_local
      environment:
)" + taskEnv + R"(      register: conn
    - ansible.builtin.debug: {var: conn.stdout_lines}
    - ansible.builtin.fail: {msg: "probes done"}
)";

  // The probes' output is command output: it goes to the build log file, kept with the work dir.
  auto config = area.config();
  config.keepFailedWorkDir = true;
  BuildTaskRunner runner(config, [](const BuildOutput&, const OutputFile&) -> agent::ArtifactInfo {
    throw std::logic_error("published a build that should have failed");
  });
  RecordingReporter reporter;
  runner.run(buildTask("job-places", definition, "def.yaml",
                       {{"playbook/probe.yml", playbook}, {"playbook/probes.sh", probes}}),
             reporter, {});
  ASSERT_TRUE(reporter.failure()) << "the probe build did not fail at its last task";
  EXPECT_EQ(reporter.failure()->step, "ansible") << reporter.failure()->message;
  EXPECT_NE(reporter.failure()->message.find("probes done"), std::string::npos)
      << reporter.failure()->message;

  std::string all;
  for (const auto& e : fs::directory_iterator(area.work()))
    if (e.path().filename().string().starts_with("job-places-")) {
      const auto size = fs::file_size(e.path() / "build.log");
      std::printf("the probe build's log: %ju bytes\n", static_cast<std::uintmax_t>(size));
      ASSERT_LT(size, 256u << 20) << "the probe build's log is " << size << " bytes";
      all += readFile(e.path() / "build.log");
      fs::remove_all(e.path());
    }
  ASSERT_FALSE(all.empty()) << "no build log kept";
  const auto results = probeResults(all);
  const std::vector<std::string> places = {"script",       "postinst", "delegate_to",
                                           "local_action", "lookup",   "connection_local"};
  const std::vector<std::string> names = {
      "write_core_pattern", "write_proc_sys", "mount_proc",  "mknod",           "finit_module",
      "keyring_read",       "keyring_search", "keyring_add", "userns",          "userns_map",
      "agent_key",          "agent_state",    "other_job",   "apt_store_write", "host_loopback",
      "host_gateway",       "host_abstract"};
  // Why each is refused, where it is the same everywhere: the read-only /proc/sys, the filter.
  const std::map<std::string, std::string> why = {
      {"write_core_pattern", "Read-only file system"}, {"keyring_read", "Operation not permitted"},
      {"keyring_search", "Operation not permitted"},   {"keyring_add", "Operation not permitted"},
      {"userns", "Operation not permitted"},           {"agent_key", "No such file or directory"},
      {"other_job", "No such file or directory"}};
  for (const auto& place : places)
    for (const auto& name : names) {
      const auto it = results.find(place + ":" + name);
      if (it == results.end()) {
        ADD_FAILURE() << place << ":" << name << " printed nothing";
        continue;
      }
      EXPECT_TRUE(it->second.starts_with("refused")) << place << ":" << name << ": " << it->second;
      if (auto w = why.find(name); w != why.end()) {
        EXPECT_NE(it->second.find(w->second), std::string::npos)
            << place << ":" << name << ": " << it->second;
      }
    }
  EXPECT_EQ(all.find(bait.secret), std::string::npos) << "the secret reached the build's output";
  if (HasFailure()) std::printf("%s", all.c_str());

  // The host is as it was.
  EXPECT_EQ(readFile("/proc/sys/kernel/core_pattern"), corePattern);
  EXPECT_TRUE(bait.keyringHoldsOnlyTheBait());
  EXPECT_EQ(snapshot(bait.state), watchedState);
  EXPECT_EQ(snapshot(bait.aptStore.parent_path()), watchedStore);
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
}

// Issue 23's apt-cache poisoning, reproduced as it was found: a hostile base carries an apt hook
// (DPkg::Pre-Invoke, run inside the sandbox while the build's archive directory is mounted at
// /var/cache/apt/archives) that plants a valid hello .deb of the genuine one's size, named as apt
// names the genuine one. When the archive directory was the shared cache, the next job's apt took
// it as downloaded ("Need to get 0 B") and installed it. The next job here, on a clean base,
// installs hello: its /usr/bin/hello is the genuine one, compared with the genuine package's by
// digest.
TEST(BuildIsolation, AHostileBasesAptHookCannotPutAPackageIntoAnotherJobsImage) {
  fixtureBase();
  TestArea area("apt-poisoning");
  const fs::path hostile = area.root() / "hostile-apt-hook.qcow2";
  checkCommand({"qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", fixtureBase().file.string(),
                hostile.string()});
  {
    WritableImage img(hostile, area.root() / "edit");
    fs::create_directories(img.root() / "usr/local/sbin");
    std::ofstream(img.root() / "etc/apt/apt.conf.d/99imgpipe-plant")
        << "DPkg::Pre-Invoke {\"/usr/local/sbin/imgpipe-plant\";};\n";
    std::ofstream(img.root() / "usr/local/sbin/imgpipe-plant") << R"(#!/bin/sh
# hello's version and size as the index names them; a valid .deb of that size with our own
# /usr/bin/hello, padded by an ar member dpkg skips (its name starts with '_').
set -e
stanza=$(cat /var/lib/apt/lists/*_Packages | awk -v RS= '/^Package: hello\n/ {print; exit}')
ver=$(printf '%s\n' "$stanza" | sed -n 's/^Version: //p')
size=$(printf '%s\n' "$stanza" | sed -n 's/^Size: //p')
d=$(mktemp -d)
mkdir -p "$d/DEBIAN" "$d/usr/bin"
printf 'Package: hello\nVersion: %s\nArchitecture: amd64\nMaintainer: x <x@localhost>\nDescription: planted\n' "$ver" > "$d/DEBIAN/control"
printf '#!/bin/sh\necho PLANTED-HELLO\n' > "$d/usr/bin/hello"
chmod 755 "$d/usr/bin/hello"
dpkg-deb -Zgzip -b "$d" /tmp/fake.deb >/dev/null
n=$((size - $(stat -c %s /tmp/fake.deb) - 60))
printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' _pad 0 0 0 100644 "$n" >> /tmp/fake.deb
head -c "$n" /dev/zero >> /tmp/fake.deb
target="/var/cache/apt/archives/hello_${ver}_amd64.deb"
# Where the agent seeded the genuine file from its store, it is not ours to remove.
if err=$(rm -f "$target" 2>&1) && cp /tmp/fake.deb "$target"; then
  echo "PLANTED hello $ver $(stat -c %s "$target") of $size bytes"
else
  echo "PLANT REFUSED hello $ver: $err"
fi
)";
    fs::permissions(img.root() / "usr/local/sbin/imgpipe-plant", fs::perms(0755));
  }

  auto build = [&](const std::string& name, const fs::path& base, const std::string& package) {
    auto def = area.writeDefinition(
        name + ".yaml",
        "name: " + name + "\nbase:\n  path: " + base.string() +
            "\ndisk: {compression: zstd}\nvalidation: {require_qemu_guest_agent: false}\n"
            "network: host\npackages:\n  install: [" +
            package + "]\n");
    return runAgent(area, "build", def, area.out() / name, std::chrono::minutes(20), name);
  };
  // Job 1, on the hostile base: installing anything runs dpkg, and so the hook.
  auto one = build("job-1", hostile, "sl");
  ASSERT_EQ(one.exitCode, 0) << one.log;
  std::string oneLog;  // command output goes to the build log file beside the image
  for (const auto& e : fs::directory_iterator(area.out() / "job-1"))
    if (e.path().string().ends_with(".log")) oneLog += readFile(e.path());
  // Two outcomes, both of the model: the store held no hello yet (a clean machine), and the
  // fake lands in job 1's own archive directory; or the agent had seeded the genuine one there
  // from its store, a file of an id no sandbox maps, which the hook cannot remove.
  std::smatch planted;
  std::string version;
  if (std::regex_search(oneLog, planted,
                        std::regex(R"(PLANTED hello (\S+) (\d+) of (\d+) bytes)"))) {
    EXPECT_EQ(planted[2], planted[3]) << "the planted .deb is not the genuine one's size";
    version = planted[1];
  } else if (std::regex_search(oneLog, planted, std::regex(R"(PLANT REFUSED hello (\S+): .*)"))) {
    EXPECT_NE(planted[0].str().find("Value too large for defined data type"), std::string::npos)
        << planted[0];
    version = planted[1];
  } else {
    FAIL() << "the hook did not run, so this test shows nothing:\n" << oneLog;
  }
  std::printf("job 1's hook: %s\n", planted[0].str().c_str());

  // Job 2, on the clean base, sharing the agent's apt store with job 1.
  auto two = build("job-2", fixtureBase().file, "hello");
  ASSERT_EQ(two.exitCode, 0) << two.log;
  std::string installed;
  {
    MountedImage img(area.out() / "job-2" / two.manifest["image"]["file"].get<std::string>(),
                     area.root() / "job-2-image");
    installed = readFile(img.root() / "usr/bin/hello");
  }
  EXPECT_EQ(installed.find("PLANTED-HELLO"), std::string::npos) << "job 1's package is in job 2";
  EXPECT_TRUE(
      installed.starts_with("\x7f"
                            "ELF"));

  // The genuine package: the store's file of hello at that version, whose name is its digest.
  std::string genuine;
  for (const auto& e : fs::directory_iterator(area.cache() / "apt" / "by-sha256")) {
    const auto fields = checkCommand({"dpkg-deb", "-f", e.path().string(), "Package", "Version"});
    if (fields != "Package: hello\nVersion: " + version + "\n") continue;
    EXPECT_EQ(e.path().stem().string(), toHex(hashFile(e.path()).sha256));
    genuine = checkCommand({"sh", "-c",
                            "dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./usr/bin/hello | sha256sum",
                            "sh", e.path().string()});
  }
  ASSERT_FALSE(genuine.empty()) << "no genuine hello " << version << " in the apt store";
  EXPECT_EQ(genuine.substr(0, 64), toHex(sha256(installed)));
  for (const auto& l : leftoversUnder(area.root()))
    ADD_FAILURE() << "left behind: " << l;
}
