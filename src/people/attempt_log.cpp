// `runner log`: one attempt's output, read where it is. A log on this
// machine or on a folder it shares is copied to stdout; one that stayed on
// the SSH host that ran it (no shared filesystem) is read there, over ssh,
// as it is: runner copies no logs back, so a night's output costs the head
// nothing until someone asks for it. An attempt in a stream is read through
// the stream's index (stream_log.h): on the host, runner itself picks out
// its frames, so only its output crosses the network.
#include <fmt/format.h>

#include <boost/process.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "runner/app.h"
#include "runner/error.h"
#include "runner/local_engine.h"
#include "runner/plan.h"
#include "runner/ssh_planner.h"
#include "runner/store.h"
#include "runner/stream_log.h"
#include "runner/sysinfo.h"

namespace bp = boost::process;

namespace runner {
namespace fs = std::filesystem;
namespace {

Job job_of(Store& store, const LogArgs& args) {
  if (args.job) {
    auto job = store.find_job(*args.job);
    if (!job) throw Error(fmt::format("--job {}: no such job in {}", *args.job, args.db.string()));
    return *job;
  }
  auto jobs = store.jobs();
  if (jobs.size() == 1) return jobs.front();
  std::string names;
  for (const auto& j : jobs) names += (names.empty() ? "" : ", ") + j.name;
  throw Error(fmt::format("{} holds {} jobs{}{}: name one with --job", args.db.string(),
                          jobs.size(), names.empty() ? "" : " (",
                          names.empty() ? "" : names + ")"));
}

int copy_local(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read the log {}", path.string()));
  std::cout << in.rdbuf() << std::flush;
  return 0;
}

// Said on stderr: stdout holds the attempt's output, which is nothing.
int wrote_nothing(std::uint32_t attempt, ClusterId cluster) {
  fmt::print(stderr, "runner: attempt {} of cluster {} wrote nothing\n", attempt, cluster);
  return 0;
}

// The log on the host that ran it, through ssh; its output passed on as is.
int copy_remote(const LogArgs& args, const std::string& host, const std::string& path,
                const std::string& command) {
  auto argv = ssh_argv(ssh_words(args.ssh), parse_host(host, "the attempt's host"), command);
  std::error_code ec;
  bp::child ssh(resolve_program(argv.front()).path,
                std::vector<std::string>(argv.begin() + 1, argv.end()), bp::std_in < bp::null, ec);
  if (ec) throw Error(fmt::format("cannot run {}: {}", argv.front(), ec.message()));
  ssh.wait();
  if (ssh.exit_code() == 255)
    throw Error(fmt::format(
        "the log {} is on host {}, which cannot be reached (ssh said why above)", path, host));
  if (ssh.exit_code() != 0)
    throw Error(fmt::format("the log {} cannot be read on host {}", path, host));
  return 0;
}

// An attempt's frames in its worker's stream: read here where the stream is
// seen, else by runner on the host that ran it, which sends only them.
int show_stream(const LogArgs& args, const Store::AttemptLog& log, const StreamRef& ref) {
  std::error_code ec;
  if (fs::exists(ref.path, ec)) {
    if (copy_stream_attempt(ref, std::cout) == 0) return wrote_nothing(log.attempt, args.cluster);
    return 0;
  }
  if (log.host.empty() || log.host == host_name())
    throw Error(fmt::format("the log stream {} of attempt {} of cluster {} is gone", ref.path,
                            log.attempt, args.cluster));
  auto command = fmt::format("exec {} worker --cat-log {}", shell_quote(own_binary("ssh")),
                             shell_quote(log.log_path));
  return copy_remote(args, log.host, ref.path, command);
}

}  // namespace

int show_log(const LogArgs& args) {
  Store store(args.db, Store::Access::kReadOnly);
  auto job = job_of(store, args);
  if (args.cluster > job.clusters)
    throw Error(fmt::format("cluster {} is not in job {}: it has clusters 1 to {}", args.cluster,
                            job.name, job.clusters));
  auto log = store.attempt_log(job, args.cluster, args.attempt);
  if (!log)
    throw Error(args.attempt
                    ? fmt::format("job {} has no attempt {} of cluster {}", job.name, *args.attempt,
                                  args.cluster)
                    : fmt::format("job {} has not run cluster {}", job.name, args.cluster));
  if (log->wrote_nothing) return wrote_nothing(log->attempt, args.cluster);
  if (log->log_path.empty())
    throw Error(fmt::format("attempt {} of cluster {} has no log: it never started", log->attempt,
                            args.cluster));
  if (auto ref = parse_stream_ref(log->log_path)) return show_stream(args, *log, *ref);
  std::error_code ec;
  if (fs::exists(log->log_path, ec)) return copy_local(log->log_path);
  if (log->host.empty() || log->host == host_name())
    throw Error(fmt::format("the log {} of attempt {} of cluster {} is gone", log->log_path,
                            log->attempt, args.cluster));
  return copy_remote(args, log->host, log->log_path, "cat -- " + shell_quote(log->log_path));
}

int cat_stream_log(const std::string& text) {
  auto ref = parse_stream_ref(text);
  if (!ref) throw Error(fmt::format("--cat-log '{}' is not a stream's attempt", text));
  if (copy_stream_attempt(*ref, std::cout) == 0)
    fmt::print(stderr, "runner: attempt {} of cluster {} wrote nothing\n", ref->attempt,
               ref->cluster);
  return 0;
}

}  // namespace runner
