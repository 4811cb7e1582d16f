#include "events/file_tail.hpp"

#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace levee::events {

status validate(const file_tail_config& config, const std::string& prefix) {
  if (config.path.empty())
    return status::error(code::bad_request, prefix + ".path: must not be empty");
  if (config.path.size() >= PATH_MAX)
    return status::error(code::bad_request, prefix + ".path: longer than "
                                              + std::to_string(PATH_MAX - 1) + " bytes");
  if (config.read_chunk_bytes < 1 || config.read_chunk_bytes > defaults::read_chunk_bytes_ceiling)
    return status::error(code::bad_request,
                         prefix + ".read_chunk_bytes = " + std::to_string(config.read_chunk_bytes)
                           + ": must be between 1 and "
                           + std::to_string(defaults::read_chunk_bytes_ceiling) + " bytes");
  if (config.max_read_bytes_per_poll < config.read_chunk_bytes
      || config.max_read_bytes_per_poll > defaults::max_read_bytes_per_poll_ceiling)
    return status::error(code::bad_request,
                         prefix + ".max_read_bytes_per_poll = "
                           + std::to_string(config.max_read_bytes_per_poll)
                           + ": must be between read_chunk_bytes ("
                           + std::to_string(config.read_chunk_bytes) + ") and "
                           + std::to_string(defaults::max_read_bytes_per_poll_ceiling) + " bytes");
  return {};
}

file_tail::file_tail(file_tail_config config, json_limits limits)
    : config_(std::move(config)),
      limits_(limits),
      reader_(limits.max_line_bytes, config_.read_chunk_bytes) {}

file_tail::~file_tail() { close_file(); }

void file_tail::close_file() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

bool file_tail::open_file() {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  int fd = ::open(config_.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      stats_.waiting_for_file = true;
      first_open_ = false;  // whatever appears later is new: read it from its start
    } else {
      record_error(status::error(code::storage_error,
                                 "open " + config_.path + ": " + errno_text(err)));
    }
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    record_error(status::error(code::storage_error, "fstat " + config_.path + ": " + errno_text(err)));
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    record_error(status::error(code::bad_request, config_.path + " is not a regular file"));
    return false;
  }
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  offset_ = 0;
  reader_.clear();
  stats_.waiting_for_file = false;
  ++stats_.files_opened;
  if (first_open_ && config_.start_at_end && st.st_size > 0) {
    offset_ = static_cast<uint64_t>(st.st_size);
    ::lseek(fd_, static_cast<off_t>(offset_), SEEK_SET);
    char last = '\n';
    if (::pread(fd_, &last, 1, static_cast<off_t>(offset_ - 1)) == 1 && last != '\n')
      reader_.skip_current_line();
  }
  first_open_ = false;
  return true;
}

size_t file_tail::poll(std::vector<event>& out, size_t max_events, int64_t now_ms) {
  if (fd_ < 0 && !open_file())
    return 0;
  size_t produced = 0;
  uint64_t bytes = 0;
  while (produced < max_events) {
    std::string_view line;
    uint64_t length = 0;
    auto got = reader_.next(line, length);
    if (got == line_reader::item::line) {
      if (take_line(line, out, now_ms, limits_))
        ++produced;
      continue;
    }
    if (got == line_reader::item::too_long) {
      take_too_long(length, limits_);
      continue;
    }
    if (reader_.ended()) {
      // The rotated-away file is finished, its last line included: on to the new one.
      close_file();
      if (!open_file())
        break;
      continue;
    }
    if (bytes >= config_.max_read_bytes_per_poll)
      break;
    size_t room = 0;
    char* into = reader_.prepare(room);
    ssize_t n = ::read(fd_, into, room);
    if (n > 0) {
      reader_.commit(static_cast<size_t>(n));
      offset_ += static_cast<uint64_t>(n);
      bytes += static_cast<uint64_t>(n);
      stats_.bytes_read += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      record_error(status::error(code::storage_error,
                                 "read " + config_.path + ": " + errno_text(errno)));
      break;
    }
    // At the end of the file: has it shrunk, or been replaced?
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < offset_) {
      // Truncated in place (copytruncate): a partial line from before is meaningless now.
      ::lseek(fd_, 0, SEEK_SET);
      offset_ = 0;
      reader_.clear();
      ++stats_.truncations;
      continue;
    }
    if (::stat(config_.path.c_str(), &st) == 0 && (st.st_ino != ino_ || st.st_dev != dev_)) {
      ++stats_.rotations;
      reader_.end_of_stream();
      continue;
    }
    break;  // nothing new; a missing path keeps us on the old file until a new one appears
  }
  return produced;
}

} // namespace levee::events
