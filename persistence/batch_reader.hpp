#pragma once
// Reading the batches of one segment file in order, for the segment log's own parts
// (recovery, reads, truncation, compaction); not part of the log's API.

#include <algorithm>
#include <cstdint>
#include <string>

#include "limits/status.hpp"
#include "persistence/batch.hpp"
#include "persistence/file_io.hpp"

namespace levee::persistence {

/// Walks the batches of a segment file from a position, reading the file in bounded
/// chunks (up to the chunk size, or one batch when a batch is bigger), so that neither
/// recovery nor a read holds more than a chunk of a segment of any size. Reads start
/// small (64 KiB) and double up to the chunk size, so a read that wants one record does
/// not pull in a megabyte; the buffer may be the caller's, kept between reads. `io` (and
/// `buffer`, if given) must outlive the reader; `fd` stays the caller's.
class batch_reader {
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
  batch_check peek(batch_header& h, const uint8_t*& data, std::string& why, int& io_err);

  /// peek() for readers of a log that recovery has verified: anything but a whole, valid
  /// batch is a storage_error naming the file, the byte and what was being done.
  status peek_valid(batch_header& h, const uint8_t*& data, const std::string& path,
                    const char* doing);

  void advance(uint32_t length) noexcept { pos_ += length; }

  /// True when every byte from position() to the end of the file is zero.
  bool zeros_to_end(int& io_err);

private:
  uint64_t buffered() const noexcept {
    auto end = buf_start_ + buf_len_;
    return pos_ >= buf_start_ && pos_ < end ? end - pos_ : 0;
  }
  /// Reads up to `want` bytes from pos_. The buffer only grows (a string zero-fills what
  /// it grows by, so it is not shrunk and grown again for every read).
  int fill(uint64_t want);

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

} // namespace levee::persistence
