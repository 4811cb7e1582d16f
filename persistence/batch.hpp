#pragma once
// Record batches: the unit the segment log writes, checksums and compresses. The byte
// layout is in FORMAT.md; the constants shared by writer and reader are here.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "limits/status.hpp"

namespace levee::persistence {

constexpr size_t batch_header_bytes = 48;
/// Version 1: records hold offsets base_offset .. base_offset + offset_count - 1, densely.
constexpr uint8_t batch_format_version = 1;
/// Version 2 (written by compaction): the batch covers the same offset range, but only
/// some offsets still have a record; each record carries its offset - base_offset.
constexpr uint8_t batch_format_compacted = 2;
constexpr uint8_t attr_lz4 = 0x01;

struct record {
  std::string key;    // empty: no key
  std::string value;
  int64_t timestamp_ms = 0;
  std::vector<std::pair<std::string, std::string>> headers;
};

bool operator==(const record& a, const record& b);

/// A record as read back, with its offset.
struct stored_record {
  uint64_t offset = 0;
  record rec;
};

struct batch_limits {
  uint64_t max_record_bytes;  // one record's key + value + headers
  uint64_t max_batch_bytes;   // one encoded batch, header included
  bool compress;              // LZ4 when it makes the payload smaller
};

struct batch_header {
  uint64_t base_offset = 0;
  uint32_t length = 0;        // the whole batch, header included
  uint32_t crc = 0;
  uint8_t version = 0;
  uint8_t attributes = 0;
  /// The offsets the batch covers: base_offset .. base_offset + offset_count - 1. In a
  /// version 1 batch, also its number of records.
  uint32_t offset_count = 0;
  int64_t first_timestamp_ms = 0;
  int64_t max_timestamp_ms = 0;
  uint32_t payload_bytes = 0;  // uncompressed
  uint32_t header_crc = 0;
};

/// Appends one batch of `records` starting at `base_offset` to `out`. Refuses (typed, with
/// nothing appended) an empty batch, a record over max_record_bytes or a batch over
/// max_batch_bytes (message_too_large).
status encode_batch(uint64_t base_offset, const std::vector<record>& records,
                    const batch_limits& limits, std::string& out);

/// Encodes batches for appending, each once, into buffers kept from one batch to the next
/// (a 64 KiB+ allocation per batch costs page faults that show in the append rate): the
/// records into one, and with LZ4 their payload compressed straight from there into the
/// other. Same bytes and refusals as encode_batch.
class batch_encoder {
public:
  status encode(uint64_t base_offset, const std::vector<record>& records,
                const batch_limits& limits);
  /// The last batch encoded (empty after a refusal); valid until the next encode().
  std::string_view bytes() const noexcept { return batch_; }
  /// The largest timestamp among its records.
  int64_t max_timestamp_ms() const noexcept { return max_timestamp_ms_; }

private:
  std::string plain_;   // header + payload as encoded
  std::string packed_;  // header + LZ4 payload; sized for LZ4_compressBound, only grows
  std::vector<size_t> body_sizes_;  // each record's, measured before it is written
  std::string_view batch_;
  int64_t max_timestamp_ms_ = 0;
};

/// Appends one version 2 (compacted) batch covering offsets base_offset .. base_offset +
/// offset_count - 1 with `records` (offsets increasing, inside that range; may be empty:
/// the range's records were all compacted away). Same limits as encode_batch.
status encode_compacted_batch(uint64_t base_offset, uint32_t offset_count,
                              const std::vector<stored_record>& records,
                              const batch_limits& limits, std::string& out);

enum class batch_check {
  ok,              // a whole, valid batch
  incomplete,      // fewer bytes than the header or the batch needs
  corrupt_header,  // the header's own checksum fails, or it holds impossible values
  corrupt_body,    // the header is sound but the payload's checksum fails
};

/// Parses and verifies the batch at `data` with `available` bytes after it. On `corrupt`,
/// `why` says what is wrong.
batch_check check_batch(const uint8_t* data, size_t available, uint64_t max_batch_bytes,
                        batch_header& header, std::string& why);

/// The first half of check_batch: parses and verifies the header alone (its checksum and
/// values), so that a reader holding only part of a big batch can begin with it: `ok`,
/// `incomplete` (fewer than batch_header_bytes) or `corrupt_header`.
batch_check check_batch_header(const uint8_t* data, size_t available, uint64_t max_batch_bytes,
                               batch_header& header, std::string& why);

/// The second half: the payload checksum over the bytes after the header, fed in order in
/// any number of pieces (check_batch feeds them at once; the scrubber a step at a time).
class payload_checksum {
public:
  void feed(const uint8_t* data, size_t n) noexcept;
  /// `ok`, or `corrupt_body` with `why`, once every payload byte of `header`'s batch was
  /// fed.
  batch_check verdict(const batch_header& header, std::string& why) const;

private:
  uint32_t crc_ = 0;
};

/// A record as it lies in a batch: views into the batch (or its inflated payload).
struct record_view {
  uint64_t offset = 0;
  std::string_view key;
  std::string_view value;
  int64_t timestamp_ms = 0;
  /// (name, value) views, in order; empty for a record without headers (most), which
  /// then costs no allocation.
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

/// Calls `fn` for each record of a batch that passed check_batch, in offset order, without
/// copying keys, values or headers, until `fn` returns false: the records after that one
/// are not parsed (a `limit 1` query reads one record of a batch of hundreds). `scratch`
/// holds a compressed payload, inflated.
status visit_records(const batch_header& header, const uint8_t* batch, std::string& scratch,
                     const std::function<bool(const record_view&)>& fn);

/// Decodes the records of a batch that passed check_batch.
status decode_records(const batch_header& header, const uint8_t* batch,
                      std::vector<stored_record>& out);

} // namespace levee::persistence
