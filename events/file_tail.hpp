#pragma once
// Follows a JSON-lines file as `tail -F` does: appended lines, rotation (the path comes
// to name a new file: the old one is read to its end first) and truncation (the file
// shrank: read again from 0). A missing file is waited for, not an error. Says where each
// event's line ended (device, inode, offset, a fingerprint of the file's first bytes), so
// that a restarted satellite can resume() exactly there.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>
#include <vector>

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
  /// replaces it on rotation, is always read from its start. Not used after resume().
  bool start_at_end = true;
  uint64_t read_chunk_bytes = defaults::file_read_chunk_bytes;
  uint64_t max_read_bytes_per_poll = defaults::max_read_bytes_per_poll;
  /// bytes at the file's start whose CRC32C goes with each position (file_position).
  uint64_t fingerprint_bytes = defaults::fingerprint_bytes;
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

  const std::vector<persistence::file_position>* event_positions() const noexcept override {
    return &positions_;
  }
  /// After the last line consumed from the current file; a position without a file while
  /// the path names none (what appears there will be read from its start); nullopt before
  /// the first poll or while the file cannot be opened.
  std::optional<persistence::file_position> position() const override;

  /// Instead of start_at_end: carries on from `at`, a position() of an earlier run, and
  /// opens the file now. The same file (device, inode and fingerprint) at least `at.offset`
  /// long: from there. The path names another file (rotated while stopped): the old one,
  /// found by device and inode beside the path, from there to its end, then any files
  /// rotated away after it (below), then the path from its start. The old one gone or not
  /// the same (its inode reused): counted in files_lost, the path from its start. Shorter
  /// than `at.offset` (truncated while stopped): from its start, counted in truncations.
  /// Returns one sentence saying which, for the log; it says "may be lost" when lines may
  /// have been.
  ///
  /// Rotated more than once (since the position, or between two polls): the files born
  /// after the one being finished and before the one the path names, named like the path
  /// plus a suffix (app.log.1, app.log-20240611; not .gz, .bz2, .xz, .zst, .lz4, .zip),
  /// are read whole in the order of their birth, before the path. Needs a file system
  /// that records birth times (statx STATX_BTIME: ext4, xfs, btrfs, tmpfs); elsewhere
  /// their lines are missed.
  std::string resume(const persistence::file_position& at);

  /// Bytes of the current file read so far (its position).
  uint64_t offset() const noexcept { return offset_; }
  /// Bytes held for lines not yet returned; at most max_line_bytes + read_chunk_bytes.
  size_t buffered_bytes() const noexcept { return reader_.buffered_bytes(); }

private:
  /// Opens `path` as a regular file; -1 when it does not exist (`missing`) or on an
  /// error (recorded).
  int open_regular(const std::string& path, struct stat& st, bool& missing);
  bool open_file();
  void close_file();
  /// Makes `fd` (a regular file with `st`, opened at `path`) the current file, read from
  /// `offset`; with `mid_line` the line that offset falls in is skipped silently.
  void adopt(int fd, const struct stat& st, const std::string& path, uint64_t offset,
             bool mid_line);
  /// Extends the fingerprint over the file's first min(fingerprint_bytes, offset_) bytes.
  void refresh_fingerprint();
  /// Queues the files rotated away after the current one (see resume()).
  void queue_rotated_after();
  /// Opens the next queued rotated file, or else the path.
  bool open_next();
  persistence::file_position current_position() const;

  file_tail_config config_;
  json_limits limits_;
  line_reader reader_;
  int fd_ = -1;
  std::string fd_path_;      // the path fd_ was opened by (an old file's name at resume)
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  uint64_t offset_ = 0;      // bytes of the file read into reader_
  uint64_t consumed_ = 0;    // bytes of the file behind the last line taken from reader_
  bool consumed_mid_line_ = false;  // consumed_ is inside the line skipped at the start
  uint32_t fingerprint_ = 0;
  uint32_t fingerprint_bytes_ = 0;
  std::vector<persistence::file_position> positions_;  // of the last poll's events
  std::optional<int64_t> birth_ns_;  // of the current file, if the file system records it
  struct rotated_file {
    std::string path;
    uint64_t device;
    uint64_t inode;
  };
  std::deque<rotated_file> queued_;  // rotated away after the current file, oldest first
  bool first_open_ = true;
};

} // namespace levee::events
