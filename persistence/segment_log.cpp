#include "persistence/segment_log.hpp"

#include "persistence/crc32c.hpp"

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
    if (!segments_.empty() && seg.base_offset != next_offset_)
      return status::error(code::storage_error,
                           "segment " + seg.path + " starts at offset "
                             + std::to_string(seg.base_offset) + " but the previous one ends at "
                             + std::to_string(next_offset_) + ": a segment is missing");
    next_offset_ = seg.base_offset;
    segments_.push_back(std::move(seg));
    auto& added = segments_.back();
    bool is_last = i + 1 == bases.size();
    uint64_t end_offset = 0;
    if (!is_last && load_index(added, end_offset)) {
      // A closed segment with a sound index is not read now; it is verified batch by
      // batch when it is read.
      next_offset_ = end_offset;
      ++report.segments_from_index;
      scanned_bytes_ += added.size;
    } else {
      if (auto st = scan(added, is_last, next_offset_, report); !st)
        return st;
      if (!is_last) {
        ++report.indexes_rebuilt;
        if (auto st = write_index(added, next_offset_); !st)
          return st;
      }
    }
    ++report.segments;
  }
  if (opts_.on_progress)
    opts_.on_progress(scanned_bytes_, total_bytes_);
  if (segments_.empty())
    return roll(0);
  return {};
}

status segment_log::scan(segment& seg, bool is_last, uint64_t& next,
                         recovery_report& report) const {
  auto fd = fd_of(seg);
  if (fd < 0)
    return io_error("cannot open segment", seg.path, fd);
  auto size = io_.size(fd);
  if (size < 0)
    return io_error("cannot stat segment", seg.path, static_cast<int>(size));
  auto file_size = static_cast<uint64_t>(size);
  std::string buf;
  if (auto err = read_all_at(io_, fd, 0, file_size, buf); err != 0)
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
    if (verdict == batch_check::ok && h.base_offset != next) {
      verdict = batch_check::corrupt_header;
      why = "batch at offset " + std::to_string(h.base_offset) + " where "
            + std::to_string(next) + " was expected";
      torn = false;
    }
    if (verdict != batch_check::ok) {
      if (!is_last || !torn)
        return status::error(code::storage_error,
                             "corrupt log: " + seg.path + " at byte " + std::to_string(pos)
                               + ": " + why
                               + "; it will not be repaired without an explicit repair policy");
      if (auto err = io_.ftruncate(fd, pos); err != 0)
        return io_error("cannot truncate the torn tail of", seg.path, err);
      if (auto err = io_.fdatasync(fd); err != 0)
        return io_error("cannot sync", seg.path, err);
      report.truncated_bytes += file_size - pos;
      report.truncated_file = seg.path;
      report.truncated_reason = why;
      file_size = pos;
      break;
    }
    seg.batches.push_back(
      batch_pos{h.base_offset, pos, h.length, h.record_count, h.max_timestamp_ms});
    seg.max_timestamp_ms = std::max(seg.max_timestamp_ms, h.max_timestamp_ms);
    scanned_bytes_ += h.length;
    if (opts_.on_progress && scanned_bytes_ >= next_progress_) {
      opts_.on_progress(scanned_bytes_, total_bytes_);
      next_progress_ = scanned_bytes_ + (64ull << 20);
    }
    next = h.base_offset + h.record_count;
    ++report.batches;
    report.records += h.record_count;
    pos += h.length;
  }
  seg.size = file_size;
  seg.loaded = true;
  return {};
}

status segment_log::ensure_loaded(segment& seg) const {
  if (seg.loaded)
    return {};
  seg.batches.clear();
  uint64_t next = seg.base_offset;
  recovery_report unused;
  return scan(seg, false, next, unused);  // a closed segment: any damage is an error
}

std::string segment_log::index_path(const segment& seg) const {
  auto p = seg.path;
  return p.substr(0, p.size() - 4) + ".index";
}

namespace {

constexpr uint32_t index_magic = 0x5849564Cu;  // "LVIX"
constexpr uint32_t index_version = 1;
constexpr size_t index_header_bytes = 48;
constexpr size_t index_entry_bytes = 24;

void put_le(std::string& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t get_le(const std::string& in, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[at + i])) << (8 * i);
  return v;
}

} // namespace

status segment_log::write_index(const segment& seg, uint64_t end_offset) {
  // Header: magic, version, base offset, segment size, end offset, max timestamp, entry
  // count; entries: (first offset, position, max timestamp of the range); CRC32C.
  std::vector<const batch_pos*> entries;
  uint64_t last_position = 0;
  for (auto& b : seg.batches)
    if (entries.empty() || b.position - last_position >= opts_.index_interval_bytes) {
      entries.push_back(&b);
      last_position = b.position;
    }
  std::string out;
  put_le(out, index_magic, 4);
  put_le(out, index_version, 4);
  put_le(out, seg.base_offset, 8);
  put_le(out, seg.size, 8);
  put_le(out, end_offset, 8);
  put_le(out, static_cast<uint64_t>(seg.max_timestamp_ms), 8);
  put_le(out, entries.size(), 4);
  put_le(out, 0, 4);
  for (size_t i = 0; i < entries.size(); ++i) {
    int64_t range_max = std::numeric_limits<int64_t>::min();
    auto end = i + 1 < entries.size() ? entries[i + 1] : seg.batches.data() + seg.batches.size();
    for (auto b = entries[i]; b != end; ++b)
      range_max = std::max(range_max, b->max_timestamp_ms);
    put_le(out, entries[i]->base_offset, 8);
    put_le(out, entries[i]->position, 8);
    put_le(out, static_cast<uint64_t>(range_max), 8);
  }
  put_le(out, crc32c(0, out.data(), out.size()), 4);
  auto path = index_path(seg);
  auto tmp = path + ".tmp";
  int fd = io_.open(tmp, true);
  if (fd < 0)
    return io_error("cannot create", tmp, fd);
  auto err = io_.ftruncate(fd, 0);
  if (err == 0)
    err = write_all_at(io_, fd, 0, out);
  if (err == 0)
    err = io_.fdatasync(fd);
  io_.close(fd);
  if (err == 0)
    err = io_.rename(tmp, path);
  if (err != 0) {
    io_.unlink(tmp);
    return io_error("cannot write the index", path, err);
  }
  return {};
}

bool segment_log::load_index(segment& seg, uint64_t& end_offset) const {
  int fd = io_.open(index_path(seg), false);
  if (fd < 0)
    return false;
  auto size = io_.size(fd);
  std::string in;
  bool ok = size >= static_cast<int64_t>(index_header_bytes + 4)
            && read_all_at(io_, fd, 0, static_cast<size_t>(size), in) == 0;
  io_.close(fd);
  if (!ok || get_le(in, 0, 4) != index_magic || get_le(in, 4, 4) != index_version
      || crc32c(0, in.data(), in.size() - 4) != get_le(in, in.size() - 4, 4))
    return false;
  auto count = get_le(in, 40, 4);
  if (in.size() != index_header_bytes + count * index_entry_bytes + 4)
    return false;
  auto seg_fd = fd_of(seg);
  auto file_size = seg_fd < 0 ? int64_t{-1} : io_.size(seg_fd);
  if (get_le(in, 8, 8) != seg.base_offset || file_size < 0
      || get_le(in, 16, 8) != static_cast<uint64_t>(file_size))
    return false;  // stale: the segment changed after the index was written
  seg.size = static_cast<uint64_t>(file_size);
  end_offset = get_le(in, 24, 8);
  seg.max_timestamp_ms = static_cast<int64_t>(get_le(in, 32, 8));
  seg.batches.clear();
  for (uint64_t i = 0; i < count; ++i) {
    auto at = index_header_bytes + i * index_entry_bytes;
    // Sparse entries: records and length are not known until the segment is loaded.
    seg.batches.push_back(batch_pos{get_le(in, at, 8), get_le(in, at + 8, 8), 0, 0,
                                    static_cast<int64_t>(get_le(in, at + 16, 8))});
  }
  seg.loaded = false;
  return end_offset >= seg.base_offset;
}

int segment_log::fd_of(segment& seg) const {
  seg.last_used = ++use_tick_;
  if (seg.fd >= 0)
    return seg.fd;
  // Past the bound, close the least recently used closed segment (never the one being
  // written, which is the last).
  for (;;) {
    size_t open = 0;
    segment* lru = nullptr;
    for (size_t i = 0; i < segments_.size(); ++i) {
      auto& other = segments_[i];
      if (other.fd < 0)
        continue;
      ++open;
      if (&other != &seg && i + 1 < segments_.size()
          && (lru == nullptr || other.last_used < lru->last_used))
        lru = &other;
    }
    if (open + 1 <= std::max<uint64_t>(opts_.max_open_files, 1) || lru == nullptr)
      break;
    io_.close(lru->fd);
    lru->fd = -1;
  }
  seg.fd = io_.open(seg.path, false);
  return seg.fd;
}

size_t segment_log::open_files() const noexcept {
  size_t n = 0;
  for (auto& seg : segments_)
    n += seg.fd >= 0 ? 1 : 0;
  return n;
}

void segment_log::remove_segment_files(segment& seg) {
  if (seg.fd >= 0)
    io_.close(seg.fd);
  seg.fd = -1;
  io_.unlink(index_path(seg));  // may not exist
}

status segment_log::roll(uint64_t base_offset) {
  if (!segments_.empty() && opts_.fsync != fsync_policy::none)
    if (auto st = sync(); !st)
      return st;
  // The segment being closed gets its index; without one, the next open rebuilds it.
  if (!segments_.empty())
    write_index(segments_.back(), base_offset);
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
  int64_t max_ts = records.front().timestamp_ms;
  for (auto& r : records)
    max_ts = std::max(max_ts, r.timestamp_ms);
  seg.batches.push_back(batch_pos{next_offset_, pos, static_cast<uint32_t>(bytes.size()),
                                  static_cast<uint32_t>(records.size()), max_ts});
  seg.max_timestamp_ms = std::max(seg.max_timestamp_ms, max_ts);
  auto base = next_offset_;
  next_offset_ += records.size();
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
    remove_segment_files(seg);
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
  // It becomes the segment being written: all its batches are needed, its index is not.
  if (auto st = ensure_loaded(seg); !st)
    return st;
  io_.unlink(index_path(seg));
  // The batch holding `offset` (or the first one after it) is where the file is cut.
  auto b = std::upper_bound(seg.batches.begin(), seg.batches.end(), offset,
                            [](uint64_t o, const batch_pos& p) { return o < p.base_offset; });
  std::vector<record> keep;
  if (b != seg.batches.begin()) {
    auto& split = *(b - 1);
    if (split.base_offset < offset) {
      // Records before `offset` in the split batch are written again as their own batch.
      std::string buf;
      if (auto err = read_all_at(io_, fd_of(seg), split.position, split.length, buf); err != 0)
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
  auto cut_fd = fd_of(seg);
  if (cut_fd < 0)
    return io_error("cannot open segment", seg.path, cut_fd);
  if (auto err = io_.ftruncate(cut_fd, cut); err != 0)
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
  for (auto& seg : segments_) {
    if (seg.max_timestamp_ms < timestamp_ms)
      continue;  // the whole segment is older
    if (!ensure_loaded(seg))
      return seg.base_offset;  // damaged: the read from here reports it
    for (auto& b : seg.batches)
      if (b.max_timestamp_ms >= timestamp_ms)
        return b.base_offset;
  }
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
    int64_t newest = oldest.max_timestamp_ms;
    bool over_bytes = policy.max_bytes != 0 && size_bytes() > policy.max_bytes;
    // Removing the oldest segment must leave at least max_messages records if that many
    // exist: only remove while what remains after it is still over the limit.
    bool over_messages = policy.max_messages != 0
                         && next_offset_ - oldest.base_offset > policy.max_messages
                         && next_offset_ - next_base >= policy.max_messages;
    bool too_old = policy.max_age_ms != 0 && newest != std::numeric_limits<int64_t>::min()
                   && now_ms - newest > policy.max_age_ms;
    if (over_messages || over_bytes || too_old) {
      remove_segment_files(oldest);
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
    if (auto st = ensure_loaded(seg); !st)
      return st;
    auto b = std::upper_bound(seg.batches.begin(), seg.batches.end(), from,
                              [](uint64_t o, const batch_pos& p) { return o < p.base_offset; });
    if (b != seg.batches.begin())
      --b;
    for (; b != seg.batches.end(); ++b) {
      if (read_bytes > 0 && read_bytes + b->length > max_bytes)
        return out;
      std::string buf;
      auto fd = fd_of(seg);
      if (fd < 0)
        return io_error("cannot open segment", seg.path, fd);
      if (auto err = read_all_at(io_, fd, b->position, b->length, buf); err != 0)
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
