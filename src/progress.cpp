#include "runner/progress.h"

#include <fmt/format.h>
#include <stdio_ext.h>
#include <sys/ioctl.h>

#include <cmath>

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

std::string describe(const Snapshot& s, Clock::time_point now) {
  auto line =
      fmt::format("{}/{} done, {} failed, {} running", s.done, s.total, s.failed, s.running);
  auto elapsed = std::chrono::duration<double>(now - s.started).count();
  if (s.done_this_run > 0 && elapsed > 0) {
    double rate = static_cast<double>(s.done_this_run) / elapsed;
    line += fmt::format(", {:.1f}/s", rate);
    auto remaining = s.total - s.done - s.failed;
    if (remaining > 0 && s.running > 0) {
      auto eta_ms = static_cast<double>(remaining) / rate * 1e3;
      if (eta_ms < 1e12)
        line +=
            ", ETA " + format_duration(std::chrono::milliseconds(static_cast<long long>(eta_ms)));
    }
  }
  return line;
}

std::string status_line(const Snapshot& s, Clock::time_point now, std::size_t columns) {
  constexpr std::size_t kBar = 30;
  std::string bar(kBar, ' ');
  if (s.total > 0) {
    // Each kind gets the cells its share rounds to, done first.
    auto cells = [&](std::uint64_t n) {
      return static_cast<std::size_t>(
          std::lround(static_cast<double>(n) * kBar / static_cast<double>(s.total)));
    };
    std::size_t at = 0;
    for (auto [n, c] :
         {std::pair{s.done, '#'}, std::pair{s.failed, '!'}, std::pair{s.running, '>'}})
      for (auto k = cells(n); k > 0 && at < kBar; --k) bar[at++] = c;
  }
  auto line = fmt::format("[{}] {}", bar, describe(s, now));
  if (columns > 1 && line.size() > columns - 1) line.resize(columns - 1);
  return line;
}

namespace {

std::size_t terminal_columns(std::FILE* out) {
  winsize size{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

Progress::Progress(std::FILE* out, Mode mode, std::size_t columns)
    : out_(out), mode_(mode), columns_(columns ? columns : terminal_columns(out)) {}

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
    // \r and "erase to end of line": the line is rewritten in place.
    out_.print(fmt::format("\r\033[K{}", status_line(last_, now, columns_)));
    shown_ = true;
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

void Progress::hide() {
  if (mode_ == Mode::kTerminal && shown_) {
    out_.print("\r\033[K");
    shown_ = false;
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
