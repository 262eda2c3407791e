#pragma once

namespace imgpipe::build {

// The standalone modes of imgpipe-agent-build, for operators debugging a definition, the tests
// and the benchmark — no coordinator involved:
//   imgpipe-agent-build validate DEF.yaml [--json]
//   imgpipe-agent-build build DEF.yaml --work-dir DIR --out DIR [--cache-dir DIR] [--config FILE]
//                             [--keep-work-dir] [--job-id ID] [--json]
//   imgpipe-agent-build prepare-base DEF.yaml --work-dir DIR [--cache-dir DIR] [--config FILE]
//     fetches or makes the definition's base into the cache and prints its path and digest
//   imgpipe-agent-build boot-test IMAGE DEF.yaml [--method M] [--firmware F] [--work-dir DIR]
//                                 [--config FILE] [--json]
//     the definition's acceptance boot on an existing image (never modified)
// Exit codes: 0 ok, 1 build (or boot test) failed, 2 usage or invalid definition, 3 stopped
// (SIGTERM/SIGINT).
int validateCommand(int argc, char** argv);
int buildCommand(int argc, char** argv);
int prepareBaseCommand(int argc, char** argv);
int bootTestCommand(int argc, char** argv);

}  // namespace imgpipe::build
