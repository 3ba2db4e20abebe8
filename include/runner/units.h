// Durations and sizes the way people write them ("90s", "5m", "4G", "512M"),
// and the reverse, for messages and the status line.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace runner {

// "250ms", "90s", "5m", "2h", "1d", "1h30m", or a bare number of seconds.
// Returns nullopt for anything else, including negative values.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// "512M", "4G", "4GiB", "1.5G", "100K", "1T", or a bare number of bytes.
// Suffixes are binary (K = 1024), as memory is counted by the kernel.
std::optional<std::uint64_t> parse_size(std::string_view text);

// A whole number in [min, max], digits only: no sign, no spaces, no exponent.
std::optional<std::uint64_t> parse_count(std::string_view text, std::uint64_t min,
                                         std::uint64_t max);

// Text from the log (a command line, a path, a note) made safe to print on a
// terminal: control characters written as escapes ("\n", "\x1b"), so that
// no recorded text can move the cursor or rewrite what the user sees.
std::string printable(std::string_view text);

// Bytes made valid UTF-8 for JSON: well-formed sequences kept, each byte of
// an ill-formed one written "\xNN" (paths and arguments are bytes; JSON is
// Unicode).
std::string valid_utf8(std::string_view bytes);

std::string format_duration(std::chrono::milliseconds d);  // "1h02m", "3m05s", "4.2s"
std::string format_size_kib(std::uint64_t kib);            // "512 KiB", "3.4 MiB", "4.0 GiB"

}  // namespace runner
