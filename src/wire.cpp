#include "runner/wire.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <stdexcept>

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
  if (ec != std::errc{} || end != text.data() + text.size())
    throw std::invalid_argument("not a number: " + text);
  return value;
}

constexpr const char* kWhy[] = {"command", "no-process", "short-of-files", "environment",
                                "cancelled"};
constexpr const char* kKill[] = {"none", "own-cap", "pool"};

template <class E, std::size_t N>
E enum_of(const std::string& word, const char* const (&words)[N]) {
  for (std::size_t i = 0; i < N; ++i)
    if (word == words[i]) return static_cast<E>(i);
  throw std::invalid_argument("unknown word: " + word);
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
}

constexpr std::size_t kOutcomeFields = 12;

Outcome take_outcome(const Fields& f, std::size_t at) {
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
  o.timed_out = f.count(at + 9) != 0;
  o.unstoppable = f.text(at + 10);
  o.interrupted = f.text(at + 11);
  return o;
}

void put_started(std::string& out, const AttemptStarted& s) {
  put(out, s.where.host);
  put_number(out, s.where.process);
  put(out, s.log_path);
  put_number(out, s.started_at);
  put(out, s.cap);
}

AttemptStarted take_started(const Fields& f, std::size_t at, AttemptId id) {
  return AttemptStarted{
      id, {f.text(at), f.number(at + 1)}, f.text(at + 2), f.real(at + 3), f.text(at + 4)};
}

}  // namespace

Fields::Fields(std::string_view line) {
  if (line.empty()) return;
  kind_ = line.front();
  if (kind_ == '{') return;
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
  AttemptSpec s;
  s.id = f.count(0);
  s.job = f.text(1);
  s.cluster = f.count(2);
  s.clusters = f.count(3);
  s.attempt = static_cast<std::uint32_t>(f.count(4));
  s.log_dir = f.text(5);
  s.log_name = f.text(6);
  s.mem_limit = f.maybe<std::uint64_t>(7);
  if (auto ms = f.maybe<std::int64_t>(8)) s.timeout = std::chrono::milliseconds(*ms);
  for (std::size_t i = 9; i < f.size(); ++i) s.argv.push_back(f.text(i));
  return s;
}

std::string encode_stop(AttemptId id, bool now) {
  return fmt::format("K\t{}\t{}", id, now ? 1 : 0);
}

std::string encode_committed(std::uint64_t seq) {
  return fmt::format("C\t{}", seq);
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
  seq = f.maybe<std::uint64_t>(f.size() - 1);
  switch (f.kind()) {
    case 's':
      return take_started(f, 1, id);
    case 'n':
      return AttemptNotStarted{id, enum_of<AttemptNotStarted::Why>(f.text(1), kWhy), f.text(2),
                               f.text(3), f.text(4)};
    case 'e':
      return AttemptEnded{id, take_outcome(f, 1)};
    default:
      throw std::invalid_argument(fmt::format("not an event: {}", f.kind()));
  }
}

std::string encode_journal(const JournalEntry& e, std::uint64_t seq) {
  std::string out = "J";
  put_number(out, seq);
  put(out, e.job);
  put_number(out, e.cluster);
  put_number(out, e.attempt);
  put_maybe(out, e.mem_limit_kib);
  put_maybe(out, e.timeout_s);
  put_started(out, e.started);
  put_outcome(out, e.outcome);
  return out;
}

std::optional<JournalEntry> decode_journal(const Fields& f) {
  // A line cut short by a crash has fewer fields: it is no entry.
  if (f.kind() != 'J' || f.size() != 11 + kOutcomeFields) return std::nullopt;
  try {
    JournalEntry e;
    e.job = f.text(1);
    e.cluster = f.count(2);
    e.attempt = static_cast<std::uint32_t>(f.count(3));
    e.mem_limit_kib = f.maybe<std::uint64_t>(4);
    e.timeout_s = f.maybe<double>(5);
    e.started = take_started(f, 6, 0);
    e.outcome = take_outcome(f, 11);
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
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

bool write_line(int fd, const nlohmann::json& message) {
  Outbox box;
  box.add(message);
  return box.flush(fd);
}

}  // namespace runner
