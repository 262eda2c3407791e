#pragma once

#include <string>
#include <utility>

#include "definition/bundle.h"

namespace imgpipe::coord {

// Checks a submitted image definition and the files it brought (its bundle: paths, limits, every
// file it refers to present) before a job is accepted, and returns its image name and version
// ("" when the version is to be derived). Throws Error (YamlError for the definition) naming the
// file, line and field.
std::pair<std::string, std::string> inspectDefinition(const definition::Bundle& bundle);

}  // namespace imgpipe::coord
