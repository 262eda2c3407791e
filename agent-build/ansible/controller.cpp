#include "agent-build/ansible/controller.h"

#include <nlohmann/json.hpp>

#include "agent-build/ansible/results_callback_py.h"
#include "agent-build/sandbox/sandbox.h"
#include "common/subprocess.h"

namespace imgpipe::build {
namespace {

std::string in(std::string_view dir, std::string_view path) {
  return std::string(dir) + "/" + std::string(path);
}

std::string playbookDir(const definition::AnsibleSpec& spec) {
  auto slash = spec.playbook.rfind('/');
  return slash == std::string::npos ? "" : spec.playbook.substr(0, slash);
}

}  // namespace

std::map<std::string, std::string> controllerFiles(const definition::AnsibleSpec& spec) {
  nlohmann::json host = {{"ansible_connection", "community.general.chroot"},
                         {"ansible_host", std::string(kControllerImage)},
                         {"ansible_chroot_exe", in(kControllerWork, "chroot")},
                         {"ansible_python_interpreter", "/usr/bin/python3"},
                         {"ansible_remote_tmp", std::string(kImageRemoteTmp)},
                         // Already root in the image; `su` exists in every image, sudo may not.
                         {"ansible_become_method", "su"}};
  nlohmann::json inventory = {{"all", {{"hosts", {{std::string(kInventoryHost), host}}}}}};
  return {
      // JSON is YAML: ansible reads it with its YAML inventory plugin.
      {"inventory.yml", inventory.dump(2) + "\n"},
      {"extra_vars.json", nlohmann::json(spec.extraVars).dump() + "\n"},
      {"chroot",
       "#!/bin/sh\n# ansible_chroot_exe: every command goes to the build agent, which "
       "runs it in the image sandbox.\nexec " +
           std::string(kControllerAgent) + " ansible-exec " + in(kControllerWork, "exec.sock") +
           " \"$@\"\n"},
      {"callback_plugins/imgpipe_results.py", kResultsCallbackPy},
  };
}

SandboxSpec controllerSandbox(const ControllerPaths& paths) {
  using K = SandboxMount::Kind;
  SandboxSpec spec;
  spec.helper = paths.helper;
  spec.ids = paths.ids;
  // Ansible only reads and writes its own files: it keeps no capability, even inside.
  spec.imageCapabilities = false;
  // The host's programs, read-only; nothing else of its disk.
  spec.mounts = {{K::readOnly, "/usr", "/usr"},
                 {K::symlink, "usr/bin", "/bin"},
                 {K::symlink, "usr/sbin", "/sbin"},
                 {K::symlink, "usr/lib", "/lib"},
                 {K::symlink, "usr/lib64", "/lib64"}};
  // What Python, the dynamic loader and Ansible read from /etc; no key, no config of the agent.
  for (const char* f : {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "python3",
                        "python3.11", "python3.12", "passwd", "group", "nsswitch.conf", "localtime",
                        "mime.types", "ssl/openssl.cnf"})
    spec.mounts.push_back(
        {K::readOnlyIfPresent, std::string("/etc/") + f, std::string("/etc/") + f});
  // The bundle and the image are the definition's own: shown with the sandbox's ids, so that a
  // 0600 file of either reads as it would for root in the image. The work dir is written.
  spec.mounts.insert(spec.mounts.end(),
                     {{K::tmpfs, "", "/tmp"},
                      {K::readOnly, paths.bundleDir.string(), std::string(kControllerBundle), true},
                      {K::readOnly, paths.imageRoot.string(), std::string(kControllerImage), true},
                      {K::writable, paths.workDir.string(), std::string(kControllerWork), true},
                      {K::readOnly, paths.helper.string(), std::string(kControllerAgent)}});
  return spec;
}

std::vector<std::string> controllerCommand(const ControllerPaths& paths,
                                           const definition::AnsibleSpec& spec) {
  auto sandbox = controllerSandbox(paths);
  // A bundled ansible.cfg beside the playbook applies, as where Packer runs it.
  sandbox.chdir = in(kControllerBundle, playbookDir(spec));
  std::vector<std::string> a = {"/usr/bin/ansible-playbook", "-i",
                                in(kControllerWork, "inventory.yml"), "-e",
                                "@" + in(kControllerWork, "extra_vars.json")};
  auto csv = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& t : v)
      s += (s.empty() ? "" : ",") + t;
    return s;
  };
  if (!spec.tags.empty()) a.insert(a.end(), {"--tags", csv(spec.tags)});
  if (!spec.skipTags.empty()) a.insert(a.end(), {"--skip-tags", csv(spec.skipTags)});
  a.push_back(in(kControllerBundle, spec.playbook));
  // No network of its own: everything it runs in the image goes through the exec broker, which
  // gives it the definition's network there.
  return sandboxCommand(sandbox, definition::Network::none, a);
}

std::map<std::string, std::string> controllerEnvironment(const definition::AnsibleSpec& spec) {
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/bin:/usr/sbin"},
      {"HOME", "/tmp"},
      {"LANG", "C.UTF-8"},
      {"LC_ALL", "C.UTF-8"},  // ansible-core refuses a locale that is not UTF-8
      {"TERM", "dumb"},
      {"ANSIBLE_LOCAL_TEMP", "/tmp/ansible-local"},
      {"ANSIBLE_LOG_PATH", in(kControllerWork, "ansible.log")},
      {"ANSIBLE_CALLBACK_PLUGINS", in(kControllerWork, "callback_plugins")},
      {"ANSIBLE_CALLBACKS_ENABLED", "imgpipe_results"},
      {"IMGPIPE_ANSIBLE_RESULTS", in(kControllerWork, "results.jsonl")},
      {"ANSIBLE_NOCOLOR", "1"},
      {"ANSIBLE_FORCE_COLOR", "0"},
      {"ANSIBLE_RETRY_FILES_ENABLED", "False"},
      {"ANSIBLE_HOST_KEY_CHECKING", "False"},
      {"ANSIBLE_DEPRECATION_WARNINGS", "False"},
      {"PYTHONDONTWRITEBYTECODE", "1"},
  };
  std::string roles;
  for (const auto& r : spec.rolesPath)
    roles += (roles.empty() ? "" : ":") + in(kControllerBundle, r);
  if (!roles.empty()) env["ANSIBLE_ROLES_PATH"] = roles;
  return env;
}

std::string withBundlePaths(std::string text) {
  const std::string prefix = std::string(kControllerBundle) + "/";
  for (auto p = text.find(prefix); p != std::string::npos; p = text.find(prefix, p))
    text.erase(p, prefix.size());
  return text;
}

}  // namespace imgpipe::build
