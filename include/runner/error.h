// The one error type that crosses the library boundary: a message meant for
// the user and the exit code that goes with it. main() turns it into one line
// on stderr; nothing deeper in runner calls exit().
#pragma once

#include <stdexcept>
#include <string>

namespace runner {

// Exit codes are part of runner's contract with cron scripts; the README lists them.
enum class ExitCode : int {
  kDone = 0,        // every cluster is done
  kSomeFailed = 1,  // the run finished, some clusters are not done
  kUsage = 2,       // bad command line or setup; nothing was run
  kLogLost = 3,     // the DB could not be written, or was deleted, moved or replaced
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ExitCode code = ExitCode::kUsage)
      : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

}  // namespace runner
