#include "streams/partition_log.hpp"

#include <algorithm>
#include <unordered_map>

#include "limits/printable.hpp"

namespace levee::streams {

namespace {

/// Bytes a record adds to a batch beyond message_bytes(): protobuf tags and lengths.
constexpr uint64_t record_overhead_bytes = 32;
constexpr uint64_t header_overhead_bytes = 8;

uint64_t estimated_record_bytes(const message& m) {
  return message_bytes(m) + id_header.size() + record_overhead_bytes
         + header_overhead_bytes * (m.headers.size() + 1);
}

persistence::log_options log_options_for(const partition_options& o, const clock_source& clock) {
  auto& c = o.config;
  persistence::log_options l;
  l.dir = o.dir;
  l.max_segment_bytes = c.max_segment_bytes;
  // Age retention drops closed segments only: the one being written closes at the first
  // append after half the age, so a message outlives max_age by at most about half of it.
  l.max_segment_age_ms = c.retention_max_age_ms / 2;
  l.limits.max_record_bytes = c.max_message_bytes + id_header.size() + 64;
  l.limits.max_batch_bytes =
    std::max<uint64_t>(defaults::log_max_batch_bytes, 2 * l.limits.max_record_bytes + 4096);
  l.limits.compress = true;
  // Under `interval` the partition syncs itself (sync_if_due), so that it knows what is
  // durable: the high-water mark.
  l.fsync = c.fsync == persistence::fsync_policy::every_batch ? persistence::fsync_policy::every_batch
                                                                : persistence::fsync_policy::none;
  l.io = o.io;
  l.on_corruption = o.on_corruption;
  l.read_cache_bytes = o.read_cache_bytes;
  l.now_ms = [&clock] { return clock.now_ns() / 1'000'000; };
  return l;
}

stored_message to_message(const persistence::record_view& r) {
  stored_message m;
  m.offset = r.offset;
  m.timestamp_ms = r.timestamp_ms;
  m.key.assign(r.key);
  m.body.assign(r.value);
  for (auto& [name, value] : r.headers) {
    if (name == id_header)
      m.id.assign(value);
    else if (name.compare(0, reserved_header_prefix.size(), reserved_header_prefix) != 0)
      m.headers.emplace_back(std::string{name}, std::string{value});
  }
  return m;
}

std::string_view id_of(const persistence::record_view& r) {
  for (auto& [name, value] : r.headers)
    if (name == id_header)
      return value;
  return {};
}

} // namespace

uint64_t message_bytes(const message& m) noexcept {
  uint64_t n = m.key.size() + m.id.size() + m.body.size();
  for (auto& [name, value] : m.headers)
    n += name.size() + value.size();
  return n;
}

partition_log::partition_log(partition_options opts)
  : opts_(std::move(opts)),
    clock_(opts_.clock != nullptr ? opts_.clock : &steady_clock_source::instance()),
    window_(opts_.config.dedupe_window_ms, opts_.config.dedupe_max_entries) {}

result<std::unique_ptr<partition_log>> partition_log::open(partition_options opts,
                                                           persistence::recovery_report* report) {
  std::unique_ptr<partition_log> p{new partition_log(std::move(opts))};
  auto log = persistence::segment_log::open(log_options_for(p->opts_, *p->clock_), report);
  if (!log)
    return log.error();
  p->log_ = std::move(*log);
  if (auto st = p->rebuild_window(); !st)
    return st;
  // What recovery found may sit in the page cache only (a process crash under `none`
  // or `interval`): make it durable before it counts as committed.
  if (auto st = p->log_->sync(); !st)
    return st;
  p->durable_end_ = p->log_->next_offset();
  if (auto st = p->load_replication_state(); !st)
    return st;
  p->last_sync_ms_ = p->steady_ms();
  return p;
}

std::string partition_log::where() const {
  return "partition " + std::to_string(opts_.partition) + " of stream '" + opts_.config.name + "'";
}

status partition_log::rebuild_window() {
  auto next = log_->next_offset();
  if (next == log_->start_offset())
    return {};
  // The last message's time: new messages are never stamped before it.
  auto last = log_->visit(next - 1, 1, [&](const persistence::record_view& r) {
    last_timestamp_ms_ = std::max(last_timestamp_ms_, r.timestamp_ms);
    return true;
  });
  if (!last)
    return last.error();
  if (!window_.enabled())
    return {};
  auto now = std::max(now_ms(), last_timestamp_ms_);
  auto horizon = window_.horizon(now);
  auto at = log_->offset_for_time(horizon + 1);
  while (at < next) {
    auto after = log_->visit(at, defaults::log_read_chunk_bytes, [&](const persistence::record_view& r) {
      if (r.timestamp_ms > horizon)
        if (auto id = id_of(r); !id.empty())
          window_.insert(id, r.offset, r.timestamp_ms);
      return true;
    });
    if (!after)
      return after.error();
    if (*after <= at)
      break;
    at = *after;
  }
  return {};
}

uint64_t partition_log::last_offset() const noexcept {
  auto next = log_->next_offset();
  return next == 0 ? no_last_offset : next - 1;
}

status partition_log::check_message_bytes(uint64_t bytes) const {
  auto max = opts_.config.max_message_bytes;
  if (bytes <= max)
    return {};
  return status::refused(rejection::of(code::message_too_large)
                           .limit("stream.max_message_bytes")
                           .observed(bytes)
                           .max(max)
                           .detail("a message to " + where() + " is " + std::to_string(bytes)
                                   + " bytes (key, id, body and headers) and the stream takes at "
                                     "most "
                                   + std::to_string(max)
                                   + ": send it smaller, or create the stream with a larger "
                                     "max_message_bytes"));
}

status partition_log::check_message(const message& m) const {
  if (auto st = check_message_bytes(message_bytes(m)); !st)
    return st;
  auto max_id = opts_.config.max_message_id_bytes;
  if (m.id.size() > max_id)
    return status::refused(rejection::of(code::message_too_large)
                             .limit("stream.max_message_id_bytes")
                             .observed(m.id.size())
                             .max(max_id)
                             .detail("a message id is at most " + std::to_string(max_id)
                                     + " bytes: use a shorter id (a UUID is 36)"));
  for (auto& [name, value] : m.headers) {
    if (name.compare(0, reserved_header_prefix.size(), reserved_header_prefix) == 0)
      return status::error(code::bad_request,
                           "header '" + printable(name) + "': names starting with '"
                             + std::string{reserved_header_prefix}
                             + "' are the broker's own; rename the header");
    if (name.empty())
      return status::error(code::bad_request, "a header has an empty name: name it");
  }
  return {};
}

status partition_log::check_room(uint64_t messages, uint64_t bytes) {
  auto& c = opts_.config;
  if (c.on_full != on_full_policy::reject)
    return {};
  auto full = [&]() -> std::optional<rejection> {
    auto kept = log_->next_offset() - log_->start_offset();
    if (c.retention_max_messages > 0 && kept + messages > c.retention_max_messages) {
      rejection r = rejection::of(code::stream_full)
                      .limit("stream.retention_max_messages")
                      .observed(kept + messages)
                      .max(c.retention_max_messages);
      return r;
    }
    if (log_->size_bytes() + bytes > c.retention_max_bytes) {
      rejection r = rejection::of(code::stream_full)
                      .limit("stream.retention_max_bytes")
                      .observed(log_->size_bytes() + bytes)
                      .max(c.retention_max_bytes);
      return r;
    }
    return std::nullopt;
  };
  auto refused = full();
  if (refused && c.retention_max_age_ms > 0) {
    // Messages past their age may go first and make room.
    if (auto d = apply_retention(); !d)
      return d.error();
    refused = full();
  }
  if (!refused)
    return {};
  ++stats_.rejected_full;
  refused->detail = where() + " is full (" + refused->limit + ") and its on_full is reject: "
                    + "let consumers catch up and raise the limit, or recreate the stream with "
                      "on_full = drop_oldest"
                    + (c.retention_max_age_ms > 0 ? "; older messages also leave as they age" : "");
  return status::refused(std::move(*refused));
}

result<append_ack> partition_log::append(const message& m,
                                         std::optional<uint64_t> expected_last_offset) {
  auto acks = append(std::vector<message>{m}, expected_last_offset);
  if (!acks)
    return acks.error();
  return acks->front();
}

result<std::vector<append_ack>> partition_log::append(const std::vector<message>& batch,
                                                      std::optional<uint64_t> expected_last_offset) {
  if (batch.empty())
    return status::error(code::bad_request, "a publish carries at least one message");
  for (auto& m : batch)
    if (auto st = check_message(m); !st) {
      if (st.code() == code::message_too_large)
        ++stats_.rejected_too_large;
      return st;
    }
  auto now = std::max(now_ms(), last_timestamp_ms_);
  window_.expire(now);

  std::vector<append_ack> acks(batch.size());
  std::vector<size_t> to_store;
  std::vector<std::pair<size_t, size_t>> same_batch;  // (duplicate, first with its id)
  std::unordered_map<std::string_view, size_t> ids_in_batch;
  for (size_t i = 0; i < batch.size(); ++i) {
    auto& id = batch[i].id;
    if (!id.empty() && window_.enabled()) {
      if (auto original = window_.find(id)) {
        acks[i].offset = *original;
        acks[i].duplicate = true;
        continue;
      }
      auto [at, fresh] = ids_in_batch.emplace(id, i);
      if (!fresh) {
        same_batch.emplace_back(i, at->second);
        continue;
      }
    }
    to_store.push_back(i);
  }
  auto duplicates = batch.size() - to_store.size();
  if (to_store.empty()) {
    stats_.duplicates += duplicates;
    return acks;
  }
  if (expected_last_offset && *expected_last_offset != last_offset()) {
    ++stats_.rejected_expected_offset;
    auto show = [](uint64_t o) {
      return o == no_last_offset ? std::string{"none (never written)"} : std::to_string(o);
    };
    return status::refused(
      rejection::of(code::precondition_failed)
        .observed(last_offset())
        .max(*expected_last_offset)
        .detail(where() + " ends at offset " + show(last_offset()) + ", not "
                + show(*expected_last_offset)
                + " as the publish expected: another publish came first; read what is new and "
                  "publish again expecting " + show(last_offset())));
  }
  uint64_t estimate = persistence::batch_header_bytes;
  for (auto i : to_store)
    estimate += estimated_record_bytes(batch[i]);
  if (auto st = check_room(to_store.size(), estimate); !st)
    return st;

  // One log batch per chunk that fits the log's batch bound (a publish batch may be
  // bigger than one log batch).
  const uint64_t chunk_bytes = defaults::log_max_batch_bytes / 2;
  std::vector<persistence::record> records;
  std::vector<size_t> chunk;
  auto flush = [&]() -> status {
    if (records.empty())
      return {};
    auto first = log_->append(records);
    if (!first)
      return first.error();
    for (size_t j = 0; j < chunk.size(); ++j) {
      auto& ack = acks[chunk[j]];
      ack.offset = *first + j;
      ack.timestamp_ms = now;
      if (!batch[chunk[j]].id.empty())
        window_.insert(batch[chunk[j]].id, ack.offset, now);
    }
    stats_.appended += chunk.size();
    records.clear();
    chunk.clear();
    return {};
  };
  uint64_t in_chunk = 0;
  for (auto i : to_store) {
    auto& m = batch[i];
    auto size = estimated_record_bytes(m);
    if (!records.empty() && in_chunk + size > chunk_bytes) {
      if (auto st = flush(); !st)
        return st;
      in_chunk = 0;
    }
    persistence::record r;
    r.key.assign(m.key);
    r.value.assign(m.body);
    r.timestamp_ms = now;
    if (!m.id.empty())
      r.headers.emplace_back(std::string{id_header}, std::string{m.id});
    for (auto& [name, value] : m.headers)
      r.headers.emplace_back(std::string{name}, std::string{value});
    records.push_back(std::move(r));
    chunk.push_back(i);
    in_chunk += size;
  }
  if (auto st = flush(); !st)
    return st;
  for (auto [dup, first] : same_batch) {
    acks[dup].offset = acks[first].offset;
    acks[dup].duplicate = true;
  }
  stats_.duplicates += duplicates;
  last_timestamp_ms_ = now;
  if (auto st = after_append(); !st)
    return st;
  return acks;
}

status partition_log::after_append() {
  if (opts_.config.fsync == persistence::fsync_policy::interval) {
    if (auto st = sync_if_due(); !st)
      return st;
  } else {
    durable_end_ = log_->next_offset();
  }
  if (opts_.config.on_full == on_full_policy::drop_oldest) {
    auto& c = opts_.config;
    auto kept = log_->next_offset() - log_->start_offset();
    bool over = log_->size_bytes() > c.retention_max_bytes
                || (c.retention_max_messages > 0 && kept > c.retention_max_messages);
    if (over)
      if (auto d = apply_retention(); !d)
        return d.error();
  }
  return {};
}

result<partition_log::dropped> partition_log::apply_retention() {
  auto& c = opts_.config;
  persistence::segment_log::retention policy;
  policy.max_age_ms = static_cast<int64_t>(c.retention_max_age_ms);
  if (c.on_full == on_full_policy::drop_oldest) {
    policy.max_bytes = c.retention_max_bytes;
    policy.max_messages = c.retention_max_messages;
  }
  auto start = log_->start_offset();
  auto bytes = log_->size_bytes();
  auto removed = log_->apply_retention(policy, std::max(now_ms(), last_timestamp_ms_));
  if (!removed)
    return removed.error();
  dropped d;
  d.segments = *removed;
  d.messages = log_->start_offset() - start;
  d.bytes = bytes - log_->size_bytes();
  stats_.dropped_segments += d.segments;
  stats_.dropped_messages += d.messages;
  stats_.dropped_bytes += d.bytes;
  return d;
}

result<persistence::segment_log::compaction_report> partition_log::compact() {
  if (!opts_.config.compact_by_key)
    return persistence::segment_log::compaction_report{};
  auto report = log_->compact(persistence::segment_log::compaction{}, now_ms());
  if (!report)
    return report.error();
  stats_.compacted_records += report->records_removed;
  return report;
}

status partition_log::sync() {
  if (auto st = log_->sync(); !st)
    return st;
  if (durable_end_ != log_->next_offset())
    ++stats_.syncs;
  durable_end_ = log_->next_offset();
  last_sync_ms_ = steady_ms();
  return {};
}

status partition_log::sync_if_due() {
  if (opts_.config.fsync != persistence::fsync_policy::interval)
    return {};
  if (durable_end_ == log_->next_offset())
    return {};
  if (steady_ms() - last_sync_ms_ < static_cast<int64_t>(opts_.config.fsync_interval_ms))
    return {};
  return sync();
}

result<uint64_t> partition_log::resolve(const read_position& pos) const {
  using kind = read_position::kind;
  auto start = log_->start_offset();
  auto next = log_->next_offset();
  switch (pos.from) {
    case kind::earliest:
      return start;
    case kind::new_only:
      return next;
    case kind::latest:
      return high_water() > start ? high_water() - 1 : next;
    case kind::offset:
      if (pos.offset < start)
        return status::error(code::not_found,
                             where() + " no longer holds offset " + std::to_string(pos.offset)
                               + ": retention removed it; it starts at " + std::to_string(start)
                               + ", read from earliest or from there");
      if (pos.offset > next)
        return status::error(code::not_found,
                             where() + " has no offset " + std::to_string(pos.offset)
                               + " yet: the next message gets " + std::to_string(next)
                               + ", read from an offset up to that one, or from new");
      return pos.offset;
    case kind::time: {
      // The first batch that may hold the time, then its first message at or after it.
      auto at = log_->offset_for_time(pos.time_ms);
      while (at < next) {
        std::optional<uint64_t> found;
        auto after = log_->visit(at, 1, [&](const persistence::record_view& r) {
          if (r.timestamp_ms >= pos.time_ms)
            found = r.offset;
          return !found;
        });
        if (!after)
          return after.error();
        if (found)
          return *found;
        if (*after <= at)
          break;
        at = *after;
      }
      return next;
    }
  }
  return start;
}

result<read_result> partition_log::read(const read_request& req) const {
  read_result out;
  auto start = log_->start_offset();
  auto next = log_->next_offset();
  auto from = req.from;
  if (from < start) {
    out.skipped = start - from;
    from = start;
  }
  if (from > next)
    return status::error(code::not_found,
                         where() + " has no offset " + std::to_string(from)
                           + " yet: the next message gets " + std::to_string(next));
  auto end = high_water();
  if (req.stop_offset && *req.stop_offset < end)
    end = *req.stop_offset + 1;
  out.next_offset = from;
  uint64_t bytes = 0;
  bool stop_time_passed = false;
  const uint64_t max_messages = std::max<uint64_t>(req.max_messages, 1);
  bool full = false;  // the next message would take the batch past max_bytes
  while (out.next_offset < end && !stop_time_passed && !full
         && out.messages.size() < max_messages) {
    bool reached_end = false;
    auto before = out.next_offset;
    auto after = log_->visit(out.next_offset, req.max_bytes, [&](const persistence::record_view& r) {
      if (r.offset >= end) {
        reached_end = true;
        return false;
      }
      if (req.stop_time_ms && r.timestamp_ms > *req.stop_time_ms) {
        stop_time_passed = true;
        return false;
      }
      uint64_t size = r.key.size() + r.value.size();
      for (auto& [name, value] : r.headers)
        size += name == id_header ? value.size() : name.size() + value.size();
      if (!out.messages.empty() && bytes + size > req.max_bytes) {
        full = true;
        return false;
      }
      bytes += size;
      out.messages.push_back(to_message(r));
      out.next_offset = r.offset + 1;
      return out.messages.size() < max_messages;
    });
    if (!after)
      return after.error();
    if (reached_end || stop_time_passed || full || out.messages.size() >= max_messages)
      break;
    // Past the batches walked, also where they held no more messages (compaction leaves
    // ranges empty).
    out.next_offset = std::max(out.next_offset, std::min(*after, end));
    if (out.next_offset == before)
      break;
  }
  out.done = stop_time_passed || (req.stop_offset && out.next_offset > *req.stop_offset);
  return out;
}

} // namespace levee::streams
