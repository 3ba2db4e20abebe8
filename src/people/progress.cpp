#include "runner/progress.h"

#include <fmt/format.h>
#include <stdio_ext.h>
#include <sys/ioctl.h>

#include <cmath>
#include <optional>

#include "runner/units.h"

namespace runner {
namespace {

// A terminal line is redrawn at most this often, and at least once a second
// so that the rate and ETA stay current while long clusters run.
constexpr auto kTerminalMinGap = std::chrono::milliseconds(100);
constexpr auto kTerminalTick = std::chrono::seconds(1);
// Plain output is for logs: one line at most every few seconds.
constexpr auto kPlainGap = std::chrono::seconds(5);

}  // namespace

bool Printer::print(std::string_view text) {
  if (closed_) return false;
  if (std::fwrite(text.data(), 1, text.size(), out_) != text.size() || std::fflush(out_) != 0) {
    // The reader is gone (EPIPE) or the stream is unusable: drop what is
    // buffered, so that the exit's own flush does not try again.
    closed_ = true;
    __fpurge(out_);
    std::clearerr(out_);
    return false;
  }
  return true;
}

namespace {

// The rate since this run started, and the time left at that rate, where
// there is one to tell.
struct Pace {
  std::optional<double> rate;
  std::optional<std::chrono::milliseconds> eta;
};

Pace pace(const Snapshot& s, Clock::time_point now) {
  Pace p;
  auto elapsed = std::chrono::duration<double>(now - s.started).count();
  if (s.done_this_run == 0 || elapsed <= 0) return p;
  p.rate = static_cast<double>(s.done_this_run) / elapsed;
  auto remaining = s.total - s.done - s.failed;
  if (remaining > 0 && s.running > 0) {
    auto eta_ms = static_cast<double>(remaining) / *p.rate * 1e3;
    if (eta_ms < 1e12) p.eta = std::chrono::milliseconds(static_cast<long long>(eta_ms));
  }
  return p;
}

// The bar: `width` cells, each kind the cells its share rounds to, done first.
std::string bar(const Snapshot& s, std::size_t width) {
  std::string cells(width, ' ');
  if (s.total == 0) return "[" + cells + "]";
  auto share = [&](std::uint64_t n) {
    return static_cast<std::size_t>(std::lround(
        static_cast<double>(n) * static_cast<double>(width) / static_cast<double>(s.total)));
  };
  std::size_t at = 0;
  for (auto [n, c] : {std::pair{s.done, '#'}, std::pair{s.failed, '!'}, std::pair{s.running, '>'}})
    for (auto k = share(n); k > 0 && at < width; --k) cells[at++] = c;
  return "[" + cells + "]";
}

}  // namespace

std::string describe(const Snapshot& s, Clock::time_point now) {
  auto line =
      fmt::format("{}/{} done, {} failed, {} running", s.done, s.total, s.failed, s.running);
  auto p = pace(s, now);
  if (p.rate) line += fmt::format(", {:.1f}/s", *p.rate);
  if (p.eta) line += ", ETA " + format_duration(*p.eta);
  return line;
}

std::string describe_compact(const Snapshot& s, Clock::time_point now) {
  auto line = fmt::format("{}/{} {}! {}>", s.done, s.total, s.failed, s.running);
  auto p = pace(s, now);
  if (p.rate) line += fmt::format(" {:.1f}/s", *p.rate);
  if (p.eta) line += " ETA " + format_duration(*p.eta);
  return line;
}

std::string status_line(const Snapshot& s, Clock::time_point now, std::size_t columns) {
  constexpr std::size_t kWidest = 30, kNarrowest = 8;
  // One column less than the terminal's, so that the line never wraps.
  auto room = columns > 1 ? columns - 1 : std::size_t{79};
  auto full = describe(s, now), compact = describe_compact(s, now);
  // The words matter more than the bar, and the ETA most: the bar shrinks
  // first, then the words take their short form, then the bar goes.
  for (const auto* text : {&full, &compact})
    if (text->size() + kNarrowest + 3 <= room)
      return bar(s, std::min(kWidest, room - text->size() - 3)) + " " + *text;
  for (const auto* text : {&full, &compact})
    if (text->size() <= room) return *text;
  return compact.substr(0, room);
}

namespace {

std::size_t terminal_columns(std::FILE* out) {
  winsize size{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

Progress::Progress(std::FILE* out, Mode mode, std::size_t columns)
    : out_(out), file_(out), mode_(mode), columns_(columns) {}

void Progress::update(const Snapshot& s, Clock::time_point now) {
  last_ = s;
  have_snapshot_ = true;
  if (mode_ == Mode::kSilent) return;
  auto gap = mode_ == Mode::kTerminal ? kTerminalMinGap : kPlainGap;
  if (last_draw_ == Clock::time_point{} || now - last_draw_ >= gap) draw(now);
}

std::optional<Clock::time_point> Progress::next_tick() const {
  if (mode_ == Mode::kSilent || !have_snapshot_) return std::nullopt;
  return last_draw_ + (mode_ == Mode::kTerminal
                           ? std::chrono::duration_cast<Clock::duration>(kTerminalTick)
                           : std::chrono::duration_cast<Clock::duration>(kPlainGap));
}

void Progress::draw(Clock::time_point now) {
  last_draw_ = now;
  if (mode_ == Mode::kTerminal) {
    // The width is asked at every draw: the terminal may have been resized.
    auto columns = columns_ ? columns_ : terminal_columns(file_);
    auto line = status_line(last_, now, columns);
    out_.print(erase(columns) + line);
    shown_ = line.size();
    return;
  }
  // Plain output says nothing when nothing changed: cron mails stay short.
  auto counts = fmt::format("{}/{}/{}/{}", last_.done, last_.failed, last_.running, last_.total);
  if (counts == printed_) return;
  printed_ = counts;
  out_.print(describe(last_, now) + "\n");
}

void Progress::finish() {
  hide();
  have_snapshot_ = false;
}

// Back to the start of the line drawn last, erasing it. A terminal made
// narrower since has wrapped it over several rows (terminals that rewrap on
// a resize do, tmux among them): up to its first row, and erase from there.
std::string Progress::erase(std::size_t columns) const {
  if (shown_ <= columns || columns == 0) return "\r\033[K";
  return fmt::format("\r\033[{}A\033[J", (shown_ - 1) / columns);
}

void Progress::hide() {
  if (mode_ == Mode::kTerminal && shown_) {
    out_.print(erase(columns_ ? columns_ : terminal_columns(file_)));
    shown_ = 0;
  }
}

void Progress::unhide() {
  if (mode_ == Mode::kTerminal && have_snapshot_) draw(Clock::now());
}

void ProgressSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t formatted;
  formatter_->format(msg, formatted);
  if (progress_) progress_->hide();
  err_.print(std::string_view(formatted.data(), formatted.size()));
  if (progress_) progress_->unhide();
}

}  // namespace runner
