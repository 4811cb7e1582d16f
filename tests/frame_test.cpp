// The frame codec: limits checked before allocation, every bad input a typed refusal.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <lz4.h>

#include "limits/process_memory.hpp"
#include "net/frame.hpp"
#include "net/reject_frame.hpp"

namespace levee::net {
namespace {

std::vector<uint8_t> bytes_of(const std::string& s) {
  return {s.begin(), s.end()};
}

std::string frame_of(const wire::Envelope& env, codec_limits limits = default_codec_limits()) {
  std::string out;
  EXPECT_FALSE(encode_frame(env, limits, out).has_value());
  return out;
}

std::string raw_frame(uint32_t length, uint8_t flags, const std::string& body) {
  std::string out;
  out.push_back(static_cast<char>(length >> 24));
  out.push_back(static_cast<char>(length >> 16));
  out.push_back(static_cast<char>(length >> 8));
  out.push_back(static_cast<char>(length));
  out.push_back(static_cast<char>(flags));
  return out + body;
}

/// Feeds all of `data`; returns the frames read and leaves the reader for inspection.
std::vector<wire::Envelope> read_all(frame_reader& r, const std::string& data) {
  std::vector<wire::Envelope> out;
  size_t pos = 0;
  while (pos < data.size() && !r.error()) {
    pos += r.feed(reinterpret_cast<const uint8_t*>(data.data()) + pos, data.size() - pos);
    if (r.frame_ready())
      out.push_back(r.take());
  }
  return out;
}

// The worked example of PROTOCOL.md, byte for byte.
TEST(Frame, WorkedExampleOfProtocolMd) {
  wire::Envelope env;
  env.set_request_id(7);
  env.mutable_ping()->set_nonce(42);
  auto frame = frame_of(env);
  const std::vector<uint8_t> expected = {0x00, 0x00, 0x00, 0x06, 0x00,   // length 6, no flags
                                         0x08, 0x07,                     // request_id = 7
                                         0x22, 0x02, 0x08, 0x2a};        // ping { nonce = 42 }
  EXPECT_EQ(bytes_of(frame), expected);
}

TEST(Frame, StreamsWorkedExampleOfProtocolMd) {
  wire::Envelope env;
  env.set_request_id(3);
  auto& p = *env.mutable_publish();
  p.set_subject("a.b");
  p.add_messages()->set_body("hi");
  auto frame = frame_of(env);
  const std::vector<uint8_t> expected = {
    0x00, 0x00, 0x00, 0x10, 0x00,         // length 16, no flags
    0x08, 0x03,                           // request_id = 3
    0xb2, 0x03, 0x0b,                     // field 54 (publish), 11 bytes follow
    0x0a, 0x03, 0x61, 0x2e, 0x62,         //   subject = "a.b"
    0x12, 0x04, 0x1a, 0x02, 0x68, 0x69};  //   messages { body = "hi" }
  EXPECT_EQ(bytes_of(frame), expected);
}

TEST(Frame, RoundTripsPlainAndCompressedBodies) {
  wire::Envelope hello;
  hello.mutable_hello()->set_protocol_version(protocol_version);
  hello.mutable_hello()->set_node_id("node-a");
  hello.mutable_hello()->mutable_limits()->set_max_frame_bytes(1 << 20);
  wire::Envelope big;
  big.set_request_id(99);
  big.mutable_request()->set_target("echo");
  big.mutable_request()->set_payload(std::string(200000, 'z'));  // compresses well
  auto stream = frame_of(hello) + frame_of(big);
  EXPECT_LT(stream.size(), 10000u);  // the big one went compressed
  frame_reader r{default_codec_limits()};
  auto frames = read_all(r, stream);
  ASSERT_FALSE(r.error()) << r.error()->to_string();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].hello().node_id(), "node-a");
  EXPECT_EQ(frames[1].request().payload(), std::string(200000, 'z'));
  EXPECT_EQ(frames[1].request_id(), 99u);
}

TEST(Frame, IncompressibleBodiesGoPlain) {
  wire::Envelope env;
  std::string noise(10000, '\0');
  uint32_t x = 12345;
  for (auto& c : noise) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  env.mutable_response()->set_payload(noise);
  auto frame = frame_of(env);
  EXPECT_EQ(frame[4], 0);  // flags: not compressed, it would not shrink
}

TEST(Frame, FourGiBLengthIsRefusedFromTheHeaderAloneWithoutAllocating) {
  auto rss_before = current_rss_bytes();
  frame_reader r{default_codec_limits()};
  auto frames = read_all(r, raw_frame(0xFFFFFFFFu, 0, ""));
  EXPECT_TRUE(frames.empty());
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error()->code, code::message_too_large);
  EXPECT_EQ(r.error()->limit, "net.max_frame_bytes");
  EXPECT_EQ(r.error()->observed, 0xFFFFFFFFu);
  EXPECT_EQ(r.error()->max, 1u << 20);
  EXPECT_LT(current_rss_bytes(), rss_before + (1 << 20));
}

TEST(Frame, OneOverTheCapIsRefusedAtTheCapAccepted) {
  auto limits = default_codec_limits();
  limits.max_frame_bytes = 100;
  limits.compress_above_bytes = 1000;
  wire::Envelope env;
  // Response{payload: 96 bytes} is 98 bytes; the Envelope around it 100.
  env.mutable_response()->set_payload(std::string(96, 'p'));
  auto at_cap = frame_of(env, limits);
  ASSERT_EQ(at_cap.size(), frame_header_bytes + 100);
  frame_reader ok{limits};
  EXPECT_EQ(read_all(ok, at_cap).size(), 1u);
  env.mutable_response()->set_payload(std::string(97, 'p'));
  std::string out;
  auto refused = encode_frame(env, limits, out);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->observed, 101u);
  EXPECT_TRUE(out.empty());
  frame_reader r{limits};
  read_all(r, raw_frame(101, 0, std::string(101, 'x')));
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error()->code, code::message_too_large);
  EXPECT_EQ(r.error()->observed, 101u);
}

TEST(Frame, TruncatedAndByteAtATimeInputWaitsForTheRest) {
  wire::Envelope env;
  env.mutable_ping()->set_nonce(5);
  auto frame = frame_of(env);
  frame_reader r{default_codec_limits()};
  for (size_t i = 0; i + 1 < frame.size(); ++i) {
    auto b = static_cast<uint8_t>(frame[i]);
    EXPECT_EQ(r.feed(&b, 1), 1u);
    EXPECT_FALSE(r.frame_ready());
    EXPECT_FALSE(r.error());
  }
  EXPECT_EQ(r.partial_bytes(), frame.size() - 1);
  auto last = static_cast<uint8_t>(frame.back());
  r.feed(&last, 1);
  ASSERT_TRUE(r.frame_ready());
  EXPECT_EQ(r.take().ping().nonce(), 5u);
}

struct bad_input {
  const char* name;
  std::string bytes;
  code expected;
  const char* detail_mentions;
};

TEST(Frame, BadInputGetsATypedRefusal) {
  auto lz4_of = [](const std::string& plain, uint32_t claimed) {
    std::string out(4 + LZ4_compressBound(static_cast<int>(plain.size())), '\0');
    auto n = LZ4_compress_default(plain.data(), out.data() + 4, static_cast<int>(plain.size()),
                                  static_cast<int>(out.size() - 4));
    out.resize(4 + static_cast<size_t>(n));
    out[0] = static_cast<char>(claimed >> 24);
    out[1] = static_cast<char>(claimed >> 16);
    out[2] = static_cast<char>(claimed >> 8);
    out[3] = static_cast<char>(claimed);
    return out;
  };
  // 16 MiB of zeros compresses to ~64 KiB: a frame within the cap that would inflate 4x
  // past max_decompressed_bytes.
  auto bomb = lz4_of(std::string(16 << 20, '\0'), 16 << 20);
  ASSERT_LT(bomb.size(), 1u << 20);
  wire::Envelope ping;
  ping.mutable_ping()->set_nonce(1);
  auto ping_body = ping.SerializeAsString();
  const bad_input cases[] = {
    {"empty frame", raw_frame(0, 0, ""), code::bad_request, "empty frame"},
    {"unknown flags", raw_frame(2, 0x80, "ab"), code::bad_request, "unknown frame flags 128"},
    {"garbage body", raw_frame(5, 0, "\xff\xff\xff\xff\xff"), code::bad_request,
     "not a valid protobuf"},
    {"unknown message type", raw_frame(3, 0, std::string("\xea\x02", 2) + std::string(1, '\0')),
     code::bad_request, "Envelope field 45"},
    {"no message", raw_frame(2, 0, std::string("\x08\x07", 2)), code::bad_request,
     "carries no message"},
    {"compression bomb", raw_frame(static_cast<uint32_t>(bomb.size()), flag_lz4, bomb),
     code::message_too_large, "decompress to more"},
    {"claimed 4 GiB decompressed", raw_frame(6, flag_lz4, std::string("\xff\xff\xff\xff\x00\x00", 6)),
     code::message_too_large, "decompress to more"},
    {"corrupt lz4", raw_frame(8, flag_lz4, std::string("\x00\x00\x00\x10\xff\xff\xff\xff", 8)),
     code::bad_request, "LZ4 body is corrupt"},
    {"size prefix lies", raw_frame(static_cast<uint32_t>(lz4_of(ping_body, 100).size()), flag_lz4,
                                   lz4_of(ping_body, 100)),
     code::bad_request, "LZ4 body is corrupt"},
    {"short lz4", raw_frame(3, flag_lz4, "abc"), code::bad_request, "shorter than its 4-byte"},
  };
  for (auto& c : cases) {
    frame_reader r{default_codec_limits()};
    read_all(r, c.bytes);
    ASSERT_TRUE(r.error()) << c.name;
    EXPECT_EQ(r.error()->code, c.expected) << c.name << ": " << r.error()->to_string();
    EXPECT_NE(r.error()->detail.find(c.detail_mentions), std::string::npos)
      << c.name << ": " << r.error()->detail;
    // A failed reader stays failed: the stream cannot be resynchronised.
    auto more = frame_of(ping);
    EXPECT_EQ(r.feed(reinterpret_cast<const uint8_t*>(more.data()), more.size()), 0u);
  }
}

TEST(Frame, APermitAllowsOneLargerFrameOnce) {
  auto limits = default_codec_limits();
  limits.max_frame_bytes = 1000;
  limits.compress_above_bytes = 1u << 30;
  auto peer = limits;
  peer.max_frame_bytes = 10000;
  wire::Envelope env;
  env.mutable_request()->set_payload(std::string(5000, 'w'));
  auto frame = frame_of(env, peer);
  frame_reader r{limits};
  r.allow_next_frame(6000);
  EXPECT_EQ(read_all(r, frame).size(), 1u);
  read_all(r, frame);  // the permit is used up
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error()->code, code::message_too_large);
  EXPECT_EQ(r.error()->max, 1000u);
}

TEST(Frame, RejectsTravelWithEveryField) {
  rejection r = rejection::of(code::rate_limited)
    .limit("net.max_msgs_per_sec")
    .observed(1001)
    .max(1000)
    .retry_after_ms(12)
    .detail("slow down");
  EXPECT_EQ(from_wire(to_wire(r)), r);
  wire::Reject future;
  future.set_code(250);
  future.set_detail("new");
  auto back = from_wire(future);
  EXPECT_EQ(back.code, code::bad_request);
  EXPECT_EQ(back.detail, "unknown code 250: new");
}

} // namespace
} // namespace levee::net

#include "net/result_batch.hpp"
#include "net/satellite.pb.h"

namespace levee::net {
namespace {

TEST(ResultRows, CountsTheRowsOfWhatASatelliteSends) {
  wire::ResultBatch b;
  EXPECT_EQ(count_result_rows(b.SerializeAsString()), 0u);
  b.set_satellite_id("a");
  for (int i = 0; i < 7; ++i)
    b.add_events(std::string(static_cast<size_t>(i * 300), 'x'));  // one of them empty
  auto& g = *b.add_counts();
  g.set_key("k");
  g.set_count(3);
  auto bytes = b.SerializeAsString();
  EXPECT_EQ(count_result_rows(bytes), 7u);
  wire::ResultBatch parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.events_size(), 7);
}

TEST(ResultRows, MalformedBytesAreNotCounted) {
  wire::ResultBatch b;
  b.add_events(std::string(200, 'e'));
  b.add_events(std::string(10, 'f'));
  auto bytes = b.SerializeAsString();
  // Every cut: a truncated tag, length or row, except the one between the rows (a
  // well-formed batch of the first row).
  const size_t between = 1 + 2 + 200;
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    auto rows = count_result_rows(std::string_view(bytes).substr(0, cut));
    if (cut == between)
      EXPECT_EQ(rows, 1u);
    else
      EXPECT_FALSE(rows.has_value()) << cut;
  }
  // A length past the end.
  auto longer = bytes;
  longer[1] = static_cast<char>(0x7f);
  EXPECT_FALSE(count_result_rows(longer).has_value());
  // Field number 0, an invalid wire type (7), a varint that never ends.
  EXPECT_FALSE(count_result_rows(std::string("\x02\x01x", 3)).has_value());
  EXPECT_FALSE(count_result_rows(std::string("\x17", 1)).has_value());
  EXPECT_FALSE(count_result_rows(std::string(12, '\xff')).has_value());
}

} // namespace
} // namespace levee::net
