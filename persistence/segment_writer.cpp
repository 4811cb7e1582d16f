// Writing: append (with the fsync policy), rolling to a new segment when one is full or
// old, sync, and truncate_to (a replica cutting its log back to its leader's).

#include <algorithm>
#include <limits>

#include "persistence/batch_reader.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

using detail::io_error;
using detail::segment_path;
using detail::write_all_at;

status segment_log::roll(uint64_t base_offset) {
  if (!segments_.empty() && opts_.fsync != fsync_policy::none)
    if (auto st = sync(); !st)
      return st;
  // The segment being closed gets its index. An index only speeds up reads: if writing it
  // fails, the next open rebuilds it from the segment, so the roll goes on.
  if (!segments_.empty())
    (void)write_index(segments_.back(), base_offset);
  segment seg;
  seg.base_offset = base_offset;
  seg.generation = ++generations_;
  seg.path = segment_path(opts_.dir, base_offset);
  seg.fd = io_.open(seg.path, true);
  if (seg.fd < 0)
    return io_error("cannot create segment", seg.path, seg.fd);
  if (opts_.fsync == fsync_policy::every_batch) {
    // The new file's name must survive a crash too: sync the directory.
    if (auto err = io_.sync_dir(opts_.dir); err != 0) {
      io_.close(seg.fd);
      return io_error("cannot sync the directory", opts_.dir, err);
    }
  }
  segments_.push_back(std::move(seg));
  active_since_ms_ = now_ms();
  return {};
}

result<uint64_t> segment_log::append(const std::vector<record>& records) {
  if (opts_.fsync == fsync_policy::interval) {
    // Due: make what came before durable first, so a failure leaves this batch unwritten.
    auto now = now_ms();
    if (now - last_sync_ms_ >= static_cast<int64_t>(opts_.fsync_interval_ms)) {
      if (auto st = sync(); !st)
        return st;
      last_sync_ms_ = now;
    }
  }
  // Encoded once, into buffers reused by every append (batch_encoder).
  if (auto st = encoder_.encode(next_offset_, records, opts_.limits); !st)
    return st;
  auto base = next_offset_;
  if (auto st = write_batch(encoder_.bytes(), records.size(), encoder_.max_timestamp_ms()); !st)
    return st;
  return base;
}

result<uint64_t> segment_log::append_batches(std::string_view batches) {
  uint64_t appended = 0;
  size_t at = 0;
  auto where = [&] {
    return "the copied batch at byte " + std::to_string(at) + " of " + std::to_string(batches.size())
           + " (for offset " + std::to_string(next_offset_) + " of " + opts_.dir + ")";
  };
  while (at < batches.size()) {
    batch_header h;
    std::string why;
    auto verdict = check_batch(reinterpret_cast<const uint8_t*>(batches.data() + at),
                               batches.size() - at, opts_.limits.max_batch_bytes, h, why);
    if (verdict != batch_check::ok)
      return status::error(code::storage_error,
                           where() + (verdict == batch_check::incomplete ? " is cut short" : ": " + why));
    if (h.base_offset != next_offset_)
      return status::error(code::storage_error,
                           where() + " starts at offset " + std::to_string(h.base_offset)
                             + ", not at the log's end " + std::to_string(next_offset_));
    if (opts_.fsync == fsync_policy::interval) {
      auto now = now_ms();
      if (now - last_sync_ms_ >= static_cast<int64_t>(opts_.fsync_interval_ms)) {
        if (auto st = sync(); !st)
          return st;
        last_sync_ms_ = now;
      }
    }
    if (auto st = write_batch(batches.substr(at, h.length), h.offset_count, h.max_timestamp_ms); !st)
      return st;
    at += h.length;
    ++appended;
  }
  return appended;
}

status segment_log::write_batch(std::string_view bytes, uint64_t offset_count, int64_t max_ts) {
  auto& current = segments_.back();
  bool full = current.size + bytes.size() > opts_.max_segment_bytes;
  bool old = opts_.max_segment_age_ms != 0
             && now_ms() - active_since_ms_ >= static_cast<int64_t>(opts_.max_segment_age_ms);
  if (current.size > 0 && (full || old))
    if (auto st = roll(next_offset_); !st)
      return st;
  auto& seg = segments_.back();
  auto pos = seg.size;
  auto err = write_all_at(io_, seg.fd, pos, bytes);
  if (err == 0 && opts_.fsync == fsync_policy::every_batch)
    err = io_.fdatasync(seg.fd);
  if (err != 0) {
    // Nothing half-written stays behind to be read back as valid: cut the segment back
    // to its last good batch. If even that fails, the next open finds the torn tail (or
    // a checksum mismatch at the end) and cuts it then.
    io_.ftruncate(seg.fd, pos);
    return io_error("cannot append to", seg.path, err);
  }
  seg.size += bytes.size();
  note_batch(seg, next_offset_, pos, max_ts);
  next_offset_ += offset_count;
  return {};
}

status segment_log::sync() {
  // Earlier segments were synced when they were closed for writing (roll), so the one
  // being written is all there is to sync.
  auto& seg = segments_.back();
  if (auto err = io_.fdatasync(seg.fd); err != 0)
    return io_error("cannot sync", seg.path, err);
  return {};
}

status segment_log::truncate_to(uint64_t offset) {
  if (offset >= next_offset_)
    return {};
  cache_.clear();
  // Whole segments at or after `offset` go.
  while (!segments_.empty() && segments_.back().base_offset >= offset
         && !(segments_.size() == 1 && segments_.back().base_offset == offset)) {
    auto& seg = segments_.back();
    remove_segment_files(seg);
    if (auto err = io_.unlink(seg.path); err != 0)
      return io_error("cannot remove segment", seg.path, err);
    segments_.pop_back();
  }
  io_.sync_dir(opts_.dir);
  if (segments_.empty()) {
    next_offset_ = offset;
    return roll(offset);
  }
  auto& seg = segments_.back();
  seg.generation = ++generations_;  // cut below: not the file a scrub may have been in
  // It becomes the segment being written: its index goes (the next roll writes a new one).
  io_.unlink(index_path(seg));
  auto fd = fd_of(seg);
  if (fd < 0)
    return io_error("cannot open segment", seg.path, fd);
  // Find the batch holding `offset`, walking from the nearest sparse entry.
  batch_reader reader{io_, fd, start_position(seg, offset), seg.size,
                      opts_.limits.max_batch_bytes, defaults::log_read_chunk_bytes};
  batch_header h;
  const uint8_t* data = nullptr;
  std::vector<stored_record> keep;
  bool split = false;
  while (!reader.at_end()) {
    if (auto st = reader.peek_valid(h, data, seg.path, " while truncating"); !st)
      return st;
    if (h.base_offset + h.offset_count <= offset) {
      reader.advance(h.length);
      continue;
    }
    if (h.base_offset < offset) {
      // The records before `offset` are written again as a batch of their own.
      std::vector<stored_record> recs;
      if (auto st = decode_records(h, data, recs); !st)
        return st;
      for (auto& r : recs)
        if (r.offset < offset)
          keep.push_back(std::move(r));
      split = true;
    }
    break;
  }
  auto cut = reader.position();
  if (auto err = io_.ftruncate(fd, cut); err != 0)
    return io_error("cannot truncate", seg.path, err);
  seg.size = cut;
  while (!seg.entries.empty() && seg.entries.back().position >= cut)
    seg.entries.pop_back();
  next_offset_ = split ? h.base_offset : offset;
  if (split) {
    // A version 1 batch stays dense; a compacted one keeps its holes and its range.
    std::string bytes;
    status st;
    if (h.version == batch_format_version) {
      std::vector<record> recs;
      for (auto& r : keep)
        recs.push_back(std::move(r.rec));
      st = encode_batch(h.base_offset, recs, opts_.limits, bytes);
    } else {
      st = encode_compacted_batch(h.base_offset, static_cast<uint32_t>(offset - h.base_offset),
                                  keep, opts_.limits, bytes);
    }
    if (!st)
      return st;
    int64_t max_ts = std::numeric_limits<int64_t>::min();
    for (auto& r : keep)
      max_ts = std::max(max_ts, r.rec.timestamp_ms);
    if (auto st2 = write_batch(bytes, offset - h.base_offset, max_ts); !st2)
      return st2;
  } else if (opts_.fsync == fsync_policy::every_batch) {
    if (auto err = io_.fdatasync(fd); err != 0)
      return io_error("cannot sync", seg.path, err);
  }
  return {};
}

} // namespace levee::persistence
