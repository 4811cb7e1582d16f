#pragma once
// Consumer-group cursors (README.md "Cursors"): the next offset a group reads in one
// partition of one stream, held in memory for FetchCursor and kept in the broker's
// internal compacted stream `__cursors` (key = the cursor's key, body = the offset in
// decimal), read back at start so a group resumes where it left off after a restart.
// Plain C++: the broker actor owns the table.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "limits/status.hpp"
#include "metadata/metadata_state.hpp"
#include "streams/partition_log.hpp"

namespace levee::broker {

/// The internal stream's name: streams named `__...` are the broker's own, hidden from
/// ListStreams and never matched by a publish.
constexpr std::string_view cursor_stream_name = "__cursors";
constexpr std::string_view internal_stream_prefix = "__";
/// Its subject: never published to (the broker skips internal streams when it matches).
constexpr std::string_view cursor_stream_subject = "levee.internal.cursors";
/// bytes of a group name: a name people choose, and part of every cursor's key in memory
/// and on disk; 256 holds any sane one (the replicated metadata checks the same bound).
constexpr uint64_t max_group_bytes = metadata::max_cursor_group_bytes;

inline bool is_internal_stream(std::string_view name) {
  return name.substr(0, internal_stream_prefix.size()) == internal_stream_prefix;
}

class cursor_table {
public:
  /// `max_cursors`: broker.max_cursors.
  explicit cursor_table(uint64_t max_cursors) : max_(max_cursors) {}

  /// `stream/partition/group`: a stream name has no '/', so the group may have any byte.
  static std::string key_of(std::string_view group, std::string_view stream,
                            uint32_t partition);

  /// A group name's rules (1 to max_group_bytes bytes): bad_request saying what to send.
  static status check_group(std::string_view group);

  /// Room for `key`: a known key always has it; a new one only below max_cursors
  /// (memory_budget_exhausted naming broker.max_cursors).
  status check_room(const std::string& key) const;

  void set(const std::string& key, uint64_t offset) { cursors_[key] = offset; }
  /// Forgets every cursor (clustered: the metadata's whole table follows).
  void clear() noexcept { cursors_.clear(); }
  /// Forgets every cursor of `stream` and returns their keys (to write their tombstones:
  /// a message with the key and an empty body, which load() reads as "gone").
  std::vector<std::string> forget_stream(std::string_view stream);
  std::optional<uint64_t> get(const std::string& key) const;
  size_t size() const noexcept { return cursors_.size(); }

  /// Reads every cursor the internal stream holds (the last commit of each key wins; an
  /// empty body is a tombstone: the cursor's stream was deleted).
  /// Keys past max_cursors are left out and counted in `dropped`.
  status load(const streams::partition_log& log);
  uint64_t dropped() const noexcept { return dropped_; }

private:
  uint64_t max_;
  uint64_t dropped_ = 0;
  std::map<std::string, uint64_t, std::less<>> cursors_;
};

} // namespace levee::broker
