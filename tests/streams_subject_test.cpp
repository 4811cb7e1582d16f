// Subjects, patterns, the subject index and partition choice (streams/).

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "streams/partition_choice.hpp"
#include "streams/subject.hpp"
#include "streams/subject_index.hpp"

namespace levee::streams {
namespace {

subject S(const std::string& text) {
  auto s = subject::parse(text);
  EXPECT_TRUE(s.ok()) << text << ": " << s.error().to_string();
  return s.ok() ? *s : subject{};
}

subject_pattern P(const std::string& text) {
  auto p = subject_pattern::parse(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.error().to_string();
  return p.ok() ? *p : subject_pattern{};
}

TEST(Subject, SplitsIntoTokens) {
  auto s = S("orders.eu-west.created");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s.token(0), "orders");
  EXPECT_EQ(s.token(1), "eu-west");
  EXPECT_EQ(s.token(2), "created");
  auto copy = s;  // the tokens are positions in the copy's own text
  s = S("x");
  EXPECT_EQ(copy.token(2), "created");
  EXPECT_EQ(S("one").size(), 1u);
}

TEST(Subject, PatternMatchingTable) {
  struct row {
    const char* pattern;
    const char* subject;
    bool match;
  };
  const row table[] = {
    {"orders", "orders", true},
    {"orders", "orders.eu", false},
    {"orders.eu", "orders", false},
    {"orders.eu", "orders.eu", true},
    {"orders.eu", "orders.us", false},
    {"orders.*", "orders.eu", true},
    {"orders.*", "orders", false},
    {"orders.*", "orders.eu.created", false},
    {"orders.*.created", "orders.eu.created", true},
    {"orders.*.created", "orders.eu.deleted", false},
    {"*.*.created", "orders.eu.created", true},
    {"*", "orders", true},
    {"*", "orders.eu", false},
    {"orders.>", "orders.eu", true},
    {"orders.>", "orders.eu.created.v2", true},
    {"orders.>", "orders", false},  // `>` takes at least one token
    {"orders.>", "payments.eu", false},
    {">", "orders", true},
    {">", "a.b.c.d", true},
    {"*.>", "orders", false},
    {"*.>", "orders.eu", true},
    {"orders.*.>", "orders.eu", false},
    {"orders.*.>", "orders.eu.created", true},
    {"Orders", "orders", false},  // case matters
    {"a.b.c", "a.b.cd", false},
    {"a.b.cd", "a.b.c", false},
  };
  for (auto& r : table) {
    EXPECT_EQ(P(r.pattern).matches(S(r.subject)), r.match)
      << "pattern " << r.pattern << " subject " << r.subject;
  }
}

/// The error's code and its message, which starts with the position.
template <class T>
void expect_bad(const result<T>& r, size_t position, const std::string& words) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), code::bad_request);
  auto prefix = "at position " + std::to_string(position) + ": ";
  EXPECT_EQ(r.error().message().rfind(prefix, 0), 0u) << r.error().message();
  EXPECT_NE(r.error().message().find(words), std::string::npos) << r.error().message();
}

TEST(Subject, BadTextNamesThePositionAndWhatToDo) {
  expect_bad(subject::parse(""), 0, "is empty; write dot-separated tokens");
  expect_bad(subject::parse(".orders"), 0, "starts with a dot");
  expect_bad(subject::parse("orders."), 6, "ends with a dot");
  expect_bad(subject::parse("orders..eu"), 7, "two dots in a row");
  expect_bad(subject::parse("orders.e u"), 8, "a space (0x20) is not allowed");
  expect_bad(subject::parse("orders\t"), 6, "whitespace (0x09)");
  expect_bad(subject::parse("ord\x01"), 3, "a control byte (0x01)");
  expect_bad(subject::parse("caf\xc3\xa9"), 3, "outside ASCII (0xC3)");
  expect_bad(subject::parse("orders.*"), 7, "only a stream's subject pattern may use");
  expect_bad(subject::parse("orders.>"), 7, "only a stream's subject pattern may use");
  expect_bad(subject_pattern::parse("orders.eu*"), 9, "must be a whole token");
  expect_bad(subject_pattern::parse("orders.>x"), 7, "must be a whole token");
  expect_bad(subject_pattern::parse("orders.>.created"), 7, "must be the last token");
  expect_bad(subject_pattern::parse("a..b"), 2, "two dots in a row");
}

TEST(Subject, LimitsAreNamedWithObservedAndMax) {
  subject_limits tight{16, 3};
  auto too_long = subject::parse("abcdefghij.klmnopq", tight);  // 18 bytes
  ASSERT_FALSE(too_long.ok());
  auto r = too_long.error().as_rejection();
  EXPECT_EQ(r.code, code::bad_request);
  EXPECT_EQ(r.limit, "stream.max_subject_bytes");
  EXPECT_EQ(r.observed, 18u);
  EXPECT_EQ(r.max, 16u);
  EXPECT_EQ(too_long.error().message().rfind("at position 16: ", 0), 0u)
    << too_long.error().message();

  auto too_many = subject_pattern::parse("a.b.c.d.e", tight);
  ASSERT_FALSE(too_many.ok());
  r = too_many.error().as_rejection();
  EXPECT_EQ(r.limit, "stream.max_subject_tokens");
  EXPECT_EQ(r.observed, 5u);
  EXPECT_EQ(r.max, 3u);
  EXPECT_EQ(too_many.error().message().rfind("at position 6: ", 0), 0u)  // the 4th token
    << too_many.error().message();
  EXPECT_TRUE(subject::parse("a.b.c", tight).ok());
  EXPECT_TRUE(subject::parse(std::string(16, 'x'), tight).ok());
}

TEST(SubjectIndex, FindsEveryOverlappingStreamOnce) {
  subject_index index;
  index.add(P("orders.>"), 1);
  index.add(P("orders.*.created"), 2);
  index.add(P("orders.eu.created"), 3);
  index.add(P(">"), 4);
  index.add(P("payments.*"), 5);
  index.add(P("*.eu.*"), 6);
  index.add(P("orders.eu.created"), 7);  // two streams, one pattern
  index.add(P("orders.eu.created"), 3);  // the same binding again: kept once
  EXPECT_EQ(index.size(), 7u);
  std::vector<stream_id> out;
  index.match(S("orders.eu.created"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{1, 2, 3, 4, 6, 7}));
  index.match(S("orders.us.created"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{1, 2, 4}));
  index.match(S("orders"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{4}));
  index.match(S("payments.eu"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{4, 5}));
  index.match(S("payments.eu.x"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{4, 6}));
}

TEST(SubjectIndex, AgreesWithMatchingEveryPattern) {
  // The index finds exactly the streams whose pattern matches, for every pair.
  const char* patterns[] = {"a", "a.b", "a.*", "a.>", "*.b", "*.*", ">", "a.b.c", "a.*.c",
                            "*.b.>", "x.y", "a.b.>", "*"};
  const char* subjects[] = {"a", "a.b", "a.c", "b.b", "a.b.c", "a.x.c", "a.b.c.d", "x.y", "x",
                            "q.b.z"};
  subject_index index;
  for (size_t i = 0; i < std::size(patterns); ++i)
    index.add(P(patterns[i]), i);
  for (auto* text : subjects) {
    std::vector<stream_id> expected, found;
    for (size_t i = 0; i < std::size(patterns); ++i)
      if (P(patterns[i]).matches(S(text)))
        expected.push_back(i);
    index.match(S(text), found);
    EXPECT_EQ(found, expected) << text;
  }
}

TEST(SubjectIndex, RemoveUnbindsAndFreesNodes) {
  subject_index index;
  auto empty_nodes = index.node_count();
  index.add(P("orders.*.created"), 1);
  index.add(P("orders.eu.>"), 2);
  index.add(P("orders.eu.created"), 3);
  std::vector<stream_id> out;
  EXPECT_FALSE(index.remove(P("orders.*.created"), 2));  // bound to another pattern
  EXPECT_FALSE(index.remove(P("nothing.here"), 1));
  EXPECT_TRUE(index.remove(P("orders.*.created"), 1));
  EXPECT_FALSE(index.remove(P("orders.*.created"), 1));  // once
  index.match(S("orders.eu.created"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{2, 3}));
  EXPECT_TRUE(index.remove(P("orders.eu.>"), 2));
  EXPECT_TRUE(index.remove(P("orders.eu.created"), 3));
  index.match(S("orders.eu.created"), out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.node_count(), empty_nodes);
}

TEST(SubjectIndex, WorkPerPublishDoesNotGrowWithStreams) {
  // 10,000 streams on distinct subjects: a publish visits the nodes of its own path (and
  // the wildcard branches that exist), not every stream.
  subject_index index;
  for (stream_id i = 0; i < 10'000; ++i)
    index.add(P("orders." + std::to_string(i) + ".created"), i);
  index.add(P("orders.*.deleted"), 20'000);
  std::vector<stream_id> out;
  auto visited = index.match(S("orders.4242.created"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{4242}));
  EXPECT_LE(visited, 6u);  // root, orders, 4242, created, *, (created under * is absent)
  visited = index.match(S("orders.77.deleted"), out);
  EXPECT_EQ(out, (std::vector<stream_id>{20'000}));
  EXPECT_LE(visited, 6u);
}

TEST(PartitionChoice, KeyHashIsFnv1a64) {
  // The published FNV-1a 64 test vectors: the hash is the same on every machine.
  EXPECT_EQ(key_hash(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(key_hash("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(key_hash("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(partition_for_key("foobar", 7), 0x85944171f73967e8ull % 7);
}

TEST(PartitionChoice, SameKeySamePartitionAndKeysSpread) {
  std::set<uint32_t> used;
  for (int i = 0; i < 1000; ++i) {
    auto key = "user-" + std::to_string(i);
    auto p = partition_for_key(key, 8);
    EXPECT_EQ(p, partition_for_key(key, 8));
    used.insert(p);
  }
  EXPECT_EQ(used.size(), 8u);
}

TEST(PartitionChoice, NamedKeyedOrInTurn) {
  uint64_t turn = 0;
  EXPECT_EQ(*choose_partition("orders", 4, 3u, "key", turn), 3u);
  EXPECT_EQ(*choose_partition("orders", 4, std::nullopt, "foobar", turn),
            partition_for_key("foobar", 4));
  EXPECT_EQ(turn, 0u);
  EXPECT_EQ(*choose_partition("orders", 4, std::nullopt, "", turn), 0u);
  EXPECT_EQ(*choose_partition("orders", 4, std::nullopt, "", turn), 1u);
  auto bad = choose_partition("orders", 4, 4u, "", turn);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), code::not_found);
  EXPECT_NE(bad.error().message().find("stream 'orders' has no partition 4: its partitions are 0 to 3"),
            std::string::npos)
    << bad.error().message();
}

} // namespace
} // namespace levee::streams
