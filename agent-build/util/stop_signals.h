#pragma once

#include <stop_token>

namespace imgpipe::build {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it before starting any other,
// so that every thread inherits the mask) and starts a detached thread that turns each of them
// into a stop request on the returned source: a SIGTERM then unwinds a build (unmounting,
// detaching) instead of killing the process under it.
std::stop_source stopOnTerminationSignals();

}  // namespace imgpipe::build
