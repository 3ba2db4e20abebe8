#include "runner/units.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace runner {
namespace {

// Reads a non-negative decimal number (digits, optionally one '.') from the
// front of text and advances past it.
std::optional<double> take_number(std::string_view& text) {
  std::size_t n = 0;
  bool dot = false;
  while (n < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[n])) || (text[n] == '.' && !dot))) {
    dot = dot || text[n] == '.';
    ++n;
  }
  if (n == 0 || (n == 1 && dot)) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + n, value);
  if (ec != std::errc{} || end != text.data() + n) return std::nullopt;
  text.remove_prefix(n);
  return value;
}

std::string_view take_unit(std::string_view& text) {
  std::size_t n = 0;
  while (n < text.size() && std::isalpha(static_cast<unsigned char>(text[n]))) ++n;
  auto unit = text.substr(0, n);
  text.remove_prefix(n);
  return unit;
}

std::optional<double> duration_unit_ms(std::string_view unit) {
  if (unit == "ms") return 1.0;
  if (unit == "s" || unit == "sec") return 1e3;
  if (unit == "m" || unit == "min") return 60e3;
  if (unit == "h") return 3600e3;
  if (unit == "d") return 86400e3;
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  bool first = true;
  double last_scale = 0;  // units go from the largest down, each once: "1h30m", not "3s3s"
  while (!text.empty()) {
    auto number = take_number(text);
    if (!number) return std::nullopt;
    auto unit = take_unit(text);
    if (unit.empty()) {
      // A bare number means seconds, and only on its own: "1h30" is ambiguous.
      if (!first || !text.empty()) return std::nullopt;
      total_ms = *number * 1e3;
      break;
    }
    auto scale = duration_unit_ms(unit);
    if (!scale || (!first && *scale >= last_scale)) return std::nullopt;
    last_scale = *scale;
    total_ms += *number * *scale;
    first = false;
  }
  if (!std::isfinite(total_ms) || total_ms > 1e15) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(total_ms)));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  auto number = take_number(text);
  if (!number) return std::nullopt;
  auto unit = take_unit(text);
  if (!text.empty()) return std::nullopt;
  std::string u;
  for (char c : unit) u += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (u.size() == 3 && u.substr(1) == "IB") u.resize(1);  // GiB -> G
  if (u.size() == 2 && u[1] == 'B') u.resize(1);          // GB -> G, taken as binary
  double scale = 0;
  if (u.empty() || u == "B")
    scale = 1;
  else if (u == "K")
    scale = 1024.0;
  else if (u == "M")
    scale = 1024.0 * 1024;
  else if (u == "G")
    scale = 1024.0 * 1024 * 1024;
  else if (u == "T")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else
    return std::nullopt;
  double bytes = *number * scale;
  if (!std::isfinite(bytes) || bytes >= 9.2e18) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(bytes));
}

std::optional<std::uint64_t> parse_count(std::string_view text, std::uint64_t min,
                                         std::uint64_t max) {
  if (text.empty()) return std::nullopt;
  for (char c : text)
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  if (value < min || value > max) return std::nullopt;
  return value;
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms < 0) ms = 0;
  if (ms < 60'000) return fmt::format("{:.1f}s", static_cast<double>(ms) / 1e3);
  auto s = ms / 1000;
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

std::string format_size_kib(std::uint64_t kib) {
  if (kib < 1024) return fmt::format("{} KiB", kib);
  double v = static_cast<double>(kib) / 1024;
  if (v < 1024) return fmt::format("{:.1f} MiB", v);
  v /= 1024;
  if (v < 1024) return fmt::format("{:.1f} GiB", v);
  return fmt::format("{:.1f} TiB", v / 1024);
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    // C1 controls in UTF-8 (U+0080..U+009F): some terminals act on them too.
    auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {
      out += fmt::format("\\u{:04x}", next);
      ++i;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {

// The length of the well-formed UTF-8 sequence at text[i], or 0.
std::size_t utf8_length(std::string_view text, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  auto c = at(i);
  std::size_t n = c < 0x80           ? 1
                  : (c >> 5) == 0x6  ? 2
                  : (c >> 4) == 0xe  ? 3
                  : (c >> 3) == 0x1e ? 4
                                     : 0;
  if (n == 0 || i + n > text.size() || (n == 2 && c < 0xc2)) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((at(i + k) & 0xc0) != 0x80) return 0;
  std::uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (at(i + k) & 0x3f);
  // Overlong forms, surrogates, and beyond U+10FFFF are not UTF-8.
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

}  // namespace

std::string valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    if (auto n = utf8_length(bytes, i)) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(bytes[i]));
      ++i;
    }
  }
  return out;
}

}  // namespace runner
