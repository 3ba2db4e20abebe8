// runner's entry point: parse the command line, call into the library, and
// turn any error into one line on stderr and an exit code. Nothing else.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "runner/app.h"
#include "runner/error.h"
#include "runner/on_finish.h"
#include "runner/progress.h"
#include "runner/worker.h"

int main(int argc, char** argv) {
  try {
    auto invocation = runner::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (auto* run = std::get_if<runner::RunArgs>(&invocation)) return runner::run_job(*run);
    if (auto* status = std::get_if<runner::StatusArgs>(&invocation)) {
      runner::setup_logging(false, false);
      return runner::show_status(*status);
    }
    if (auto* report = std::get_if<runner::ReportArgs>(&invocation)) {
      runner::setup_logging(false, false);
      return runner::show_report(*report);
    }
    if (auto* unlock = std::get_if<runner::UnlockArgs>(&invocation)) {
      runner::setup_logging(false, false);
      return runner::unlock_job(*unlock);
    }
    if (auto* log = std::get_if<runner::LogArgs>(&invocation)) {
      runner::setup_logging(false, false);
      return runner::show_log(*log);
    }
    if (auto* worker = std::get_if<runner::WorkerArgs>(&invocation)) {
      if (worker->check_dir) return runner::check_node(*worker);
      if (worker->cat_log) {
        runner::setup_logging(false, false);
        return runner::cat_stream_log(*worker->cat_log);
      }
      if (worker->kill_run) {
        runner::setup_logging(false, false);
        return runner::kill_run_here(*worker->kill_run);
      }
      return runner::run_worker(STDIN_FILENO, STDOUT_FILENO);
    }
    if (auto* doctor = std::get_if<runner::DoctorArgs>(&invocation)) {
      runner::setup_logging(false, false);
      return runner::show_doctor(*doctor);
    }
    runner::Printer(stdout).print(std::get<runner::PrintAndExit>(invocation).text);
    return 0;
  } catch (const runner::Error& e) {
    runner::Printer(stderr).print(fmt::format("runner: {}\n", e.what()));
    // A refused start: its --on-finish command still hears of it.
    if (const auto* refused = dynamic_cast<const runner::RefusedStart*>(&e)) {
      runner::setup_logging(refused->hook().quiet, refused->hook().verbose);
      runner::hear_of_refusal(*refused);
    }
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    runner::Printer(stderr).print(fmt::format("runner: internal error: {}\n", e.what()));
    return 70;  // EX_SOFTWARE
  }
}
