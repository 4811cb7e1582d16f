#include "persistence/segment_log.hpp"

#include "persistence/crc32c.hpp"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <unordered_map>


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
    if (name.size() == 32 && name.substr(24) == ".cleaned") {
      // Compaction stopped before its rename: the original segment is intact.
      io_.unlink(entry.path().string());
      continue;
    }
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
    if (!segments_.empty() && seg.base_offset != next_offset_) {
      if (opts_.on_corruption != corruption_policy::truncate)
        return status::error(code::storage_error,
                             "segment " + seg.path + " starts at offset "
                               + std::to_string(seg.base_offset) + " but the previous one ends at "
                               + std::to_string(next_offset_)
                               + ": a segment is missing; to open the log without it and "
                                 "everything after it: corruption policy truncate");
      report.truncated_file = seg.path;
      report.truncated_reason = "a segment is missing before it";
      if (auto st = remove_from(bases, i, report); !st)
        return st;
      break;
    }
    next_offset_ = seg.base_offset;
    seg.generation = ++generations_;
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
      bool cut = false;
      if (auto st = scan(added, is_last, next_offset_, report, cut); !st)
        return st;
      if (cut) {
        // Repaired damage: this segment now ends the log; later ones go.
        io_.unlink(index_path(added));
        if (auto st = remove_from(bases, i + 1, report); !st)
          return st;
        ++report.segments;
        break;
      }
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
  // The segment written next must be open (a repair may have made a closed one the last).
  // Its age (for max_segment_age_ms) counts from now: when it was created is not recorded.
  active_since_ms_ = now_ms();
  auto& last = segments_.back();
  if (report.repaired)
    io_.unlink(index_path(last));
  if (auto fd = fd_of(last); fd < 0)
    return io_error("cannot open segment", last.path, fd);
  return {};
}

/// Walks the batches of a segment file from a position, reading the file in bounded
/// chunks (up to the chunk size, or one batch when a batch is bigger), so that neither
/// recovery nor a read holds more than a chunk of a segment of any size. Reads start
/// small (64 KiB) and double up to the chunk size, so a read that wants one record does
/// not pull in a megabyte; the buffer may be the caller's, kept between reads.
class segment_log::batch_reader {
public:
  batch_reader(file_io& io, int fd, uint64_t position, uint64_t file_size,
               uint64_t max_batch_bytes, uint64_t chunk_bytes, std::string* buffer = nullptr)
    : io_(io), fd_(fd), pos_(position), file_size_(file_size),
      max_batch_bytes_(max_batch_bytes), chunk_(std::max<uint64_t>(chunk_bytes, 4096)),
      next_fill_(std::min<uint64_t>(chunk_, 64 * 1024)), buf_(buffer != nullptr ? *buffer : own_) {}

  uint64_t position() const noexcept { return pos_; }
  bool at_end() const noexcept { return pos_ >= file_size_; }

  /// The batch at position(): `ok` with `data` pointing at it (valid until the next call),
  /// or the verdict of check_batch for the bytes the file has there. `io_err` is set
  /// (non-zero -errno) when reading failed.
  batch_check peek(batch_header& h, const uint8_t*& data, std::string& why, int& io_err) {
    io_err = 0;
    for (;;) {
      auto have = buffered();
      auto at = reinterpret_cast<const uint8_t*>(buf_.data()) + (have > 0 ? pos_ - buf_start_ : 0);
      auto verdict = check_batch(at, have, max_batch_bytes_, h, why);
      if (verdict != batch_check::incomplete || pos_ + have >= file_size_) {
        data = at;
        return verdict;
      }
      // More of the file is there: read from here, at least the batch the header announces.
      uint64_t need = have < batch_header_bytes ? batch_header_bytes : h.length;
      if ((io_err = fill(std::max<uint64_t>(need, next_fill_))) != 0)
        return batch_check::incomplete;
      next_fill_ = std::min<uint64_t>(next_fill_ * 2, chunk_);
    }
  }

  /// peek() for readers of a log that recovery has verified: anything but a whole, valid
  /// batch is a storage_error naming the file, the byte and what was being done.
  status peek_valid(batch_header& h, const uint8_t*& data, const std::string& path,
                    const char* doing) {
    std::string why;
    int err = 0;
    auto verdict = peek(h, data, why, err);
    if (err != 0)
      return status::error(code::storage_error,
                           "cannot read " + path + ": " + std::strerror(-err));
    if (verdict != batch_check::ok)
      return status::error(code::storage_error,
                           "corrupt batch in " + path + " at byte " + std::to_string(pos_)
                             + doing + ": " + (why.empty() ? "incomplete batch" : why));
    return {};
  }

  void advance(uint32_t length) noexcept { pos_ += length; }

  /// True when every byte from position() to the end of the file is zero.
  bool zeros_to_end(int& io_err) {
    io_err = 0;
    while (pos_ < file_size_) {
      if (buffered() == 0 && (io_err = fill(chunk_)) != 0)
        return false;
      auto from = buf_.data() + (pos_ - buf_start_);
      auto n = buffered();
      if (!std::all_of(from, from + n, [](char c) { return c == 0; }))
        return false;
      pos_ += n;
    }
    return true;
  }

private:
  uint64_t buffered() const noexcept {
    auto end = buf_start_ + buf_len_;
    return pos_ >= buf_start_ && pos_ < end ? end - pos_ : 0;
  }
  /// Reads up to `want` bytes from pos_. The buffer only grows (a string zero-fills what
  /// it grows by, so it is not shrunk and grown again for every read).
  int fill(uint64_t want) {
    auto n = static_cast<size_t>(std::min<uint64_t>(want, file_size_ - pos_));
    if (buf_.size() < n)
      buf_.resize(n);
    buf_start_ = pos_;
    buf_len_ = 0;
    size_t done = 0;
    while (done < n) {
      auto r = io_.pread(fd_, buf_.data() + done, n - done, pos_ + done);
      if (r < 0)
        return static_cast<int>(r);
      if (r == 0)
        return -EIO;
      done += static_cast<size_t>(r);
    }
    buf_len_ = n;
    return 0;
  }

  file_io& io_;
  int fd_;
  uint64_t pos_;
  uint64_t file_size_;
  uint64_t max_batch_bytes_;
  uint64_t chunk_;
  uint64_t next_fill_;
  std::string own_;
  std::string& buf_;
  uint64_t buf_start_ = 0;
  uint64_t buf_len_ = 0;
};

void segment_log::note_batch(segment& seg, uint64_t base_offset, uint64_t position,
                             int64_t max_ts) const {
  if (seg.entries.empty() || position - seg.entries.back().position >= opts_.index_interval_bytes)
    seg.entries.push_back(index_entry{base_offset, position, max_ts});
  else
    seg.entries.back().max_timestamp_ms = std::max(seg.entries.back().max_timestamp_ms, max_ts);
  seg.max_timestamp_ms = std::max(seg.max_timestamp_ms, max_ts);
}

uint64_t segment_log::start_position(const segment& seg, uint64_t offset) const noexcept {
  auto e = std::upper_bound(seg.entries.begin(), seg.entries.end(), offset,
                            [](uint64_t o, const index_entry& x) { return o < x.base_offset; });
  return e == seg.entries.begin() ? 0 : (e - 1)->position;
}

status segment_log::remove_from(const std::vector<uint64_t>& bases, size_t from,
                                recovery_report& report) {
  report.repaired = true;
  report.repaired_from_offset = next_offset_;
  for (size_t j = from; j < bases.size(); ++j) {
    segment gone;
    gone.base_offset = bases[j];
    gone.path = (fs::path(opts_.dir) / segment_name(bases[j])).string();
    std::error_code ec;
    report.repaired_bytes_removed += fs::file_size(gone.path, ec);
    io_.unlink(index_path(gone));
    if (auto err = io_.unlink(gone.path); err != 0)
      return io_error("cannot remove segment", gone.path, err);
    ++report.repaired_segments_removed;
  }
  if (auto err = io_.sync_dir(opts_.dir); err != 0)
    return io_error("cannot sync the directory", opts_.dir, err);
  return {};
}

status segment_log::scan(segment& seg, bool is_last, uint64_t& next, recovery_report& report,
                         bool& cut) {
  cut = false;
  auto fd = fd_of(seg);
  if (fd < 0)
    return io_error("cannot open segment", seg.path, fd);
  auto size = io_.size(fd);
  if (size < 0)
    return io_error("cannot stat segment", seg.path, static_cast<int>(size));
  auto file_size = static_cast<uint64_t>(size);
  seg.entries.clear();
  seg.max_timestamp_ms = std::numeric_limits<int64_t>::min();
  batch_reader reader{io_, fd, 0, file_size, opts_.limits.max_batch_bytes,
                      defaults::log_read_chunk_bytes};
  while (!reader.at_end()) {
    auto pos = reader.position();
    batch_header h;
    const uint8_t* data = nullptr;
    std::string why;
    int err = 0;
    auto verdict = reader.peek(h, data, why, err);
    if (err != 0)
      return io_error("cannot read segment", seg.path, err);
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
      batch_reader rest{io_, fd, pos, file_size, opts_.limits.max_batch_bytes,
                        defaults::log_read_chunk_bytes};
      torn = rest.zeros_to_end(err);
      if (err != 0)
        return io_error("cannot read segment", seg.path, err);
    }
    if (verdict == batch_check::ok && h.base_offset != next) {
      verdict = batch_check::corrupt_header;
      why = "batch at offset " + std::to_string(h.base_offset) + " where "
            + std::to_string(next) + " was expected";
      torn = false;
    }
    if (verdict != batch_check::ok) {
      bool repair = opts_.on_corruption == corruption_policy::truncate;
      if ((!is_last || !torn) && !repair)
        return status::error(code::storage_error,
                             "corrupt log: " + seg.path + " at byte " + std::to_string(pos)
                               + ": " + why
                               + "; to open it, cut the log there: corruption policy truncate");
      cut = !is_last || !torn;
      if (auto e = io_.ftruncate(fd, pos); e != 0)
        return io_error("cannot truncate the torn tail of", seg.path, e);
      if (auto e = io_.fdatasync(fd); e != 0)
        return io_error("cannot sync", seg.path, e);
      if (cut) {
        report.repaired = true;
        report.repaired_from_offset = next;
        report.repaired_bytes_removed += file_size - pos;
      }
      report.truncated_bytes += file_size - pos;
      report.truncated_file = seg.path;
      report.truncated_reason = why;
      file_size = pos;
      break;
    }
    note_batch(seg, h.base_offset, pos, h.max_timestamp_ms);
    scanned_bytes_ += h.length;
    if (opts_.on_progress && scanned_bytes_ >= next_progress_) {
      opts_.on_progress(scanned_bytes_, total_bytes_);
      next_progress_ = scanned_bytes_ + (64ull << 20);
    }
    next = h.base_offset + h.offset_count;
    ++report.batches;
    report.records += h.offset_count;
    reader.advance(h.length);
  }
  seg.size = file_size;
  return {};
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
  std::string out;
  put_le(out, index_magic, 4);
  put_le(out, index_version, 4);
  put_le(out, seg.base_offset, 8);
  put_le(out, seg.size, 8);
  put_le(out, end_offset, 8);
  put_le(out, static_cast<uint64_t>(seg.max_timestamp_ms), 8);
  put_le(out, seg.entries.size(), 4);
  put_le(out, 0, 4);
  for (auto& e : seg.entries) {
    put_le(out, e.base_offset, 8);
    put_le(out, e.position, 8);
    put_le(out, static_cast<uint64_t>(e.max_timestamp_ms), 8);
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
  seg.entries.clear();
  uint64_t previous_position = 0;
  for (uint64_t i = 0; i < count; ++i) {
    auto at = index_header_bytes + i * index_entry_bytes;
    index_entry e{get_le(in, at, 8), get_le(in, at + 8, 8),
                  static_cast<int64_t>(get_le(in, at + 16, 8))};
    // Entries must lie inside the segment, in order: otherwise the index is not used.
    if (e.base_offset < seg.base_offset || e.base_offset >= end_offset
        || e.position >= seg.size || (i > 0 && e.position <= previous_position)
        || (i == 0 && e.position != 0))
      return false;
    previous_position = e.position;
    seg.entries.push_back(e);
  }
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
  seg.generation = ++generations_;
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
  active_since_ms_ = now_ms();
  return {};
}

int64_t segment_log::now_ms() const {
  return opts_.now_ms ? opts_.now_ms()
                      : std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
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
  // One buffer for every append: a fresh 64 KiB+ allocation per batch costs page faults
  // that show in the append rate.
  auto& bytes = encode_buffer_;
  bytes.clear();
  if (auto st = encode_batch(next_offset_, records, opts_.limits, bytes); !st)
    return st;
  int64_t max_ts = records.front().timestamp_ms;
  for (auto& r : records)
    max_ts = std::max(max_ts, r.timestamp_ms);
  auto base = next_offset_;
  if (auto st = write_batch(bytes, records.size(), max_ts); !st)
    return st;
  return base;
}

status segment_log::write_batch(const std::string& bytes, uint64_t offset_count, int64_t max_ts) {
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
  if (removed > 0) {
    cache_.clear();  // what it holds of the removed segments is never read again
    io_.sync_dir(opts_.dir);
  }
  return removed;
}

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
  return walk(from, max_bytes,
              [&](const batch_header& h, const uint8_t* data, bool& stop) -> result<size_t> {
    size_t n = 0;
    auto st = visit_records(h, data, scratch, [&](const record_view& r) {
      if (r.offset >= from && !stop) {
        ++n;
        stop = !fn(r);
      }
    });
    if (!st)
      return st;
    return n;
  });
}

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
  int tfd = io_.open(tmp, true);
  if (tfd < 0)
    return io_error("cannot create", tmp, tfd);
  auto err = io_.ftruncate(tfd, 0);
  if (err == 0)
    err = write_all_at(io_, tfd, 0, bytes);
  if (err == 0)
    err = io_.fdatasync(tfd);
  io_.close(tfd);
  if (err == 0) {
    io_.unlink(index_path(seg));
    err = io_.rename(tmp, seg.path);
  }
  if (err != 0) {
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
