#pragma once
// The streams of a data directory (README.md "Data directory"): each stream's config in
// its catalog file, its partitions' segment logs, and the subject index over them.
//
//   <data dir>/<stream>/stream.conf       the config, replaced atomically
//   <data dir>/<stream>/partition-<n>/    partition n's segment log
//
// A stream is created in `<stream>.creating/` and renamed into place, and deleted by
// renaming it to `<stream>.deleting/` first, so a crash leaves a whole stream or none;
// opening removes what such a crash left. Opening loads every stream it can: a damaged
// catalog file leaves that stream out, a damaged partition leaves that partition
// unavailable, each reported in problems() with the file and what to do, and neither
// stops the other streams (or the stream's other partitions) from loading.
//
// Not thread-safe: one owner (later the broker's stream table) uses it.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "limits/clock.hpp"
#include "limits/status.hpp"
#include "persistence/file_io.hpp"
#include "streams/partition_log.hpp"
#include "streams/stream_config.hpp"
#include "streams/subject_index.hpp"

namespace levee::streams {

/// The name of a stream's catalog file in its directory.
constexpr std::string_view catalog_file_name = "stream.conf";

struct catalog_options {
  std::string data_dir;
  subject_limits subjects;
  const clock_source* clock = nullptr;  // nullptr: the real clock; must outlive the catalog
  persistence::file_io* io = nullptr;   // nullptr: the real file system; must outlive it
  uint64_t read_cache_bytes = 0;        // per partition (partition_options)
};

/// A stream, or one of its partitions, that did not load.
struct load_problem {
  std::string stream;                  // its name (the directory's, when the file is damaged)
  std::optional<uint32_t> partition;   // set when only that partition is unavailable
  std::string path;                    // the file or directory at fault
  status error;                        // what is wrong and what to do
};

class stream {
public:
  stream_id id() const noexcept { return id_; }
  const stream_config& config() const noexcept { return config_; }
  const subject_pattern& pattern() const noexcept { return pattern_; }
  uint32_t partition_count() const noexcept { return static_cast<uint32_t>(partitions_.size()); }
  std::string directory() const;

  /// The partition's log; not_found outside the range, storage_error (from opening it:
  /// file, position, what to do) when it is damaged.
  result<partition_log*> partition(uint32_t p);
  /// choose_partition (partition_choice.hpp) with this stream's round-robin turn.
  result<uint32_t> choose_partition(std::optional<uint32_t> named, std::string_view key);

private:
  friend class stream_catalog;
  stream_id id_ = 0;
  stream_config config_;
  subject_pattern pattern_;
  std::string dir_;
  std::vector<std::unique_ptr<partition_log>> partitions_;  // null where damage_ says why
  std::vector<status> damage_;
  uint64_t turn_ = 0;
};

class stream_catalog {
public:
  /// Opens `data_dir` (created if missing) and loads its streams. Fails only when the
  /// directory itself cannot be created or listed; each stream's trouble is a problem.
  static result<std::unique_ptr<stream_catalog>> open(catalog_options opts);

  /// What did not load at open (and what repair_partition has not fixed since).
  const std::vector<load_problem>& problems() const noexcept { return problems_; }

  /// Validates `cfg`, writes it and creates its partitions; bad_request when the name is
  /// taken (by a stream, or by a damaged one's directory).
  result<stream*> create(const stream_config& cfg);
  /// Removes the stream and every message in it, a stream that did not load (its
  /// directory) included; not_found when there is none.
  status remove(std::string_view name);
  /// The loaded stream of that name, or nullptr.
  stream* find(std::string_view name);
  /// The loaded streams, by name.
  std::vector<const stream*> list() const;

  /// Every loaded stream whose subject pattern matches `s`, each once (subject_index).
  void match(const subject& s, std::vector<stream*>& out) const;

  /// Reopens a damaged partition with the segment log's repair policy: its log is cut at
  /// the first damage (that batch and everything after it go) and `report` says what
  /// went. The partition is then available again.
  result<persistence::recovery_report> repair_partition(std::string_view name, uint32_t p);

  const std::string& data_dir() const noexcept { return opts_.data_dir; }

private:
  explicit stream_catalog(catalog_options opts) : opts_(std::move(opts)) {}
  void load(const std::string& name);
  /// Opens partition `p` of `s` into s.partitions_[p] or s.damage_[p].
  void open_partition(stream& s, uint32_t p, persistence::corruption_policy policy,
                      persistence::recovery_report* report);
  partition_options partition_options_for(const stream& s, uint32_t p) const;
  status write_catalog_file(const std::string& dir, const stream_config& cfg);
  std::string path_of(std::string_view name) const;

  catalog_options opts_;
  persistence::file_io* io_ = nullptr;
  std::map<std::string, std::unique_ptr<stream>, std::less<>> streams_;
  std::map<stream_id, stream*> by_id_;
  subject_index index_;
  std::vector<load_problem> problems_;
  stream_id next_id_ = 1;
};

} // namespace levee::streams
