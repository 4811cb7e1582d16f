#include "persistence/crc32c.hpp"

#include <array>
#include <cstring>

namespace levee::persistence {

namespace {

constexpr uint32_t poly = 0x82F63B78u;  // CRC32C, reflected

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    t[i] = c;
  }
  return t;
}

constexpr auto table = make_table();

uint32_t crc_table(uint32_t crc, const uint8_t* p, size_t n) noexcept {
  crc = ~crc;
  while (n-- > 0)
    crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

// Three interleaved streams: one crc32 instruction chain is bound by the instruction's
// latency (3 cycles), three independent chains keep the unit busy. The register of a CRC
// is linear over GF(2): crc(s, A|B|C) = shift(crc(s, A), |B|+|C|) ^ shift(crc(0, B), |C|)
// ^ crc(0, C), where shift(x, k) is the effect of k zero bytes, a fixed 32x32 matrix for
// a fixed k, applied here through four byte tables.
constexpr size_t stream_block = 4096;

uint32_t zero_bytes(uint32_t state, size_t n) noexcept {  // raw register, no inversion
  while (n-- > 0)
    state = table[state & 0xFF] ^ (state >> 8);
  return state;
}

struct shift_table {
  std::array<std::array<uint32_t, 256>, 4> t{};
  explicit shift_table(size_t bytes) {
    uint32_t column[32];
    for (int i = 0; i < 32; ++i)
      column[i] = zero_bytes(uint32_t{1} << i, bytes);
    for (int j = 0; j < 4; ++j)
      for (int b = 0; b < 256; ++b) {
        uint32_t v = 0;
        for (int bit = 0; bit < 8; ++bit)
          if ((b >> bit) & 1)
            v ^= column[8 * j + bit];
        t[j][b] = v;
      }
  }
  uint32_t operator()(uint32_t x) const noexcept {
    return t[0][x & 0xFF] ^ t[1][(x >> 8) & 0xFF] ^ t[2][(x >> 16) & 0xFF] ^ t[3][x >> 24];
  }
};

const shift_table shift_one{stream_block};
const shift_table shift_two{2 * stream_block};

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc_hw(uint32_t crc, const uint8_t* p,
                                                  size_t n) noexcept {
  uint64_t c = ~crc;
  while (n >= 3 * stream_block) {
    uint64_t a = c, b = 0, d = 0;
    for (size_t i = 0; i < stream_block; i += 8) {
      uint64_t va, vb, vd;
      std::memcpy(&va, p + i, 8);
      std::memcpy(&vb, p + stream_block + i, 8);
      std::memcpy(&vd, p + 2 * stream_block + i, 8);
      a = __builtin_ia32_crc32di(a, va);
      b = __builtin_ia32_crc32di(b, vb);
      d = __builtin_ia32_crc32di(d, vd);
    }
    c = shift_two(static_cast<uint32_t>(a)) ^ shift_one(static_cast<uint32_t>(b))
        ^ static_cast<uint32_t>(d);
    p += 3 * stream_block;
    n -= 3 * stream_block;
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n-- > 0)
    c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}

bool detect() noexcept {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#else
bool detect() noexcept {
  return false;
}
#endif

const bool use_hw = detect();

} // namespace

bool crc32c_hardware() noexcept {
  return use_hw;
}

uint32_t crc32c(uint32_t crc, const void* data, size_t n) noexcept {
  auto p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  if (use_hw)
    return crc_hw(crc, p, n);
#endif
  return crc_table(crc, p, n);
}

} // namespace levee::persistence
