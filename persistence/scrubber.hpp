#pragma once
// Scrub: verifies a log's closed segments in the background, a bounded number of bytes per
// step, so that damage is known before a read trips over it (FORMAT.md "Scrub"). Plain C++,
// no CAF: the caller paces the steps (a satellite's store with a token bucket).
//
// A pass walks the segments that were closed when it began, in offset order; each segment
// from its first byte to its end, checking what recovery checks (every batch's header and
// payload CRC32C, sane header values, each batch starting at the offset the previous one
// leads to, the segment ending where the next one starts) and that the log's sparse index
// agrees with the batches (each entry at a batch start with that batch's offset, its
// largest timestamp not below the batches it covers). Records are not decoded: the
// checksums cover them. Damage stops the walk of that segment (after it nothing can be
// trusted to be a batch boundary) and is reported with the file, the byte and the reason,
// in recovery's words.
//
// Segments that go while a pass walks them (retention, compaction's rewrite, truncation)
// are skipped, not reported: a later pass sees what replaced them.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "persistence/batch.hpp"

namespace levee::persistence {

class segment_log;

/// Where a scrub found damage.
struct scrub_damage {
  std::string file;          // the segment's path
  uint64_t base_offset = 0;  // the segment's first offset
  uint64_t position = 0;     // byte in the file where the damaged batch (or check) starts
  std::string reason;        // recovery's words: "batch payload checksum mismatch", ...

  /// "<file> at byte <position>: <reason>"
  std::string to_string() const;
};

struct scrub_stats {
  uint64_t bytes_verified = 0;     // segment bytes checked, over all passes
  uint64_t passes_completed = 0;
  uint64_t segments_verified = 0;  // closed segments walked to their end or their damage
  uint64_t segments_skipped = 0;   // gone or replaced while a pass was walking them
  /// Closed segments of the log, as it is now, whose last walk found damage.
  uint64_t damaged_segments = 0;
  std::optional<scrub_damage> last_damage;  // the latest found, whatever became of it
};

/// What one step did.
struct scrub_step {
  uint64_t bytes_read = 0;  // at most the step's max_bytes
  /// Damage found in a segment for the first time (not on each pass again): what a
  /// caller reports once. Every finding also updates stats().
  std::vector<scrub_damage> new_damage;
  bool pass_done = false;   // this step ended a pass; the next step begins the next one
};

/// The smallest step: a batch header and then some.
constexpr uint64_t scrub_min_step_bytes = 4096;

class scrubber {
public:
  /// `log` must outlive the scrubber. The scrubber reads through the log's descriptors and
  /// file_io, so it is called on the thread that uses the log, between the log's other
  /// calls (segment_log is not thread-safe, its reads included).
  explicit scrubber(const segment_log& log) : log_(log) {}

  /// Verifies up to `max_bytes` (at least scrub_min_step_bytes) of closed segments, going
  /// on from where the previous step stopped, mid-batch included: a batch larger than a
  /// step is checked over several, and nothing read is held after the step but a partial
  /// checksum. Begins a pass when none is under way.
  [[nodiscard]] scrub_step step(uint64_t max_bytes);

  /// Whether a pass is under way (a step has begun it and none has ended it yet).
  bool in_pass() const noexcept { return in_pass_; }

  scrub_stats stats() const;

private:
  /// The segment being walked, and how far.
  struct walk {
    uint64_t base_offset = 0;
    uint64_t generation = 0;
    uint64_t position = 0;     // the next byte to read
    uint64_t limit = 0;        // bytes to walk: the file's or the log's size, the smaller
    uint64_t file_size = 0;    // on disk when the walk began
    uint64_t next_offset = 0;  // where the next batch must start
    size_t entry = 0;          // the next sparse index entry to meet
    int64_t range_max_ts;      // largest batch timestamp since the last entry met
    int64_t segment_max_ts;    // largest batch timestamp so far
    // A batch whose payload goes on past what was read so far.
    bool in_batch = false;
    uint64_t batch_start = 0;
    batch_header header;
    uint64_t payload_left = 0;
    payload_checksum payload;
  };

  /// Reads and checks up to `allowance` bytes of the walk's segment; returns the bytes
  /// read. Damage or the segment's end ends the walk.
  uint64_t walk_some(uint64_t allowance, scrub_step& out);
  /// The checks at a batch header at byte `at`; false after reporting damage.
  bool check_header(const batch_header& h, uint64_t at, scrub_step& out);
  /// The range of the last index entry met holds no batch newer than the entry says;
  /// false after reporting damage.
  bool check_range(scrub_step& out);
  /// The checks once the whole segment was walked; false after reporting damage.
  bool check_end(scrub_step& out);
  void found(uint64_t position, std::string reason, scrub_step& out);

  const segment_log& log_;
  bool in_pass_ = false;
  uint64_t pass_end_base_ = 0;              // the pass walks closed segments below it
  std::optional<uint64_t> last_base_;       // the last segment this pass began
  std::optional<walk> walk_;
  std::string buffer_;                      // one step's bytes; released between passes
  std::map<uint64_t, uint64_t> damaged_;    // base offset -> generation found damaged
  scrub_stats stats_;
};

} // namespace levee::persistence
