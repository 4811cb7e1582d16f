// The base layer: the number codec every hand-written format uses, RFC 3339 times and
// the calendar under them, host:port addresses. Plain C++, no other Levee library.

#include <gtest/gtest.h>

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "base/codec.hpp"
#include "base/file_lock.hpp"
#include "base/host_port.hpp"
#include "base/time_text.hpp"

using namespace levee::base;

namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values)
    out.push_back(static_cast<char>(v));
  return out;
}

const uint8_t* u8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

} // namespace

// -- codec ----------------------------------------------------------------------------------

TEST(Codec, FixedWidthIsLittleEndian) {
  std::string out;
  put_u16_le(out, 0x0102);
  put_u32_le(out, 0x03040506);
  put_u64_le(out, 0x0708090A0B0C0D0Eull);
  EXPECT_EQ(out, bytes({0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0E, 0x0D, 0x0C, 0x0B, 0x0A, 0x09,
                        0x08, 0x07}));
  EXPECT_EQ(get_u16_le(out.data()), 0x0102);
  EXPECT_EQ(get_u32_le(out.data() + 2), 0x03040506u);
  EXPECT_EQ(get_u64_le(out.data() + 6), 0x0708090A0B0C0D0Eull);
}

TEST(Codec, FixedWidthKeepsEveryBitOfTheExtremes) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x80}, uint64_t{0xFFFFFFFF},
                     uint64_t{1} << 63, std::numeric_limits<uint64_t>::max()}) {
    std::string out;
    put_u64_le(out, v);
    ASSERT_EQ(out.size(), 8u);
    EXPECT_EQ(get_u64_le(out.data()), v);
  }
  // A negative timestamp goes through its two's complement bits and comes back.
  std::string out;
  put_u64_le(out, static_cast<uint64_t>(int64_t{-2}));
  EXPECT_EQ(out, std::string(1, '\xFE') + std::string(7, '\xFF'));
  EXPECT_EQ(static_cast<int64_t>(get_u64_le(out.data())), -2);
}

TEST(Codec, PutInPlaceWritesOnlyItsBytes) {
  std::string out(16, 'x');
  put_u16_le(out.data() + 1, 0xBBAA);
  put_u32_le(out.data() + 3, 0x44332211);
  put_u64_le(out.data() + 7, 0);
  EXPECT_EQ(out, "x\xAA\xBB\x11\x22\x33\x44" + std::string(8, '\0') + "x");
}

TEST(Codec, VarintsAreProtobufs) {
  struct varint_case {
    uint64_t value;
    std::string encoded;
  };
  const varint_case cases[] = {
    {0, bytes({0x00})},
    {1, bytes({0x01})},
    {127, bytes({0x7F})},
    {128, bytes({0x80, 0x01})},
    {300, bytes({0xAC, 0x02})},
    {16'383, bytes({0xFF, 0x7F})},
    {16'384, bytes({0x80, 0x80, 0x01})},
    {std::numeric_limits<uint64_t>::max(),
     bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})},
  };
  for (auto& c : cases) {
    std::string out = "prefix";
    put_varint(out, c.value);
    EXPECT_EQ(out, "prefix" + c.encoded) << c.value;
    EXPECT_EQ(varint_size(c.value), c.encoded.size()) << c.value;
    auto p = u8(c.encoded);
    uint64_t v = 0;
    ASSERT_TRUE(get_varint(p, p + c.encoded.size(), v)) << c.value;
    EXPECT_EQ(v, c.value);
    EXPECT_EQ(p, u8(c.encoded) + c.encoded.size()) << "moved behind the varint";
  }
}

TEST(Codec, VarintSizeAtEverySevenBitBoundary) {
  for (size_t n = 1; n < max_varint_bytes; ++n) {
    uint64_t last = (uint64_t{1} << (7 * n)) - 1;  // the largest value in n bytes
    EXPECT_EQ(varint_size(last), n);
    EXPECT_EQ(varint_size(last + 1), n + 1);
  }
}

TEST(Codec, VarintReadStopsAtTheBound) {
  uint64_t v = 0;
  // Cut short: the continuation bit promises a byte that is not there.
  auto cut = bytes({0xAC});
  auto p = u8(cut);
  EXPECT_FALSE(get_varint(p, p + cut.size(), v));
  // Nothing to read at all.
  p = u8(cut);
  EXPECT_FALSE(get_varint(p, p, v));
  // Eleven bytes of continuation: longer than any 64-bit value.
  auto endless = std::string(11, '\x80');
  p = u8(endless);
  EXPECT_FALSE(get_varint(p, p + endless.size(), v));
  // A bound in the middle of a longer buffer is respected.
  auto two = bytes({0x80, 0x01});
  p = u8(two);
  EXPECT_FALSE(get_varint(p, p + 1, v));
}

TEST(Codec, VarintDropsBitsBeyond64LikeProtobuf) {
  // A tenth byte of 0x7F carries bits 63..69; only bit 63 fits.
  auto wide = bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F});
  auto p = u8(wide);
  uint64_t v = 0;
  ASSERT_TRUE(get_varint(p, p + wide.size(), v));
  EXPECT_EQ(v, std::numeric_limits<uint64_t>::max());
}

TEST(Codec, VarintFromTextMovesTheIndex) {
  std::string in = "\x01" + bytes({0xAC, 0x02}) + "rest";
  size_t at = 1;
  uint64_t v = 0;
  ASSERT_TRUE(get_varint(std::string_view{in}, at, v));
  EXPECT_EQ(v, 300u);
  EXPECT_EQ(at, 3u);
  at = in.size();
  EXPECT_FALSE(get_varint(std::string_view{in}, at, v)) << "at the end";
  at = in.size() + 1;
  EXPECT_FALSE(get_varint(std::string_view{in}, at, v)) << "past the end";
}

// -- calendar -------------------------------------------------------------------------------

TEST(Calendar, LeapYearsFollowTheGregorianRule) {
  EXPECT_TRUE(is_leap_year(2024));
  EXPECT_TRUE(is_leap_year(2000));  // divisible by 400
  EXPECT_FALSE(is_leap_year(1900));  // by 100, not by 400
  EXPECT_FALSE(is_leap_year(2100));
  EXPECT_FALSE(is_leap_year(2026));
  EXPECT_TRUE(is_leap_year(0));
  EXPECT_EQ(days_in_month(2024, 2), 29);
  EXPECT_EQ(days_in_month(1900, 2), 28);
  EXPECT_EQ(days_in_month(2026, 4), 30);
  EXPECT_EQ(days_in_month(2026, 12), 31);
}

TEST(Calendar, DaysFromCivilAtKnownDates) {
  EXPECT_EQ(days_from_civil(1970, 1, 1), 0);
  EXPECT_EQ(days_from_civil(1969, 12, 31), -1);
  EXPECT_EQ(days_from_civil(2000, 3, 1), 11'017);
  EXPECT_EQ(days_from_civil(1, 1, 1), -719'162);
  EXPECT_EQ(days_from_civil(9999, 12, 31), 2'932'896);
}

TEST(Calendar, CivilFromDaysInvertsEveryDayOfYearsOneTo9999) {
  int64_t expected_days = days_from_civil(1, 1, 1);
  for (int64_t year = 1; year <= 9999; ++year)
    for (int month = 1; month <= 12; ++month)
      for (int day = 1; day <= days_in_month(year, month); ++day) {
        ASSERT_EQ(days_from_civil(year, month, day), expected_days) << year << "-" << month << "-" << day;
        auto d = civil_from_days(expected_days);
        ASSERT_TRUE(d.year == year && d.month == month && d.day == day)
          << expected_days << " -> " << d.year << "-" << d.month << "-" << d.day;
        ++expected_days;
      }
}

// -- RFC 3339 ---------------------------------------------------------------------------------

TEST(Rfc3339, ParsesEveryForm) {
  struct rfc_case {
    const char* text;
    int64_t ms;
  };
  const rfc_case cases[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"2026-11-22T05:00:00Z", 1'795'323'600'000},
    {"2026-11-22t05:00:00z", 1'795'323'600'000},
    {"2026-11-22 05:00:00Z", 1'795'323'600'000},
    // Offsets: local time minus the offset is UTC.
    {"2026-11-22T06:30:00+01:30", 1'795'323'600'000},
    {"2026-11-22T00:00:00-05:00", 1'795'323'600'000},
    {"2026-11-22T05:00:00-00:00", 1'795'323'600'000},
    {"2026-11-23T04:59:00+23:59", 1'795'323'600'000},
    {"2026-11-22T00:00:00+05:00", 1'795'287'600'000},  // crosses back into the 21st
    // Fractions: digits below the millisecond are dropped, not rounded.
    {"2026-11-22T05:00:00.123Z", 1'795'323'600'123},
    {"2026-11-22T05:00:00.1Z", 1'795'323'600'100},
    {"2026-11-22T05:00:00.05Z", 1'795'323'600'050},
    {"2026-11-22T05:00:00.123999999Z", 1'795'323'600'123},
    {"2026-11-22T05:00:00.0009Z", 1'795'323'600'000},
    {"2026-11-22T05:00:00.999+01:00", 1'795'320'000'999},
    // Leap days and seconds, the calendar's edges.
    {"2000-02-29T00:00:00Z", 951'782'400'000},
    {"2024-02-29T12:00:00Z", 1'709'208'000'000},
    {"2024-12-31T23:59:60Z", 1'735'689'600'000},  // a leap second rolls over
    {"1969-12-31T23:59:59Z", -1000},
    {"1969-12-31T23:59:59.999Z", -1},
    {"0001-01-01T00:00:00Z", rfc3339_min_ms},
    {"9999-12-31T23:59:59.999Z", rfc3339_max_ms},
  };
  for (auto& c : cases) {
    int64_t ms = 0;
    std::string why;
    EXPECT_TRUE(parse_rfc3339_ms(c.text, ms, why)) << c.text << ": " << why;
    EXPECT_EQ(ms, c.ms) << c.text;
  }
}

TEST(Rfc3339, RefusalsSayWhatIsWrongAndWhere) {
  struct bad_case {
    std::string text;
    const char* why;
  };
  const bad_case cases[] = {
    {"", "expected a 4-digit year at position 0, found the end"},
    {"yesterday", "expected a 4-digit year at position 0, found 'y'"},
    {"26-11-22T05:00:00Z", "expected a 4-digit year at position 2, found '-'"},
    {"2026/11/22T05:00:00Z", "expected '-' at position 4, found '/'"},
    {"2026-11-22", "expected 'T' at position 10, found the end"},
    {"2026-11-22T05:00Z", "expected ':' at position 16, found 'Z'"},
    {"2026-11-22T5:00:00Z", "expected a 2-digit hour at position 12, found ':'"},
    {"2026-11-22T05:00:00", "expected a time zone (Z or +hh:mm) at position 19, found the end"},
    {"2026-11-22T05:00:00 UTC", "expected a time zone (Z or +hh:mm) at position 19, found ' '"},
    {"2026-11-22T05:00:00.Z", "expected fractional digits at position 20, found 'Z'"},
    {"2026-11-22T05:00:00+0100", "expected ':' at position 22, found '0'"},
    {"2026-11-22T05:00:00+1", "expected a 2-digit offset hour at position 21, found the end"},
    {"2026-11-22T05:00:00+01:0", "expected 2-digit offset minutes at position 24, found the end"},
    {"2026-11-22T05:00:00+24:00", "UTC offset +24:00 out of range (at most 23:59)"},
    {"2026-11-22T05:00:00-01:60", "UTC offset -01:60 out of range (at most 23:59)"},
    {"2026-11-22T05:00:00Zjunk", "expected the end at position 20, found 'j'"},
    {"2026-11-22T05:00:00Z\n", "expected the end at position 20, found byte 0x0a"},
    {"2026-11-22T05:00:00\xc3\xa9", "expected a time zone (Z or +hh:mm) at position 19, found byte 0xc3"},
    {"0000-01-01T00:00:00Z", "year 0 out of range 0001-9999"},
    {"2026-13-01T00:00:00Z", "month 13 out of range 1-12"},
    {"2026-00-01T00:00:00Z", "month 0 out of range 1-12"},
    {"2026-02-29T00:00:00Z", "day 29 out of range 1-28"},
    {"1900-02-29T00:00:00Z", "day 29 out of range 1-28"},
    {"2026-04-31T00:00:00Z", "day 31 out of range 1-30"},
    {"2026-01-00T00:00:00Z", "day 0 out of range 1-31"},
    {"2026-01-01T24:00:00Z", "hour 24 out of range 0-23"},
    {"2026-01-01T00:60:00Z", "minute 60 out of range 0-59"},
    {"2026-01-01T00:00:61Z", "second 61 out of range 0-60"},
  };
  for (auto& c : cases) {
    int64_t ms = 12345;
    std::string why;
    EXPECT_FALSE(parse_rfc3339_ms(c.text, ms, why)) << c.text;
    EXPECT_EQ(why, c.why) << c.text;
    EXPECT_EQ(ms, 12345) << c.text << ": a refusal leaves the output alone";
  }
}

TEST(Rfc3339, FormatsTheShortestTextThatReadsBack) {
  EXPECT_EQ(format_rfc3339_ms(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339_ms(1'795'323'600'000), "2026-11-22T05:00:00Z");
  EXPECT_EQ(format_rfc3339_ms(1'795'323'600'050), "2026-11-22T05:00:00.050Z");
  EXPECT_EQ(format_rfc3339_ms(951'782'400'000), "2000-02-29T00:00:00Z");
  EXPECT_EQ(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(rfc3339_min_ms), "0001-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339_ms(rfc3339_max_ms), "9999-12-31T23:59:59.999Z");
}

TEST(Rfc3339, InstantsOutsideYearsOneTo9999HaveNoText) {
  EXPECT_EQ(format_rfc3339_ms(rfc3339_min_ms - 1), "");
  EXPECT_EQ(format_rfc3339_ms(rfc3339_max_ms + 1), "");
  EXPECT_EQ(format_rfc3339_ms(std::numeric_limits<int64_t>::min()), "");
  EXPECT_EQ(format_rfc3339_ms(std::numeric_limits<int64_t>::max()), "");
}

TEST(Rfc3339, FormatAndParseRoundTrip) {
  // Steps that are prime in ms land on every field's range, both sides of 1970.
  for (int64_t ms = rfc3339_min_ms; ms <= rfc3339_max_ms - 7'919'993'377; ms += 7'919'993'377) {
    auto text = format_rfc3339_ms(ms);
    int64_t back = 0;
    std::string why;
    ASSERT_TRUE(parse_rfc3339_ms(text, back, why)) << text << ": " << why;
    ASSERT_EQ(back, ms) << text;
  }
}

// -- host:port --------------------------------------------------------------------------------

TEST(HostPort, ReadsHostAndPort) {
  struct good_case {
    const char* text;
    const char* host;
    uint16_t port;
  };
  const good_case cases[] = {
    {"127.0.0.1:7400", "127.0.0.1", 7400},
    {"localhost:1", "localhost", 1},
    {"levee-server.internal:65535", "levee-server.internal", 65535},
    {"[::1]:7400", "::1", 7400},
    {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
    {"h:007400", "h", 7400},  // leading zeros are still the number
  };
  for (auto& c : cases) {
    host_port out;
    std::string error;
    ASSERT_TRUE(parse_host_port("satellite.server", c.text, out, error)) << c.text << ": " << error;
    EXPECT_EQ(out.host, c.host) << c.text;
    EXPECT_EQ(out.port, c.port) << c.text;
  }
}

TEST(HostPort, RefusalsNameTheKeyTheTextAndAValidAddress) {
  const std::string port_rule = "the port must be a whole number from 1 to 65535, e.g. 127.0.0.1:7400";
  struct bad_case {
    const char* text;
    std::string why;
  };
  const bad_case cases[] = {
    {"", "must be host:port, e.g. 127.0.0.1:7400"},
    {"127.0.0.1", "must be host:port, e.g. 127.0.0.1:7400"},
    {":7400", "the host is missing: must be host:port, e.g. 127.0.0.1:7400"},
    {"[]:7400", "the host is missing: must be host:port, e.g. 127.0.0.1:7400"},
    {"h:", port_rule},
    {"h:0", port_rule},
    {"h:65536", port_rule},
    {"h:99999", port_rule},
    {"h:99999999999999999999999", port_rule},
    {"h:-1", port_rule},
    {"h:+80", port_rule},
    {"h:7400x", port_rule},
    {"h: 7400", port_rule},
    {"::1:7400", "an IPv6 address goes in brackets, e.g. [::1]:7400"},
    {"[::1", "must be [IPv6 address]:port, e.g. [::1]:7400"},
    {"[::1]", "must be [IPv6 address]:port, e.g. [::1]:7400"},
    {"[::1]7400", "must be [IPv6 address]:port, e.g. [::1]:7400"},
    {"[::1]:", port_rule},
  };
  for (auto& c : cases) {
    host_port out{"unchanged", 9};
    std::string error;
    EXPECT_FALSE(parse_host_port("satellite.server", c.text, out, error)) << c.text;
    EXPECT_EQ(error, "satellite.server = " + std::string{c.text} + ": " + c.why);
    EXPECT_EQ(out.host, "unchanged") << c.text << ": a refusal leaves the output alone";
    EXPECT_EQ(out.port, 9) << c.text;
  }
}

TEST(HostPort, AnOptionIsNamedAsTheCommandLineWritesIt) {
  host_port out;
  std::string error;
  EXPECT_FALSE(parse_host_port("--server", "localhost:99999", out, error));
  EXPECT_EQ(error, "--server localhost:99999: the port must be a whole number from 1 to 65535, "
                   "e.g. 127.0.0.1:7400");
}

TEST(HostPort, PortZeroIsAnyFreePortOnlyWhereAsked) {
  host_port out;
  std::string error;
  EXPECT_FALSE(parse_host_port("server.listen", "127.0.0.1:0", out, error));
  ASSERT_TRUE(parse_host_port("server.listen", "127.0.0.1:0", out, error,
                              port_zero::any_free_port))
    << error;
  EXPECT_EQ(out.host, "127.0.0.1");
  EXPECT_EQ(out.port, 0);
  ASSERT_TRUE(parse_host_port("server.listen", "[::1]:0", out, error, port_zero::any_free_port));
  EXPECT_EQ(out.host, "::1");
  EXPECT_FALSE(parse_host_port("server.listen", "h:x", out, error, port_zero::any_free_port));
  EXPECT_EQ(error, "server.listen = h:x: the port must be a whole number from 0 (any free port) "
                   "to 65535, e.g. 127.0.0.1:7400");
}

// One holder at a time, whichever object asks (across processes: segment_log_test); moving
// a lock keeps it held, and destroying its holder lets it go.
TEST(FileLock, OneHolderAtATimeUntilItIsDestroyed) {
  auto dir = std::filesystem::temp_directory_path()
             / ("levee-file-lock-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "LOCK").string();
  {
    file_lock first;
    ASSERT_EQ(first.acquire(path), 0);
    EXPECT_TRUE(first.held());
    file_lock second;
    EXPECT_EQ(second.acquire(path), EWOULDBLOCK);
    EXPECT_FALSE(second.held());
    file_lock moved = std::move(first);
    EXPECT_TRUE(moved.held());
    EXPECT_FALSE(first.held());
    EXPECT_EQ(second.acquire(path), EWOULDBLOCK) << "the move let the lock go";
  }
  file_lock again;
  EXPECT_EQ(again.acquire(path), 0) << "the destroyed holder kept the lock";
  EXPECT_EQ(file_lock{}.acquire((dir / "no" / "such" / "dir").string()), ENOENT);
  again = file_lock{};
  std::filesystem::remove_all(dir);
}
