// Every CRC32C path (crc32c.hpp) against the published test vectors and against the table,
// which is the reference: lengths around each block size of the interleaved loops, starts
// at every alignment, and a checksum extended in pieces. A path the CPU or the build does
// not have is skipped, and says so.

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "persistence/crc32c.hpp"

namespace levee::persistence {
namespace {

struct path {
  const char* name;
  bool available;
  uint32_t (*fn)(uint32_t, const void*, size_t) noexcept;
};

std::vector<path> paths() {
  return {
    {"dispatch", true, crc32c},
    {"portable", true, crc32c_portable},
    {"sse42", crc32c_sse42_supported(), crc32c_sse42},
    {"isal", crc32c_isal_available(), crc32c_isal},
  };
}

// RFC 3720 (iSCSI), appendix B.4, and the usual check value of "123456789".
TEST(Crc32c, EveryPathGivesThePublishedVectors) {
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<uint8_t>(i);
    down[i] = static_cast<uint8_t>(31 - i);
  }
  const std::vector<uint8_t> read_pdu = {
    0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  };
  for (auto& p : paths()) {
    if (!p.available) {
      std::printf("crc32c path %s: not on this CPU or build, skipped\n", p.name);
      continue;
    }
    SCOPED_TRACE(p.name);
    EXPECT_EQ(p.fn(0, "123456789", 9), 0xE3069283u);
    EXPECT_EQ(p.fn(0, zeros.data(), 32), 0x8A9136AAu);
    EXPECT_EQ(p.fn(0, ones.data(), 32), 0x62A8AB43u);
    EXPECT_EQ(p.fn(0, up.data(), 32), 0x46DD794Eu);
    EXPECT_EQ(p.fn(0, down.data(), 32), 0x113FDB5Cu);
    EXPECT_EQ(p.fn(0, read_pdu.data(), read_pdu.size()), 0xD9963A56u);
    EXPECT_EQ(p.fn(0, "", 0), 0u);
    EXPECT_EQ(p.fn(0x12345678u, "", 0), 0x12345678u);
  }
}

TEST(Crc32c, EveryPathAgreesWithTheTableAtEveryLengthAndAlignment) {
  std::mt19937 rng{15};
  std::vector<uint8_t> bytes(3 * 4096 * 2 + 3 * 256 * 2 + 64);
  for (auto& b : bytes)
    b = static_cast<uint8_t>(rng());
  // Around the block sizes of the interleaved loops (3 x 4096, 3 x 256) and the batch size
  // of the benchmark, plus every length up to 1 KiB.
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 1024; ++n)
    lengths.push_back(n);
  for (size_t edge : {size_t{3 * 256}, size_t{3 * 4096}, size_t{2 * 3 * 4096},
                      size_t{3 * 4096 + 3 * 256}, size_t{66854 % bytes.size()}})
    for (size_t n = edge - 9; n <= edge + 9; ++n)
      lengths.push_back(n);
  lengths.push_back(bytes.size() - 8);
  for (auto& p : paths()) {
    if (!p.available)
      continue;
    SCOPED_TRACE(p.name);
    for (size_t start = 0; start < 8; ++start)
      for (auto n : lengths) {
        auto want = crc32c_portable(0x9E3779B9u, bytes.data() + start, n);
        ASSERT_EQ(p.fn(0x9E3779B9u, bytes.data() + start, n), want)
          << "start " << start << ", " << n << " bytes";
      }
  }
}

TEST(Crc32c, EveryPathExtendsInPiecesAsAtOnce) {
  std::string text(70000, ' ');
  std::mt19937 rng{7};
  for (auto& c : text)
    c = static_cast<char>(rng());
  auto whole = crc32c_portable(0, text.data(), text.size());
  for (auto& p : paths()) {
    if (!p.available)
      continue;
    SCOPED_TRACE(p.name);
    for (size_t cut : {size_t{1}, size_t{255}, size_t{4096}, size_t{12288}, size_t{40000}}) {
      auto part = p.fn(0, text.data(), cut);
      EXPECT_EQ(p.fn(part, text.data() + cut, text.size() - cut), whole) << "cut at " << cut;
    }
  }
}

} // namespace
} // namespace levee::persistence
