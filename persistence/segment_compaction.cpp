// Key compaction of the closed segments: the latest record of every key kept, each
// segment rewritten beside itself and renamed over it (FORMAT.md "Key compaction").

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "persistence/batch_reader.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

using detail::io_error;

result<segment_log::compaction_report> segment_log::compact(const compaction& policy,
                                                            int64_t now_ms) {
  compaction_report report;
  if (segments_.size() < 2)
    return report;  // only closed segments are compacted
  // Pass 1: the latest offset of every key, over the whole log, within the memory bound.
  std::unordered_map<std::string, uint64_t> latest;
  uint64_t map_bytes = 0;
  constexpr uint64_t per_key_overhead = 64;  // node, bucket and the offset, roughly
  for (uint64_t from = start_offset(); from < next_offset_;) {
    auto batch = read(from, defaults::log_read_chunk_bytes);
    if (!batch)
      return batch.error();
    if (batch->empty())
      break;
    for (auto& r : *batch) {
      if (r.rec.key.empty())
        continue;
      auto it = latest.find(r.rec.key);
      if (it != latest.end()) {
        it->second = r.offset;
        continue;
      }
      if (report.map_full || map_bytes + per_key_overhead + r.rec.key.size() > policy.max_map_bytes) {
        // Keys first seen from here on are not tracked (their records are kept); the keys
        // already in the map still get their latest offset.
        report.map_full = true;
        continue;
      }
      map_bytes += per_key_overhead + r.rec.key.size();
      latest.emplace(r.rec.key, r.offset);
    }
    from = batch->back().offset + 1;
  }
  report.keys = latest.size();
  // Pass 2: rewrite each closed segment with what survives. 0 = keep, 1 = superseded,
  // 2 = an expired tombstone.
  auto keep = [&](const stored_record& r) -> int {
    if (r.rec.key.empty())
      return 0;
    auto it = latest.find(r.rec.key);
    if (it == latest.end())
      return 0;
    if (it->second > r.offset)
      return 1;
    bool tombstone = r.rec.value.empty();
    if (tombstone && now_ms - r.rec.timestamp_ms > policy.tombstone_retention_ms)
      return 2;
    return 0;
  };
  for (size_t i = 0; i + 1 < segments_.size(); ++i)
    if (auto st = rewrite_segment(i, segments_[i + 1].base_offset, keep, report); !st)
      return st;
  return report;
}

status segment_log::rewrite_segment(size_t index, uint64_t end_offset,
                                    const std::function<int(const stored_record&)>& keep,
                                    compaction_report& report) {
  cache_.clear();
  auto& seg = segments_[index];
  auto fd = fd_of(seg);
  if (fd < 0)
    return io_error("cannot open segment", seg.path, fd);
  // Read the segment batch by batch and build the compacted batches in memory, one per
  // original batch that keeps a record; each covers the offsets up to the next one, so
  // the offset chain stays dense across holes. Nothing is written unless something goes.
  struct out_batch {
    uint64_t base;
    std::vector<stored_record> records;
  };
  std::vector<out_batch> kept;
  uint64_t removed = 0;
  uint64_t tombstones = 0;
  batch_reader reader{io_, fd, 0, seg.size, opts_.limits.max_batch_bytes,
                      defaults::log_read_chunk_bytes};
  while (!reader.at_end()) {
    batch_header h;
    const uint8_t* data = nullptr;
    if (auto st = reader.peek_valid(h, data, seg.path, " while compacting"); !st)
      return st;
    std::vector<stored_record> recs;
    if (auto st = decode_records(h, data, recs); !st)
      return st;
    out_batch b{h.base_offset, {}};
    for (auto& r : recs) {
      auto verdict_of = keep(r);
      if (verdict_of == 0)
        b.records.push_back(std::move(r));
      else
        ++(verdict_of == 2 ? tombstones : removed);
    }
    if (!b.records.empty())
      kept.push_back(std::move(b));
    reader.advance(h.length);
  }
  if (removed + tombstones == 0)
    return {};
  // Encode: the first batch starts at the segment's base, each runs to the next's base,
  // the last to the segment's end.
  std::string bytes;
  segment fresh;
  fresh.base_offset = seg.base_offset;
  auto emit = [&](uint64_t base, uint64_t end, const std::vector<stored_record>& recs) -> status {
    if (end - base > std::numeric_limits<uint32_t>::max())
      return status::error(code::storage_error,
                           "cannot compact " + seg.path + ": " + std::to_string(end - base)
                             + " offsets from " + std::to_string(base)
                             + " would need one batch to cover more than 2^32-1");
    auto pos = bytes.size();
    if (auto st = encode_compacted_batch(base, static_cast<uint32_t>(end - base), recs,
                                         opts_.limits, bytes);
        !st)
      return st;
    int64_t max_ts = std::numeric_limits<int64_t>::min();
    for (auto& r : recs)
      max_ts = std::max(max_ts, r.rec.timestamp_ms);
    note_batch(fresh, base, pos, max_ts);
    return {};
  };
  if (kept.empty()) {
    if (auto st = emit(seg.base_offset, end_offset, {}); !st)
      return st;
  }
  for (size_t i = 0; i < kept.size(); ++i) {
    auto base = i == 0 ? seg.base_offset : kept[i].base;
    auto end = i + 1 < kept.size() ? kept[i + 1].base : end_offset;
    if (auto st = emit(base, end, kept[i].records); !st)
      return st;
  }
  // Write <name>.cleaned, sync it, drop the old index, rename over the segment, sync the
  // directory, then write the new index. A crash before the rename leaves the old segment
  // (and a stray .cleaned file the next open deletes); after it, the new one, whose index
  // the next open rebuilds if it is missing.
  auto tmp = seg.path + ".cleaned";
  if (auto st = detail::write_whole_file(io_, tmp, bytes, detail::file_sync::yes); !st)
    return st;
  io_.unlink(index_path(seg));
  if (auto err = io_.rename(tmp, seg.path); err != 0) {
    io_.unlink(tmp);
    return io_error("cannot write the compacted segment", seg.path, err);
  }
  if (auto e = io_.sync_dir(opts_.dir); e != 0)
    return io_error("cannot sync the directory", opts_.dir, e);
  report.bytes_before += seg.size;
  report.bytes_after += bytes.size();
  report.records_removed += removed;
  report.tombstones_removed += tombstones;
  ++report.segments_rewritten;
  if (seg.fd >= 0)
    io_.close(seg.fd);  // it still reads the old file
  seg.fd = -1;
  seg.generation = ++generations_;
  seg.size = bytes.size();
  seg.entries = std::move(fresh.entries);
  seg.max_timestamp_ms = fresh.max_timestamp_ms;
  return write_index(seg, end_offset);
}

} // namespace levee::persistence
