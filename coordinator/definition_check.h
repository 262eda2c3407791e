#pragma once

#include <string>
#include <utility>

namespace imgpipe::coord {

// Checks a submitted image definition before a job is accepted and returns its image name and
// version ("" when the version is to be derived). Throws YamlError naming file, line and field.
std::pair<std::string, std::string> inspectDefinition(const std::string& text,
                                                      const std::string& sourceName);

}  // namespace imgpipe::coord
