// The log's life (open, close) and its segment files' descriptors. The other parts:
// segment_recovery.cpp, segment_writer.cpp, segment_reader.cpp, segment_index.cpp,
// segment_retention.cpp, segment_compaction.cpp (persistence/README.md).

#include "persistence/segment_log.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>


#include "persistence/segment_log_internal.hpp"

namespace levee::persistence {

namespace detail {

status io_error(const std::string& what, const std::string& path, int err) {
  return status::error(code::storage_error,
                       what + " " + path + ": " + std::strerror(err < 0 ? -err : err));
}

std::string segment_path(const std::string& dir, uint64_t base_offset) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu.log", static_cast<unsigned long long>(base_offset));
  return (std::filesystem::path(dir) / name).string();
}

int read_all_at(file_io& io, int fd, uint64_t pos, char* out, size_t n) {
  size_t done = 0;
  while (done < n) {
    auto r = io.pread(fd, out + done, n - done, pos + done);
    if (r < 0)
      return static_cast<int>(r);
    if (r == 0)
      return -EIO;
    done += static_cast<size_t>(r);
  }
  return 0;
}

int write_all_at(file_io& io, int fd, uint64_t pos, std::string_view data) {
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

status write_whole_file(file_io& io, const std::string& path, const std::string& data,
                        file_sync sync) {
  int fd = io.open(path, true);
  if (fd < 0)
    return io_error("cannot create", path, fd);
  auto err = io.ftruncate(fd, 0);
  if (err == 0)
    err = write_all_at(io, fd, 0, data);
  if (err == 0 && sync == file_sync::yes)
    err = io.fdatasync(fd);
  io.close(fd);
  if (err != 0) {
    io.unlink(path);
    return io_error("cannot write", path, err);
  }
  return {};
}

} // namespace detail

result<std::unique_ptr<segment_log>> segment_log::open(const log_options& opts,
                                                       recovery_report* report) {
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  if (ec)
    return status::error(code::storage_error,
                         "cannot create the log directory " + opts.dir + ": " + ec.message());
  std::unique_ptr<segment_log> log{new segment_log(opts)};
  // Before anything is read or cut: a log another process is writing would look torn.
  auto lock_path = (std::filesystem::path(opts.dir) / "LOCK").string();
  if (int err = log->lock_.acquire(lock_path); err == EWOULDBLOCK)
    return status::error(code::storage_error,
                         "the log in " + opts.dir + " is open in another process (or "
                         "already in this one): two nodes were given the same data "
                         "directory; stop the other one or give each its own");
  else if (err != 0)
    return detail::io_error("cannot lock", lock_path, err);
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

uint64_t segment_log::size_bytes() const noexcept {
  uint64_t total = 0;
  for (auto& seg : segments_)
    total += seg.size;
  return total;
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

int64_t segment_log::now_ms() const {
  return opts_.now_ms ? opts_.now_ms()
                      : std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
}

} // namespace levee::persistence
