#pragma once

// Bases that qemu-img cannot read as they come: a compressed raw disk (Fedora's raw.xz, a
// raw.zst, a .gz) or a Vagrant box (a tar, often gzipped, holding box.img for the libvirt provider
// or a .vmdk for virtualbox). Debian's xz, zstd, gzip and tar do the work; the output is streamed
// through `cp --sparse=always`, so a 5 GiB raw disk holding 1 GiB of data takes 1 GiB. Only a
// member's bytes are taken from a box (tar -xO): no name from the archive is ever created here.

#include <filesystem>
#include <string>

#include "agent-build/util/exec.h"
#include "definition/image_definition.h"

namespace imgpipe::build {

// Unpacks `packed` into `target`, which must not exist and is removed again when anything fails.
// Returns what was taken ("xz", "box.img of a libvirt box"). Throws Error naming the base.
std::string unpackBase(const ExecContext& exec, definition::BasePacking packing,
                       const std::filesystem::path& packed, const std::filesystem::path& target);

}  // namespace imgpipe::build
