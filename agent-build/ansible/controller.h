#pragma once

// Where and how ansible-playbook runs: on the build host (Debian's ansible, not in the image),
// inside a sandbox of its own, because a playbook is code that runs on the controller too
// (lookups, `delegate_to: localhost`, `connection: local`). The controller sees the host's /usr
// read-only, a few files of /etc, the definition's bundle (read-only), the image (read-only, for
// the chroot connection's own checks), its work directory and a private /tmp; no capabilities, no
// network, no other job, no key of the agent. Every module runs in the image through the exec
// socket (exec_broker.h), in the image sandbox, with the definition's network.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agent-build/sandbox/user_namespace.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Paths inside the controller's sandbox.
inline constexpr std::string_view kControllerBundle = "/run/imgpipe/bundle";
inline constexpr std::string_view kControllerImage = "/run/imgpipe/image";
inline constexpr std::string_view kControllerWork = "/run/imgpipe/work";
inline constexpr std::string_view kControllerAgent = "/run/imgpipe/agent";
// In the image: the session's /run tmpfs, so nothing Ansible copies there lands on its disk.
inline constexpr std::string_view kImageRemoteTmp = "/run/imgpipe/ansible";

// The inventory name of the image, as Packer's: playbooks written for it say `hosts: default`.
inline constexpr std::string_view kInventoryHost = "default";

struct ControllerPaths {
  std::filesystem::path helper;     // the agent binary (sandbox-exec, ansible-exec)
  std::filesystem::path bundleDir;  // the definition's bundle, written out
  std::filesystem::path imageRoot;  // the mounted image
  std::filesystem::path workDir;    // this step's directory: inventory, socket, logs
  UidRange ids;                     // build.sandbox.uid_base
};

// The files the step writes into workDir before it starts the controller: the inventory,
// extra vars, the chroot_exe script and the results callback. Path relative to workDir -> text.
std::map<std::string, std::string> controllerFiles(const definition::AnsibleSpec& spec);

// The command (helper sandbox-exec ... -- ansible-playbook ...), in the one containment model
// (sandbox/sandbox.h) with the layout above, and its whole environment.
std::vector<std::string> controllerCommand(const ControllerPaths& paths,
                                           const definition::AnsibleSpec& spec);
std::map<std::string, std::string> controllerEnvironment(const definition::AnsibleSpec& spec);

// Messages name bundle paths, not the sandbox's: "/run/imgpipe/bundle/site.yml" -> "site.yml".
std::string withBundlePaths(std::string text);

}  // namespace imgpipe::build
