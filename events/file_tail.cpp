#include "events/file_tail.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "persistence/crc32c.hpp"

namespace levee::events {

namespace {

/// Extends `crc` over bytes [from, to) of `fd`; false when they cannot all be read.
bool extend_crc(int fd, uint64_t from, uint64_t to, uint32_t& crc) {
  char buf[4096];
  while (from < to) {
    auto want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, to - from));
    auto n = ::pread(fd, buf, want, static_cast<off_t>(from));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    crc = persistence::crc32c(crc, buf, static_cast<size_t>(n));
    from += static_cast<uint64_t>(n);
  }
  return true;
}

enum class verdict {
  same,       // the file `at` was taken in, at least `at.offset` long
  truncated,  // shorter than the position (or than its fingerprint): cut while stopped
  other,      // its first bytes differ: another file that got the inode
};

/// Is the open file `fd` of `size` bytes the one position `at` was taken in?
verdict judge(int fd, uint64_t size, const persistence::file_position& at) {
  if (at.fingerprint_bytes > 0) {
    uint32_t crc = 0;
    if (size < at.fingerprint_bytes || !extend_crc(fd, 0, at.fingerprint_bytes, crc))
      return verdict::truncated;
    if (crc != at.fingerprint)
      return verdict::other;
  }
  return size < at.offset ? verdict::truncated : verdict::same;
}

bool same_file(const struct stat& st, const persistence::file_position& at) {
  return static_cast<uint64_t>(st.st_dev) == at.device
         && static_cast<uint64_t>(st.st_ino) == at.inode;
}

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

/// Birth time in ns of `path` (relative to `dirfd`, or of `dirfd` itself when `path` is
/// empty), with its device and inode; nullopt when the file system does not record it.
std::optional<int64_t> birth_ns(int dirfd, const char* path, uint64_t* device = nullptr,
                                uint64_t* inode = nullptr, bool* regular = nullptr) {
  struct statx sx {};
  int flags = *path == '\0' ? AT_EMPTY_PATH : 0;
  if (::statx(dirfd, path, flags, STATX_BTIME | STATX_INO | STATX_TYPE, &sx) != 0)
    return std::nullopt;
  if (device != nullptr)
    *device = static_cast<uint64_t>(makedev(sx.stx_dev_major, sx.stx_dev_minor));
  if (inode != nullptr)
    *inode = sx.stx_ino;
  if (regular != nullptr)
    *regular = S_ISREG(sx.stx_mode);
  if ((sx.stx_mask & STATX_BTIME) == 0)
    return std::nullopt;
  return static_cast<int64_t>(sx.stx_btime.tv_sec) * 1'000'000'000 + sx.stx_btime.tv_nsec;
}

/// A rotated-away copy of `base` by its name: `base` plus a suffix, not compressed.
bool rotated_name(const std::string& name, const std::string& base) {
  if (name.size() <= base.size() || name.compare(0, base.size(), base) != 0)
    return false;
  for (const char* packed : {".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip"}) {
    std::string_view suffix{packed};
    if (name.size() >= suffix.size()
        && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return false;
  }
  return true;
}

/// The path of a regular file with this device and inode in the directory of `path`
/// (where rotation leaves the old file: app.log.1), looking at no more than
/// rotated_search_max_entries entries; "" if there is none.
std::string find_beside(const std::string& path, const persistence::file_position& at) {
  auto dir = directory_of(path);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return {};
  std::string found;
  uint64_t seen = 0;
  while (auto* entry = ::readdir(d)) {
    if (++seen > defaults::rotated_search_max_entries)
      break;
    std::string name = entry->d_name;
    if (name == "." || name == "..")
      continue;
    auto candidate = (dir == "/" ? "" : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && same_file(st, at)) {
      found = candidate;
      break;
    }
  }
  ::closedir(d);
  return found;
}

} // namespace

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
  if (config.fingerprint_bytes < 1 || config.fingerprint_bytes > defaults::fingerprint_bytes_ceiling)
    return status::error(code::bad_request,
                         prefix + ".fingerprint_bytes = " + std::to_string(config.fingerprint_bytes)
                           + ": must be between 1 and "
                           + std::to_string(defaults::fingerprint_bytes_ceiling) + " bytes");
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

int file_tail::open_regular(const std::string& path, struct stat& st, bool& missing) {
  missing = false;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR)
      missing = true;
    else
      record_error(status::error(code::storage_error, "open " + path + ": " + errno_text(err)));
    return -1;
  }
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    record_error(status::error(code::storage_error, "fstat " + path + ": " + errno_text(err)));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    record_error(status::error(code::bad_request, path + " is not a regular file"));
    return -1;
  }
  return fd;
}

bool file_tail::open_file() {
  struct stat st {};
  bool missing = false;
  int fd = open_regular(config_.path, st, missing);
  if (fd < 0) {
    if (missing) {
      stats_.waiting_for_file = true;
      first_open_ = false;  // whatever appears later is new: read it from its start
    }
    return false;
  }
  uint64_t at = 0;
  bool mid_line = false;
  if (first_open_ && config_.start_at_end && st.st_size > 0) {
    at = static_cast<uint64_t>(st.st_size);
    char last = '\n';
    mid_line = ::pread(fd, &last, 1, static_cast<off_t>(at - 1)) == 1 && last != '\n';
  }
  first_open_ = false;
  adopt(fd, st, config_.path, at, mid_line);
  return true;
}

void file_tail::adopt(int fd, const struct stat& st, const std::string& path, uint64_t offset,
                      bool mid_line) {
  fd_ = fd;
  fd_path_ = path;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  offset_ = consumed_ = offset;
  consumed_mid_line_ = mid_line;
  reader_.clear();
  if (offset > 0)
    ::lseek(fd_, static_cast<off_t>(offset), SEEK_SET);
  if (mid_line)
    reader_.skip_current_line();  // we did not see its beginning
  fingerprint_ = 0;
  fingerprint_bytes_ = 0;
  refresh_fingerprint();
  birth_ns_ = birth_ns(fd_, "");
  stats_.waiting_for_file = false;
  ++stats_.files_opened;
}

void file_tail::queue_rotated_after() {
  queued_.clear();
  if (!birth_ns_)
    return;
  uint64_t path_device = 0;
  uint64_t path_inode = 0;
  auto before = birth_ns(AT_FDCWD, config_.path.c_str(), &path_device, &path_inode);
  auto dir = directory_of(config_.path);
  auto base = config_.path.substr(config_.path.rfind('/') + 1);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return;
  std::vector<std::pair<int64_t, rotated_file>> found;
  uint64_t seen = 0;
  while (auto* entry = ::readdir(d)) {
    if (++seen > defaults::rotated_search_max_entries)
      break;
    std::string name = entry->d_name;
    if (!rotated_name(name, base))
      continue;
    rotated_file f{(dir == "/" ? "" : dir) + "/" + name, 0, 0};
    bool regular = false;
    auto born = birth_ns(AT_FDCWD, f.path.c_str(), &f.device, &f.inode, &regular);
    // Birth times come from a coarse clock (a few ms). A file born in the same tick as
    // the current one may be its predecessor (already read), so it is left out; one born
    // in the same tick as the path's file is before it.
    if (!born || !regular || *born <= *birth_ns_ || (before && *born > *before))
      continue;
    if ((f.device == static_cast<uint64_t>(dev_) && f.inode == static_cast<uint64_t>(ino_))
        || (f.device == path_device && f.inode == path_inode))
      continue;
    found.emplace_back(*born, std::move(f));
  }
  ::closedir(d);
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.inode < b.second.inode;
  });
  for (auto& [born, f] : found)
    queued_.push_back(std::move(f));
}

bool file_tail::open_next() {
  while (!queued_.empty()) {
    auto next = std::move(queued_.front());
    queued_.pop_front();
    persistence::file_position id;
    id.device = next.device;
    id.inode = next.inode;
    auto try_open = [&](const std::string& path) {
      struct stat st {};
      bool missing = false;
      int fd = open_regular(path, st, missing);
      if (fd >= 0 && same_file(st, id)) {
        ++stats_.rotations;
        adopt(fd, st, path, 0, false);
        return true;
      }
      if (fd >= 0)
        ::close(fd);
      return false;
    };
    // Renamed again since it was queued (app.log.1 -> app.log.2): found by its inode.
    if (try_open(next.path))
      return true;
    if (auto moved = find_beside(config_.path, id); !moved.empty() && try_open(moved))
      return true;
    ++stats_.files_lost;  // gone before it could be read
  }
  return open_file();
}

void file_tail::refresh_fingerprint() {
  auto want = std::min<uint64_t>(config_.fingerprint_bytes, offset_);
  if (fingerprint_bytes_ >= want)
    return;
  uint32_t crc = fingerprint_;
  if (extend_crc(fd_, fingerprint_bytes_, want, crc)) {
    fingerprint_ = crc;
    fingerprint_bytes_ = static_cast<uint32_t>(want);
  }
}

persistence::file_position file_tail::current_position() const {
  persistence::file_position p;
  p.device = static_cast<uint64_t>(dev_);
  p.inode = static_cast<uint64_t>(ino_);
  p.offset = consumed_;
  p.fingerprint = fingerprint_;
  p.fingerprint_bytes = fingerprint_bytes_;
  p.mid_line = consumed_mid_line_;
  return p;
}

std::optional<persistence::file_position> file_tail::position() const {
  if (fd_ >= 0)
    return current_position();
  if (stats_.waiting_for_file && !first_open_)
    return persistence::file_position{};  // no file: what appears is read from its start
  return std::nullopt;
}

std::string file_tail::resume(const persistence::file_position& at) {
  close_file();
  queued_.clear();
  reader_.clear();
  positions_.clear();
  first_open_ = false;  // start_at_end is for a source without a stored position
  const auto& path = config_.path;
  auto where = "byte " + std::to_string(at.offset);
  if (!at.has_file()) {
    struct stat st {};
    bool missing = false;
    int fd = open_regular(path, st, missing);
    if (fd >= 0)
      adopt(fd, st, path, 0, false);
    else if (missing)
      stats_.waiting_for_file = true;
    return "no file was at " + path + " before the restart: it is read from its start";
  }
  struct stat st {};
  bool missing = false;
  int fd = open_regular(path, st, missing);
  if (fd >= 0 && same_file(st, at)) {
    switch (judge(fd, static_cast<uint64_t>(st.st_size), at)) {
      case verdict::same:
        adopt(fd, st, path, at.offset, at.mid_line);
        return "resuming " + path + " at " + where;
      case verdict::truncated:
        ++stats_.truncations;
        adopt(fd, st, path, 0, false);
        return path + " is shorter than at the restart's stored position (" + where
               + "): it was truncated, and is read again from its start";
      case verdict::other:
        break;  // its inode was reused: the file read before is gone
    }
  } else {
    // The path names another file, or none: the old one may sit beside it, rotated.
    auto old = find_beside(path, at);
    if (!old.empty()) {
      struct stat old_st {};
      bool old_missing = false;
      int old_fd = open_regular(old, old_st, old_missing);
      if (old_fd >= 0 && same_file(old_st, at)
          && judge(old_fd, static_cast<uint64_t>(old_st.st_size), at) == verdict::same) {
        if (fd >= 0)
          ::close(fd);
        adopt(old_fd, old_st, old, at.offset, at.mid_line);
        queue_rotated_after();
        std::string between;
        for (auto& f : queued_)
          between += f.path + ", ";
        return path + " was rotated while the satellite was stopped: reading " + old
               + " from " + where + " to its end, then " + between + path + " from its start";
      }
      if (old_fd >= 0)
        ::close(old_fd);
    }
  }
  ++stats_.files_lost;
  if (fd >= 0)
    adopt(fd, st, path, 0, false);
  else if (missing)
    stats_.waiting_for_file = true;
  return "the file " + path + " named before the restart (device " + std::to_string(at.device)
         + ", inode " + std::to_string(at.inode) + ") is gone: lines written to it after "
         + where + ", before it was rotated away, may be lost; reading " + path
         + " from its start";
}

size_t file_tail::poll(std::vector<event>& out, size_t max_events, int64_t now_ms) {
  positions_.clear();
  if (fd_ < 0 && !open_file())
    return 0;
  size_t produced = 0;
  uint64_t bytes = 0;
  while (produced < max_events) {
    std::string_view line;
    uint64_t length = 0;
    auto got = reader_.next(line, length);
    if (got != line_reader::item::none) {
      // Everything read but not yet taken is after this line.
      consumed_ = offset_ - reader_.buffered_bytes();
      consumed_mid_line_ = false;
    }
    if (got == line_reader::item::line) {
      if (take_line(line, out, now_ms, limits_)) {
        ++produced;
        positions_.push_back(current_position());
      }
      continue;
    }
    if (got == line_reader::item::too_long) {
      take_too_long(length, limits_);
      continue;
    }
    if (reader_.ended()) {
      // The rotated-away file is finished, its last line included: on to the next one.
      close_file();
      if (!open_next())
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
      refresh_fingerprint();
      continue;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      record_error(status::error(code::storage_error,
                                 "read " + fd_path_ + ": " + errno_text(errno)));
      break;
    }
    // At the end of the file: has it shrunk, or been replaced?
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < offset_) {
      // Truncated in place (copytruncate): a partial line from before is meaningless now.
      ::lseek(fd_, 0, SEEK_SET);
      offset_ = consumed_ = 0;
      consumed_mid_line_ = false;
      fingerprint_ = fingerprint_bytes_ = 0;  // its first bytes are new
      reader_.clear();
      ++stats_.truncations;
      continue;
    }
    if (::stat(config_.path.c_str(), &st) == 0 && (st.st_ino != ino_ || st.st_dev != dev_)) {
      ++stats_.rotations;
      queue_rotated_after();  // rotated more than once since: those files come first
      reader_.end_of_stream();
      continue;
    }
    break;  // nothing new; a missing path keeps us on the old file until a new one appears
  }
  return produced;
}

} // namespace levee::events
