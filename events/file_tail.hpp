#pragma once
// Follows a JSON-lines file as `tail -F` does: appended lines, rotation (the path comes
// to name a new file: the old one is read to its end first) and truncation (the file
// shrank: read again from 0). A missing file is waited for, not an error.

#include <cstdint>
#include <string>
#include <sys/types.h>

#include "events/defaults.hpp"
#include "events/json.hpp"
#include "events/line_reader.hpp"
#include "events/source.hpp"

namespace levee::events {

/// Keys are `<prefix>.<member>`, prefix "events.file_tail".
struct file_tail_config {
  std::string path;
  /// true: the file found at the first poll is read from its end (history is not
  /// re-ingested; a half-written last line is skipped). A file that appears later, or
  /// replaces it on rotation, is always read from its start.
  bool start_at_end = true;
  uint64_t read_chunk_bytes = defaults::file_read_chunk_bytes;
  uint64_t max_read_bytes_per_poll = defaults::max_read_bytes_per_poll;
};

/// The error names the key: `events.file_tail.path: must not be empty`.
status validate(const file_tail_config& config, const std::string& prefix = "events.file_tail");

class file_tail final : public source {
public:
  /// `config` and `limits` must pass validate(). Opens nothing until the first poll.
  file_tail(file_tail_config config, json_limits limits);
  ~file_tail() override;

  size_t poll(std::vector<event>& out, size_t max_events, int64_t now_ms) override;
  std::string_view kind() const noexcept override { return "file_tail"; }

  /// Bytes of the current file read so far (its position).
  uint64_t offset() const noexcept { return offset_; }
  /// Bytes held for lines not yet returned; at most max_line_bytes + read_chunk_bytes.
  size_t buffered_bytes() const noexcept { return reader_.buffered_bytes(); }

private:
  bool open_file();
  void close_file();

  file_tail_config config_;
  json_limits limits_;
  line_reader reader_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  uint64_t offset_ = 0;
  bool first_open_ = true;
};

} // namespace levee::events
