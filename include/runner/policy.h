// When to try a cluster again (--retries, --retry-delay, --retry-on) and when
// to give up on the whole run (--halt), as plain values the scheduler asks.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>

namespace runner {

// How an attempt ended, as far as these policies care.
enum class Ending { kDone, kExit, kSignal, kTimeout, kOom };

class RetryPolicy {
 public:
  // --retry-on: a comma list of "exit" (any non-zero exit code), "exit:N",
  // "signal", "timeout", "oom". The default retries exit, signal and timeout.
  static std::optional<RetryPolicy> parse_on(std::string_view text);

  std::uint32_t retries = 0;  // more attempts after the first, in one run
  std::chrono::milliseconds delay{1000};

  bool applies(Ending ending, std::optional<int> exit_code) const;
  // Exponential backoff with jitter before the nth retry (n >= 1): delay *
  // 2^(n-1), times a factor drawn from [0.5, 1.5), so that clusters that
  // failed together do not all come back at the same moment.
  std::chrono::milliseconds backoff(std::uint32_t n, std::mt19937_64& rng) const;

  bool operator==(const RetryPolicy&) const = default;

 private:
  bool any_exit_ = true;
  std::set<int> exit_codes_;
  bool signal_ = true;
  bool timeout_ = true;
  bool oom_ = false;
};

class HaltPolicy {
 public:
  enum class When { kNever, kSoon, kNow };
  // "never", "soon,fail=5", "now,fail=10%". Like GNU parallel's --halt.
  static std::optional<HaltPolicy> parse(std::string_view text);

  When when() const { return when_; }
  // Whether `failed` final failures out of `finished` clusters reach it.
  // A percentage is judged once at least 3 clusters have finished.
  bool reached(std::uint64_t failed, std::uint64_t finished) const;
  std::string describe() const;  // "5 failures", "10% failed"

  bool operator==(const HaltPolicy&) const = default;

 private:
  When when_ = When::kNever;
  std::uint64_t count_ = 0;
  double percent_ = 0;
  bool is_percent_ = false;
};

}  // namespace runner
