// An owned file descriptor: closed when its owner goes, never twice, never
// leaked on an early return. Move-only.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>
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

// Writes `text` to `path` whole: to a temporary file beside it, then renamed
// over it, so that a reader never sees half of it (nor a file of the name a
// collector looks for, such as *.prom, while it is written). The temporary
// file has a name no one can guess and is created anew (O_EXCL, no link
// followed): runner often runs as root, and a link planted where it writes
// is not written through. A link at `path` itself is replaced, not
// followed. Throws std::system_error; nothing is left behind.
void write_whole(const std::filesystem::path& path, std::string_view text);

}  // namespace runner
