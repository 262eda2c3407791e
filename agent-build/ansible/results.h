#pragma once

// What a playbook run came to, from the results callback's lines (results_callback.py): the
// totals, and each failure as a message that names the task, where it is written and, for what
// cannot work while an image is built (starting a service, rebooting), what to use instead. Such
// a task is a failure even where it reported ok: systemd offline (SYSTEMD_OFFLINE=1, which
// `enabled:` needs) ignores a start and says ok.

#include <string>
#include <string_view>
#include <vector>

namespace imgpipe::build {

struct PlaybookResults {
  int ok = 0, changed = 0, failed = 0, unreachable = 0, skipped = 0, ignored = 0;
  std::vector<std::string> failures;  // one message per failed task, in order
};

// Lines that are not JSON are skipped (a truncated last line of a killed run).
PlaybookResults parsePlaybookResults(std::string_view jsonLines);

// For a task of `action` with `args` (as JSON text of the task's arguments) that cannot work in
// an image being built: why, and what to use instead; empty otherwise.
std::string chrootAdvice(std::string_view action, const std::string& argsJson);

}  // namespace imgpipe::build
