#include "runner/words.h"

#include <fmt/format.h>

#include <cmath>
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

std::string describe_log(const FailedCluster& f) {
  return f.log_path.empty() ? "no output" : "log " + f.log_path;
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

std::string utc_time(double epoch_seconds) {
  // Whole milliseconds first, rounded as SQLite rounds them, so that this
  // and the attempts view say the same of one instant: SQLite adds the Unix
  // epoch's Julian day in milliseconds before it rounds, and the double's
  // precision there decides a fraction that falls near half a millisecond.
  constexpr double kEpochJulianMs = 210866760000000.0;
  // NOLINTNEXTLINE(bugprone-incorrect-roundings): SQLite's own rounding, on purpose
  auto julian_ms = static_cast<long long>(epoch_seconds * 1000.0 + kEpochJulianMs + 0.5);
  auto ms_total = julian_ms - static_cast<long long>(kEpochJulianMs);
  auto t = static_cast<std::time_t>(ms_total / 1000);
  auto ms = static_cast<int>(ms_total % 1000);
  std::tm utc{};
  char text[32] = "";
  if (::gmtime_r(&t, &utc)) std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03}Z", text, ms);
}

std::string local_time(double epoch_seconds) {
  auto t = static_cast<std::time_t>(std::floor(epoch_seconds));
  std::tm local{};
  char text[32] = "", offset[8] = "";
  if (!::localtime_r(&t, &local)) return utc_time(epoch_seconds);
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &local);
  // %z gives +0100; ISO 8601's extended form, which the date has, wants +01:00.
  std::strftime(offset, sizeof offset, "%z", &local);
  std::string zone = offset;
  if (zone.size() == 5) zone.insert(3, ":");
  return text + zone;
}

std::string describe_holder(const Holder& holder) {
  return fmt::format("pid {} on {} since {}", holder.process.pid, printable(holder.process.host),
                     local_time(holder.since));
}

namespace {

// What else the run did, as one clause: evictions, kills at the budget, retries.
std::string also_text(const RunSummary& s) {
  std::string text;
  if (s.evicted) text += fmt::format(", {} evicted and rerun to stay within the budget", s.evicted);
  if (s.budget_ooms)
    text += fmt::format(", {} killed by the kernel at the budget and rerun", s.budget_ooms);
  if (s.retried || s.timed_out)
    text += fmt::format(", {} retried, {} timed out", s.retried, s.timed_out);
  return text;
}

}  // namespace

std::string summary_text(const RunSummary& s, const Job& job,
                         const std::vector<FailedCluster>& failed, const std::string& db) {
  auto took = format_duration(s.elapsed);
  if (s.stop_signal) {
    // What is left, in full: those stopped now, those queued to run again,
    // and the rest (never started in this run, or failed).
    auto left = s.clusters > s.done ? s.clusters - s.done : 0;
    auto known = s.interrupted + s.waiting_again;
    auto waiting =
        s.waiting_again ? fmt::format(", {} waiting to run again", s.waiting_again) : std::string();
    auto rest =
        left > known ? fmt::format(", {} not started or failed", left - known) : std::string();
    return fmt::format(
        "job {}: stopped by {} after {}: {}/{} done; of the {} left, {} interrupted{}{}; run the "
        "same command again to resume\n",
        job.name, signal_name(*s.stop_signal), took, s.done, s.clusters, left, s.interrupted,
        waiting, rest);
  }
  if (s.setup_failure) return "";  // the error itself is printed instead
  if (s.done == s.clusters)
    return fmt::format("job {}: all {} clusters done ({} in this run{}, {})\n", job.name,
                       s.clusters, s.done_this_run, also_text(s), took);
  std::string text;
  if (s.halted) text += fmt::format("job {}: stopped early: {}\n", job.name, *s.halted);
  text += fmt::format(
      "job {}: {}/{} done, {} failed in this run{}{}, {}\n", job.name, s.done, s.clusters,
      s.failed_this_run,
      s.oom_this_run ? fmt::format(" ({} out of memory)", s.oom_this_run) : std::string(),
      s.skipped_failed ? fmt::format(", {} left alone (--skip-failed)", s.skipped_failed)
                       : std::string(),
      took);
  if (s.too_big > 0)
    text += fmt::format(
        "  {} cluster(s) need more than the whole memory budget and were not started\n", s.too_big);
  for (const auto& f : failed)
    text += fmt::format("  cluster {}: {} ({})\n", f.cluster, printable(describe_failure(f)),
                        printable(describe_log(f)));
  if (failed.size() >= kSummaryFailures)
    text += fmt::format("  more: runner status --db {} --job {}\n", db, job.name);
  return text;
}

}  // namespace runner
