#pragma once

#include <string>
#include <vector>

#include "agent-build/util/image_fs.h"

namespace imgpipe::build {

// The kernel versions in an image's /boot (`vmlinuz-<version>`), newest first by version order
// (6.1.0-10 before 6.1.0-9, which a plain string comparison gets wrong). The one place that
// decides which kernel is "the image's kernel": validation, the KVM probe and the live ISO.
std::vector<std::string> kernelVersions(const ImageFs& img);

}  // namespace imgpipe::build
