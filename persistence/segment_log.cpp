#include "persistence/segment_log.hpp"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>


namespace levee::persistence {

namespace fs = std::filesystem;

namespace {

status io_error(const std::string& what, const std::string& path, int err) {
  return status::error(code::storage_error,
                       what + " " + path + ": " + std::strerror(err < 0 ? -err : err));
}

std::string segment_name(uint64_t base_offset) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu.log", static_cast<unsigned long long>(base_offset));
  return buf;
}

/// 0, or -errno (-EIO for a read that ends early).
int read_all_at(file_io& io, int fd, uint64_t pos, size_t n, std::string& out) {
  out.resize(n);
  size_t done = 0;
  while (done < n) {
    auto r = io.pread(fd, out.data() + done, n - done, pos + done);
    if (r < 0)
      return static_cast<int>(r);
    if (r == 0)
      return -EIO;
    done += static_cast<size_t>(r);
  }
  return 0;
}

/// 0, or -errno. A short write is retried for the rest; a write of 0 bytes is -ENOSPC.
int write_all_at(file_io& io, int fd, uint64_t pos, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    auto r = io.pwrite(fd, data.data() + done, data.size() - done, pos + done);
    if (r < 0)
      return static_cast<int>(r);
    if (r == 0)
      return -ENOSPC;
    done += static_cast<size_t>(r);
  }
  return 0;
}

} // namespace

result<std::unique_ptr<segment_log>> segment_log::open(const log_options& opts,
                                                       recovery_report* report) {
  std::error_code ec;
  fs::create_directories(opts.dir, ec);
  if (ec)
    return status::error(code::storage_error,
                         "cannot create the log directory " + opts.dir + ": " + ec.message());
  std::unique_ptr<segment_log> log{new segment_log(opts)};
  recovery_report local;
  if (auto st = log->recover(report ? *report : local); !st)
    return st;
  return log;
}

segment_log::~segment_log() {
  for (auto& seg : segments_)
    if (seg.fd >= 0)
      io_.close(seg.fd);
}

uint64_t segment_log::start_offset() const noexcept {
  return segments_.empty() ? next_offset_ : segments_.front().base_offset;
}

status segment_log::recover(recovery_report& report) {
  std::vector<uint64_t> bases;
  for (auto& entry : fs::directory_iterator(opts_.dir)) {
    auto name = entry.path().filename().string();
    if (name.size() != 24 || name.substr(20) != ".log"
        || !std::all_of(name.begin(), name.begin() + 20, ::isdigit))
      continue;
    bases.push_back(std::stoull(name.substr(0, 20)));
    std::error_code ec;
    total_bytes_ += entry.file_size(ec);
  }
  std::sort(bases.begin(), bases.end());
  for (size_t i = 0; i < bases.size(); ++i) {
    segment seg;
    seg.base_offset = bases[i];
    seg.path = (fs::path(opts_.dir) / segment_name(bases[i])).string();
    seg.fd = io_.open(seg.path, false);
    if (seg.fd < 0)
      return io_error("cannot open segment", seg.path, seg.fd);
    if (!segments_.empty() && seg.base_offset != next_offset_)
      return status::error(code::storage_error,
                           "segment " + seg.path + " starts at offset "
                             + std::to_string(seg.base_offset) + " but the previous one ends at "
                             + std::to_string(next_offset_) + ": a segment is missing");
    next_offset_ = seg.base_offset;
    segments_.push_back(std::move(seg));
    if (auto st = scan(segments_.back(), i + 1 == bases.size(), report); !st)
      return st;
    ++report.segments;
  }
  if (opts_.on_progress)
    opts_.on_progress(scanned_bytes_, total_bytes_);
  if (segments_.empty())
    return roll(0);
  return {};
}

status segment_log::scan(segment& seg, bool is_last, recovery_report& report) {
  auto size = io_.size(seg.fd);
  if (size < 0)
    return io_error("cannot stat segment", seg.path, static_cast<int>(size));
  auto file_size = static_cast<uint64_t>(size);
  std::string buf;
  if (auto err = read_all_at(io_, seg.fd, 0, file_size, buf); err != 0)
    return io_error("cannot read segment", seg.path, err);
  uint64_t pos = 0;
  auto data = reinterpret_cast<const uint8_t*>(buf.data());
  while (pos < file_size) {
    batch_header h;
    std::string why;
    auto verdict = check_batch(data + pos, file_size - pos, opts_.limits.max_batch_bytes, h, why);
    // What a crash during the last append can leave: a batch cut short, or (on file
    // systems that allocate before they write) a last batch or header of zeros. Anything
    // else is damage, and an error.
    bool torn = false;
    if (verdict == batch_check::incomplete) {
      torn = true;
      why = "incomplete last batch";
    } else if (verdict == batch_check::corrupt_body) {
      torn = pos + h.length == file_size;
    } else if (verdict == batch_check::corrupt_header) {
      torn = std::all_of(buf.begin() + static_cast<std::ptrdiff_t>(pos), buf.end(),
                         [](char c) { return c == 0; });
    }
    if (verdict == batch_check::ok && h.base_offset != next_offset_) {
      verdict = batch_check::corrupt_header;
      why = "batch at offset " + std::to_string(h.base_offset) + " where "
            + std::to_string(next_offset_) + " was expected";
      torn = false;
    }
    if (verdict != batch_check::ok) {
      if (!is_last || !torn)
        return status::error(code::storage_error,
                             "corrupt log: " + seg.path + " at byte " + std::to_string(pos)
                               + ": " + why
                               + "; it will not be repaired without an explicit repair policy");
      if (auto err = io_.ftruncate(seg.fd, pos); err != 0)
        return io_error("cannot truncate the torn tail of", seg.path, err);
      if (auto err = io_.fdatasync(seg.fd); err != 0)
        return io_error("cannot sync", seg.path, err);
      report.truncated_bytes += file_size - pos;
      report.truncated_file = seg.path;
      report.truncated_reason = why;
      file_size = pos;
      break;
    }
    seg.batches.push_back(
      batch_pos{h.base_offset, pos, h.length, h.record_count, h.max_timestamp_ms});
    scanned_bytes_ += h.length;
    if (opts_.on_progress && scanned_bytes_ >= next_progress_) {
      opts_.on_progress(scanned_bytes_, total_bytes_);
      next_progress_ = scanned_bytes_ + (64ull << 20);
    }
    next_offset_ = h.base_offset + h.record_count;
    ++report.batches;
    report.records += h.record_count;
    pos += h.length;
  }
  seg.size = file_size;
  return {};
}

status segment_log::roll(uint64_t base_offset) {
  if (!segments_.empty() && opts_.fsync != fsync_policy::none)
    if (auto st = sync(); !st)
      return st;
  segment seg;
  seg.base_offset = base_offset;
  seg.path = (fs::path(opts_.dir) / segment_name(base_offset)).string();
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
  return {};
}

result<uint64_t> segment_log::append(const std::vector<record>& records) {
  if (opts_.fsync == fsync_policy::interval) {
    // Due: make what came before durable first, so a failure leaves this batch unwritten.
    auto now = opts_.now_ms ? opts_.now_ms()
                            : std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count();
    if (now - last_sync_ms_ >= static_cast<int64_t>(opts_.fsync_interval_ms)) {
      if (auto st = sync(); !st)
        return st;
      last_sync_ms_ = now;
    }
  }
  std::string bytes;
  if (auto st = encode_batch(next_offset_, records, opts_.limits, bytes); !st)
    return st;
  if (segments_.back().size > 0 && segments_.back().size + bytes.size() > opts_.max_segment_bytes)
    if (auto st = roll(next_offset_); !st)
      return st;
  auto& seg = segments_.back();
  auto pos = seg.size;
  auto err = write_all_at(io_, seg.fd, pos, bytes);
  bool synced = false;
  if (err == 0 && opts_.fsync == fsync_policy::every_batch) {
    err = io_.fdatasync(seg.fd);
    synced = true;
  }
  if (err != 0) {
    // Nothing half-written stays behind to be read back as valid: cut the segment back
    // to its last good batch. If even that fails, the next open finds the torn tail (or
    // a checksum mismatch at the end) and cuts it then.
    io_.ftruncate(seg.fd, pos);
    return io_error("cannot append to", seg.path, err);
  }
  seg.size += bytes.size();
  int64_t max_ts = records.front().timestamp_ms;
  for (auto& r : records)
    max_ts = std::max(max_ts, r.timestamp_ms);
  seg.batches.push_back(batch_pos{next_offset_, pos, static_cast<uint32_t>(bytes.size()),
                                  static_cast<uint32_t>(records.size()), max_ts});
  auto base = next_offset_;
  next_offset_ += records.size();
  (void) synced;
  return base;
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
  auto sync_dir = [&] { io_.sync_dir(opts_.dir); };
  // Whole segments at or after `offset` go.
  while (!segments_.empty() && segments_.back().base_offset >= offset
         && !(segments_.size() == 1 && segments_.back().base_offset == offset)) {
    auto& seg = segments_.back();
    io_.close(seg.fd);
    if (auto err = io_.unlink(seg.path); err != 0)
      return io_error("cannot remove segment", seg.path, err);
    segments_.pop_back();
  }
  sync_dir();
  if (segments_.empty()) {
    next_offset_ = offset;
    return roll(offset);
  }
  auto& seg = segments_.back();
  // The batch holding `offset` (or the first one after it) is where the file is cut.
  auto b = std::upper_bound(seg.batches.begin(), seg.batches.end(), offset,
                            [](uint64_t o, const batch_pos& p) { return o < p.base_offset; });
  std::vector<record> keep;
  if (b != seg.batches.begin()) {
    auto& split = *(b - 1);
    if (split.base_offset < offset) {
      // Records before `offset` in the split batch are written again as their own batch.
      std::string buf;
      if (auto err = read_all_at(io_, seg.fd, split.position, split.length, buf); err != 0)
        return io_error("cannot read", seg.path, err);
      batch_header h;
      std::string why;
      std::vector<stored_record> recs;
      if (check_batch(reinterpret_cast<const uint8_t*>(buf.data()), buf.size(),
                      opts_.limits.max_batch_bytes, h, why)
            != batch_check::ok
          || !decode_records(h, reinterpret_cast<const uint8_t*>(buf.data()), recs))
        return status::error(code::storage_error,
                             "corrupt batch in " + seg.path + " at byte "
                               + std::to_string(split.position) + " while truncating");
      for (auto& r : recs)
        if (r.offset < offset)
          keep.push_back(std::move(r.rec));
    }
    --b;
  }
  auto cut = b == seg.batches.end() ? seg.size : b->position;
  if (auto err = io_.ftruncate(seg.fd, cut); err != 0)
    return io_error("cannot truncate", seg.path, err);
  seg.batches.erase(b, seg.batches.end());
  seg.size = cut;
  next_offset_ = seg.batches.empty() ? seg.base_offset
                                     : seg.batches.back().base_offset + seg.batches.back().records;
  if (!keep.empty()) {
    auto r = append(keep);
    if (!r)
      return r.error();
  } else if (opts_.fsync == fsync_policy::every_batch) {
    if (auto err = io_.fdatasync(seg.fd); err != 0)
      return io_error("cannot sync", seg.path, err);
  }
  return {};
}

uint64_t segment_log::offset_for_time(int64_t timestamp_ms) const noexcept {
  for (auto& seg : segments_)
    for (auto& b : seg.batches)
      if (b.max_timestamp_ms >= timestamp_ms)
        return b.base_offset;
  return next_offset_;
}

uint64_t segment_log::size_bytes() const noexcept {
  uint64_t total = 0;
  for (auto& seg : segments_)
    total += seg.size;
  return total;
}

result<size_t> segment_log::apply_retention(const retention& policy, int64_t now_ms) {
  size_t removed = 0;
  while (segments_.size() > 1) {
    auto& oldest = segments_.front();
    auto next_base = segments_[1].base_offset;
    int64_t newest = std::numeric_limits<int64_t>::min();
    for (auto& b : oldest.batches)
      newest = std::max(newest, b.max_timestamp_ms);
    bool over_bytes = policy.max_bytes != 0 && size_bytes() > policy.max_bytes;
    // Removing the oldest segment must leave at least max_messages records if that many
    // exist: only remove while what remains after it is still over the limit.
    bool over_messages = policy.max_messages != 0
                         && next_offset_ - oldest.base_offset > policy.max_messages
                         && next_offset_ - next_base >= policy.max_messages;
    bool too_old = policy.max_age_ms != 0 && !oldest.batches.empty()
                   && now_ms - newest > policy.max_age_ms;
    if (over_messages || over_bytes || too_old) {
      io_.close(oldest.fd);
      if (auto err = io_.unlink(oldest.path); err != 0)
        return io_error("cannot remove segment", oldest.path, err);
      segments_.erase(segments_.begin());
      ++removed;
      continue;
    }
    break;
  }
  if (removed > 0)
    io_.sync_dir(opts_.dir);
  return removed;
}

result<std::vector<stored_record>> segment_log::read(uint64_t from, uint64_t max_bytes) const {
  std::vector<stored_record> out;
  if (from >= next_offset_)
    return out;
  if (from < start_offset())
    return status::error(code::not_found, "offset " + std::to_string(from)
                                            + " is before the start of the log ("
                                            + std::to_string(start_offset()) + ")");
  // The segment holding `from`: the last one whose base offset is <= from.
  auto seg_it = std::upper_bound(segments_.begin(), segments_.end(), from,
                                 [](uint64_t o, const segment& s) { return o < s.base_offset; });
  --seg_it;
  uint64_t read_bytes = 0;
  for (; seg_it != segments_.end(); ++seg_it) {
    auto& seg = *seg_it;
    auto b = std::upper_bound(seg.batches.begin(), seg.batches.end(), from,
                              [](uint64_t o, const batch_pos& p) { return o < p.base_offset; });
    if (b != seg.batches.begin())
      --b;
    for (; b != seg.batches.end(); ++b) {
      if (read_bytes > 0 && read_bytes + b->length > max_bytes)
        return out;
      std::string buf;
      if (auto err = read_all_at(io_, seg.fd, b->position, b->length, buf); err != 0)
        return io_error("cannot read", seg.path, err);
      batch_header h;
      std::string why;
      if (check_batch(reinterpret_cast<const uint8_t*>(buf.data()), buf.size(),
                      opts_.limits.max_batch_bytes, h, why)
          != batch_check::ok)
        return status::error(code::storage_error, "corrupt batch in " + seg.path + " at byte "
                                                    + std::to_string(b->position) + ": " + why);
      std::vector<stored_record> recs;
      if (auto st = decode_records(h, reinterpret_cast<const uint8_t*>(buf.data()), recs); !st)
        return st;
      for (auto& r : recs)
        if (r.offset >= from)
          out.push_back(std::move(r));
      read_bytes += b->length;
    }
  }
  return out;
}

} // namespace levee::persistence
