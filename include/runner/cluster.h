// A cluster is one slice of a job, written i/N (1 <= i <= N). The command
// template turns the user's command line into the argv of cluster i.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace runner {

using ClusterId = std::uint64_t;

// Where the cluster token goes:
//  - placeholders, in any argument: "{}" -> "i/N", "{i}" -> "i", "{n}" -> "N";
//  - otherwise appended to the last argument when it ends with '=';
//  - otherwise added as a separate last argument.
class CommandTemplate {
 public:
  explicit CommandTemplate(std::vector<std::string> argv);  // argv must not be empty

  std::vector<std::string> render(ClusterId cluster, ClusterId clusters) const;

  const std::vector<std::string>& argv() const { return argv_; }
  const std::string& program() const { return argv_.front(); }
  // The template as one shell-quoted line; two templates are the same command
  // exactly when their display strings are equal.
  std::string display() const;

 private:
  std::vector<std::string> argv_;
  bool has_placeholder_ = false;
};

// Quotes an argument so that sh reads it back as one word, unchanged.
std::string shell_quote(std::string_view arg);

// The job name used when the user gives none: stable for the same command
// template and N, so that rerunning a command line resumes its job.
std::string derive_job_name(const CommandTemplate& command, ClusterId clusters);

// A 64-bit hash that is the same in every build of runner (FNV-1a), for
// names derived from text: job names, the job lock's name.
std::uint64_t stable_hash(std::string_view data);
// What makes a job the same job whatever it is named: its command and N, as
// a key its workers' journals carry.
std::string job_key(std::string_view command, ClusterId clusters);

// Job names become folder names for the logs: letters, digits, '.', '_', '-'.
bool is_valid_job_name(std::string_view name);

}  // namespace runner
