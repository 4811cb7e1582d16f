#include "satellite/scan.hpp"

#include <algorithm>

#include "events/codec.hpp"

namespace levee::satellite {

scan_task::scan_task(query::query q, query::time_range range, uint64_t start_offset,
                     uint64_t end_offset, scan_limits limits, std::string satellite_id,
                     const clock_source& clock)
  : scan_task(std::make_shared<const query::query>(std::move(q)), range, start_offset,
              end_offset, limits, std::move(satellite_id), clock) {}

scan_task::scan_task(std::shared_ptr<const query::query> q, query::time_range range,
                     uint64_t start_offset, uint64_t end_offset, scan_limits limits,
                     std::string satellite_id, const clock_source& clock)
  : query_(std::move(q)), q_(*query_), range_(range), next_(start_offset), end_(end_offset), limits_(limits),
    clock_(&clock), started_ns_(clock.now_ns()) {
  if (q_.is_count())
    counts_.emplace(q_);
  auto read = [&](const query::field_name& f) {
    if (!f.is_timestamp
        && std::find(read_fields_.begin(), read_fields_.end(), f.name) == read_fields_.end())
      read_fields_.push_back(f.name);
  };
  for (auto& c : q_.comparisons())
    read(c.field);
  for (auto& f : q_.fields())
    read(f);
  for (auto& f : q_.count_by())
    read(f);
  batch_.set_satellite_id(std::move(satellite_id));
  if (next_ >= end_ || range_.since_ms >= range_.until_ms)
    next_ = end_;  // nothing can match: the first step only finishes
}

status scan_task::step(const persistence::segment_log& log, uint64_t step_bytes,
                       const std::function<void(std::string&&)>& emit) {
  if (done_)
    return {};
  if (next_ < log.start_offset())
    next_ = log.start_offset();  // retention removed the start meanwhile
  if (next_ >= end_) {
    finish(emit);
    return {};
  }
  auto limit = q_.limit();
  status failed;
  bool stop = false;
  // Records are seen in place (no copies); a row copies only what it returns.
  auto visited = log.visit(next_, step_bytes, [&](const persistence::record_view& r) -> bool {
    if (r.offset >= end_) {
      next_ = end_;  // appended after the query started: not part of it
      stop = true;
      return false;
    }
    next_ = r.offset + 1;
    ++scanned_;
    if (!range_.contains(r.timestamp_ms))
      return true;  // before decoding: the record's timestamp is the event's
    if (auto st = events::decode_only(r.value, ev_, read_fields_); !st) {
      failed = status::error(code::storage_error, "stored event at offset "
                                                    + std::to_string(r.offset)
                                                    + " does not decode: " + st.message());
      stop = true;
      return false;
    }
    if (!q_.matches(ev_))
      return true;
    if (counts_) {
      if (auto st = counts_->add(ev_); !st) {
        failed = st;
        stop = true;
      }
      return !stop;
    }
    auto& row = *batch_.add_events();
    if (q_.fields().empty())
      row.assign(r.value.data(), r.value.size());  // the stored encoding is the row
    else
      events::encode(query::project(q_, ev_), row);
    batch_bytes_ += row.size();
    ++rows_;
    if (limit && rows_ >= *limit) {
      truncated_ = true;
      next_ = end_;
      stop = true;
      return false;
    }
    if (static_cast<uint64_t>(batch_.events_size()) >= limits_.batch_max_rows
        || batch_bytes_ >= limits_.batch_max_bytes)
      flush(emit);
    return true;
  });
  if (!visited)
    return visited.error();
  if (!failed)
    return failed;
  if (!stop)
    next_ = std::max(next_, *visited);  // past holes and batches with nothing after next_
  if (next_ >= end_)
    finish(emit);
  return {};
}

void scan_task::flush(const std::function<void(std::string&&)>& emit) {
  if (batch_.events_size() == 0 && batch_.counts_size() == 0)
    return;
  auto bytes = batch_.SerializeAsString();
  bytes_ += bytes.size();
  batch_.clear_events();
  batch_.clear_counts();
  batch_bytes_ = 0;
  emit(std::move(bytes));
}

void scan_task::finish(const std::function<void(std::string&&)>& emit) {
  if (done_)
    return;
  if (counts_) {
    // Every group goes to the server (the limit applies after the merge there), in
    // batches bounded by batch_max_bytes like rows.
    auto groups = counts_->results();
    for (auto& g : groups) {
      events::event key;
      for (size_t i = 0; i < g.values.size(); ++i)
        key.fields.push_back(events::field{q_.count_by()[i].name, g.values[i]});
      auto& row = *batch_.add_counts();
      events::encode(key, *row.mutable_key());
      row.set_count(g.count);
      batch_bytes_ += row.key().size() + 12;
      if (batch_bytes_ >= limits_.batch_max_bytes)
        flush(emit);
    }
    rows_ = groups.size();
  }
  flush(emit);
  done_ = true;
}

wire::QueryStats scan_task::stats() const {
  wire::QueryStats s;
  s.set_events_scanned(scanned_);
  s.set_rows_returned(rows_);
  s.set_bytes_returned(bytes_);
  s.set_elapsed_us(static_cast<uint64_t>(std::max<int64_t>(clock_->now_ns() - started_ns_, 0) / 1000));
  s.set_satellites(1);
  s.set_truncated(truncated_);
  return s;
}

} // namespace levee::satellite
