#pragma once

// The one containment model for a definition's code, wherever it runs on the build host: the
// image's commands (package scripts, the definition's scripts, the base's own binaries, what an
// OCI layer brings), the Ansible controller and everything it runs on "localhost". Each is a
// SandboxSpec made into one command line by sandboxCommand(); nothing else starts a definition's
// code. What every sandbox gets, whoever asks for it (docs/security.md, "The containment model"):
//
//  - a user namespace whose 0..65535 are an unprivileged host range (user_namespace.h), with the
//    trees it owns shown through idmapped mounts: root inside is nobody to the host's kernel;
//  - a seccomp filter (seccomp_filter.h): no keyrings, modules, kexec, file handles, BPF, new
//    user namespaces, mounts, clocks;
//  - a session keyring of its own;
//  - its own mount, PID, IPC, UTS and cgroup namespaces, a fresh /dev and /proc, /proc/sys and
//    /sys read-only; a network namespace that is never the host's: only loopback (none), the
//    proxy gate's (proxy) or one whose way out is slirp4netns (host, slirp_gate.h);
//  - a bounding set cut to what dpkg needs (or nothing, for the controller), no_new_privs, no
//    inherited descriptor, a new session, and death with its parent.
//
// It is bubblewrap, started through `<agent> sandbox-exec`, which makes the user namespace, the
// idmapped mounts, the device nodes and the keyring before bwrap runs, and hands bwrap the
// seccomp program. See docs/build-agent.md, "Isolation".

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent-build/sandbox/user_namespace.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Where bubblewrap is expected (Debian's `bubblewrap`).
inline constexpr std::string_view kBwrap = "/usr/bin/bwrap";

// A host device node made visible in the sandbox's /dev under `name` (a bare file name).
struct SandboxDevice {
  std::filesystem::path hostNode;
  std::string name;
};

// A symlink in the sandbox's /dev: `path` relative to /dev ("disk/by-uuid/<uuid>").
struct SandboxLink {
  std::string path;
  std::string target;
};

// One more thing in the sandbox's tree, after its root. Value type.
struct SandboxMount {
  enum class Kind {
    readOnly,           // a host path, read-only
    readOnlyIfPresent,  // the same, skipped when the host has no such path
    writable,           // a host path the sandbox writes (always idmapped: it owns it)
    tmpfs,              // an empty tmpfs
    symlink,            // `source` is the link's target
  };
  Kind kind = Kind::readOnly;
  std::string source;
  std::string target;
  // Shown with the sandbox's own ids (an idmapped mount): files there are the sandbox's to read
  // whatever their mode, as root's are to root. Host trees (/usr, /etc) are not: the sandbox reads
  // them as any user would.
  bool idmapped = false;
};

// What one sandboxed command gets. Value type.
struct SandboxSpec {
  // The image root on the host, bound (idmapped) as /; empty: / is an empty tmpfs and `mounts`
  // lay out the whole tree (the Ansible controller).
  std::filesystem::path root;
  std::vector<SandboxDevice> devices;  // the build's own disk and its partitions
  std::vector<SandboxLink> links;      // /dev/disk/by-uuid, by-label
  std::filesystem::path helper;        // the agent binary (runs `sandbox-exec`)
  // The network namespace a command with network joins: the ProxyGate's (network: proxy) or
  // the SlirpGate's (network: host). Required unless the network is none.
  std::filesystem::path netns;
  std::vector<SandboxMount> mounts;
  UidRange ids;
  // Capabilities the command keeps, inside its user namespace: dpkg's for the image's commands,
  // none for a program that only reads and writes its own files (the controller).
  bool imageCapabilities = true;
  std::string chdir = "/";
};

// The capabilities a command in the image keeps (bounding, permitted, effective, inheritable and
// ambient sets alike), as bwrap names them: what dpkg, apt, useradd and setcap need.
const std::vector<std::string>& sandboxCapabilities();

// The argv that runs `argv` in the sandbox
// (`helper sandbox-exec <its options> -- <bwrap options> -- argv`). Throws Error for a device or
// link name that could leave /dev, or a mount target that is not an absolute path.
std::vector<std::string> sandboxCommand(const SandboxSpec& spec, definition::Network network,
                                        const std::vector<std::string>& argv);

// How a sandboxed command is named in errors and logs: the command in the image, without the
// sandbox's own options ("apt-get -y install tree (in the image sandbox)").
std::string describeSandboxed(const std::vector<std::string>& sandboxArgv);

// Throws Error naming the package to install when bwrap is missing.
void requireBubblewrap();

// `imgpipe-agent-build sandbox-exec [--netns FILE] --userns BASE [--idmap PATH]...
// [--device NODE NAME]... -- BWRAP-ARGS...`: joins the network namespace FILE names
// (network: proxy); in a mount namespace of its own, makes the user namespace of the range at
// BASE, puts an idmapped clone of the Nth PATH at stagedTree(N) and makes each device node NAME,
// owned by the sandbox's root, at stagedDevice(NAME) (bwrap's options name those); joins a new
// session keyring; drops every capability outside sandboxCapabilities() from the bounding set;
// closes inherited descriptors; enters the user namespace as its root and runs bwrap with the
// seccomp program
// (`--seccomp`), returning its exit code once every process of the sandbox is gone (127 when it
// cannot start it).
int sandboxExecMain(int argc, char** argv);

// Where sandbox-exec puts the device node it made for `name`, and the idmapped clone of the
// `index`th `--idmap` tree, in its own mount namespace.
std::string stagedDevice(std::string_view name);
std::string stagedTree(std::size_t index);

}  // namespace imgpipe::build
