#pragma once
// A stream's configuration (README.md "Config keys"): what CreateStream sets and the
// catalog keeps, and the [stream] section of a broker's config, which holds the defaults
// of a new stream and the broker-wide rules of subjects and reads.
//
// A stream's own settings are named as the [stream] keys they default from
// (`retention_max_bytes` in a stream, `stream.retention_max_bytes` in the config file),
// and a refusal made by a stream's setting names that key.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/limits_config.hpp"
#include "limits/status.hpp"
#include "persistence/segment_log.hpp"
#include "streams/subject.hpp"

namespace levee::streams {

/// What a partition does when an append would take it past retention_max_bytes or
/// retention_max_messages:
///   drop_oldest — appends, then drops whole segments, oldest first, and counts them;
///   reject      — refuses the append with stream_full (code 18), naming the limit, with
///                 what it would hold (observed) and the bound (max).
/// Age (retention_max_age_ms) always drops old segments: time passing is not fullness.
enum class on_full_policy { drop_oldest, reject };

/// Stream names are directory names: 1 to 64 bytes of A-Z, a-z, 0-9, '_' and '-'.
constexpr size_t max_stream_name_bytes = 64;

struct stream_config {
  std::string name;
  std::string subject;  // the pattern text (subject.hpp)
  uint64_t partitions = defaults::stream_partitions;
  uint64_t max_message_bytes = defaults::stream_max_message_bytes;          // bytes
  uint64_t retention_max_bytes = defaults::stream_retention_max_bytes;      // per partition
  uint64_t retention_max_messages = defaults::stream_retention_max_messages;  // 0 = none
  uint64_t retention_max_age_ms = defaults::stream_retention_max_age_ms;    // 0 = none
  uint64_t max_segment_bytes = defaults::stream_max_segment_bytes;          // bytes
  uint64_t dedupe_window_ms = defaults::stream_dedupe_window_ms;            // 0 = no dedupe
  uint64_t dedupe_max_entries = defaults::stream_dedupe_max_entries;        // ids
  uint64_t max_message_id_bytes = defaults::stream_max_message_id_bytes;    // bytes
  uint64_t fsync_interval_ms = defaults::stream_fsync_interval_ms;          // ms
  on_full_policy on_full = on_full_policy::drop_oldest;
  bool compact_by_key = false;
  persistence::fsync_policy fsync = persistence::fsync_policy::every_batch;
  /// This stream's overrides of its leader's actor limits ([limits.stream]): an
  /// actor_limit_keys() name (`mailbox_capacity`, `rate_msgs_per_sec`, ...) -> value.
  std::map<std::string, uint64_t> limits;
};

bool operator==(const stream_config& a, const stream_config& b);

/// The [stream] section: a new stream's defaults and the broker's rules.
struct stream_settings {
  stream_config defaults;  // name and subject empty
  subject_limits subjects;
  uint64_t read_max_messages = defaults::stream_read_max_messages;
  uint64_t read_max_bytes = defaults::stream_read_max_bytes;
  /// What a CreateStream that gives 0 gets (a clustered broker; alone, always 1): copies
  /// of each partition, and how many must be in sync for an ack = all publish
  /// (insufficient_replicas below it, limit stream.min_insync_replicas).
  uint64_t replication_factor = defaults::stream_replication_factor;
  uint64_t min_insync_replicas = defaults::stream_min_insync_replicas;
};

/// Reads the keys `stream.*` of `cfg` (other sections are not looked at). An unknown key,
/// a value that is not a number or out of its range, or a rule between values broken is
/// a bad_request naming the key and the value.
result<stream_settings> stream_settings_from_config(const flat_config& cfg);

/// Every key stream_settings_from_config accepts (`levee config-keys`).
std::vector<std::string> config_keys();

/// Checks a stream's config: its name, its subject pattern (with `subjects`), each value
/// in its range, and the rules between them; `bad_request` naming the setting and what to
/// do. Used when a stream is created and when its catalog file is read.
status validate(const stream_config& cfg, const subject_limits& subjects = {});

/// The stream's name rules alone (max_stream_name_bytes, the characters).
status validate_stream_name(std::string_view name);

/// `kind` (the [limits.stream] limits) with this stream's overrides applied.
actor_limits effective_limits(const stream_config& cfg, const actor_limits& kind);

std::string_view to_string(on_full_policy p) noexcept;
std::string_view to_string(persistence::fsync_policy p) noexcept;

/// The catalog file's text (README.md "Catalog file"): `key = value` lines and a last
/// line with the CRC32C of the lines before it.
std::string encode_catalog_entry(const stream_config& cfg);
/// Reads what encode_catalog_entry wrote; `file` names the file in errors. A checksum
/// that does not match, a line that does not parse, an unknown key or a config that
/// validate() refuses is a storage_error naming the file (and the line) and what to do.
result<stream_config> decode_catalog_entry(const std::string& text, const std::string& file,
                                           const subject_limits& subjects = {});

} // namespace levee::streams
