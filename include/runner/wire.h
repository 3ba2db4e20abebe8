// What runner and its workers say to each other, and what a worker's journal
// holds: one line a message. The messages of every attempt (start, stop,
// started, not started, ended, committed, a journal line) are tab-separated
// fields behind a letter, cheap to write and read: a JSON object costs about
// 14 µs to write and read back here, more than the whole budget an attempt
// has for them. The rare ones (config, ready, log, usage, settle) are JSON
// objects, whose lines start with '{'.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runner/engine.h"

namespace runner {

// The fields of one line, unescaped. kind() is its letter, or '{' for JSON.
class Fields {
 public:
  explicit Fields(std::string_view line);
  char kind() const { return kind_; }
  std::size_t size() const { return fields_.size(); }
  const std::string& text(std::size_t i) const { return fields_.at(i); }
  std::uint64_t count(std::size_t i) const;
  std::int64_t number(std::size_t i) const;
  double real(std::size_t i) const;
  template <class T>
  std::optional<T> maybe(std::size_t i) const;  // "-" for none

 private:
  char kind_ = 0;
  std::vector<std::string> fields_;  // after the letter
};

// Runner to worker.
std::string encode_start(const AttemptSpec& spec);
AttemptSpec decode_start(const Fields& f);
std::string encode_stop(AttemptId id, bool now);
std::string encode_committed(std::uint64_t seq);

// Worker to runner: an event, with the journal's sequence number where the
// event was journalled.
std::string encode_event(const EngineEvent& event, std::optional<std::uint64_t> seq);
EngineEvent decode_event(const Fields& f, std::optional<std::uint64_t>& seq);

// A journal line: how one attempt started and ended, all a later runner
// needs to record it.
struct JournalEntry {
  std::string job;
  ClusterId cluster = 0;
  std::uint32_t attempt = 0;
  AttemptStarted started;
  std::optional<std::uint64_t> mem_limit_kib;
  std::optional<double> timeout_s;
  Outcome outcome;
};
std::string encode_journal(const JournalEntry& entry, std::uint64_t seq);
std::optional<JournalEntry> decode_journal(const Fields& f);

// Reads whole lines from a descriptor that may give them in pieces.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // Reads what is there without blocking (the descriptor is non-blocking)
  // and returns the complete lines; `closed` says the other end is gone.
  std::vector<std::string> read_available(bool& closed);

 private:
  int fd_;
  std::string partial_;
};

// Lines gathered and written together: one write for all that one wakeup
// has to say. Returns false once the reader is gone or the write failed.
class Outbox {
 public:
  void add(const std::string& line) {
    text_ += line;
    text_ += '\n';
  }
  void add(const nlohmann::json& message) { add(message.dump()); }
  bool empty() const { return text_.empty(); }
  bool flush(int fd);

 private:
  std::string text_;
};

// Writes one line, whole, to a blocking descriptor.
bool write_line(int fd, const nlohmann::json& message);

}  // namespace runner
