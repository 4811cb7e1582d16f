#include "persistence/file_io.hpp"

#include <cerrno>
#include <cstdio>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace levee::persistence {

namespace {

class posix_file_io final : public file_io {
public:
  int open(const std::string& path, bool create) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    return fd < 0 ? -errno : fd;
  }
  int64_t pwrite(int fd, const void* data, size_t n, uint64_t offset) override {
    for (;;) {
      auto r = ::pwrite(fd, data, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR)
        continue;
      return r < 0 ? -errno : r;
    }
  }
  int64_t pread(int fd, void* data, size_t n, uint64_t offset) override {
    for (;;) {
      auto r = ::pread(fd, data, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR)
        continue;
      return r < 0 ? -errno : r;
    }
  }
  int fdatasync(int fd) override { return ::fdatasync(fd) == 0 ? 0 : -errno; }
  int ftruncate(int fd, uint64_t size) override {
    return ::ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : -errno;
  }
  int64_t size(int fd) override {
    struct stat sb;
    return ::fstat(fd, &sb) == 0 ? static_cast<int64_t>(sb.st_size) : -errno;
  }
  int close(int fd) override { return ::close(fd) == 0 ? 0 : -errno; }
  int unlink(const std::string& path) override {
    return ::unlink(path.c_str()) == 0 ? 0 : -errno;
  }
  int rename(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : -errno;
  }
  int sync_dir(const std::string& dir) override {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
      return -errno;
    int r = ::fsync(dfd) == 0 ? 0 : -errno;
    ::close(dfd);
    return r;
  }
};

} // namespace

file_io& posix_io() {
  static posix_file_io io;
  return io;
}

} // namespace levee::persistence
