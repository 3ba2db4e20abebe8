// What a person sees while a job runs. On a terminal: one status line redrawn
// in place. Elsewhere (cron, a pipe): a plain line at most every few seconds,
// no control characters. Log lines from spdlog go through ProgressSink, which
// lifts the status line out of their way.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "runner/cluster.h"
#include "runner/engine.h"

namespace runner {

// Where runner prints for people: stdout or stderr, which may go away under
// it (`runner ... | head -1`, a closed terminal). A write that fails means
// "stop printing", never "stop running": after the first failure it is
// silent. runner ignores SIGPIPE so that such a write fails instead of
// killing it.
class Printer {
 public:
  explicit Printer(std::FILE* out) : out_(out) {}
  // Writes and flushes; returns false once the stream is gone.
  bool print(std::string_view text);
  bool closed() const { return closed_; }

 private:
  std::FILE* out_;
  bool closed_ = false;
};

struct Snapshot {
  ClusterId total = 0;
  ClusterId done = 0;    // all done clusters of the job
  ClusterId failed = 0;  // clusters that failed in this run
  ClusterId running = 0;
  ClusterId done_this_run = 0;
  Clock::time_point started{};
};

// "1234/10000 done, 3 failed, 3 running, 41.2/s, ETA 3m33s"
std::string describe(const Snapshot& s, Clock::time_point now);
// The same for a narrow terminal: "1234/10000 3! 3> 41.2/s ETA 3m33s".
std::string describe_compact(const Snapshot& s, Clock::time_point now);
// The terminal's status: a bar of 8 to 30 cells (done '#', failed '!',
// running '>', pending ' ') in brackets, then describe(), or where that
// does not fit describe_compact(); without the bar where even that does not
// fit. No longer than `columns` - 1, so that it never wraps.
std::string status_line(const Snapshot& s, Clock::time_point now, std::size_t columns);

class Progress {
 public:
  enum class Mode { kTerminal, kPlain, kSilent };
  // columns: the terminal's width (0: ask the terminal at every draw, so
  // that a resized terminal is followed; 80 if it cannot say).
  Progress(std::FILE* out, Mode mode, std::size_t columns = 0);

  // Draws the status if it is due; cheap to call after every event.
  void update(const Snapshot& s, Clock::time_point now);
  // When the status should next be drawn even if nothing happens.
  std::optional<Clock::time_point> next_tick() const;
  // Removes the live line (terminal only), for the final summary.
  void finish();

  // For ProgressSink: hide the line before a log message and redraw it after.
  void hide();
  void unhide();

 private:
  void draw(Clock::time_point now);
  std::string erase(std::size_t columns) const;

  Printer out_;
  std::FILE* file_;
  Mode mode_;
  std::size_t columns_;  // 0: the terminal's, as it is at each draw
  Snapshot last_{};
  bool have_snapshot_ = false;
  std::size_t shown_ = 0;  // the length of the live line on screen; 0: none
  std::string printed_;    // what the plain mode printed last
  Clock::time_point last_draw_{};
};

// An spdlog sink that writes to stderr and keeps the terminal status line intact.
class ProgressSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ProgressSink(Progress* progress) : progress_(progress), err_(stderr) {}
  void set_progress(Progress* progress) { progress_ = progress; }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

 private:
  Progress* progress_;
  Printer err_;
};

}  // namespace runner
