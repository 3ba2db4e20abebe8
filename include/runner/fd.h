// An owned file descriptor: closed when its owner goes, never twice, never
// leaked on an early return. Move-only.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace runner {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Writes `text` to `path` whole: to <path>.<pid>.tmp beside it, then renamed
// over it, so that a reader never sees half of it (nor a file of the name a
// collector looks for, such as *.prom, while it is written). Throws
// std::system_error; nothing is left behind.
inline void write_whole(const std::filesystem::path& path, std::string_view text) {
  auto temporary = path;
  temporary += "." + std::to_string(::getpid()) + ".tmp";
  auto fail = [&](int error) {
    ::unlink(temporary.c_str());
    throw std::system_error(error, std::generic_category(), path.string());
  };
  {
    Fd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
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
