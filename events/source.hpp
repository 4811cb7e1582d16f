#pragma once
// What every event source offers the actor that drives it with a timer: a poll that never
// blocks and returns a bounded batch, counters, and the last error. Sources are plain C++
// and single-threaded: one actor owns one source.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/event.hpp"
#include "events/json.hpp"
#include "limits/status.hpp"
#include "persistence/source_positions.hpp"

namespace levee::events {

/// Counters since the source was made. Members a kind of source does not use stay 0.
struct source_stats {
  uint64_t events = 0;     // events returned by poll
  uint64_t lines = 0;      // non-blank lines read, good and bad
  uint64_t bad_lines = 0;  // lines refused (sum of bad_lines_by_kind)
  std::array<uint64_t, bad_line_kind_count> bad_lines_by_kind{};  // by bad_line_kind
  std::string last_bad_reason;  // the newest refusal's reason, e.g. "invalid JSON at byte 3: ..."
  uint64_t bytes_read = 0;  // bytes taken from files, sockets or /proc
  uint64_t errors = 0;      // failed system calls and unreadable input (last_error says which)

  // file_tail
  bool waiting_for_file = false;  // the path names no file (yet); not an error
  uint64_t files_opened = 0;
  uint64_t rotations = 0;    // the path came to name a new file; the old one was finished
  uint64_t truncations = 0;  // the file shrank; reading restarted at 0
  /// At resume: the file read before the restart was gone (rotated away and deleted, or
  /// its inode reused), so lines written to it after the stored position are lost.
  uint64_t files_lost = 0;

  // unix_socket_source
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // over max_connections: told why, then closed
  uint64_t connections_closed = 0;   // accepted ones that have gone
  uint64_t connections_open = 0;
};

class source {
public:
  virtual ~source() = default;
  source(const source&) = delete;
  source& operator=(const source&) = delete;

  /// Appends at most `max_events` events to `out` and returns how many. Never blocks and
  /// reads a bounded number of bytes; what it could not return yet stays buffered (within
  /// the source's bounds) for the next poll. `now_ms` (epoch ms) stamps events that carry
  /// no time of their own and drives time-based sources.
  virtual size_t poll(std::vector<event>& out, size_t max_events, int64_t now_ms) = 0;

  /// "file_tail", "unix_socket", "proc", "synthetic".
  virtual std::string_view kind() const noexcept = 0;

  /// Sources whose input outlives the process (file_tail) say where each event of the
  /// last poll ended: element i is the position just after the line of the i-th event
  /// that poll appended (as many as it returned). nullptr for the others.
  virtual const std::vector<persistence::file_position>* event_positions() const noexcept {
    return nullptr;
  }
  /// The position after everything consumed so far (events, bad and blank lines), once
  /// there is one; nullopt for sources without positions.
  virtual std::optional<persistence::file_position> position() const { return std::nullopt; }

  const source_stats& stats() const noexcept { return stats_; }

  /// The newest error ("storage_error: read /var/log/app.json: Permission denied"), or ""
  /// if there never was one. Errors are also counted in stats().errors.
  std::string last_error() const { return last_error_.ok() ? std::string{} : last_error_.to_string(); }
  const status& last_status() const noexcept { return last_error_; }

protected:
  source() = default;

  void record_error(status st) {
    ++stats_.errors;
    last_error_ = std::move(st);
  }

  void record_bad_line(bad_line_kind kind, std::string reason) {
    ++stats_.bad_lines;
    ++stats_.bad_lines_by_kind[static_cast<size_t>(kind)];
    stats_.last_bad_reason = std::move(reason);
  }

  /// Parses one line into a new element of `out`; a blank line is skipped, a bad one is
  /// counted. True if an event was added.
  bool take_line(std::string_view line, std::vector<event>& out, int64_t now_ms,
                 const json_limits& limits);

  /// Counts a line that was over max_line_bytes.
  void take_too_long(uint64_t length, const json_limits& limits);

  source_stats stats_;
  status last_error_;
};

/// Which `errno` text; for messages.
std::string errno_text(int err);

} // namespace levee::events
