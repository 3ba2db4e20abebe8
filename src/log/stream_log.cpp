#include "runner/stream_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>
#include <vector>

#include "runner/error.h"

namespace runner {
namespace {

constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeader = 16, kFrame = 24, kRecord = 24;
constexpr char kStreamMagic[] = "rnstream", kIndexMagic[] = "rnsindex", kFrameMagic[] = "rnf1";
constexpr int kMostNames = 1000;

void put32(char* at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<char>(v >> (8 * i));
}
void put64(char* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t get32(const char* at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(at[i]);
  return v;
}
std::uint64_t get64(const char* at) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(at[i]);
  return v;
}

void file_header(char (&h)[kHeader], const char* magic, std::uint32_t record) {
  std::copy_n(magic, 8, h);
  put32(h + 8, kVersion);
  put32(h + 12, record);
}

// Writes all of `iov`, going on after a short write. Returns 0 or the errno.
int write_all(int fd, iovec* iov, int count) {
  while (count > 0) {
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

int create_new(int dir_fd, const std::string& name) {
  return ::openat(dir_fd, name.c_str(),
                  O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

// Opens what runner did not create here: no link followed, no blocking, a
// regular file only.
Fd open_to_read(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  if (!fd) throw Error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(fmt::format("{} is not a regular file", path));
  return fd;
}

bool read_at(int fd, char* into, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pread(fd, into, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    into += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

void check_header(int fd, const std::string& path, const char* magic) {
  char h[kHeader];
  if (!read_at(fd, h, kHeader, 0) || std::memcmp(h, magic, 8) != 0)
    throw Error(fmt::format("{} is not a runner log stream", path));
  if (get32(h + 8) != kVersion)
    throw Error(fmt::format("{} is of stream version {}; this runner reads version {}", path,
                            get32(h + 8), kVersion));
}

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view word) {
  if (word == "stream") return LogFormat::kStream;
  if (word == "files") return LogFormat::kFiles;
  return std::nullopt;
}

const char* to_string(LogFormat format) {
  return format == LogFormat::kStream ? "stream" : "files";
}

std::string stream_ref(const std::string& path, ClusterId cluster, std::uint32_t attempt) {
  return fmt::format("{}#{}.{}", path, cluster, attempt);
}

std::optional<StreamRef> parse_stream_ref(std::string_view log_path) {
  auto hash = log_path.rfind('#');
  if (hash == std::string_view::npos || !log_path.substr(0, hash).ends_with(".stream"))
    return std::nullopt;
  auto key = log_path.substr(hash + 1);
  auto dot = key.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  StreamRef ref{std::string(log_path.substr(0, hash)), 0, 0};
  auto whole = [](std::string_view digits, auto& into) {
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), into);
    return ec == std::errc{} && end == digits.data() + digits.size() && !digits.empty();
  };
  if (!whole(key.substr(0, dot), ref.cluster) || !whole(key.substr(dot + 1), ref.attempt) ||
      ref.cluster == 0 || ref.attempt == 0)
    return std::nullopt;
  return ref;
}

StreamWriter::StreamWriter(int dir_fd, const std::string& dir, const std::string& name) {
  for (int n = 1; n <= kMostNames && !stream_; ++n) {
    auto stem = n == 1 ? name : fmt::format("{}-{}", name, n);
    Fd stream(create_new(dir_fd, stem + ".stream"));
    if (!stream && errno == EEXIST) continue;
    path_ = fmt::format("{}/{}.stream", dir, stem);
    if (!stream) throw std::system_error(errno, std::generic_category(), "cannot create " + path_);
    Fd index(create_new(dir_fd, stem + ".stream.idx"));
    if (!index) {
      int err = errno;
      ::unlinkat(dir_fd, (stem + ".stream").c_str(), 0);
      if (err == EEXIST) continue;
      throw std::system_error(err, std::generic_category(), "cannot create " + path_ + ".idx");
    }
    stream_ = std::move(stream);
    index_ = std::move(index);
  }
  if (!stream_)
    throw std::system_error(EEXIST, std::generic_category(),
                            fmt::format("cannot create {}/{}.stream", dir, name));
  char h[kHeader];
  file_header(h, kStreamMagic, 0);
  iovec one{h, kHeader};
  int err = write_all(stream_.get(), &one, 1);
  file_header(h, kIndexMagic, kRecord);
  one = {h, kHeader};
  if (err == 0) err = write_all(index_.get(), &one, 1);
  if (err != 0) throw std::system_error(err, std::generic_category(), "cannot write " + path_);
  end_ = kHeader;
}

int StreamWriter::append(ClusterId cluster, std::uint32_t attempt, std::string_view data) {
  char frame[kFrame];
  std::copy_n(kFrameMagic, 4, frame);
  put32(frame + 4, static_cast<std::uint32_t>(data.size()));
  put64(frame + 8, cluster);
  put32(frame + 16, attempt);
  put32(frame + 20, 0);
  iovec iov[] = {{frame, kFrame}, {const_cast<char*>(data.data()), data.size()}};
  int err = write_all(stream_.get(), iov, 2);
  // A frame cut short (a full disk) still takes its room: the next one goes
  // after what is really there, and no record points at it.
  struct stat st {};
  if (err != 0) {
    if (::fstat(stream_.get(), &st) == 0) end_ = static_cast<std::uint64_t>(st.st_size);
    return err;
  }
  char record[kRecord];
  put64(record, cluster);
  put32(record + 8, attempt);
  put32(record + 12, static_cast<std::uint32_t>(data.size()));
  put64(record + 16, end_ + kFrame);
  end_ += kFrame + data.size();
  iovec one{record, kRecord};
  return write_all(index_.get(), &one, 1);
}

std::uint64_t copy_stream_attempt(const StreamRef& ref, std::ostream& out) {
  auto index_path = ref.path + ".idx";
  auto stream = open_to_read(ref.path);
  auto index = open_to_read(index_path);
  check_header(stream.get(), ref.path, kStreamMagic);
  check_header(index.get(), index_path, kIndexMagic);
  std::vector<char> records(std::size_t{1} << 16), data;
  std::uint64_t copied = 0, at = kHeader;
  for (;;) {
    ssize_t n = ::pread(index.get(), records.data(), records.size(), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    // A record cut short by a crash is the file's last bytes: not a record.
    auto whole = static_cast<std::size_t>(std::max<ssize_t>(n, 0)) / kRecord * kRecord;
    if (whole == 0) break;
    for (std::size_t r = 0; r < whole; r += kRecord) {
      const char* rec = records.data() + r;
      if (get64(rec) != ref.cluster || get32(rec + 8) != ref.attempt) continue;
      auto length = get32(rec + 12);
      auto offset = get64(rec + 16);
      char frame[kFrame];
      data.resize(length);
      if (offset < kHeader + kFrame || !read_at(stream.get(), frame, kFrame, offset - kFrame) ||
          std::memcmp(frame, kFrameMagic, 4) != 0 || get32(frame + 4) != length ||
          get64(frame + 8) != ref.cluster || get32(frame + 16) != ref.attempt ||
          !read_at(stream.get(), data.data(), length, offset))
        throw Error(fmt::format("{} does not hold the frame its index names at offset {}", ref.path,
                                offset));
      out.write(data.data(), static_cast<std::streamsize>(length));
      copied += length;
    }
    at += whole;
  }
  out.flush();
  return copied;
}

}  // namespace runner
