#pragma once
// Where a source that reads a file stands, stored with the events it covers so that a
// restarted satellite resumes exactly (FORMAT.md "Source positions"). A position rides as
// a record header on the last record of the batch whose events it covers, so the batch
// and its position are written, or torn, together; a hint file (checkpoint.hpp) says
// where every position stood at some log offset, so recovery reads only the log after it.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "limits/status.hpp"

namespace levee::persistence {

class segment_log;

/// A file and the byte after the last whole line consumed from it.
struct file_position {
  /// The file (st_dev, st_ino). Both 0: no file had appeared at the path yet; whatever
  /// appears there is read from its start.
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t offset = 0;  // bytes: just after the last line consumed (its newline included)
  /// CRC32C of the file's first `fingerprint_bytes` bytes: tells the same file from
  /// another one that got the inode of a deleted one.
  uint32_t fingerprint = 0;
  uint32_t fingerprint_bytes = 0;
  /// `offset` is inside a line whose start was never read (start_at_end began there):
  /// reading resumes by skipping to that line's newline.
  bool mid_line = false;

  bool has_file() const noexcept { return device != 0 || inode != 0; }
};

bool operator==(const file_position& a, const file_position& b);
inline bool operator!=(const file_position& a, const file_position& b) { return !(a == b); }

/// The fixed encoding of a position: device, inode, offset (u64), fingerprint,
/// fingerprint_bytes (u32), flags (u8: bit 0 mid_line), little-endian.
constexpr size_t file_position_bytes = 33;
std::string encode_file_position(const file_position& pos);
/// False when `bytes` is not file_position_bytes long or has unknown flags.
[[nodiscard]] bool decode_file_position(std::string_view bytes, file_position& pos);

/// The name of the record header that carries a source's position.
constexpr std::string_view position_header_name = "levee.position";
/// Its value: version 1 (u8), the source's name (varint length, bytes), then the encoded
/// position (file_position_bytes).
std::string position_header_value(std::string_view source, std::string_view encoded_position);
[[nodiscard]] bool parse_position_header(std::string_view value, std::string& source,
                                         file_position& pos);

/// What recover_positions() found, and how.
struct position_recovery {
  std::map<std::string, file_position> positions;  // by source name
  bool hint_used = false;     // the hint's positions, then the log after its offset
  uint64_t scanned_from = 0;  // the log offset the scan of batches started at
  uint64_t headers_found = 0; // positions read from log batches
  /// Why the whole log was scanned ("" when the hint was used, or there is no hint and
  /// the log is empty): missing, damaged, or ahead of the log.
  std::string whole_log_because;
  /// The hint covers offsets that retention has removed since it was written: positions
  /// stored in those batches are lost.
  bool hint_behind_log_start = false;
};

/// The positions as of the end of `log`: those of the hint file at `hint_path`, updated
/// by every newer position found in the log's batches from the hint's offset on. When the
/// hint is missing (and the log is not empty), damaged, or covers offsets past the end of
/// the log (the log's tail was cut at recovery), the whole log is scanned instead and
/// `whole_log_because` says why. An error only when the log cannot be read.
result<position_recovery> recover_positions(const segment_log& log, const std::string& hint_path);

} // namespace levee::persistence
