// The head's ceiling: how many clusters a second runner's own loop can take
// when attempts cost nothing. The real scheduler, admission, commit group
// and SQLite log run as in a run; the attempts end the moment they start.
//
//   bench-head N P [--sites K [--lasts MS]] [--progress plain|silent] [--db PATH]
//
// Without --sites, the engine is in this process and answers at once: the
// loop alone. With --sites K, the engine is runner's own over K workers
// (the sites engine, the wire, the pipes), each worker a null one that
// answers every start with its start and its end (`bench-head null-worker`),
// at once or, with --lasts, MS later: P / MS clusters a second offered.
//
// Prints one line: N, P, sites, seconds, clusters per second, the head's
// CPU per cluster (user + system, this process alone: not its workers), and
// its peak RSS.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runner/engine.h"
#include "runner/plan.h"
#include "runner/progress.h"
#include "runner/scheduler.h"
#include "runner/signals.h"
#include "runner/sites_engine.h"
#include "runner/store.h"
#include "runner/wire.h"

namespace runner {
namespace {

namespace fs = std::filesystem;

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An attempt that ran nothing: exit 0, no output.
AttemptEnded ended_at_once(AttemptId id, double at) {
  AttemptEnded ended{id, {}};
  ended.outcome.exit_code = 0;
  ended.outcome.finished_at = at;
  ended.outcome.wrote_nothing = true;
  return ended;
}

// In this process: every attempt starts at once and ends at the next wait.
class NullEngine : public Engine {
 public:
  std::optional<EngineEvent> start(AttemptSpec spec) override {
    AttemptStarted started{spec.id, {"head", 1}, "", now_s(), "none"};
    told_.push_back(ended_at_once(spec.id, started.started_at));
    return started;
  }
  void stop(AttemptId, StopMode) override {}
  std::vector<EngineEvent> wait(std::optional<Clock::time_point>, int) override {
    return std::exchange(told_, {});
  }

 private:
  std::vector<EngineEvent> told_;
};

// A worker that runs nothing. It speaks the wire as runner's worker does
// (ready, settled, collected), runs at most its slots at once and queues
// the rest, answers a start with its start at once and its end `lasts`
// later, and says all that one wakeup has to say in one write.
class NullWorker {
 public:
  explicit NullWorker(std::chrono::milliseconds lasts) : lasts_(lasts) {}

  int run() {
    ::fcntl(STDIN_FILENO, F_SETFL, ::fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
    write_line(STDOUT_FILENO, encode_ready(::getpid(), "null"));
    while (!closed_ || !running_.empty() || !queue_.empty()) {
      pollfd in{STDIN_FILENO, POLLIN, 0};
      ::poll(&in, closed_ ? 0 : 1, timeout_ms());
      if (!closed_)
        for (const auto& line : reader_.read_available(closed_)) handle(Fields(line));
      end_what_is_due();
      start_what_fits();
      if (!out_.empty() && !out_.flush(STDOUT_FILENO)) return 1;
    }
    return 0;
  }

 private:
  int timeout_ms() const {
    if (running_.empty()) return closed_ ? 0 : -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(running_.front().first - Clock::now());
    return static_cast<int>(std::max<std::int64_t>(0, left.count()));
  }
  void handle(const Fields& f) {
    switch (f.kind()) {
      case 'W':  // the config: its slots
        slots_ = std::max<std::size_t>(1, decode_config(f).parallel);
        return;
      case 'N':
        slots_ = std::max<std::size_t>(1, f.count(0));
        return;
      case 'S':
        queue_.push_back(decode_start(f).id);
        return;
      case 'L':
        out_.add(encode_settled(true, {}));
        return;
      case 'O':
        out_.add(encode_collected_end(0));
        return;
      case 'Q':
        closed_ = true;
        return;
      default:
        return;
    }
  }
  void end_what_is_due() {
    for (auto now = Clock::now(); !running_.empty() && running_.front().first <= now;) {
      out_.add(encode_event(ended_at_once(running_.front().second, now_s()), ++seq_));
      running_.pop_front();
    }
  }
  void start_what_fits() {
    while (running_.size() < slots_ && !queue_.empty()) {
      auto id = queue_.front();
      queue_.pop_front();
      out_.add(encode_event(AttemptStarted{id, {"null", ::getpid()}, "", now_s(), "none"},
                            std::nullopt));
      if (lasts_.count() == 0) {
        out_.add(encode_event(ended_at_once(id, now_s()), ++seq_));
      } else {
        running_.emplace_back(Clock::now() + lasts_, id);
      }
    }
  }

  std::chrono::milliseconds lasts_;
  LineReader reader_{STDIN_FILENO};
  Outbox out_;
  bool closed_ = false;
  std::size_t slots_ = 1;
  std::uint64_t seq_ = 0;
  std::deque<AttemptId> queue_;
  std::deque<std::pair<Clock::time_point, AttemptId>> running_;  // all last as long: in order
};

// K sites of P/K slots each (the first ones one more), each a null worker.
Plan null_plan(std::uint32_t parallel, std::uint32_t sites, std::chrono::milliseconds lasts) {
  Plan plan;
  plan.on = "bench";
  plan.parallel = parallel;
  plan.site_word = "site";
  plan.none_left = "no site is left";
  auto self = fs::read_symlink("/proc/self/exe").string();
  for (std::uint32_t i = 0; i < sites; ++i) {
    Site site;
    site.name = fmt::format("s{}", i + 1);
    site.launch.argv = {self, "null-worker", std::to_string(lasts.count())};
    site.launch.program = self;
    site.launch.site = site.name;
    site.slots = parallel / sites + (i < parallel % sites ? 1 : 0);
    site.capacity = site.slots;
    plan.sites.push_back(std::move(site));
  }
  return plan;
}

struct Args {
  ClusterId clusters = 0;
  std::uint32_t parallel = 0;
  std::uint32_t sites = 0;             // 0: the engine in this process
  std::chrono::milliseconds lasts{0};  // how long each attempt "runs" on a null worker
  bool plain = false;
  fs::path db;
};

Args parse(int argc, char** argv) {
  if (argc < 3)
    throw std::invalid_argument(
        "usage: bench-head N P [--sites K [--lasts MS]] [--progress plain|silent] [--db PATH]");
  Args a;
  a.clusters = std::stoull(argv[1]);
  a.parallel = static_cast<std::uint32_t>(std::stoul(argv[2]));
  for (int i = 3; i < argc; ++i) {
    std::string word = argv[i];
    if (word == "--sites" && i + 1 < argc) {
      a.sites = static_cast<std::uint32_t>(std::stoul(argv[++i]));
    } else if (word == "--lasts" && i + 1 < argc) {
      a.lasts = std::chrono::milliseconds(std::stoul(argv[++i]));
    } else if (word == "--progress" && i + 1 < argc) {
      a.plain = std::string(argv[++i]) == "plain";
    } else if (word == "--db" && i + 1 < argc) {
      a.db = argv[++i];
    } else {
      throw std::invalid_argument(fmt::format("bench-head: '{}' is not an option", word));
    }
  }
  if (a.sites > a.parallel) throw std::invalid_argument("bench-head: more sites than P");
  if (a.lasts.count() > 0 && a.sites == 0)
    throw std::invalid_argument("bench-head: --lasts needs --sites");
  return a;
}

double cpu_seconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::unique_ptr<Engine> make_engine(const Args& a, const fs::path& dir, Store& store,
                                    const Job& job) {
  if (a.sites == 0) return std::make_unique<NullEngine>();
  WorkerConfig config;
  config.run = fmt::format("bench-{}", ::getpid());
  config.journal_dir = (dir / "journal").string();
  config.db_id = store.db_id();
  config.job = job.name;
  config.parallel = a.parallel;
  return std::make_unique<SitesEngine>(config, null_plan(a.parallel, a.sites, a.lasts));
}

// The run, from an empty log to every cluster done.
int run(const Args& a) {
  auto dir = fs::temp_directory_path() / fmt::format("runner-bench-head-{}", ::getpid());
  fs::create_directories(dir / "logs");
  auto db = a.db.empty() ? dir / "runner.db" : a.db;
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  auto t0 = Clock::now();
  RunSummary summary;
  {
    Store store(db, Store::Access::kReadWrite);
    CommandTemplate command({"/bin/true"});
    auto job = store.open_job("head", a.clusters, command.display());
    // runner's own signals, as a run takes them (none comes here).
    SignalChannel signals{SIGINT, SIGTERM, SIGHUP};
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> null_out(std::fopen("/dev/null", "w"),
                                                             &std::fclose);
    Progress progress(null_out.get(), a.plain ? Progress::Mode::kPlain : Progress::Mode::kSilent);
    SchedulerOptions options;
    options.parallel = a.parallel;
    options.log_dir = dir / "logs";
    auto engine = make_engine(a, dir, store, job);
    Scheduler scheduler(store, job, command, *engine, signals, &progress, options);
    summary = scheduler.run();
  }
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  fs::remove_all(dir);
  double cpu = cpu_seconds(after) - cpu_seconds(before);
  auto n = static_cast<double>(a.clusters);
  std::printf(
      "N=%llu P=%u sites=%u lasts=%lldms progress=%s: %.2f s, %.0f clusters/s, %.1f us head CPU "
      "per cluster, "
      "peak RSS %ld KiB, exit %d\n",
      static_cast<unsigned long long>(a.clusters), a.parallel, a.sites,
      static_cast<long long>(a.lasts.count()), a.plain ? "plain" : "silent", seconds, n / seconds,
      cpu / n * 1e6, after.ru_maxrss, summary.exit_code());
  return summary.exit_code();
}

}  // namespace
}  // namespace runner

int main(int argc, char** argv) {
  try {
    // bench-head null-worker MS worker: as a site's worker is started.
    if (argc >= 3 && std::string(argv[1]) == "null-worker")
      return runner::NullWorker(std::chrono::milliseconds(std::stoul(argv[2]))).run();
    return runner::run(runner::parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
