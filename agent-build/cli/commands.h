#pragma once

namespace imgpipe::build {

// The standalone modes of imgpipe-agent-build, for operators debugging a definition, the tests
// and the benchmark — no coordinator involved:
//   imgpipe-agent-build validate DEF.yaml [--json]
//   imgpipe-agent-build build DEF.yaml --work-dir DIR --out DIR [--cache-dir DIR] [--config FILE]
//                             [--keep-work-dir] [--job-id ID] [--json]
//   imgpipe-agent-build prepare-base DEF.yaml --work-dir DIR [--cache-dir DIR] [--config FILE]
//     fetches or makes the definition's base into the cache and prints its path and digest
// Exit codes: 0 ok, 1 build failed, 2 usage or invalid definition, 3 stopped (SIGTERM/SIGINT).
int validateCommand(int argc, char** argv);
int buildCommand(int argc, char** argv);
int prepareBaseCommand(int argc, char** argv);

}  // namespace imgpipe::build
