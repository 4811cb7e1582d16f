#pragma once
// What the files of the segment log share and nobody else uses: file I/O that finishes
// the job, and the errors and names it reports. segment_log.hpp is the API; this header
// is for segment_*.cpp and batch_reader.cpp only.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "limits/status.hpp"
#include "persistence/file_io.hpp"

namespace levee::persistence::detail {

/// storage_error "<what> <path>: <strerror>"; `err` is errno or -errno.
status io_error(const std::string& what, const std::string& path, int err);

/// `<dir>/<base offset, 20 digits>.log` (FORMAT.md "Files").
std::string segment_path(const std::string& dir, uint64_t base_offset);

/// Reads `n` bytes at `pos` into `out`: 0, or -errno (-EIO for a file that ends first).
int read_all_at(file_io& io, int fd, uint64_t pos, char* out, size_t n);

/// Writes all of `data` at `pos`: 0, or -errno. A short write is retried for the rest; a
/// write of 0 bytes is -ENOSPC.
int write_all_at(file_io& io, int fd, uint64_t pos, std::string_view data);

/// Whether write_whole_file makes the file durable before it returns.
enum class file_sync { yes, no };

/// Writes `data` as the whole of the file at `path` (created, or emptied first) and, with
/// file_sync::yes, syncs it: the first half of replacing a file by renaming this one over
/// it. file_sync::no is for files that recovery can do without (an index under fsync
/// none). On failure the file is removed and the error names it and the step that failed.
status write_whole_file(file_io& io, const std::string& path, const std::string& data,
                        file_sync sync);

} // namespace levee::persistence::detail
