#pragma once

namespace imgpipe::coord {

// The whole coordinator daemon. Exit codes: 0 stopped by a signal, 1 runtime failure,
// 2 usage or configuration error.
int coordinatorMain(int argc, char** argv);

}  // namespace imgpipe::coord
