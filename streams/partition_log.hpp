#pragma once
// One partition of a stream on the segment log (persistence/segment_log.hpp): append
// with deduplication, an expected last offset and the retention policy; reads from any
// position below the high-water mark; retention and key compaction. README.md says what
// each fsync policy promises. Plain C++, no CAF; not thread-safe: one owner (later its
// stream leader actor) calls it.
//
// Offsets are the segment log's: dense from 0, one per message, never reused. Each
// message is stamped with the partition's clock when it is appended (never earlier than
// the message before it), so timestamps never go backwards within a partition: a read
// from time T, retention by age and the dedupe window all use that time. A publisher's
// own event time belongs in a header.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "limits/clock.hpp"
#include "persistence/checkpoint.hpp"
#include "limits/status.hpp"
#include "persistence/segment_log.hpp"
#include "streams/dedupe_window.hpp"
#include "streams/stream_config.hpp"

namespace levee::streams {

/// Header names starting with this are the partition's own (the message id is stored as
/// `levee.id`); a publish may not use them.
constexpr std::string_view reserved_header_prefix = "levee.";
constexpr std::string_view id_header = "levee.id";

/// A message to append: views, valid during the call.
struct message {
  std::string_view key;   // empty: none (the partition was chosen some other way)
  std::string_view id;    // empty: no deduplication for this message
  std::string_view body;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

/// What a message counts against max_message_bytes: key, id, body and every header's
/// name and value.
uint64_t message_bytes(const message& m) noexcept;

struct append_ack {
  uint64_t offset = 0;      // the message's offset (the original one for a duplicate)
  int64_t timestamp_ms = 0;  // when it was stored (0 for a duplicate)
  bool duplicate = false;    // its id was in the window: not stored again
};

/// A message read back.
struct stored_message {
  uint64_t offset = 0;
  int64_t timestamp_ms = 0;
  std::string key;
  std::string id;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // the publisher's only
};

/// Where a read starts (as Liftbridge's start positions).
struct read_position {
  enum class kind { earliest, latest, new_only, offset, time };
  kind from = kind::earliest;
  uint64_t offset = 0;   // with kind::offset
  int64_t time_ms = 0;   // with kind::time

  static read_position earliest() { return {}; }
  /// The last committed message (the high-water mark minus one), or new_only when none.
  static read_position latest() { return {kind::latest, 0, 0}; }
  /// Only messages appended from now on.
  static read_position new_only() { return {kind::new_only, 0, 0}; }
  static read_position at_offset(uint64_t n) { return {kind::offset, n, 0}; }
  /// The first message stamped at or after `t` (ms since the Unix epoch).
  static read_position at_time(int64_t t) { return {kind::time, 0, t}; }
};

struct read_request {
  uint64_t from = 0;  // an offset, from resolve() or a previous read's next_offset
  uint64_t max_messages = defaults::stream_read_max_messages;
  uint64_t max_bytes = defaults::stream_read_max_bytes;  // message_bytes() summed; at least
                                                         // one message is returned
  std::optional<uint64_t> stop_offset;  // the last offset to deliver, inclusive
  std::optional<int64_t> stop_time_ms;  // no message stamped after this is delivered
};

struct read_result {
  std::vector<stored_message> messages;
  uint64_t next_offset = 0;  // where the next read continues
  /// Offsets between `from` and the partition's start that retention removed before they
  /// were read (the read continued from the start).
  uint64_t skipped = 0;
  bool done = false;  // the stop position was reached: no later read will deliver more
};

struct partition_stats {
  uint64_t appended = 0;             // messages stored
  uint64_t duplicates = 0;           // publishes acknowledged as duplicates
  uint64_t rejected_too_large = 0;   // message_too_large
  uint64_t rejected_full = 0;        // stream_full (on_full = reject)
  uint64_t rejected_expected_offset = 0;  // precondition_failed
  uint64_t dropped_segments = 0;     // by retention, every criterion
  uint64_t dropped_messages = 0;     // offsets dropped by retention
  uint64_t dropped_bytes = 0;
  uint64_t compacted_records = 0;    // removed by compaction
  uint64_t dedupe_forgotten_by_age = 0;
  uint64_t dedupe_forgotten_by_count = 0;  // forgotten early: dedupe_max_entries reached
  uint64_t syncs = 0;                // syncs that advanced the high-water mark (interval)
};

struct partition_options {
  std::string dir;        // the partition's segment log directory
  stream_config config;   // the stream's (name, retention, dedupe, fsync, sizes)
  uint32_t partition = 0;
  const clock_source* clock = nullptr;  // nullptr: the real clock; must outlive the log
  persistence::corruption_policy on_corruption = persistence::corruption_policy::fail;
  persistence::file_io* io = nullptr;   // nullptr: the real file system; must outlive it
  uint64_t read_cache_bytes = 0;
};

class partition_log {
public:
  /// Opens (creating if needed) and recovers the partition's log, then rebuilds the
  /// dedupe window from the log's tail (the messages stamped within dedupe_window_ms of
  /// now, at most dedupe_max_entries of them) and makes the log durable (the high-water
  /// mark starts at its end). A damaged log is the segment log's storage_error.
  static result<std::unique_ptr<partition_log>> open(partition_options opts,
                                                     persistence::recovery_report* report = nullptr);

  /// A message of `bytes` (message_bytes()) against max_message_bytes: called by whoever
  /// reads a message off the wire with its length, before allocating for it, and by
  /// append before anything else. message_too_large naming stream.max_message_bytes.
  status check_message_bytes(uint64_t bytes) const;

  /// Appends `batch` in order; one ack per message. Every message is checked first (size,
  /// id size, headers): one bad message refuses the whole batch and nothing is stored.
  /// Then a message whose id is in the window (or earlier in the batch) is acknowledged
  /// as a duplicate with the original offset; `expected_last_offset`, when given, must
  /// equal last_offset() (no_last_offset for a partition never written) unless every
  /// message is a duplicate, or precondition_failed; under on_full = reject a batch that
  /// would take the partition past retention_max_bytes or retention_max_messages is
  /// refused with stream_full. Nothing is acknowledged before the fsync policy wrote it.
  result<std::vector<append_ack>> append(const std::vector<message>& batch,
                                         std::optional<uint64_t> expected_last_offset = {});
  result<append_ack> append(const message& m, std::optional<uint64_t> expected_last_offset = {});

  /// Drops whole segments past the retention bounds: by age always, by bytes and
  /// messages under drop_oldest (append does this too). Counted in stats().
  struct dropped {
    uint64_t segments = 0;
    uint64_t messages = 0;
    uint64_t bytes = 0;
  };
  result<dropped> apply_retention();

  /// Key compaction (the segment log's) when the stream has compact_by_key; a report of
  /// zeros otherwise.
  result<persistence::segment_log::compaction_report> compact();

  /// Makes everything appended durable; the high-water mark moves to the end.
  status sync();
  /// Under fsync = interval: sync() when fsync_interval_ms passed since the last one and
  /// something is waiting. A timer calls this; a no-op under the other policies.
  status sync_if_due();

  /// The first offset a read from `pos` returns (not_found for an offset that retention
  /// removed or that is beyond the end, naming the range that exists).
  result<uint64_t> resolve(const read_position& pos) const;
  /// Messages from req.from, below the high-water mark, within the request's bounds.
  result<read_result> read(const read_request& req) const;

  static constexpr uint64_t no_last_offset = UINT64_MAX;
  /// The offset of the last message ever appended (no_last_offset if none).
  uint64_t last_offset() const noexcept;
  uint64_t start_offset() const noexcept { return log_->start_offset(); }
  uint64_t next_offset() const noexcept { return log_->next_offset(); }
  /// Readers see offsets below this: for replication factor 1, the end of what the fsync
  /// policy made durable (README.md "High-water mark"); once replicated, the lower of
  /// that and the mark its leader computed from the ISR (set_high_water).
  uint64_t high_water() const noexcept {
    return replicated_high_water_ ? std::min(*replicated_high_water_, durable_end_) : durable_end_;
  }
  /// The end of what the fsync policy made durable here.
  uint64_t durable_end() const noexcept { return durable_end_; }

  // -- Replicas (README.md "Replicas"): a leader's log copied batch by batch, leader
  // epochs, truncation, and a high-water mark learned from the leader. --------------------

  /// Whole encoded batches from `from` (segment_log::read_batches): what a leader answers
  /// a replica's fetch with, byte for byte. Returns the offset after them.
  result<uint64_t> read_copy(uint64_t from, uint64_t max_bytes, std::string& out) const;
  /// Appends a leader's batches as they are (offsets and bytes kept; each verified and
  /// placed at next_offset(), or storage_error and nothing from it on). The dedupe window
  /// learns their ids, so this replica deduplicates as its leader did if it leads next.
  /// Does not move the high-water mark: the leader says where it is.
  status append_copy(std::string_view batches);

  /// Replication is on (a leader or follower of a replicated partition): from now on the
  /// high-water mark is what set_high_water says (starting where it is now, or at the
  /// checkpoint the partition opened with), and checkpoint_high_water keeps it.
  status enable_replication();
  bool replicated() const noexcept { return replicated_high_water_.has_value(); }
  /// Raises the replicated high-water mark to `hw` (never beyond next_offset(), never
  /// down: only truncate_to lowers it). Needs enable_replication().
  void set_high_water(uint64_t hw) noexcept;
  /// Writes the replicated high-water mark to `<dir>/high-water` if it moved since the
  /// last write (persistence/checkpoint.hpp: temp file, fsync, rename, fsync the
  /// directory), so a restarted replica does not show readers offsets above it.
  status checkpoint_high_water();

  /// (leader epoch, first offset written in it), oldest first; kept in
  /// `<dir>/leader-epochs` (written whole and atomically at each change).
  const std::vector<persistence::epoch_entry>& leader_epochs() const noexcept { return epochs_; }
  std::optional<uint64_t> last_epoch() const noexcept {
    return epochs_.empty() ? std::nullopt : std::optional<uint64_t>{epochs_.back().first};
  }
  /// A leader starts `epoch` at next_offset(): recorded when newer than the last epoch
  /// (an epoch that wrote nothing is replaced by the next). Older or equal: nothing.
  status begin_epoch(uint64_t epoch);
  /// A follower records its leader's entry (epoch, start) as the copies it appends reach
  /// it: same rules as begin_epoch at `start`.
  status note_epoch(uint64_t epoch, uint64_t start_offset);
  /// Kafka's OffsetsForLeaderEpoch: for `epoch`, the largest epoch this log knows that is
  /// not newer, and the offset where it ended (the start of the next epoch, or
  /// next_offset() for the latest). `undefined` when `epoch` is newer than every epoch
  /// here (or the log has none).
  struct epoch_end {
    uint64_t epoch = 0;
    uint64_t end_offset = 0;
    bool undefined = false;
  };
  epoch_end end_offset_for_epoch(uint64_t epoch) const;
  /// Removes every message at `offset` and after (segment_log::truncate_to), and the
  /// epochs that started there or later; the dedupe window forgets their ids and the
  /// high-water mark comes down to `offset` if it was above. A replica cutting a tail its
  /// leader does not have.
  status truncate_to(uint64_t offset);
  uint64_t size_bytes() const noexcept { return log_->size_bytes(); }
  /// The counters, the dedupe window's included.
  partition_stats stats() const noexcept {
    auto s = stats_;
    s.dedupe_forgotten_by_age = window_.forgotten_by_age();
    s.dedupe_forgotten_by_count = window_.forgotten_by_count();
    return s;
  }
  size_t dedupe_entries() const noexcept { return window_.size(); }
  const stream_config& config() const noexcept { return opts_.config; }

private:
  explicit partition_log(partition_options opts);
  status rebuild_window();
  int64_t now_ms() const noexcept { return clock_->wall_ms(); }
  int64_t steady_ms() const noexcept { return clock_->now_ns() / 1'000'000; }
  std::string where() const;
  status check_message(const message& m) const;
  status check_room(uint64_t messages, uint64_t bytes);
  status after_append();
  status load_replication_state();
  status write_epochs();
  status add_epoch(uint64_t epoch, uint64_t start_offset);

  partition_options opts_;
  const clock_source* clock_;
  std::unique_ptr<persistence::segment_log> log_;
  dedupe_window window_;
  uint64_t durable_end_ = 0;  // what the fsync policy made durable
  std::optional<uint64_t> replicated_high_water_;  // set once replication is on
  uint64_t checkpointed_high_water_ = UINT64_MAX;  // last written (none: UINT64_MAX)
  std::vector<persistence::epoch_entry> epochs_;
  int64_t last_timestamp_ms_ = 0;
  int64_t last_sync_ms_ = 0;  // steady ms of the last sync (interval policy)
  partition_stats stats_;
};

} // namespace levee::streams
