#pragma once

// A definition (and every layer of one) is YAML without anchors and aliases. An alias is a
// reference: a 480-byte document of nested aliases stands for billions of nodes, and every walk
// of it (the layered merge, the parser, the JSON form) pays for all of them — one held the
// coordinator's only thread for 129 s. Nothing a definition says needs one (layers are how a
// definition shares what another says), so the text is refused before any node is built, by a
// streaming pass that never expands anything.

#include <string>
#include <string_view>

namespace imgpipe::definition {

// Throws YamlError "<name>:<line>:<col>: YAML anchors and aliases are not allowed in an image
// definition ..." at the first anchor or alias; a syntax error is left to the loader that follows.
void refuseAnchorsAndAliases(std::string_view text, const std::string& name);

}  // namespace imgpipe::definition
