#pragma once
// The segment log: an append-only sequence of record batches with dense offsets, split
// into segment files `<base offset, 20 digits>.log` in one directory (FORMAT.md). Shared by
// stream leaders, replicas and satellite stores. Plain C++, no CAF.
//
// Recovery on open: every segment is scanned and every batch verified (length, CRC32C,
// dense offsets). A torn last batch (a crash during its write) is truncated away and
// reported; damage before the tail is a storage_error naming the file and position, and
// the log does not open: nothing is silently dropped.
//
// Promise of append() (fsync_policy):
//   every_batch — when append returns OK the batch is on disk (write + fdatasync);
//   interval    — the batch is written to the OS; the first append at least
//                 fsync_interval_ms after the last sync first makes everything before it
//                 durable (or fails, writing nothing), so while appends keep coming a
//                 machine crash loses at most about one interval; sync() forces it;
//   none        — the batch is written to the OS; a machine crash may lose it, a process
//                 crash may not.

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/file_lock.hpp"
#include "limits/defaults.hpp"
#include "limits/status.hpp"
#include "persistence/batch.hpp"
#include "persistence/batch_cache.hpp"
#include "persistence/file_io.hpp"

namespace levee::persistence {

enum class fsync_policy { none, interval, every_batch };

/// What opening a log does about damage that a crash cannot explain (a bad checksum or
/// offset before the last batch, a missing segment):
///   fail     — the open fails with a storage_error naming file and byte (the default:
///              nothing is dropped without someone deciding to);
///   truncate — the log is cut at the first damaged batch: it and everything after it
///              (later segments included) are removed and reported in recovery_report.
enum class corruption_policy { fail, truncate };

struct log_options {
  std::string dir;
  uint64_t max_segment_bytes = defaults::log_max_segment_bytes;  // roll past this
  /// Roll a segment this long after it became the one being written (created, or reopened
  /// by open()), at the next append; 0 = never by age. Retention drops whole segments, so
  /// a quiet log still lets old records go.
  uint64_t max_segment_age_ms = 0;
  batch_limits limits{defaults::log_max_record_bytes, defaults::log_max_batch_bytes, true};
  fsync_policy fsync = fsync_policy::every_batch;
  file_io* io = nullptr;  // nullptr: posix_io(); tests pass a fault injector
  uint64_t fsync_interval_ms = defaults::log_fsync_interval_ms;  // with fsync_policy::interval
  /// A closed segment's index file (`<base>.index`) has an entry about every this many
  /// bytes of batches.
  uint64_t index_interval_bytes = 4096;
  /// Segment files kept open at once (at least 1: the one being written).
  uint64_t max_open_files = defaults::log_max_open_files;
  corruption_policy on_corruption = corruption_policy::fail;
  /// Called during recovery about every 64 MiB scanned: (bytes scanned, bytes in all).
  std::function<void(uint64_t, uint64_t)> on_progress;
  /// Time source for the interval policy, in ms; nullptr: the steady clock.
  std::function<int64_t()> now_ms;
  /// Memory for batches that reads come back to (batch_cache.hpp); 0 = none.
  uint64_t read_cache_bytes = 0;
};

struct recovery_report {
  uint64_t segments = 0;
  uint64_t segments_from_index = 0;  // closed segments opened from a valid index, unread
  uint64_t indexes_rebuilt = 0;      // closed segments scanned because their index was
                                     // missing, stale or corrupt
  uint64_t batches = 0;
  uint64_t records = 0;           // offsets covered (compacted batches count their holes)
  uint64_t truncated_bytes = 0;   // torn tail removed
  std::string truncated_file;     // where, if any
  std::string truncated_reason;
  /// Under corruption_policy::truncate, when damage was cut away (truncated_* then say
  /// where and why): the log now ends at repaired_from_offset; the bytes and whole
  /// segment files removed after it.
  bool repaired = false;
  uint64_t repaired_from_offset = 0;
  uint64_t repaired_bytes_removed = 0;
  uint64_t repaired_segments_removed = 0;
};

class segment_log {
public:
  /// Opens (creating the directory if needed) and recovers the log. The log holds an
  /// exclusive lock on `<dir>/LOCK` (flock) while it is open: a second open of the same
  /// directory, from this process or another (a second node given the same data_dir),
  /// is a storage_error and touches nothing; two writers would interleave their batches
  /// and corrupt the log. The kernel drops the lock when the process ends, even by kill -9.
  static result<std::unique_ptr<segment_log>> open(const log_options& opts,
                                                   recovery_report* report = nullptr);
  ~segment_log();
  segment_log(const segment_log&) = delete;
  segment_log& operator=(const segment_log&) = delete;

  /// Appends one batch; returns the offset of its first record. On an I/O error nothing
  /// is reported written and the segment is cut back to its last good batch.
  result<uint64_t> append(const std::vector<record>& records);

  /// Removes every record at `offset` and after (a replica cutting its log back to the
  /// leader's). A batch that `offset` splits is rewritten with the records before it.
  /// Durable under every_batch when it returns OK. Offsets below start_offset() empty the
  /// log, which then continues at `offset`.
  status truncate_to(uint64_t offset);

  /// Records from `from` on, whole batches, up to about `max_bytes` of encoded batches (at
  /// least one record when any is there).
  result<std::vector<stored_record>> read(uint64_t from, uint64_t max_bytes) const;

  /// Like read(), without copying: `fn` sees each record from `from` on as views into the
  /// log's read buffer, valid only during the call, and returns false to stop after it
  /// (no further batch is read). Returns the offset after the last batch visited
  /// (next_offset() at the end).
  result<uint64_t> visit(uint64_t from, uint64_t max_bytes,
                         const std::function<bool(const record_view&)>& fn) const;

  /// Whole encoded batches from `from` on, as they lie in the log (FORMAT.md "Batch"),
  /// appended to `out`: what a leader sends a replica, which appends them with
  /// append_batches and so holds the same bytes. Up to about `max_bytes` (at least one
  /// batch when any is there). A batch that `from` splits (a replica cut its log inside a
  /// batch of the leader's) goes re-encoded from `from`, so every batch returned starts
  /// at or after `from`. Returns the offset after the last batch (`from` when none).
  result<uint64_t> read_batches(uint64_t from, uint64_t max_bytes, std::string& out) const;

  /// Appends encoded batches as they are (read_batches' output, a leader's): each is
  /// verified (check_batch) and must start at next_offset(); offsets and bytes are kept.
  /// A bad or misplaced batch is a storage_error and nothing from it on is written (the
  /// batches before it are). Returns how many batches were appended.
  result<uint64_t> append_batches(std::string_view batches);

  /// The offset of the first batch that may hold records at or after `timestamp_ms` (a
  /// batch's largest timestamp is at least it); next_offset() when none does. Records are
  /// not assumed to be in timestamp order: the caller filters what it reads from there.
  uint64_t offset_for_time(int64_t timestamp_ms) const;

  /// Retention by whole segments, oldest first; the segment being written is never
  /// removed. 0 disables a criterion. Returns the number of segments removed.
  struct retention {
    uint64_t max_bytes = 0;         // total size of the log's segments
    uint64_t max_messages = 0;      // records kept
    int64_t max_age_ms = 0;         // a segment goes when its newest record is older
  };
  result<size_t> apply_retention(const retention& policy, int64_t now_ms);

  uint64_t size_bytes() const noexcept;

  /// Key compaction of the closed segments (never the one being written): a record whose
  /// key appears again at a later offset anywhere in the log is removed; records without
  /// a key are kept; a tombstone (a key with an empty value) removes the records before it
  /// and is itself removed once it is older than tombstone_retention_ms. Offsets do not
  /// change: compacted batches (format version 2) keep their offset range with holes.
  /// Each segment is rewritten to `<name>.cleaned`, synced and renamed over the original,
  /// so a crash leaves either the old or the new segment.
  struct compaction {
    int64_t tombstone_retention_ms = 24 * 3600 * 1000;
    /// Memory for the key -> latest offset map. When it fills, keys first seen after that
    /// are not tracked and their records are kept: safe, less compact.
    uint64_t max_map_bytes = defaults::log_compaction_map_bytes;
  };
  struct compaction_report {
    uint64_t segments_rewritten = 0;
    uint64_t records_removed = 0;
    uint64_t tombstones_removed = 0;
    uint64_t bytes_before = 0;  // of the segments rewritten
    uint64_t bytes_after = 0;
    uint64_t keys = 0;
    bool map_full = false;  // the key map filled before the end of the log
  };
  result<compaction_report> compact(const compaction& policy, int64_t now_ms);

  /// Makes everything appended so far durable (fdatasync), whatever the policy.
  status sync();

  uint64_t start_offset() const noexcept;
  uint64_t next_offset() const noexcept { return next_offset_; }
  size_t segment_count() const noexcept { return segments_.size(); }

private:
  // The members below are defined in segment_*.cpp, one file per job (README.md).

  /// A sparse index entry: the first batch at or after every index_interval_bytes.
  struct index_entry {
    uint64_t base_offset;
    uint64_t position;
    int64_t max_timestamp_ms;  // of the batches from here to the next entry
  };
  struct segment {
    uint64_t base_offset;
    std::string path;
    int fd = -1;
    uint64_t size = 0;
    int64_t max_timestamp_ms = std::numeric_limits<int64_t>::min();
    /// Sparse entries, the same for the segment being written as for closed ones (kept
    /// in memory: one per index_interval_bytes, not one per batch). Reads start at the
    /// last entry at or before the offset they want and walk batches from there.
    std::vector<index_entry> entries;
    uint64_t last_used = 0;  // for closing the least recently used descriptor
    /// Unique among the segment files this log object has had (new, reopened, rewritten
    /// by compaction, cut by truncate_to): the scrubber tells a file it was walking from
    /// one that replaced it under the same base offset.
    uint64_t generation = 0;
  };
  /// Walks closed segments through the descriptors, the file_io and the sparse entries
  /// above, on the thread that uses the log (scrubber.hpp).
  friend class scrubber;

  explicit segment_log(log_options opts)
    : opts_(std::move(opts)), io_(opts_.io != nullptr ? *opts_.io : posix_io()),
      cache_(opts_.read_cache_bytes) {}
  status recover(recovery_report& report);
  /// Verifies every batch of `seg`. `cut` is set when damage was repaired by cutting the
  /// segment (corruption_policy::truncate): nothing after it may be kept.
  status scan(segment& seg, bool is_last, uint64_t& next, recovery_report& report, bool& cut);
  /// Under corruption_policy::truncate: removes the segment files bases[from..].
  status remove_from(const std::vector<uint64_t>& bases, size_t from, recovery_report& report);
  /// Records the batch at `position` in `seg`'s sparse entries.
  void note_batch(segment& seg, uint64_t base_offset, uint64_t position, int64_t max_ts) const;
  /// The position to start walking batches from for `offset`.
  uint64_t start_position(const segment& seg, uint64_t offset) const noexcept;
  /// Rewrites one closed segment keeping the records `keep` says yes to.
  status rewrite_segment(size_t index, uint64_t end_offset,
                         const std::function<int(const stored_record&)>& keep,
                         compaction_report& report);
  /// The segment's descriptor, opened if needed (closing the least recently used other
  /// closed segment's past max_open_files); -errno on failure.
  int fd_of(segment& seg) const;
  /// Walks verified batches from `from`, whole batches, up to about `max_bytes` (at least
  /// one that produced a record); `on_batch` says how many records it took. Returns the
  /// offset after the last batch walked.
  using batch_visitor = std::function<result<size_t>(const batch_header&, const uint8_t*, bool& stop)>;
  result<uint64_t> walk(uint64_t from, uint64_t max_bytes, const batch_visitor& on_batch) const;
  status roll(uint64_t base_offset);
  int64_t now_ms() const;  // opts_.now_ms or the steady clock
  /// Writes an encoded batch covering `offset_count` offsets from next_offset_, rolling
  /// first when the segment is full.
  status write_batch(std::string_view bytes, uint64_t offset_count, int64_t max_ts);
  std::string index_path(const segment& seg) const;
  /// Writes `seg`'s index for a segment that ends at `end_offset`.
  status write_index(const segment& seg, uint64_t end_offset);
  /// Reads `seg`'s index; false when missing, stale (size differs) or damaged.
  bool load_index(segment& seg, uint64_t& end_offset) const;
  void remove_segment_files(segment& seg);

  log_options opts_;
  file_io& io_;
  base::file_lock lock_;  // <dir>/LOCK, held while the log is open
  // Mutable: reads open descriptors (bounded by max_open_files) and mark them used.
  mutable std::vector<segment> segments_;
  uint64_t next_offset_ = 0;
  batch_encoder encoder_;  // append()'s buffers, reused
  int64_t active_since_ms_ = 0;  // when the segment being written became so (now_ms())
  mutable std::string read_buffer_;  // reused by read() and visit(); only grows
  mutable batch_cache cache_;        // what reads come back to; cleared when segments
                                     // are removed or rewritten
  int64_t last_sync_ms_ = 0;
  uint64_t scanned_bytes_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t next_progress_ = 0;
  mutable uint64_t use_tick_ = 0;
  uint64_t generations_ = 0;  // the last segment::generation handed out

public:
  /// Descriptors open now (for tests and stats).
  size_t open_files() const noexcept;
  /// The read cache (log_options::read_cache_bytes): its size, hits and misses.
  const batch_cache& read_cache() const noexcept { return cache_; }
};

} // namespace levee::persistence
