// Reading: records from an offset (copied, or visited in place), through the read cache,
// and the offset where a time starts.

#include <algorithm>

#include "persistence/batch_reader.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

using detail::io_error;

result<uint64_t> segment_log::walk(uint64_t from, uint64_t max_bytes,
                                   const batch_visitor& on_batch) const {
  if (from >= next_offset_)
    return next_offset_;
  if (from < start_offset())
    return status::error(code::not_found, "offset " + std::to_string(from)
                                            + " is before the start of the log ("
                                            + std::to_string(start_offset()) + ")");
  // The segment holding `from`: the last one whose base offset is <= from.
  auto seg_it = std::upper_bound(segments_.begin(), segments_.end(), from,
                                 [](uint64_t o, const segment& s) { return o < s.base_offset; });
  --seg_it;
  uint64_t read_bytes = 0;
  uint64_t produced = 0;
  uint64_t next = from;
  // Chunks sized to the read, so a small read does not pull in a megabyte.
  auto chunk = std::min<uint64_t>(std::max<uint64_t>(max_bytes, 64 * 1024),
                                  defaults::log_read_chunk_bytes);
  for (; seg_it != segments_.end(); ++seg_it) {
    auto& seg = *seg_it;
    auto fd = fd_of(seg);
    if (fd < 0)
      return io_error("cannot open segment", seg.path, fd);
    batch_reader reader{io_, fd, start_position(seg, from), seg.size,
                        opts_.limits.max_batch_bytes, chunk, &read_buffer_};
    while (!reader.at_end()) {
      batch_header h;
      const uint8_t* data = nullptr;
      auto position = reader.position();
      if (auto hit = cache_.find(seg.base_offset, position)) {
        h = hit->header;
        data = reinterpret_cast<const uint8_t*>(hit->bytes.data());
      } else {
        if (auto st = reader.peek_valid(h, data, seg.path, ""); !st)
          return st;
        cache_.offer(seg.base_offset, position, h, data);
      }
      if (h.base_offset + h.offset_count <= from) {
        reader.advance(h.length);  // before `from`: walked past, not decoded
        continue;
      }
      if (produced > 0 && read_bytes + h.length > max_bytes)
        return next;  // at least one record when any is there
      bool stop = false;
      auto n = on_batch(h, data, stop);
      if (!n)
        return status::error(code::storage_error, n.error().message() + " in " + seg.path
                                                    + " at byte "
                                                    + std::to_string(reader.position()));
      produced += *n;
      read_bytes += h.length;
      next = h.base_offset + h.offset_count;
      reader.advance(h.length);
      if (stop)
        return next;
    }
  }
  return next;
}

result<std::vector<stored_record>> segment_log::read(uint64_t from, uint64_t max_bytes) const {
  std::vector<stored_record> out;
  auto walked = walk(from, max_bytes, [&](const batch_header& h, const uint8_t* data, bool&) -> result<size_t> {
    auto first = out.size();
    if (auto st = decode_records(h, data, out); !st)
      return st;
    if (first < out.size() && out[first].offset < from) {
      auto keep_from = std::find_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                                    [&](const stored_record& r) { return r.offset >= from; });
      out.erase(out.begin() + static_cast<std::ptrdiff_t>(first), keep_from);
    }
    return out.size() - first;
  });
  if (!walked)
    return walked.error();
  return out;
}

result<uint64_t> segment_log::visit(uint64_t from, uint64_t max_bytes,
                                    const std::function<bool(const record_view&)>& fn) const {
  std::string scratch;  // a compressed batch's payload, inflated
  size_t n = 0;          // records of the current batch handed to `fn`
  bool* stop = nullptr;  // the current batch's stop flag (walk's)
  // Made once per visit, not per batch: its captures outgrow std::function's inline
  // storage, so each construction is a heap allocation (one per record when a tailing
  // source writes one event per batch).
  const std::function<bool(const record_view&)> each = [&](const record_view& r) {
    if (r.offset < from)
      return true;
    ++n;
    *stop = !fn(r);
    return !*stop;  // the rest of the batch is not parsed
  };
  return walk(from, max_bytes,
              [&](const batch_header& h, const uint8_t* data, bool& stop_walk) -> result<size_t> {
    n = 0;
    stop = &stop_walk;
    auto st = visit_records(h, data, scratch, each);
    if (!st)
      return st;
    return n;
  });
}

result<uint64_t> segment_log::read_batches(uint64_t from, uint64_t max_bytes,
                                           std::string& out) const {
  if (from >= next_offset_)
    return from;
  auto walked = walk(from, max_bytes,
                     [&](const batch_header& h, const uint8_t* data, bool&) -> result<size_t> {
    if (h.base_offset >= from) {
      out.append(reinterpret_cast<const char*>(data), h.length);
      return std::max<size_t>(h.offset_count, 1);
    }
    // Split by `from`: the records from there on, as a batch of their own (as truncate_to
    // rewrites the part it keeps), dense or with the compacted batch's holes.
    std::vector<stored_record> recs;
    if (auto st = decode_records(h, data, recs); !st)
      return st;
    recs.erase(std::remove_if(recs.begin(), recs.end(),
                              [&](const stored_record& r) { return r.offset < from; }),
               recs.end());
    auto count = static_cast<uint32_t>(h.base_offset + h.offset_count - from);
    status st;
    if (h.version == batch_format_version) {
      std::vector<record> plain;
      for (auto& r : recs)
        plain.push_back(std::move(r.rec));
      st = encode_batch(from, plain, opts_.limits, out);
    } else {
      st = encode_compacted_batch(from, count, recs, opts_.limits, out);
    }
    if (!st)
      return st;
    return std::max<size_t>(count, 1);
  });
  if (!walked)
    return walked.error();
  return *walked;
}

uint64_t segment_log::offset_for_time(int64_t timestamp_ms) const {
  // Sparse entries carry the largest timestamp of their range: the first range that may
  // hold the time is walked (at most index_interval_bytes and a batch) for its first batch
  // that may.
  for (auto& seg : segments_) {
    if (seg.max_timestamp_ms < timestamp_ms)
      continue;  // the whole segment is older
    for (auto& e : seg.entries) {
      if (e.max_timestamp_ms < timestamp_ms)
        continue;
      auto fd = fd_of(seg);
      if (fd < 0)
        return e.base_offset;  // the read from there reports the error
      batch_reader reader{io_, fd, e.position, seg.size, opts_.limits.max_batch_bytes,
                          opts_.index_interval_bytes + batch_header_bytes};
      while (!reader.at_end()) {
        batch_header h;
        const uint8_t* data = nullptr;
        std::string why;
        int err = 0;
        if (reader.peek(h, data, why, err) != batch_check::ok)
          return e.base_offset;  // damaged: the read from there reports it
        if (h.max_timestamp_ms >= timestamp_ms)
          return h.base_offset;
        reader.advance(h.length);
      }
      return e.base_offset;
    }
  }
  return next_offset_;
}

} // namespace levee::persistence
