#pragma once
// The file operations the segment log uses, behind a small interface so that tests can
// inject faults (short writes, ENOSPC, EIO) and check that every error comes back typed
// and nothing half-written is ever read back as valid. Every call returns >= 0 on success
// and -errno on failure.

#include <cstddef>
#include <cstdint>
#include <string>

namespace levee::persistence {

class file_io {
public:
  virtual ~file_io() = default;
  virtual int open(const std::string& path, bool create) = 0;  // a descriptor
  virtual int64_t pwrite(int fd, const void* data, size_t n, uint64_t offset) = 0;
  virtual int64_t pread(int fd, void* data, size_t n, uint64_t offset) = 0;
  virtual int fdatasync(int fd) = 0;
  virtual int ftruncate(int fd, uint64_t size) = 0;
  virtual int64_t size(int fd) = 0;
  virtual int close(int fd) = 0;
  virtual int unlink(const std::string& path) = 0;
  virtual int rename(const std::string& from, const std::string& to) = 0;
  virtual int sync_dir(const std::string& dir) = 0;
};

/// The real thing (POSIX). Lives forever.
file_io& posix_io();

} // namespace levee::persistence
