#include "limits/printable.hpp"

#include <cstdint>

namespace levee {

namespace {

/// Length of the valid UTF-8 sequence at text[at], or 0 if there is none.
size_t sequence_at(std::string_view text, size_t at) noexcept {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  uint8_t b0 = byte(at);
  if (b0 < 0x80)
    return 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0)
      lo = 0xa0;  // no overlong forms
    else if (b0 == 0xed)
      hi = 0x9f;  // no surrogates (U+D800 to U+DFFF)
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0)
      lo = 0x90;  // no overlong forms
    else if (b0 == 0xf4)
      hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;  // a continuation byte, an overlong lead (0xc0, 0xc1) or 0xf5 and above
  }
  if (text.size() - at < n)
    return 0;
  if (byte(at + 1) < lo || byte(at + 1) > hi)
    return 0;
  for (size_t i = 2; i < n; ++i)
    if (byte(at + i) < 0x80 || byte(at + i) > 0xbf)
      return 0;
  return n;
}

} // namespace

size_t valid_utf8_prefix(std::string_view text) noexcept {
  size_t at = 0;
  while (at < text.size()) {
    auto n = sequence_at(text, at);
    if (n == 0)
      return at;
    at += n;
  }
  return at;
}

std::string printable(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  auto escape = [&](uint8_t b) {
    out += "\\x";
    out += hex[b >> 4];
    out += hex[b & 0xf];
  };
  size_t at = 0;
  while (at < text.size()) {
    auto b = static_cast<uint8_t>(text[at]);
    auto n = sequence_at(text, at);
    bool c1 = n == 2 && b == 0xc2 && static_cast<uint8_t>(text[at + 1]) <= 0x9f;
    if (n == 0 || b < 0x20 || b == 0x7f || c1) {
      // A C1 control is escaped whole (both bytes), like the byte it stands for.
      for (size_t i = 0; i < (c1 ? 2 : 1); ++i)
        escape(static_cast<uint8_t>(text[at + i]));
      at += c1 ? 2 : 1;
      continue;
    }
    out.append(text.substr(at, n));
    at += n;
  }
  return out;
}

} // namespace levee
