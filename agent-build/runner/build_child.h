#pragma once

namespace imgpipe::build {

// `imgpipe-agent-build run-build`: the process one build runs in. Reads its JobSpec (JSON) from
// stdin, enters a private mount namespace and a new PID namespace (so that neither a mount nor a
// helper process can outlive it — even after SIGKILL), runs the pipeline and reports events on
// stdout (see events.h). SIGTERM stops the build: the current command is terminated and every
// resource unwinds. Exit codes: 0 built, 1 failed, 3 stopped.
int runBuildChild();

}  // namespace imgpipe::build
