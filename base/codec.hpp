#pragma once
// Fixed-width little-endian integers and protobuf base-128 varints: every format Levee
// writes by hand (segment batches and indexes, checkpoints, source positions, the event
// encoding) encodes its numbers here, so that one tested copy decides their bytes.
//
// Writers append to a std::string (put_*) or fill bytes already reserved in place (the
// overloads taking a char*: a batch header is written after its payload). Fixed-width
// readers take a pointer the caller has checked has the bytes; varint readers check
// their own bounds, because a varint's length is only known while reading it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace levee::base {

namespace detail {

template <class T>
void store_le(char* at, T v) noexcept {
  for (size_t i = 0; i < sizeof(T); ++i)
    at[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
}

template <class T>
void append_le(std::string& out, T v) {
  char buf[sizeof(T)];
  store_le(buf, v);
  out.append(buf, sizeof(T));
}

template <class T>
T load_le(const void* at) noexcept {
  auto p = static_cast<const unsigned char*>(at);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

} // namespace detail

// -- fixed width, little-endian ------------------------------------------------------------

/// Appends `v` in 2, 4 or 8 bytes, least significant first.
inline void put_u16_le(std::string& out, uint16_t v) { detail::append_le(out, v); }
inline void put_u32_le(std::string& out, uint32_t v) { detail::append_le(out, v); }
inline void put_u64_le(std::string& out, uint64_t v) { detail::append_le(out, v); }

/// Writes `v` over the 2, 4 or 8 bytes at `at`.
inline void put_u16_le(char* at, uint16_t v) noexcept { detail::store_le(at, v); }
inline void put_u32_le(char* at, uint32_t v) noexcept { detail::store_le(at, v); }
inline void put_u64_le(char* at, uint64_t v) noexcept { detail::store_le(at, v); }

/// Reads the 2, 4 or 8 bytes at `at`; the caller has checked that they are there.
inline uint16_t get_u16_le(const void* at) noexcept { return detail::load_le<uint16_t>(at); }
inline uint32_t get_u32_le(const void* at) noexcept { return detail::load_le<uint32_t>(at); }
inline uint64_t get_u64_le(const void* at) noexcept { return detail::load_le<uint64_t>(at); }

// -- varints ---------------------------------------------------------------------------------

/// Longest varint: ten bytes carry 64 bits.
constexpr size_t max_varint_bytes = 10;

/// Bytes the varint of `v` takes (1 to 10).
inline size_t varint_size(uint64_t v) noexcept {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// Appends the varint of `v`.
inline void put_varint(std::string& out, uint64_t v) {
  char buf[max_varint_bytes];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

/// Writes the varint of `v` at `at` (room for varint_size(v) bytes); returns the byte
/// after it. For encoders that size their output first and then fill it.
inline char* put_varint(char* at, uint64_t v) noexcept {
  while (v >= 0x80) {
    *at++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *at++ = static_cast<char>(v);
  return at;
}

/// Reads the varint at `p`, never past `end`, and moves `p` behind it. False when it runs
/// past `end` or past ten bytes (then `p` is somewhere inside it). Bits beyond 64 in a
/// tenth byte are dropped, as protobuf's own parser drops them.
inline bool get_varint(const uint8_t*& p, const uint8_t* end, uint64_t& v) noexcept {
  v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    auto b = *p++;
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0)
      return true;
  }
  return false;
}

/// The same over text: reads at byte `at` of `in` and moves `at` behind the varint.
inline bool get_varint(std::string_view in, size_t& at, uint64_t& v) noexcept {
  if (at > in.size())
    return false;
  auto begin = reinterpret_cast<const uint8_t*>(in.data());
  auto p = begin + at;
  bool ok = get_varint(p, begin + in.size(), v);
  at = static_cast<size_t>(p - begin);
  return ok;
}

} // namespace levee::base
