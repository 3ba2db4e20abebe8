#include "runner/cluster.h"

#include <fmt/format.h>

#include <cassert>

namespace runner {
namespace {

constexpr std::string_view kPlaceholders[] = {"{}", "{i}", "{n}"};

bool contains_placeholder(const std::string& arg) {
  for (auto p : kPlaceholders)
    if (arg.find(p) != std::string::npos) return true;
  return false;
}

std::string substitute(const std::string& arg, ClusterId cluster, ClusterId clusters) {
  std::string out;
  out.reserve(arg.size() + 16);
  for (std::size_t i = 0; i < arg.size();) {
    auto rest = std::string_view(arg).substr(i);
    if (rest.starts_with("{}")) {
      fmt::format_to(std::back_inserter(out), "{}/{}", cluster, clusters);
      i += 2;
    } else if (rest.starts_with("{i}")) {
      fmt::format_to(std::back_inserter(out), "{}", cluster);
      i += 3;
    } else if (rest.starts_with("{n}")) {
      fmt::format_to(std::back_inserter(out), "{}", clusters);
      i += 3;
    } else {
      out += arg[i++];
    }
  }
  return out;
}

bool is_name_char(unsigned char c) {
  return std::isalnum(c) || c == '.' || c == '_' || c == '-';
}

}  // namespace

// FNV-1a: small, stable across builds and platforms, good enough to tell
// command lines apart in a job name.
std::string job_key(std::string_view command, ClusterId clusters) {
  return fmt::format("{:016x}", stable_hash(fmt::format("{}\n{}", command, clusters)));
}

std::uint64_t stable_hash(std::string_view data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

CommandTemplate::CommandTemplate(std::vector<std::string> argv) : argv_(std::move(argv)) {
  assert(!argv_.empty());
  for (const auto& a : argv_) has_placeholder_ = has_placeholder_ || contains_placeholder(a);
}

std::vector<std::string> CommandTemplate::render(ClusterId cluster, ClusterId clusters) const {
  std::vector<std::string> out;
  out.reserve(argv_.size() + 1);
  if (has_placeholder_) {
    for (const auto& a : argv_) out.push_back(substitute(a, cluster, clusters));
    return out;
  }
  out = argv_;
  auto token = fmt::format("{}/{}", cluster, clusters);
  // The program itself is never the "last argument" that takes the token.
  if (out.size() > 1 && out.back().ends_with('='))
    out.back() += token;
  else
    out.push_back(std::move(token));
  return out;
}

std::string CommandTemplate::display() const {
  std::string out;
  for (const auto& a : argv_) {
    if (!out.empty()) out += ' ';
    out += shell_quote(a);
  }
  return out;
}

std::string shell_quote(std::string_view arg) {
  if (arg.empty()) return "''";
  bool plain = true;
  for (unsigned char c : arg)
    if (!(std::isalnum(c) ||
          std::string_view("@%_+=:,./-{}").find(static_cast<char>(c)) != std::string_view::npos))
      plain = false;
  if (plain) return std::string(arg);
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string derive_job_name(const CommandTemplate& command, ClusterId clusters) {
  auto program = std::string_view(command.program());
  if (auto slash = program.rfind('/'); slash != std::string_view::npos)
    program.remove_prefix(slash + 1);
  std::string base;
  for (char c : program.substr(0, 40))
    base += is_name_char(static_cast<unsigned char>(c)) ? c : '_';
  if (base.empty()) base = "job";
  // Never a hidden folder nor something that reads as an option.
  if (base.front() == '.' || base.front() == '-') base.front() = '_';
  auto hash = stable_hash(fmt::format("{}\n{}", command.display(), clusters));
  return fmt::format("{}-{}-{:08x}", base, clusters, static_cast<std::uint32_t>(hash));
}

bool is_valid_job_name(std::string_view name) {
  // A name that starts with '.' or '-' would be a hidden folder or read as an option.
  if (name.empty() || name.size() > 128 || name.front() == '.' || name.front() == '-') return false;
  for (unsigned char c : name)
    if (!is_name_char(c)) return false;
  return true;
}

}  // namespace runner
