#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "agent-build/config/build_config.h"
#include "agent-build/runner/build_log.h"
#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// The cache key of a debootstrap base: a digest of everything that decides its content (the
// keyring by its content: `keyringSha256`, empty for debootstrap's default).
std::string debootstrapRecipeKey(const definition::DebootstrapBase& spec,
                                 const std::string& keyringSha256);

// Makes a cloud-like base image from a Debian-style mirror, without any cloud image:
// debootstrap, then the tree made bootable (bootable_tree.h) and written onto a disk
// (tree_disk.h) -> compressed qcow2 at `output`.
// debootstrap runs --foreign on the host (download and unpack only); its second stage and apt
// run in the sandbox.
// Runs inside the build child (private mount and PID namespaces). `scratch` is removed by the
// caller.
void makeDebootstrapBase(const definition::DebootstrapBase& spec,
                         const std::filesystem::path& output, const std::filesystem::path& scratch,
                         const BuildConfig& config, const ExecContext& exec, BuildLog& log);

}  // namespace imgpipe::build
