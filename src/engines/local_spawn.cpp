#include "engines/local_spawn.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>

namespace runner {

int create_log(int dir_fd, std::string& name) {
  constexpr int kMostNames = 1000;
  auto dot = name.rfind('.');
  auto stem = name.substr(0, dot);
  auto extension = dot == std::string::npos ? std::string() : name.substr(dot);
  for (int n = 1; n <= kMostNames; ++n) {
    if (n > 1) name = fmt::format("{}-{}{}", stem, n, extension);
    int fd =
        ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

}  // namespace runner
