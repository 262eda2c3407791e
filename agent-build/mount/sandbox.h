#pragma once

// The sandbox every command inside an image runs in (package scripts, the definition's scripts,
// the base image's own binaries): bubblewrap, started through `<agent> sandbox-exec` so that the
// capability bounding set is cut before bwrap runs. See docs/build-agent.md, "Isolation".

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

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

// What one command in the image gets. Value type.
struct SandboxSpec {
  std::filesystem::path root;          // the image root on the host; becomes /
  std::vector<SandboxDevice> devices;  // the build's own disk and its partitions
  std::vector<SandboxLink> links;      // /dev/disk/by-uuid, by-label
  std::filesystem::path helper;        // the agent binary (runs `sandbox-exec`)
  std::filesystem::path netns;         // network: proxy — the ProxyGate's namespace
};

// The capabilities a command in the image keeps (bounding, permitted, effective, inheritable and
// ambient sets alike), as bwrap names them: what dpkg, apt, useradd and setcap need.
const std::vector<std::string>& sandboxCapabilities();

// The argv that runs `argv` in the sandbox (`helper sandbox-exec <bwrap options> -- argv`).
// Throws Error for a device or link name that could leave /dev.
std::vector<std::string> sandboxCommand(const SandboxSpec& spec, definition::Network network,
                                        const std::vector<std::string>& argv);

// How a sandboxed command is named in errors and logs: the command in the image, without the
// sandbox's own options ("apt-get -y install tree (in the image sandbox)").
std::string describeSandboxed(const std::vector<std::string>& sandboxArgv);

// Throws Error naming the package to install when bwrap is missing.
void requireBubblewrap();

// `imgpipe-agent-build sandbox-exec [--netns FILE] BWRAP-ARGS...`: joins the network namespace
// FILE names (network: proxy), drops every capability outside
// sandboxCapabilities() from the bounding set (keeping the rest inheritable so that bwrap, run as
// root, can still set up its namespaces), closes inherited descriptors, runs bwrap and returns
// its exit code once every process of the sandbox is gone (127 when it cannot start it).
int sandboxExecMain(int argc, char** argv);

}  // namespace imgpipe::build
