#pragma once

#include <string>

#include "common/error.h"

namespace imgpipe::test {

// The message of the Error `f` throws, or "(no error)": a test compares what it names, and a
// call that does not throw fails that comparison rather than matching an empty string.
template <class F>
std::string errorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace imgpipe::test
