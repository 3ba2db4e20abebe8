#include "runner/fd.h"

#include <fmt/format.h>
#include <sys/random.h>

#include <cerrno>
#include <system_error>

namespace runner {
namespace {

// A name beside `path` that no one can guess: 64 random bits.
std::filesystem::path temporary_beside(const std::filesystem::path& path) {
  std::uint64_t bits = 0;
  if (::getrandom(&bits, sizeof bits, 0) != sizeof bits)
    throw std::system_error(errno, std::generic_category(), "getrandom");
  auto name = path;
  name += fmt::format(".{:016x}.tmp", bits);
  return name;
}

}  // namespace

void write_whole(const std::filesystem::path& path, std::string_view text) {
  auto temporary = temporary_beside(path);
  auto fail = [&](int error) {
    ::unlink(temporary.c_str());
    throw std::system_error(error, std::generic_category(), path.string());
  };
  {
    Fd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) throw std::system_error(errno, std::generic_category(), path.string());
    while (!text.empty()) {
      auto n = ::write(fd.get(), text.data(), text.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail(n < 0 ? errno : EIO);
      text.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) fail(errno);
}

}  // namespace runner
