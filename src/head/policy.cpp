#include "runner/policy.h"

#include <fmt/format.h>

#include <cmath>

#include "runner/units.h"

namespace runner {
namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  while (true) {
    auto at = text.find(sep);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

}  // namespace

std::optional<RetryPolicy> RetryPolicy::parse_on(std::string_view text) {
  RetryPolicy p;
  p.any_exit_ = p.signal_ = p.timeout_ = false;
  for (auto word : split(text, ',')) {
    if (word == "exit") {
      p.any_exit_ = true;
    } else if (word.starts_with("exit:")) {
      auto code = parse_count(word.substr(5), 1, 255);
      if (!code) return std::nullopt;
      p.exit_codes_.insert(static_cast<int>(*code));
    } else if (word == "signal") {
      p.signal_ = true;
    } else if (word == "timeout") {
      p.timeout_ = true;
    } else if (word == "oom") {
      p.oom_ = true;
    } else {
      return std::nullopt;
    }
  }
  return p;
}

bool RetryPolicy::applies(Ending ending, std::optional<int> exit_code) const {
  switch (ending) {
    case Ending::kDone:
      return false;
    case Ending::kExit:
      return any_exit_ || (exit_code && exit_codes_.contains(*exit_code));
    case Ending::kSignal:
      return signal_;
    case Ending::kTimeout:
      return timeout_;
    case Ending::kOom:
      return oom_;
  }
  return false;
}

std::chrono::milliseconds RetryPolicy::backoff(std::uint32_t n, std::mt19937_64& rng) const {
  double base = static_cast<double>(delay.count()) * std::pow(2.0, std::min<double>(n - 1, 20));
  double jitter = std::uniform_real_distribution<double>(0.5, 1.5)(rng);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(base * jitter, 86'400e3)));
}

std::optional<HaltPolicy> HaltPolicy::parse(std::string_view text) {
  HaltPolicy h;
  if (text == "never") return h;
  auto parts = split(text, ',');
  if (parts.size() != 2 || !parts[1].starts_with("fail=")) return std::nullopt;
  if (parts[0] == "soon")
    h.when_ = When::kSoon;
  else if (parts[0] == "now")
    h.when_ = When::kNow;
  else
    return std::nullopt;
  auto value = parts[1].substr(5);
  if (value.ends_with('%')) {
    auto pct = parse_count(value.substr(0, value.size() - 1), 1, 100);
    if (!pct) return std::nullopt;
    h.is_percent_ = true;
    h.percent_ = static_cast<double>(*pct);
  } else {
    auto n = parse_count(value, 1, UINT64_MAX);
    if (!n) return std::nullopt;
    h.count_ = *n;
  }
  return h;
}

bool HaltPolicy::reached(std::uint64_t failed, std::uint64_t finished) const {
  if (when_ == When::kNever || failed == 0) return false;
  if (!is_percent_) return failed >= count_;
  if (finished < 3) return false;
  return 100.0 * static_cast<double>(failed) >= percent_ * static_cast<double>(finished);
}

std::string HaltPolicy::describe() const {
  if (is_percent_) return fmt::format("{:g}% of finished clusters failed", percent_);
  return fmt::format("{} cluster(s) failed", count_);
}

}  // namespace runner
