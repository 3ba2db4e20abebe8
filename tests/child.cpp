// test_child: a program that behaves the way a test asks, so end-to-end tests
// can run the real runner binary on known behaviour. Options, in any order:
//   --record FILE        append "start C A PID" on start and "end C A" on exit
//   --args-to-stdout     print argv and the RUNNER_* variables, one per line
//   --exit CODE          exit with CODE (default 0)
//   --exit-for C=CODE    exit with CODE when this is cluster C (repeatable)
//   --signal-for C=SIG   kill itself with signal SIG when this is cluster C
//   --sleep-ms MS        sleep before exiting
//   --sleep-for C=MS     sleep MS instead when this is cluster C (repeatable)
//   --print N            write N lines to stdout and N to stderr
//   --alloc-mib N        allocate and touch N MiB (and say so on stderr if it fails)
//   --alloc-for C=MIB    allocate MIB MiB instead when this is cluster C (repeatable)
//   --hold-ms MS         keep the allocation this long, then free it before going on
//   --mem-record FILE    append "start C MIB" once allocated and "end C MIB" once freed
//   --ignore-term        ignore SIGTERM
//   --term-record FILE   on SIGTERM, append "term" to FILE and go on (a SIGTERM
//                        blocked at start is taken once the handler is in place)
//   --become-root        setresuid(0, 0, 0) (a set-user-ID root copy run by another
//                        user): its parent can no longer signal it
//   --die-with-parent    get SIGKILL when runner dies
//   --ready-dir DIR      create DIR/C.ready once running
//   --hold-file PATH     wait (at most 60 s) until PATH exists before exiting
//   --release-dir DIR    with --hold-file: also go on once DIR/C exists (C: this cluster)
//   --live-count FILE    keep a count of live children in FILE (under flock),
//                        and the highest count ever seen in FILE.max
//   --barrier K          with --live-count: wait (at most 30 s) until K
//                        children were alive at once; exit 3 if never
//   --exclusive DIR      hold a lock on DIR/C.lock while alive; if another copy
//                        of this cluster holds it, append "overlap C" to
//                        DIR/overlaps and exit 5
//   --daemon DIR         leave a grandchild behind that setsid()s, writes its
//                        pid to DIR/C.pid and sleeps for ever; go on once it did
//   --stop-self          stop itself with SIGSTOP once started
//   --print-mib N        write N MiB to stdout
//   --exec-without-pidfd PROGRAM ARG...
//                        run PROGRAM (the rest of the line) with pidfd_open
//                        refused (ENOSYS), as on kernels before 5.3 or under a
//                        seccomp filter that does not know it
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int g_term_fd = -1;

// A SIGTERM noted and shrugged off: async-signal-safe, one write.
void note_term(int) {
  if (::write(g_term_fd, "term\n", 5) < 0) ::_exit(96);
}

void nap_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void append_line(const std::string& path, const std::string& line) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) std::exit(90);
  // One write with O_APPEND: lines from concurrent children never interleave.
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::exit(91);
  ::close(fd);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Adds delta to the live count and returns the new value; keeps FILE.max.
long update_count(const std::string& path, long delta) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || ::flock(fd, LOCK_EX) != 0) std::exit(92);
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  long count = (n > 0 ? std::atol(buf) : 0) + delta;
  auto text = std::to_string(count) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) std::exit(93);
  if (delta > 0) {
    auto max_path = path + ".max";
    int mfd = ::open(max_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    char mbuf[32] = {};
    ssize_t m = ::pread(mfd, mbuf, sizeof mbuf - 1, 0);
    if (count > (m > 0 ? std::atol(mbuf) : 0)) {
      if (::ftruncate(mfd, 0) != 0 || ::pwrite(mfd, text.data(), text.size(), 0) < 0) std::exit(94);
    }
    ::close(mfd);
  }
  ::close(fd);  // releases the lock
  return count;
}

long read_count(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  return n > 0 ? std::atol(buf) : 0;
}

long match_for(const std::vector<std::string>& rules, long cluster, long fallback) {
  for (const auto& r : rules) {
    auto eq = r.find('=');
    if (eq != std::string::npos && std::atol(r.substr(0, eq).c_str()) == cluster)
      return std::atol(r.substr(eq + 1).c_str());
  }
  return fallback;
}

// From here on (and across exec), pidfd_open fails with ENOSYS.
int exec_without_pidfd(char** argv) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::perror("test_child: seccomp");
    return 97;
  }
  ::execv(argv[0], argv);
  std::perror(argv[0]);
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  std::string record, ready_dir, hold_file, release_dir, live_count;
  std::vector<std::string> exit_for, signal_for, alloc_for, sleep_for;
  std::string mem_record, exclusive, daemon_file;
  bool stop_self = false;
  long print_mib = 0;
  long exit_code = 0, sleep_ms = 0, print = 0, alloc_mib = 0, barrier = 0, hold_ms = -1;
  bool args_to_stdout = false, ignore_term = false, die_with_parent = false, become_root = false;
  std::string term_record;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--exec-without-pidfd" && i + 1 < argc) return exec_without_pidfd(argv + i + 1);
    if (a == "--record")
      record = next();
    else if (a == "--args-to-stdout")
      args_to_stdout = true;
    else if (a == "--exit")
      exit_code = std::atol(next().c_str());
    else if (a == "--exit-for")
      exit_for.push_back(next());
    else if (a == "--sleep-for")
      sleep_for.push_back(next());
    else if (a == "--signal-for")
      signal_for.push_back(next());
    else if (a == "--sleep-ms")
      sleep_ms = std::atol(next().c_str());
    else if (a == "--print")
      print = std::atol(next().c_str());
    else if (a == "--alloc-mib")
      alloc_mib = std::atol(next().c_str());
    else if (a == "--alloc-for")
      alloc_for.push_back(next());
    else if (a == "--hold-ms")
      hold_ms = std::atol(next().c_str());
    else if (a == "--mem-record")
      mem_record = next();
    else if (a == "--ignore-term")
      ignore_term = true;
    else if (a == "--become-root")
      become_root = true;
    else if (a == "--term-record")
      term_record = next();
    else if (a == "--die-with-parent")
      die_with_parent = true;
    else if (a == "--ready-dir")
      ready_dir = next();
    else if (a == "--hold-file")
      hold_file = next();
    else if (a == "--release-dir")
      release_dir = next();
    else if (a == "--live-count")
      live_count = next();
    else if (a == "--barrier")
      barrier = std::atol(next().c_str());
    else if (a == "--exclusive")
      exclusive = next();
    else if (a == "--daemon")
      daemon_file = next();
    else if (a == "--stop-self")
      stop_self = true;
    else if (a == "--print-mib")
      print_mib = std::atol(next().c_str());
  }
  if (die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) return 95;  // runner died before prctl took effect
  }
  if (ignore_term) std::signal(SIGTERM, SIG_IGN);
  if (!term_record.empty()) {
    g_term_fd = ::open(term_record.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    std::signal(SIGTERM, note_term);
    // Started with SIGTERM blocked, it can take one only from here on.
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &term, nullptr);
  }
  if (become_root && ::setresuid(0, 0, 0) != 0) return 95;
  const char* cluster_env = std::getenv("RUNNER_CLUSTER");
  const char* attempt_env = std::getenv("RUNNER_ATTEMPT");
  long cluster = cluster_env ? std::atol(cluster_env) : 0;
  std::string attempt = attempt_env ? attempt_env : "0";

  if (!record.empty())
    append_line(record, "start " + std::to_string(cluster) + " " + attempt + " " +
                            std::to_string(::getpid()) + "\n");
  if (!live_count.empty()) update_count(live_count, +1);
  if (args_to_stdout) {
    for (int i = 0; i < argc; ++i) std::printf("arg[%d]=%s\n", i, argv[i]);
    for (const char* v :
         {"RUNNER_CLUSTER", "RUNNER_CLUSTERS", "RUNNER_ATTEMPT", "RUNNER_JOB", "RUNNER_SITE"})
      std::printf("%s=%s\n", v, std::getenv(v) ? std::getenv(v) : "(unset)");
    struct stat in {
    }, null{};
    bool devnull = ::fstat(0, &in) == 0 && ::stat("/dev/null", &null) == 0 && S_ISCHR(in.st_mode) &&
                   in.st_rdev == null.st_rdev;
    std::printf("stdin=%s\n", devnull ? "/dev/null" : "other");
    std::printf("own_process_group=%s\n", ::getpgrp() == ::getpid() ? "yes" : "no");
    struct sigaction pipe_action {};
    ::sigaction(SIGPIPE, nullptr, &pipe_action);
    std::printf("sigpipe=%s\n", pipe_action.sa_handler == SIG_IGN ? "ignored" : "default");
  }
  for (long i = 0; i < print; ++i) {
    std::printf("out line %ld of cluster %ld\n", i, cluster);
    std::fprintf(stderr, "err line %ld of cluster %ld\n", i, cluster);
  }
  std::fflush(stdout);
  alloc_mib = match_for(alloc_for, cluster, alloc_mib);
  if (alloc_mib > 0) {
    auto bytes = static_cast<std::size_t>(alloc_mib) << 20;
    auto* p = static_cast<char*>(std::malloc(bytes));
    if (!p) {
      std::fprintf(stderr, "test_child: cannot allocate %ld MiB: %s\n", alloc_mib,
                   std::strerror(errno));
      return 96;
    }
    for (std::size_t off = 0; off < bytes; off += 4096) p[off] = 1;
    auto tag = " " + std::to_string(cluster) + " " + std::to_string(alloc_mib) + "\n";
    if (!mem_record.empty()) append_line(mem_record, "start" + tag);
    if (hold_ms >= 0) {
      nap_ms(hold_ms);
      if (!mem_record.empty()) append_line(mem_record, "end" + tag);
      std::free(p);
    }
  }
  if (!exclusive.empty()) {
    auto lock = exclusive + "/" + std::to_string(cluster) + ".lock";
    int fd = ::open(lock.c_str(), O_RDWR | O_CREAT, 0644);  // kept open (and locked) until exit
    if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      append_line(exclusive + "/overlaps", "overlap " + std::to_string(cluster) + "\n");
      return 5;
    }
  }
  if (!daemon_file.empty()) {
    auto pid_file = daemon_file + "/" + std::to_string(cluster) + ".pid";
    if (::fork() == 0) {
      ::setsid();
      if (::fork() == 0) {
        auto tmp = pid_file + ".tmp";
        append_line(tmp, std::to_string(::getpid()) + "\n");
        ::rename(tmp.c_str(), pid_file.c_str());
        for (;;) ::pause();
      }
      ::_exit(0);
    }
    for (int waited = 0; !exists(pid_file); ++waited) {
      if (waited > 30'000) return 7;
      nap_ms(1);
    }
  }
  if (print_mib > 0) {
    std::string block(1 << 20, 'x');
    block.back() = '\n';
    for (long i = 0; i < print_mib; ++i)
      if (::write(1, block.data(), block.size()) != static_cast<ssize_t>(block.size())) return 6;
  }
  if (stop_self) ::raise(SIGSTOP);
  if (!ready_dir.empty()) append_line(ready_dir + "/" + std::to_string(cluster) + ".ready", "");
  if (barrier > 0 && !live_count.empty()) {
    int waited = 0;
    while (read_count(live_count + ".max") < barrier) {
      if (++waited > 30'000) return 3;
      nap_ms(1);
    }
  }
  if (!hold_file.empty()) {
    auto released = release_dir + "/" + std::to_string(cluster);
    for (int waited = 0; !exists(hold_file) && (release_dir.empty() || !exists(released));
         ++waited) {
      if (waited > 60'000) return 4;
      nap_ms(1);
    }
  }
  sleep_ms = match_for(sleep_for, cluster, sleep_ms);
  if (sleep_ms > 0) nap_ms(sleep_ms);
  if (!live_count.empty()) update_count(live_count, -1);
  if (long sig = match_for(signal_for, cluster, 0); sig > 0) {
    std::signal(static_cast<int>(sig), SIG_DFL);
    ::raise(static_cast<int>(sig));
  }
  auto code = static_cast<int>(match_for(exit_for, cluster, exit_code));
  if (!record.empty()) append_line(record, "end " + std::to_string(cluster) + " " + attempt + "\n");
  return code;
}
