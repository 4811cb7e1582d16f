// Outside text as it may be shown, and the UTF-8 check (limits/printable.hpp).

#include <gtest/gtest.h>

#include <string>

#include "limits/printable.hpp"

namespace levee {
namespace {

using namespace std::string_literals;

TEST(Printable, KeepsPrintableAsciiAndValidUtf8) {
  EXPECT_EQ(printable("levee node: key 'a.b' = 16MiB"), "levee node: key 'a.b' = 16MiB");
  EXPECT_EQ(printable("Zürich, 東京, \xf0\x9f\x98\x80"), "Zürich, 東京, \xf0\x9f\x98\x80");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, EscapesControlBytesDelC1AndWhatIsNotUtf8) {
  EXPECT_EQ(printable("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(printable("a\0b"s), "a\\x00b");
  EXPECT_EQ(printable("tab\there\nnewline\r\x7f"), "tab\\x09here\\x0anewline\\x0d\\x7f");
  EXPECT_EQ(printable("\xc2\x9b" "2J"), "\\xc2\\x9b2J");  // C1 CSI
  EXPECT_EQ(printable("\xff\xfe garbage \xc3"), "\\xff\\xfe garbage \\xc3");
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");          // an overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  // Whatever goes in, what comes out is printable ASCII or valid UTF-8.
  std::string all;
  for (int b = 0; b < 256; ++b)
    all += static_cast<char>(b);
  auto out = printable(all);
  EXPECT_TRUE(is_valid_utf8(out));
  for (char c : out)
    EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f) << out;
}

TEST(Utf8, ValidPrefixStopsAtTheFirstBadByte) {
  EXPECT_EQ(valid_utf8_prefix("plain"), 5u);
  EXPECT_EQ(valid_utf8_prefix("é\xff"), 2u);
  EXPECT_EQ(valid_utf8_prefix("ab\xe2\x82"), 2u);  // a sequence cut short
  EXPECT_EQ(valid_utf8_prefix("\x80"), 0u);        // a lone continuation byte
  EXPECT_TRUE(is_valid_utf8("\xef\xbf\xbf\xf4\x8f\xbf\xbf"));  // U+FFFF, U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\x80"));  // overlong
  EXPECT_FALSE(is_valid_utf8("\xf5\x80\x80\x80"));
}

} // namespace
} // namespace levee
