#include "persistence/batch.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <lz4.h>

#include "base/codec.hpp"
#include "persistence/crc32c.hpp"
#include "persistence/record.pb.h"

namespace levee::persistence {

using base::get_varint;
using base::put_varint;
using base::varint_size;

namespace {

/// The header checksum covers header bytes 0..43 (the body checksum included); the body
/// checksum covers the payload, bytes 48.. to the end of the batch.
uint32_t header_crc(const uint8_t* batch) {
  return crc32c(0, batch, 44);
}

uint32_t body_crc(const uint8_t* batch, size_t length) {
  return crc32c(0, batch + batch_header_bytes, length - batch_header_bytes);
}

} // namespace

bool operator==(const record& a, const record& b) {
  return a.key == b.key && a.value == b.value && a.timestamp_ms == b.timestamp_ms
         && a.headers == b.headers;
}

namespace {

/// The size of one header's `Header` message, or of a bytes field `tag, len, bytes`.
size_t bytes_field_size(const std::string& bytes) {
  return bytes.empty() ? 0 : 1 + varint_size(bytes.size()) + bytes.size();
}

size_t header_size(const std::string& name, const std::string& value) {
  return bytes_field_size(name) + bytes_field_size(value);
}

/// The size of `r` as a protobuf `Record` (record.proto), without its length prefix.
/// `delta` is written for version 2 batches.
size_t record_body_size(const record& r, uint32_t delta) {
  size_t size = bytes_field_size(r.key) + bytes_field_size(r.value);
  if (r.timestamp_ms != 0)
    size += 1 + varint_size(static_cast<uint64_t>(r.timestamp_ms));
  for (auto& [name, value] : r.headers) {
    auto h = header_size(name, value);
    size += 1 + varint_size(h) + h;
  }
  if (delta != 0)
    size += 1 + varint_size(delta);
  return size;
}

char* put_bytes_field(char* p, uint8_t tag, const std::string& bytes) {
  if (bytes.empty())
    return p;
  *p++ = static_cast<char>(tag);
  p = put_varint(p, bytes.size());
  std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}

/// Writes `r` at `p` as its length and a protobuf `Record`, without building a message
/// object: the value is copied once, into the batch. Returns the byte after it.
char* put_record(char* p, const record& r, uint32_t delta, size_t body_size) {
  p = put_varint(p, body_size);
  p = put_bytes_field(p, 0x0a, r.key);
  p = put_bytes_field(p, 0x12, r.value);
  if (r.timestamp_ms != 0) {
    *p++ = 0x18;
    p = put_varint(p, static_cast<uint64_t>(r.timestamp_ms));
  }
  for (auto& [name, value] : r.headers) {
    *p++ = 0x22;
    p = put_varint(p, header_size(name, value));
    p = put_bytes_field(p, 0x0a, name);
    p = put_bytes_field(p, 0x12, value);
  }
  if (delta != 0) {
    *p++ = 0x28;
    p = put_varint(p, delta);
  }
  return p;
}

const record& record_of(const record& r) { return r; }
const record& record_of(const stored_record& r) { return r.rec; }

/// Checks each record against max_record_bytes and measures the payload of `records`
/// exactly (so it is written in one pass into room made once); sets the batch's first
/// and largest timestamps.
template <class Records, class DeltaOf>
status measure_payload(const Records& records, DeltaOf delta_of, const batch_limits& limits,
                       std::vector<size_t>& body_sizes, size_t& payload_size, int64_t& first_ts,
                       int64_t& max_ts) {
  body_sizes.clear();
  first_ts = records.empty() ? std::numeric_limits<int64_t>::min()
                             : record_of(records.front()).timestamp_ms;
  max_ts = std::numeric_limits<int64_t>::min();
  payload_size = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    auto& r = record_of(records[i]);
    uint64_t size = r.key.size() + r.value.size();
    for (auto& [name, value] : r.headers)
      size += name.size() + value.size();
    if (size > limits.max_record_bytes)
      return status::error(code::message_too_large,
                           "persistence.max_record_bytes: a record of " + std::to_string(size)
                             + " bytes is over the maximum of "
                             + std::to_string(limits.max_record_bytes));
    auto body = record_body_size(r, delta_of(i));
    body_sizes.push_back(body);
    payload_size += varint_size(body) + body;
    max_ts = std::max(max_ts, r.timestamp_ms);
  }
  return {};
}

/// Writes the payload that measure_payload measured (`body_sizes`) at `p`.
template <class Records, class DeltaOf>
void write_payload(char* p, const Records& records, DeltaOf delta_of,
                   const std::vector<size_t>& body_sizes) {
  for (size_t i = 0; i < records.size(); ++i)
    p = put_record(p, record_of(records[i]), delta_of(i), body_sizes[i]);
}

/// LZ4 when it makes the payload of `payload_size` bytes at `payload` smaller: the
/// compressed bytes go to `out` + batch_header_bytes (which has room for
/// LZ4_compressBound) and their size is returned; 0 when the payload stays as it is.
size_t compress_payload(const char* payload, size_t payload_size, char* out, size_t room) {
  if (payload_size <= 64)
    return 0;
  auto n = LZ4_compress_default(payload, out + batch_header_bytes,
                                static_cast<int>(payload_size),
                                static_cast<int>(room - batch_header_bytes));
  return n > 0 && static_cast<size_t>(n) < payload_size ? static_cast<size_t>(n) : 0;
}

size_t compressed_room(size_t payload_size) {
  return batch_header_bytes + static_cast<size_t>(LZ4_compressBound(static_cast<int>(payload_size)));
}

status too_large(size_t length, const batch_limits& limits) {
  return status::error(code::message_too_large,
                       "persistence.max_batch_bytes: a batch of " + std::to_string(length)
                         + " bytes is over the maximum of "
                         + std::to_string(limits.max_batch_bytes));
}

/// Writes the header's fields (FORMAT.md "Batch", little-endian) at `header`, the start
/// of a batch of `length` bytes whose payload follows, and both checksums.
void seal(char* header, size_t length, uint64_t base_offset, uint32_t offset_count,
          uint8_t version, uint8_t attributes, int64_t first_ts, int64_t max_ts,
          size_t payload_size) {
  base::put_u64_le(header, base_offset);
  base::put_u32_le(header + 8, static_cast<uint32_t>(length));
  header[16] = static_cast<char>(version);
  header[17] = static_cast<char>(attributes);
  base::put_u16_le(header + 18, 0);
  base::put_u32_le(header + 20, offset_count);
  base::put_u64_le(header + 24, static_cast<uint64_t>(first_ts));
  base::put_u64_le(header + 32, static_cast<uint64_t>(max_ts));
  base::put_u32_le(header + 40, static_cast<uint32_t>(payload_size));
  auto p = reinterpret_cast<const uint8_t*>(header);
  base::put_u32_le(header + 12, body_crc(p, length));
  base::put_u32_le(header + 44, header_crc(p));
}

/// Both versions, appended to `out`: `records` are `record`s (version 1, dense) or
/// `stored_record`s (version 2, each with its offset). Not on the append path (truncation
/// and compaction): the compressed payload takes a buffer of its own here.
template <class Records, class DeltaOf>
status encode(uint64_t base_offset, uint32_t offset_count, uint8_t version,
              const Records& records, DeltaOf delta_of, const batch_limits& limits,
              std::string& out) {
  std::vector<size_t> body_sizes;
  size_t payload_size = 0;
  int64_t first_ts = 0, max_ts = 0;
  if (auto st = measure_payload(records, delta_of, limits, body_sizes, payload_size, first_ts,
                                max_ts);
      !st)
    return st;
  auto at = out.size();
  out.resize(at + batch_header_bytes + payload_size);
  write_payload(out.data() + at + batch_header_bytes, records, delta_of, body_sizes);
  uint8_t attributes = 0;
  if (limits.compress) {
    std::string packed(compressed_room(payload_size), '\0');
    if (auto n = compress_payload(out.data() + at + batch_header_bytes, payload_size,
                                  packed.data(), packed.size());
        n != 0) {
      out.resize(at + batch_header_bytes);
      out.append(packed.data() + batch_header_bytes, n);
      attributes |= attr_lz4;
    }
  }
  auto length = out.size() - at;
  if (length > limits.max_batch_bytes || length > std::numeric_limits<uint32_t>::max()) {
    out.resize(at);  // nothing appended
    return too_large(length, limits);
  }
  seal(out.data() + at, length, base_offset, offset_count, version, attributes, first_ts, max_ts,
       payload_size);
  return {};
}

status check_batch_of(const std::vector<record>& records) {
  if (records.empty())
    return status::error(code::bad_request, "an empty batch cannot be appended");
  if (records.size() > std::numeric_limits<uint32_t>::max())
    return status::error(code::message_too_large, "more than 2^32-1 records in one batch");
  return {};
}

} // namespace

status encode_batch(uint64_t base_offset, const std::vector<record>& records,
                    const batch_limits& limits, std::string& out) {
  if (auto st = check_batch_of(records); !st)
    return st;
  return encode(base_offset, static_cast<uint32_t>(records.size()), batch_format_version,
                records, [](size_t) { return 0u; }, limits, out);
}

status batch_encoder::encode(uint64_t base_offset, const std::vector<record>& records,
                             const batch_limits& limits) {
  batch_ = {};
  if (auto st = check_batch_of(records); !st)
    return st;
  auto dense = [](size_t) { return 0u; };
  size_t payload_size = 0;
  int64_t first_ts = 0;
  if (auto st = measure_payload(records, dense, limits, body_sizes_, payload_size, first_ts,
                                max_timestamp_ms_);
      !st)
    return st;
  // Both buffers only grow and are never shrunk: a std::string zero-fills what resize()
  // adds, so growing them for every batch would write each byte twice.
  size_t length = batch_header_bytes + payload_size;
  if (plain_.size() < length)
    plain_.resize(length);
  char* batch = plain_.data();
  write_payload(batch + batch_header_bytes, records, dense, body_sizes_);
  uint8_t attributes = 0;
  if (limits.compress) {
    // Straight from the encoded payload into the second buffer, behind room for the
    // header.
    auto room = compressed_room(payload_size);
    if (packed_.size() < room)
      packed_.resize(room);
    if (auto n = compress_payload(batch + batch_header_bytes, payload_size,
                                  packed_.data(), packed_.size());
        n != 0) {
      batch = packed_.data();
      length = batch_header_bytes + n;
      attributes |= attr_lz4;
    }
  }
  if (length > limits.max_batch_bytes || length > std::numeric_limits<uint32_t>::max())
    return too_large(length, limits);
  seal(batch, length, base_offset, static_cast<uint32_t>(records.size()), batch_format_version,
       attributes, first_ts, max_timestamp_ms_, payload_size);
  batch_ = std::string_view(batch, length);
  return {};
}

status encode_compacted_batch(uint64_t base_offset, uint32_t offset_count,
                              const std::vector<stored_record>& records,
                              const batch_limits& limits, std::string& out) {
  uint64_t previous = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    auto o = records[i].offset;
    if (o < base_offset || o - base_offset >= offset_count || (i > 0 && o <= previous))
      return status::error(code::bad_request,
                           "compacted batch: record offset " + std::to_string(o)
                             + " out of order or outside " + std::to_string(base_offset) + " + "
                             + std::to_string(offset_count));
    previous = o;
  }
  if (offset_count == 0)
    return status::error(code::bad_request, "a batch must cover at least one offset");
  return encode(base_offset, offset_count, batch_format_compacted, records,
                [&](size_t i) { return static_cast<uint32_t>(records[i].offset - base_offset); },
                limits, out);
}

batch_check check_batch_header(const uint8_t* data, size_t available, uint64_t max_batch_bytes,
                               batch_header& h, std::string& why) {
  if (available < batch_header_bytes)
    return batch_check::incomplete;
  h.base_offset = base::get_u64_le(data);
  h.length = base::get_u32_le(data + 8);
  h.crc = base::get_u32_le(data + 12);
  h.version = data[16];
  h.attributes = data[17];
  h.offset_count = base::get_u32_le(data + 20);
  h.first_timestamp_ms = static_cast<int64_t>(base::get_u64_le(data + 24));
  h.max_timestamp_ms = static_cast<int64_t>(base::get_u64_le(data + 32));
  h.payload_bytes = base::get_u32_le(data + 40);
  h.header_crc = base::get_u32_le(data + 44);
  if (header_crc(data) != h.header_crc) {
    why = "batch header checksum mismatch";
    return batch_check::corrupt_header;
  }
  if (h.length < batch_header_bytes || h.length > max_batch_bytes
      || (h.version != batch_format_version && h.version != batch_format_compacted)
      || (h.attributes & ~attr_lz4) != 0 || h.offset_count == 0
      || (h.version == batch_format_version && h.length == batch_header_bytes)) {
    why = "batch header with length " + std::to_string(h.length) + ", version "
          + std::to_string(h.version) + ", attributes " + std::to_string(h.attributes)
          + " that this version cannot read";
    return batch_check::corrupt_header;
  }
  return batch_check::ok;
}

void payload_checksum::feed(const uint8_t* data, size_t n) noexcept {
  crc_ = crc32c(crc_, data, n);
}

batch_check payload_checksum::verdict(const batch_header& h, std::string& why) const {
  if (crc_ != h.crc) {
    why = "batch payload checksum mismatch";
    return batch_check::corrupt_body;
  }
  return batch_check::ok;
}

batch_check check_batch(const uint8_t* data, size_t available, uint64_t max_batch_bytes,
                        batch_header& h, std::string& why) {
  if (auto header = check_batch_header(data, available, max_batch_bytes, h, why);
      header != batch_check::ok)
    return header;
  if (available < h.length)
    return batch_check::incomplete;
  payload_checksum body;
  body.feed(data + batch_header_bytes, h.length - batch_header_bytes);
  return body.verdict(h, why);
}

namespace {

/// One `Header` message (record.proto: 1 name, 2 value; unknown fields skipped) in
/// [p, end), appended to `out` as views.
bool read_header(const uint8_t* p, const uint8_t* end,
                 std::vector<std::pair<std::string_view, std::string_view>>& out) {
  std::string_view name;
  std::string_view value;
  while (p < end) {
    uint64_t tag = 0;
    if (!get_varint(p, end, tag))
      return false;
    auto wire_type = tag & 7;
    if (wire_type == 0) {
      uint64_t x = 0;
      if (!get_varint(p, end, x))
        return false;
    } else if (wire_type == 2) {
      uint64_t n = 0;
      if (!get_varint(p, end, n) || n > static_cast<uint64_t>(end - p))
        return false;
      std::string_view bytes{reinterpret_cast<const char*>(p), static_cast<size_t>(n)};
      if ((tag >> 3) == 1)
        name = bytes;
      else if ((tag >> 3) == 2)
        value = bytes;
      p += n;
    } else if (wire_type == 1 && end - p >= 8) {
      p += 8;
    } else if (wire_type == 5 && end - p >= 4) {
      p += 4;
    } else {
      return false;
    }
  }
  out.emplace_back(name, value);
  return true;
}

/// The payload of a checked batch: in place, or inflated into `scratch` when compressed.
status payload_of(const batch_header& h, const uint8_t* batch, std::string& scratch,
                  const uint8_t*& body, size_t& size) {
  body = batch + batch_header_bytes;
  size = h.length - batch_header_bytes;
  if ((h.attributes & attr_lz4) == 0)
    return {};
  scratch.resize(h.payload_bytes);
  auto n = LZ4_decompress_safe(reinterpret_cast<const char*>(body), scratch.data(),
                               static_cast<int>(size), static_cast<int>(h.payload_bytes));
  if (n < 0 || static_cast<uint32_t>(n) != h.payload_bytes)
    return status::error(code::storage_error, "a compressed batch does not decompress");
  body = reinterpret_cast<const uint8_t*>(scratch.data());
  size = scratch.size();
  return {};
}

/// The offset of the `index`-th record of a batch: dense in version 1; in version 2 its
/// delta, which must be above the previous record's and inside the batch's range.
status record_offset(const batch_header& h, uint64_t index, uint64_t delta,
                     int64_t& previous_delta, uint64_t& offset) {
  if (h.version != batch_format_compacted) {
    offset = h.base_offset + index;
    return {};
  }
  auto d = static_cast<int64_t>(delta);
  if (delta > std::numeric_limits<uint32_t>::max() || d <= previous_delta
      || d >= static_cast<int64_t>(h.offset_count))
    return status::error(code::storage_error, "a record of a compacted batch has offset delta "
                                                + std::to_string(delta)
                                                + " out of order or outside the batch");
  previous_delta = d;
  offset = h.base_offset + delta;
  return {};
}

} // namespace

status visit_records(const batch_header& h, const uint8_t* batch, std::string& scratch,
                     const std::function<bool(const record_view&)>& fn) {
  const uint8_t* body = nullptr;
  size_t body_size = 0;
  if (auto st = payload_of(h, batch, scratch, body, body_size); !st)
    return st;
  const uint8_t* p = body;
  const uint8_t* end = body + body_size;
  bool compacted = h.version == batch_format_compacted;
  uint64_t count = 0;
  int64_t previous_delta = -1;
  auto corrupt = [] {
    return status::error(code::storage_error, "a record in a batch does not parse");
  };
  // The protobuf wire format of Record (record.proto), read in place: fields 1 key, 2
  // value, 3 timestamp_ms, 4 headers, 5 offset_delta; unknown fields skipped.
  while (compacted ? p < end : count < h.offset_count) {
    uint64_t len = 0;
    if (!get_varint(p, end, len) || len > static_cast<uint64_t>(end - p))
      return corrupt();
    const uint8_t* r = p;
    const uint8_t* r_end = p + len;
    p = r_end;
    record_view v;
    uint64_t delta = 0;
    while (r < r_end) {
      uint64_t tag = 0;
      if (!get_varint(r, r_end, tag))
        return corrupt();
      auto field = tag >> 3;
      auto wire_type = tag & 7;
      if (wire_type == 0) {
        uint64_t x = 0;
        if (!get_varint(r, r_end, x))
          return corrupt();
        if (field == 3)
          v.timestamp_ms = static_cast<int64_t>(x);
        else if (field == 5)
          delta = x;
      } else if (wire_type == 2) {
        uint64_t n = 0;
        if (!get_varint(r, r_end, n) || n > static_cast<uint64_t>(r_end - r))
          return corrupt();
        std::string_view bytes{reinterpret_cast<const char*>(r), static_cast<size_t>(n)};
        if (field == 1)
          v.key = bytes;
        else if (field == 2)
          v.value = bytes;
        else if (field == 4 && !read_header(r, r + n, v.headers))
          return corrupt();
        r += n;
      } else if (wire_type == 1 && r_end - r >= 8) {
        r += 8;
      } else if (wire_type == 5 && r_end - r >= 4) {
        r += 4;
      } else {
        return corrupt();
      }
    }
    if (auto st = record_offset(h, count, delta, previous_delta, v.offset); !st)
      return st;
    ++count;
    if (!fn(v))
      break;
  }
  return {};
}

status decode_records(const batch_header& h, const uint8_t* batch,
                      std::vector<stored_record>& out) {
  std::string inflated;
  const uint8_t* body = nullptr;
  size_t body_size = 0;
  if (auto st = payload_of(h, batch, inflated, body, body_size); !st)
    return st;
  const uint8_t* p = body;
  const uint8_t* end = body + body_size;
  format::Record pb;
  bool compacted = h.version == batch_format_compacted;
  uint64_t count = 0;
  int64_t previous_delta = -1;
  // A version 1 batch holds exactly offset_count records; a version 2 batch holds records
  // until its payload ends, each with a delta above the previous one and inside the range.
  while (compacted ? p < end : count < h.offset_count) {
    uint64_t len = 0;
    if (!get_varint(p, end, len) || len > static_cast<uint64_t>(end - p)
        || !pb.ParseFromArray(p, static_cast<int>(len)))
      return status::error(code::storage_error, "a record in a batch does not parse");
    p += len;
    stored_record sr;
    if (auto st = record_offset(h, count, pb.offset_delta(), previous_delta, sr.offset); !st)
      return st;
    ++count;
    sr.rec.key = std::move(*pb.mutable_key());
    sr.rec.value = std::move(*pb.mutable_value());
    sr.rec.timestamp_ms = pb.timestamp_ms();
    for (auto& hd : *pb.mutable_headers())
      sr.rec.headers.emplace_back(std::move(*hd.mutable_name()), std::move(*hd.mutable_value()));
    out.push_back(std::move(sr));
  }
  return {};
}

} // namespace levee::persistence
