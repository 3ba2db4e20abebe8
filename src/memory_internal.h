// Shared by memory.cpp and memory_cgroup.cpp: reading and writing cgroupfs files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runner/memory.h"

namespace runner {
namespace cgroupfs {

enum class Version { kV1, kV2 };

std::string read_text(const std::filesystem::path& file);  // trimmed; "" if unreadable
std::optional<std::uint64_t> read_u64(const std::filesystem::path& file);
// Returns 0 or the errno of the failed open or write.
int write_text(const std::filesystem::path& file, const std::string& text);
// The same relative to an open folder (AT_FDCWD: the working folder), without
// allocating: read_at fills buf and returns the text, empty if unreadable.
std::string_view read_at(int dir_fd, const char* name, char* buf, std::size_t size);
std::optional<std::uint64_t> parse_u64(std::string_view text);
std::optional<std::uint64_t> read_u64_at(int dir_fd, const char* name);
int write_at(int dir_fd, const char* name, std::string_view text);

}  // namespace cgroupfs

// The cgroup folder of one run: runner-<run id>.
std::string run_folder_name(const std::string& run);

// Cgroup caps below `own_dir`, runner's own cgroup in that hierarchy.
// Its run folder is named after `run` ("": this process's id).
std::unique_ptr<MemoryCaps> make_cgroup_caps(
    cgroupfs::Version version, const std::filesystem::path& own_dir,
    const std::optional<std::string>& kill_leftovers = std::nullopt, const std::string& run = "");

// Removes run folders that runners which are gone left below own_dir: the
// empty ones, and the one named `kill_in`, killing what is still in it.
// Returns how many folders were removed.
std::size_t sweep_stale_runs(const std::filesystem::path& own_dir,
                             const std::optional<std::string>& kill_in);

}  // namespace runner
