#pragma once
// What the segment log's tests share: a temporary directory, options for small rolling
// logs, records that vary in key, size and headers, and a file_io that forwards to the
// real file system for tests to override.

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "persistence/file_io.hpp"
#include "persistence/segment_log.hpp"

namespace levee::persistence {

namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path()
           / ("levee-log-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

inline log_options options(const fs::path& dir) {
  log_options o;
  o.dir = dir.string();
  o.fsync = fsync_policy::none;  // the tests reopen in-process; durability is not under test
  return o;
}

inline std::vector<record> make_batch(int first, int n, size_t value_bytes = 50) {
  std::vector<record> out;
  for (int i = first; i < first + n; ++i) {
    record r;
    r.key = (i % 3 == 0) ? std::string{} : "key-" + std::to_string(i % 7);
    r.value = std::string(value_bytes, static_cast<char>('a' + i % 26)) + std::to_string(i);
    r.timestamp_ms = 1'700'000'000'000 + i;
    if (i % 2 == 0)
      r.headers.emplace_back("source", "test-" + std::to_string(i));
    out.push_back(std::move(r));
  }
  return out;
}

/// Small uncompressed segments, so a few batches span several files.
inline log_options rolling(const fs::path& dir, uint64_t max_segment_bytes) {
  auto o = options(dir);
  o.max_segment_bytes = max_segment_bytes;
  o.limits.compress = false;
  return o;
}

/// Writes 12 batches of 5 records of ~100 bytes (60 records over several segments with
/// `rolling(dir, 1500)`) and closes the log; returns the records by offset.
inline std::vector<record> write_rolled(const log_options& opts) {
  std::vector<record> all;
  auto log = segment_log::open(opts);
  if (!log)
    return all;
  for (int b = 0; b < 12; ++b) {
    auto batch = make_batch(b * 5, 5, 100);
    if (!(*log)->append(batch))
      return all;
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

/// The files of `dir` ending in `ext` (".log", ".index"), sorted.
inline std::vector<fs::path> files_with(const fs::path& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext)
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

inline fs::path only_segment(const fs::path& dir) {
  for (auto& e : fs::directory_iterator(dir))
    return e.path();
  return {};
}

/// Forwards every call to the real file system; tests override what they change.
struct forwarding_io : file_io {
  file_io& real = posix_io();
  int open(const std::string& path, bool create) override { return real.open(path, create); }
  int64_t pwrite(int fd, const void* data, size_t n, uint64_t offset) override {
    return real.pwrite(fd, data, n, offset);
  }
  int64_t pread(int fd, void* data, size_t n, uint64_t offset) override {
    return real.pread(fd, data, n, offset);
  }
  int fdatasync(int fd) override { return real.fdatasync(fd); }
  int ftruncate(int fd, uint64_t size) override { return real.ftruncate(fd, size); }
  int64_t size(int fd) override { return real.size(fd); }
  int close(int fd) override { return real.close(fd); }
  int unlink(const std::string& path) override { return real.unlink(path); }
  int rename(const std::string& from, const std::string& to) override {
    return real.rename(from, to);
  }
  int sync_dir(const std::string& dir) override { return real.sync_dir(dir); }
};

} // namespace levee::persistence
