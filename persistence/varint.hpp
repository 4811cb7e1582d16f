#pragma once
// Protobuf base-128 varints, written by hand where the project encodes protobuf wire
// format itself (record batches, the event encoding). Readers check their own bounds.

#include <cstddef>
#include <cstdint>
#include <string>

namespace levee::persistence {

/// Bytes the varint of `v` takes (1 to 10).
inline size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// Appends the varint of `v` to `out`.
inline void put_varint(std::string& out, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

} // namespace levee::persistence
