// Text fields read off the wire before parsing (net/wire_text.hpp), and the frame decoder's
// rule for Hello.node_id (PROTOCOL.md "Text fields"). Plain C++ and protobuf.

#include <gtest/gtest.h>

#include "net/frame.hpp"
#include "net/result_batch.hpp"
#include "net/satellite.pb.h"
#include "net/wire_text.hpp"
#include "tests/wire_support.hpp"

namespace levee {
namespace {

TEST(WireText, FindsTheFirstStringThatIsNotUtf8AndNamesIt) {
  test::protobuf_log_capture logs;
  auto& type = *wire::Register::descriptor();
  auto good = test::bytes_field(1, "sat-é") + test::map_entry(3, "zone", "eu-1")
              + test::bytes_field(2, "\xff token bytes \x00");
  EXPECT_FALSE(net::check_text_fields(type, good));
  wire::Register parsed;
  EXPECT_TRUE(parsed.ParseFromString(good));
  auto bad = good + test::map_entry(3, "ok", "fine") + test::map_entry(3, "k\xe2\x82", "v");
  auto r = net::check_text_fields(type, bad);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::bad_request);
  EXPECT_EQ(r->limit, "");  // the message is wrong, no limit refused it
  EXPECT_EQ(r->detail, "Register.labels (a key) is not valid UTF-8: byte 0xe2 at offset 1 of "
                       "it; send it as UTF-8 text");
  // Inside a sub-message: StoreStats has no strings; a SatelliteList's entries do.
  auto info = test::bytes_field(1, "a") + test::bytes_field(8, "host\xc3");
  auto list = test::bytes_field(1, info);
  auto in_list = net::check_text_fields(*wire::SatelliteList::descriptor(), list);
  ASSERT_TRUE(in_list);
  EXPECT_EQ(in_list->detail, "SatelliteList.satellites.address is not valid UTF-8: byte 0xc3 "
                             "at offset 4 of it; send it as UTF-8 text");
  EXPECT_TRUE(logs.lines().empty());
}

TEST(WireText, BytesThatAreNoMessageAreLeftToTheParser) {
  auto& type = *wire::QueryRequest::descriptor();
  EXPECT_FALSE(net::check_text_fields(type, std::string{"\x12\x05" "ab"}));  // cut short
  EXPECT_FALSE(net::check_text_fields(type, std::string{"\x00\x01", 2}));   // field 0
  EXPECT_FALSE(net::check_text_fields(type, ""));
}

TEST(WireText, FieldBytesIsTheLengthOfTheLastOccurrence) {
  auto payload = test::bytes_field(1, "first") + test::number_field(4, 7)
                 + test::bytes_field(2, "a") + test::bytes_field(1, std::string(5000, 'x'));
  EXPECT_EQ(net::field_bytes(payload, 1), 5000u);
  EXPECT_EQ(net::field_bytes(payload, 2), 1u);
  EXPECT_EQ(net::field_bytes(payload, 3), 0u);
  EXPECT_EQ(net::field_bytes(payload.substr(0, payload.size() - 1), 1), 0u);  // not a message
}

TEST(WireText, AHelloIsRefusedForItsNodeIdAloneNotForItsTokenOrSoftware) {
  test::protobuf_log_capture logs;
  auto decode = [](const std::string& hello) {
    auto body = test::bytes_field(2, hello);
    net::frame_header header{static_cast<uint32_t>(body.size()), 0};
    wire::Envelope env;
    return net::decode_body(header, reinterpret_cast<const uint8_t*>(body.data()),
                            net::default_codec_limits(), env);
  };
  EXPECT_FALSE(decode(test::number_field(1, 1) + test::bytes_field(2, "node-é")
                      + test::bytes_field(4, "\xff\xfe") + test::bytes_field(6, "\x80")));
  auto r = decode(test::number_field(1, 1) + test::bytes_field(2, "\xc0\xaf"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::bad_request);
  EXPECT_EQ(r->limit, "");
  EXPECT_EQ(r->detail, "Hello.node_id is not valid UTF-8: byte 0xc0 at offset 0 of it; a node "
                       "id is text: set it (net.node_id, client_options::node_id) to UTF-8");
  EXPECT_TRUE(logs.lines().empty());
}

// Fields the reader does not know are skipped through protobuf's public CodedInputStream
// (skip_wire_field), whatever their wire type: what the parser accepts, the relay's row
// count and the text check accept, and what it refuses, they refuse.
std::string tag(int number, int wire_type) {
  return test::varint(static_cast<uint64_t>(number) << 3 | static_cast<uint64_t>(wire_type));
}

TEST(WireSkip, SkipsEveryWireTypeAsTheParserDoes) {
  auto unknown = test::number_field(100, 300)                           // varint
                 + tag(101, 1) + std::string(8, '\x11')                 // fixed64
                 + test::bytes_field(102, "xyz")                         // length-delimited
                 + tag(103, 3) + test::number_field(1, 5)                // a group, holding
                 + tag(2, 3) + tag(2, 4)                                 // a group
                 + tag(103, 4)
                 + tag(104, 5) + std::string(4, '\x22');                // fixed32
  auto bytes = test::bytes_field(2, "row 1") + unknown + test::bytes_field(2, "row 2");
  EXPECT_EQ(net::count_result_rows(bytes), 2u);
  wire::ResultBatch parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.events_size(), 2);
  EXPECT_EQ(net::field_bytes(test::bytes_field(1, "abc") + unknown, 1), 3u);
}

TEST(WireSkip, AGroupMustEndWithItsOwnNumber) {
  std::string nested;
  for (int i = 0; i < 200; ++i)
    nested = tag(7, 3) + nested + tag(7, 4);  // deeper than protobuf's recursion limit
  const std::pair<const char*, std::string> cases[] = {
    {"never ends", test::bytes_field(2, "r") + tag(103, 3) + test::number_field(1, 5)},
    {"ends with another number", tag(103, 3) + tag(104, 4)},
    {"an end without a start", test::bytes_field(2, "r") + tag(103, 4)},
    {"nested past the recursion limit", nested},
  };
  for (auto& [name, bytes] : cases) {
    EXPECT_FALSE(net::count_result_rows(bytes).has_value()) << name;
    EXPECT_EQ(net::field_bytes(bytes, 2), 0u) << name;
    wire::ResultBatch parsed;
    EXPECT_FALSE(parsed.ParseFromString(bytes)) << name << ": the parser refuses it too";
  }
}

} // namespace
} // namespace levee
