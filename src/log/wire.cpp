#include "runner/wire.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>

namespace runner {
namespace {

// A field's text with tabs, newlines and backslashes escaped.
void put(std::string& out, std::string_view text) {
  out += '\t';
  for (char c : text) {
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
  }
}

template <class T>
void put_number(std::string& out, T value) {
  out += '\t';
  fmt::format_to(std::back_inserter(out), "{}", value);
}

template <class T>
void put_maybe(std::string& out, const std::optional<T>& value) {
  if (value)
    put_number(out, *value);
  else
    out += "\t-";
}

template <class T>
T parse(const std::string& text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
    throw WireError(fmt::format("not a number: '{}'", text.substr(0, 40)));
  if constexpr (std::is_floating_point_v<T>)
    if (!std::isfinite(value)) throw WireError(fmt::format("not a finite number: '{}'", text));
  return value;
}

constexpr const char* kWhy[] = {"command",     "no-process", "short-of-files",
                                "environment", "cancelled",  "site-gone"};
constexpr const char* kKill[] = {"none", "own-cap", "pool"};
constexpr const char* kCaps[] = {"auto", "cgroup", "rlimit", "none"};

template <class E, std::size_t N>
E enum_of(const std::string& word, const char* const (&words)[N]) {
  for (std::size_t i = 0; i < N; ++i)
    if (word == words[i]) return static_cast<E>(i);
  throw WireError(fmt::format("unknown word: '{}'", word.substr(0, 40)));
}

bool flag(const Fields& f, std::size_t i) {
  auto v = f.count(i);
  if (v > 1) throw WireError(fmt::format("not 0 or 1: {}", v));
  return v == 1;
}

std::uint32_t attempt_number(const Fields& f, std::size_t i) {
  auto v = f.count(i);
  if (v == 0 || v > std::numeric_limits<std::uint32_t>::max())
    throw WireError(fmt::format("not an attempt number: {}", v));
  return static_cast<std::uint32_t>(v);
}

void put_outcome(std::string& out, const Outcome& o) {
  put_maybe(out, o.exit_code);
  put_maybe(out, o.killed_by);
  put_number(out, o.finished_at);
  put_maybe(out, o.user_cpu_s);
  put_maybe(out, o.sys_cpu_s);
  put_maybe(out, o.rss_peak_kib);
  put_maybe(out, o.cgroup_peak_kib);
  put(out, kKill[static_cast<int>(o.memory_kill)]);
  put(out, o.memory_note);
  put_number(out, o.timed_out ? 1 : 0);
  put(out, o.unstoppable);
  put(out, o.interrupted);
  put_number(out, o.wrote_nothing ? 1 : 0);
}

// Version 2 had no wrote_nothing.
constexpr std::size_t kOutcomeFields = 13;
std::size_t outcome_fields(std::uint32_t version) {
  return version < 3 ? kOutcomeFields - 1 : kOutcomeFields;
}

Outcome take_outcome(const Fields& f, std::size_t at, std::uint32_t version = kWireVersion) {
  f.need(at + outcome_fields(version));
  Outcome o;
  o.exit_code = f.maybe<int>(at);
  o.killed_by = f.maybe<int>(at + 1);
  o.finished_at = f.real(at + 2);
  o.user_cpu_s = f.maybe<double>(at + 3);
  o.sys_cpu_s = f.maybe<double>(at + 4);
  o.rss_peak_kib = f.maybe<std::uint64_t>(at + 5);
  o.cgroup_peak_kib = f.maybe<std::uint64_t>(at + 6);
  o.memory_kill = enum_of<MemoryKill>(f.text(at + 7), kKill);
  o.memory_note = f.text(at + 8);
  o.timed_out = flag(f, at + 9);
  o.unstoppable = f.text(at + 10);
  o.interrupted = f.text(at + 11);
  if (version >= 3) o.wrote_nothing = flag(f, at + 12);
  return o;
}

void put_started(std::string& out, const AttemptStarted& s) {
  put(out, s.where.host);
  put_number(out, s.where.process);
  put(out, s.log_path);
  put_number(out, s.started_at);
  put(out, s.cap);
}

constexpr std::size_t kStartedFields = 5;

AttemptStarted take_started(const Fields& f, std::size_t at, AttemptId id) {
  f.need(at + kStartedFields);
  return AttemptStarted{
      id, {f.text(at), f.number(at + 1)}, f.text(at + 2), f.real(at + 3), f.text(at + 4)};
}

}  // namespace

Fields::Fields(std::string_view line) {
  if (line.empty()) return;
  kind_ = line.front();
  std::string field;
  bool in_field = false;
  for (std::size_t i = 1; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\t') {
      if (in_field) fields_.push_back(std::move(field));
      field.clear();
      in_field = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      char next = line[++i];
      field += next == 't' ? '\t' : next == 'n' ? '\n' : next;
    } else {
      field += c;
    }
  }
  if (in_field) fields_.push_back(std::move(field));
}

void Fields::need(std::size_t n) const {
  if (fields_.size() < n)
    throw WireError(fmt::format("'{}' line with {} field(s), not {}", kind_, fields_.size(), n));
}

const std::string& Fields::text(std::size_t i) const {
  need(i + 1);
  return fields_[i];
}

std::uint64_t Fields::count(std::size_t i) const {
  return parse<std::uint64_t>(text(i));
}

std::int64_t Fields::number(std::size_t i) const {
  return parse<std::int64_t>(text(i));
}

double Fields::real(std::size_t i) const {
  return parse<double>(text(i));
}

template <class T>
std::optional<T> Fields::maybe(std::size_t i) const {
  if (text(i) == "-") return std::nullopt;
  return parse<T>(text(i));
}

std::string worker_name(const WorkerConfig& c) {
  return c.node.empty() ? c.run : c.run + "@" + c.node;
}

std::string encode_config(const WorkerConfig& c) {
  std::string out = "W";
  put_number(out, kWireVersion);
  put(out, c.run);
  put(out, c.journal_dir);
  put(out, c.node);
  put(out, c.db_id);
  put(out, c.job);
  put(out, c.job_key);
  put_number(out, c.sync ? 1 : 0);
  put_number(out, c.grace.count());
  put_number(out, c.parallel);
  put(out, kCaps[static_cast<int>(c.cap)]);
  put_number(out, c.limits ? 1 : 0);
  put_maybe(out, c.run_limit);
  put(out, c.kill_leftovers_in.value_or(""));
  put_number(out, c.watch_memory ? 1 : 0);
  put_number(out, c.pipe_ignored ? 1 : 0);
  put(out, to_string(c.log_format));
  put(out, c.allocation);
  put(out, c.db_path);
  for (int sig : c.blocked) put_number(out, sig);
  return out;
}

WorkerConfig decode_config(const Fields& f) {
  if (f.kind() != 'W') throw WireError(fmt::format("expected a config, not a '{}' line", f.kind()));
  if (auto version = f.count(0); version != kWireVersion)
    throw WireError(fmt::format("runner speaks version {} of the worker's wire, this worker {}",
                                version, kWireVersion));
  f.need(19);
  WorkerConfig c;
  c.run = f.text(1);
  c.journal_dir = f.text(2);
  c.node = f.text(3);
  c.db_id = f.text(4);
  c.job = f.text(5);
  c.job_key = f.text(6);
  c.sync = flag(f, 7);
  c.grace = std::chrono::milliseconds(f.number(8));
  c.parallel = f.count(9);
  c.cap = enum_of<CapChoice>(f.text(10), kCaps);
  c.limits = flag(f, 11);
  c.run_limit = f.maybe<std::uint64_t>(12);
  if (!f.text(13).empty()) c.kill_leftovers_in = f.text(13);
  c.watch_memory = flag(f, 14);
  c.pipe_ignored = flag(f, 15);
  auto format = parse_log_format(f.text(16));
  if (!format) throw WireError(fmt::format("not a log format: '{}'", f.text(16).substr(0, 40)));
  c.log_format = *format;
  c.allocation = f.text(17);
  c.db_path = f.text(18);
  for (std::size_t i = 19; i < f.size(); ++i) c.blocked.push_back(static_cast<int>(f.number(i)));
  return c;
}

std::string encode_start(const AttemptSpec& s) {
  std::string out = "S";
  put_number(out, s.id);
  put(out, s.job);
  put_number(out, s.cluster);
  put_number(out, s.clusters);
  put_number(out, s.attempt);
  put(out, s.log_dir);
  put(out, s.log_name);
  put_maybe(out, s.mem_limit);
  put_maybe(out, s.timeout ? std::optional(s.timeout->count()) : std::nullopt);
  for (const auto& arg : s.argv) put(out, arg);
  return out;
}

AttemptSpec decode_start(const Fields& f) {
  f.need(10);
  AttemptSpec s;
  s.id = f.count(0);
  s.job = f.text(1);
  s.cluster = f.count(2);
  s.clusters = f.count(3);
  s.attempt = attempt_number(f, 4);
  s.log_dir = f.text(5);
  s.log_name = f.text(6);
  s.mem_limit = f.maybe<std::uint64_t>(7);
  if (auto ms = f.maybe<std::int64_t>(8)) s.timeout = std::chrono::milliseconds(*ms);
  for (std::size_t i = 9; i < f.size(); ++i) s.argv.push_back(f.text(i));
  if (s.cluster == 0 || s.cluster > s.clusters)
    throw WireError(fmt::format("cluster {} of {}", s.cluster, s.clusters));
  return s;
}

std::string encode_stop(AttemptId id, bool now) {
  return fmt::format("K\t{}\t{}", id, now ? 1 : 0);
}

std::string encode_committed(std::uint64_t seq) {
  return fmt::format("C\t{}", seq);
}

std::string encode_settle(const Leftovers& left, LeftoverPolicy policy) {
  std::string out = "L";
  put_number(out, policy == LeftoverPolicy::kKill ? 1 : 0);
  put_number(out, left.previous_runs.size());
  for (const auto& run : left.previous_runs) put(out, run);
  for (const auto& a : left.attempts) {
    put_number(out, a.cluster);
    put(out, a.where.host);
    put_number(out, a.where.process);
    put_number(out, a.started_at);
  }
  return out;
}

std::pair<Leftovers, LeftoverPolicy> decode_settle(const Fields& f) {
  auto policy = flag(f, 0) ? LeftoverPolicy::kKill : LeftoverPolicy::kWait;
  Leftovers left;
  auto runs = f.count(1);
  f.need(2 + runs);
  for (std::size_t i = 0; i < runs; ++i) left.previous_runs.push_back(f.text(2 + i));
  std::size_t at = 2 + runs;
  if ((f.size() - at) % 4 != 0) throw WireError("a settle line whose attempts are cut short");
  for (; at < f.size(); at += 4)
    left.attempts.push_back({f.count(at), {f.text(at + 1), f.number(at + 2)}, f.real(at + 3)});
  return {left, policy};
}

std::string encode_bye() {
  return "Q";
}

std::string encode_slots(std::size_t slots) {
  return fmt::format("N\t{}", slots);
}

std::string encode_event(const EngineEvent& event, std::optional<std::uint64_t> seq) {
  std::string out;
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, AttemptStarted>) {
          out = "s";
          put_number(out, e.id);
          put_started(out, e);
        } else if constexpr (std::is_same_v<T, AttemptNotStarted>) {
          out = "n";
          put_number(out, e.id);
          put(out, kWhy[static_cast<int>(e.why)]);
          put(out, e.message);
          put(out, e.log_path);
          put(out, e.cap);
        } else {
          out = "e";
          put_number(out, e.id);
          put_outcome(out, e.outcome);
        }
      },
      event);
  put_maybe(out, seq);
  return out;
}

EngineEvent decode_event(const Fields& f, std::optional<std::uint64_t>& seq) {
  auto id = f.count(0);
  switch (f.kind()) {
    case 's':
      f.need(1 + kStartedFields + 1);
      seq = f.maybe<std::uint64_t>(1 + kStartedFields);
      return take_started(f, 1, id);
    case 'n':
      f.need(6);
      seq = f.maybe<std::uint64_t>(5);
      return AttemptNotStarted{id, enum_of<AttemptNotStarted::Why>(f.text(1), kWhy), f.text(2),
                               f.text(3), f.text(4)};
    case 'e':
      f.need(1 + kOutcomeFields + 1);
      seq = f.maybe<std::uint64_t>(1 + kOutcomeFields);
      return AttemptEnded{id, take_outcome(f, 1)};
    default:
      throw WireError(fmt::format("not an event: '{}'", f.kind()));
  }
}

std::string encode_ready(pid_t pid, const std::string& host) {
  std::string out = "R";
  put_number(out, kWireVersion);
  put_number(out, pid);
  put(out, host);
  return out;
}

std::string encode_failed(const std::string& message) {
  std::string out = "F";
  put(out, message);
  return out;
}

std::string encode_log(std::string_view level, std::string_view text) {
  std::string out = "G";
  put(out, level);
  put(out, text);
  return out;
}

std::string encode_usage(std::optional<std::uint64_t> total,
                         const std::vector<std::pair<AttemptId, std::uint64_t>>& of) {
  std::string out = "U";
  put_maybe(out, total);
  for (const auto& [id, bytes] : of) {
    put_number(out, id);
    put_number(out, bytes);
  }
  return out;
}

std::string encode_settled(bool settled, const std::vector<FoundExecution>& found) {
  std::string out = "D";
  put_number(out, settled ? 1 : 0);
  for (const auto& e : found) {
    put(out, e.job);
    put_number(out, e.cluster);
    put_number(out, e.attempt);
    put(out, e.where.host);
    put_number(out, e.where.process);
    put_number(out, e.started_at);
  }
  return out;
}

std::string encode_stopped(int signal) {
  return fmt::format("X\t{}", signal);
}

std::string encode_alive() {
  return "A";
}

std::string encode_collect(LeftoverPolicy policy) {
  std::string out = "O";
  put_number(out, policy == LeftoverPolicy::kKill ? 1 : 0);
  return out;
}

std::string encode_forget_collected() {
  return "Z";
}

std::string encode_collected_line(const std::string& run, const std::string& line) {
  std::string out = "o";
  put(out, run);
  put(out, line);
  return out;
}

std::string encode_collected_end(std::size_t garbled) {
  std::string out = "d";
  put_number(out, garbled);
  return out;
}

std::string encode_header(const JournalHeader& h) {
  std::string out = "H";
  put_number(out, h.version);
  put(out, h.db_id);
  put(out, h.job);
  put(out, h.job_key);
  put(out, h.worker);
  return out;
}

std::optional<JournalHeader> decode_header(const Fields& f) {
  if (f.kind() != 'H' || f.size() < 5) return std::nullopt;
  try {
    auto version = f.count(0);
    if (version == 0 || version > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
    return JournalHeader{static_cast<std::uint32_t>(version), f.text(1), f.text(2), f.text(3),
                         f.text(4)};
  } catch (const WireError&) {
    return std::nullopt;
  }
}

std::string encode_journal(const JournalEntry& e, std::uint64_t seq) {
  if (e.not_started) {
    std::string out = "N";
    put_number(out, seq);
    put(out, e.job);
    put_number(out, e.cluster);
    put_number(out, e.attempt);
    return out;
  }
  std::string out = e.outcome ? "J" : "B";
  put_number(out, seq);
  put(out, e.job);
  put_number(out, e.cluster);
  put_number(out, e.attempt);
  put_maybe(out, e.mem_limit_kib);
  put_maybe(out, e.timeout_s);
  put_started(out, e.started);
  if (e.outcome) put_outcome(out, *e.outcome);
  return out;
}

std::string encode_process_note(const std::string& job, ClusterId cluster, std::uint32_t attempt) {
  std::string out = "S";
  put_number(out, 0);
  put(out, job);
  put_number(out, cluster);
  put_number(out, attempt);
  out += '\t';
  return out;
}

std::optional<JournalEntry> decode_journal(const Fields& f, std::uint32_t version) {
  bool takes_back = f.kind() == 'N' && version >= 4;
  bool names_process = f.kind() == 'S' && version >= 5;
  if (takes_back || names_process) {
    if (f.size() < (names_process ? 5u : 4u)) return std::nullopt;
    JournalEntry e;
    e.job = f.text(1);
    e.cluster = f.count(2);
    e.attempt = attempt_number(f, 3);
    e.not_started = takes_back;
    e.names_process = names_process;
    if (names_process) {
      auto pid = f.number(4);
      if (pid <= 0 || pid > std::numeric_limits<pid_t>::max())
        throw WireError(fmt::format("not a process: {}", pid));
      e.started.where.process = pid;
    }
    e.version = version;
    return e;
  }
  constexpr std::size_t kStart = 6 + kStartedFields;
  std::size_t whole = f.kind() == 'J' ? kStart + outcome_fields(version) : kStart;
  if (f.kind() != 'J' && !(f.kind() == 'B' && version >= 2))
    throw WireError(fmt::format("not a journal line: '{}'", f.kind()));
  // A line cut short by a crash has fewer fields: it is no entry. A newer
  // version of the same line may add fields at its end.
  if (f.size() < whole) return std::nullopt;
  if (version < 2 && f.size() != whole) return std::nullopt;
  JournalEntry e;
  e.job = f.text(1);
  e.cluster = f.count(2);
  e.attempt = attempt_number(f, 3);
  e.mem_limit_kib = f.maybe<std::uint64_t>(4);
  e.timeout_s = f.maybe<double>(5);
  e.started = take_started(f, 6, 0);
  if (f.kind() == 'J') e.outcome = take_outcome(f, kStart, version);
  e.version = version;
  return e;
}

std::string encode_lock(const JournalHeader& h, const ProcessIdentity& w) {
  std::string out = "P";
  put_number(out, h.version);
  put(out, h.db_id);
  put(out, h.job);
  put(out, h.job_key);
  put(out, h.worker);
  put_number(out, w.pid);
  put(out, w.host);
  put(out, w.boot_id);
  put_number(out, w.start_ticks);
  return out;
}

std::optional<LockFile> decode_lock(std::string_view text) {
  auto eol = text.find('\n');
  Fields f(text.substr(0, eol));
  try {
    if (f.kind() == 'P') {
      f.need(9);
      auto version = f.count(0);
      if (version == 0 || version > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
      return LockFile{JournalHeader{static_cast<std::uint32_t>(version), f.text(1), f.text(2),
                                    f.text(3), f.text(4)},
                      {static_cast<pid_t>(f.number(5)), f.text(6), f.text(7), f.count(8)}};
    }
  } catch (const WireError&) {
    return std::nullopt;
  }
  return std::nullopt;
}

std::vector<std::string> LineReader::read_available(bool& closed) {
  std::vector<std::string> lines;
  closed = false;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n == 0) {
      closed = true;
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) closed = true;
      break;
    }
    partial_.append(buf, static_cast<std::size_t>(n));
    if (static_cast<std::size_t>(n) < sizeof buf) break;  // drained for now
  }
  std::size_t start = 0;
  for (auto eol = partial_.find('\n'); eol != std::string::npos; eol = partial_.find('\n', start)) {
    lines.emplace_back(partial_, start, eol - start);
    start = eol + 1;
  }
  partial_.erase(0, start);
  return lines;
}

bool Outbox::flush(int fd) {
  std::string_view left = text_;
  bool ok = true;
  while (!left.empty()) {
    ssize_t n = ::write(fd, left.data(), left.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    left.remove_prefix(static_cast<std::size_t>(n));
  }
  text_.clear();
  return ok;
}

bool write_line(int fd, const std::string& line) {
  Outbox box;
  box.add(line);
  return box.flush(fd);
}

}  // namespace runner
