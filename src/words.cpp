#include "runner/words.h"

#include <fmt/format.h>

#include <csignal>
#include <ctime>

#include "runner/units.h"

namespace runner {

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    case SIGXCPU:
      return "SIGXCPU";
    case SIGXFSZ:
      return "SIGXFSZ";
    case SIGSYS:
      return "SIGSYS";
    default:
      return "signal " + std::to_string(sig);
  }
}

std::string describe_ending(std::optional<int> exit_code, std::optional<int> signal) {
  if (signal) return "killed by " + signal_name(*signal);
  return "exit code " + std::to_string(exit_code.value_or(-1));
}

std::string describe_failure(const FailedCluster& f) {
  if (f.state == AttemptState::kOom) {
    auto text = f.mem_limit_kib
                    ? fmt::format("out of memory at the {} cap (peak {})",
                                  format_size_kib(*f.mem_limit_kib), format_size_kib(f.peak_kib))
                    : fmt::format("out of memory (peak {})", format_size_kib(f.peak_kib));
    if (!f.note.empty()) text += "; " + f.note;
    return text;
  }
  auto text = describe_ending(f.exit_code, f.signal);
  if (f.state == AttemptState::kTimeout) text = "timed out, " + text;
  return text;
}

std::string local_time(double epoch_seconds) {
  auto t = static_cast<std::time_t>(epoch_seconds);
  std::tm local{};
  char text[32] = "";
  if (::localtime_r(&t, &local)) std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string describe_holder(const Holder& holder) {
  return fmt::format("pid {} on {} since {}", holder.process.pid, printable(holder.process.host),
                     local_time(holder.since));
}

}  // namespace runner
