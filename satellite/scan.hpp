#pragma once
// One query's scan over a satellite's store, in steps (plain C++, no CAF): the store actor
// runs a step of each running query in turn, so appends, other queries and cancels get
// their turn between steps. Rows go out in ResultBatch payloads bounded by rows and bytes;
// a count query sends its groups in one batch at the end.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "events/event.hpp"
#include "limits/clock.hpp"
#include "limits/status.hpp"
#include "net/satellite.pb.h"
#include "persistence/segment_log.hpp"
#include "query/counter.hpp"
#include "query/query.hpp"

namespace levee::satellite {

struct scan_limits {
  uint64_t batch_max_rows;
  uint64_t batch_max_bytes;
};

class scan_task {
public:
  /// Scans the records in [start_offset, end_offset) that `q` selects in `range`; its
  /// elapsed time is measured on `clock`, which must outlive it.
  scan_task(std::shared_ptr<const query::query> q, query::time_range range,
            uint64_t start_offset, uint64_t end_offset, scan_limits limits,
            std::string satellite_id, const clock_source& clock = steady_clock_source::instance());
  /// The same, for a query of its own.
  scan_task(query::query q, query::time_range range, uint64_t start_offset,
            uint64_t end_offset, scan_limits limits, std::string satellite_id,
            const clock_source& clock = steady_clock_source::instance());

  /// Reads about `step_bytes` of stored batches and passes every full result batch (a
  /// serialized ResultBatch) to `emit`; after the last step, also the rest (and a count
  /// query's groups). Errors: storage_error (a damaged store), message_too_large
  /// (query.max_groups).
  status step(const persistence::segment_log& log, uint64_t step_bytes,
              const std::function<void(std::string&&)>& emit);

  bool done() const noexcept { return done_; }

  /// The QueryStats of the scan so far.
  wire::QueryStats stats() const;

  uint64_t scanned() const noexcept { return scanned_; }
  uint64_t rows() const noexcept { return rows_; }

private:
  void flush(const std::function<void(std::string&&)>& emit);
  void finish(const std::function<void(std::string&&)>& emit);

  std::shared_ptr<const query::query> query_;  // shared: the store's parse cache holds it too
  const query::query& q_;
  query::time_range range_;
  uint64_t next_;
  uint64_t end_;
  scan_limits limits_;
  std::optional<query::counter> counts_;
  wire::ResultBatch batch_;
  uint64_t batch_bytes_ = 0;
  uint64_t scanned_ = 0;
  uint64_t rows_ = 0;
  uint64_t bytes_ = 0;
  bool truncated_ = false;
  bool done_ = false;
  events::event ev_;  // decoded into, reused
  /// The fields the scan reads (the filter's, a projection's, count by's): the others of
  /// each event are skipped, not decoded (events::decode_only).
  std::vector<std::string> read_fields_;
  const clock_source* clock_;
  int64_t started_ns_;
};

} // namespace levee::satellite
