// The stream form of the logs (--log-format stream): one file per worker
// and run, `<logs>/<job>/<run>.stream`, to which the worker appends its
// children's output as it reads it from their pipes, in frames, and an index
// beside it, `<run>.stream.idx`, that says where each frame is. An attempt's
// log path is then `<stream>#<cluster>.<attempt>`, and its output is its
// frames in order. Parallel children write into their own pipes, so their
// output never interleaves within a frame.
//
// The format. Both files start with a 16-byte header: an 8-byte magic
// ("rnstream" or "rnsindex"), the version (1) and, in the index, the size
// of a record. A frame is a 24-byte header (the magic "rnf1", the length of
// its payload, the cluster and the attempt) and the payload. An index record
// is the cluster, the attempt, the payload's length and its offset in the
// stream. Numbers are little-endian. A record is written only once its frame
// is, so a record cut short by a crash (the file's last bytes) is ignored,
// and each record read is checked against the frame it points at. A reader
// refuses a file of another version, naming it.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "runner/cluster.h"
#include "runner/fd.h"

namespace runner {

enum class LogFormat { kStream, kFiles };

std::optional<LogFormat> parse_log_format(std::string_view word);
const char* to_string(LogFormat format);

// An attempt's place in a stream: what `<stream>#<cluster>.<attempt>` says.
struct StreamRef {
  std::string path;
  ClusterId cluster = 0;
  std::uint32_t attempt = 0;
};
std::string stream_ref(const std::string& path, ClusterId cluster, std::uint32_t attempt);
// Nothing for a log path that is not a stream's (a files form log).
std::optional<StreamRef> parse_stream_ref(std::string_view log_path);

// Appends frames to a stream and records them in its index. Owns both
// files; one writer per stream.
class StreamWriter {
 public:
  // Creates `<name>.stream` and its index in the folder, new (never over a
  // file that exists nor through a link: a taken name gets `<name>-2.stream`,
  // ...). Throws std::system_error naming the file.
  StreamWriter(int dir_fd, const std::string& dir, const std::string& name);
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  const std::string& path() const { return path_; }
  // One frame of an attempt's output. Returns 0, or the errno of a write
  // that failed (then that piece of output is lost, and the stream stays
  // readable).
  int append(ClusterId cluster, std::uint32_t attempt, std::string_view data);

 private:
  Fd stream_, index_;
  std::string path_;
  std::uint64_t end_ = 0;  // the stream's length, where the next frame goes
};

// Copies an attempt's output from a stream to `out`, frame by frame.
// Returns the bytes copied (0: it wrote nothing). Throws Error when the
// stream or its index cannot be read or do not agree.
std::uint64_t copy_stream_attempt(const StreamRef& ref, std::ostream& out);

}  // namespace runner
