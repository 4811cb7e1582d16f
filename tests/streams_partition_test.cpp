// A stream's partition on a real segment log in a temporary directory (streams/partition_log).

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kill_test_support.hpp"
#include "limits/clock.hpp"
#include "log_test_support.hpp"
#include "streams/partition_log.hpp"

namespace levee::streams {
namespace {

using persistence::temp_dir;
namespace fs = std::filesystem;

stream_config small_stream() {
  stream_config c;
  c.name = "orders";
  c.subject = "orders.>";
  c.fsync = persistence::fsync_policy::none;  // reopened in process: durability is not under test
  c.max_segment_bytes = 4096;
  c.max_message_bytes = 1024;
  c.retention_max_bytes = 1 << 30;
  return c;
}

struct partition_fixture : ::testing::Test {
  temp_dir dir;
  manual_clock clock;
  stream_config config = small_stream();

  std::unique_ptr<partition_log> open_log() {
    partition_options o;
    o.dir = (dir.path / "partition-0").string();
    o.config = config;
    o.clock = &clock;
    auto p = partition_log::open(o);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    return p.ok() ? std::move(*p) : nullptr;
  }
};

message msg(std::string_view body, std::string_view id = {}, std::string_view key = {}) {
  message m;
  m.body = body;
  m.id = id;
  m.key = key;
  return m;
}

std::vector<stored_message> read_all(const partition_log& p, uint64_t from = 0) {
  read_request req;
  req.from = from;
  std::vector<stored_message> out;
  for (;;) {
    auto r = p.read(req);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok() || r->messages.empty())
      return out;
    for (auto& m : r->messages)
      out.push_back(std::move(m));
    req.from = r->next_offset;
  }
}

TEST_F(partition_fixture, AppendsAndReadsBackInOrderAcrossSegmentsAndReopen) {
  std::vector<std::string> bodies;
  {
    auto p = open_log();
    ASSERT_TRUE(p);
    for (int i = 0; i < 200; ++i) {
      bodies.push_back("body-" + std::to_string(i) + std::string(40, 'x'));
      message m = msg(bodies.back(), "", "key");
      m.headers.emplace_back("trace", "t" + std::to_string(i));
      auto ack = p->append(m);
      ASSERT_TRUE(ack.ok()) << ack.error().to_string();
      EXPECT_EQ(ack->offset, static_cast<uint64_t>(i));
      EXPECT_FALSE(ack->duplicate);
      EXPECT_EQ(ack->timestamp_ms, clock.wall_ms());
      clock.advance_ms(1);
    }
    EXPECT_EQ(p->next_offset(), 200u);
    EXPECT_EQ(p->high_water(), 200u);
    EXPECT_EQ(p->last_offset(), 199u);
  }
  auto p = open_log();  // reopen after close
  ASSERT_TRUE(p);
  EXPECT_EQ(p->next_offset(), 200u);
  auto all = read_all(*p);
  ASSERT_EQ(all.size(), 200u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].offset, i);
    EXPECT_EQ(all[i].body, bodies[i]);
    EXPECT_EQ(all[i].key, "key");
    ASSERT_EQ(all[i].headers.size(), 1u);
    EXPECT_EQ(all[i].headers[0].second, "t" + std::to_string(i));
    EXPECT_EQ(all[i].timestamp_ms, 1'700'000'000'000 + static_cast<int64_t>(i));
  }
  // More after the reopen continue the offsets.
  auto ack = p->append(msg("after"));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->offset, 200u);
}

TEST_F(partition_fixture, RefusesAnOversizeMessageBeforeAnyBodyExists) {
  auto p = open_log();
  ASSERT_TRUE(p);
  // The wire layer asks with the length alone: nothing was allocated for a body.
  auto st = p->check_message_bytes(uint64_t{1} << 40);
  ASSERT_FALSE(st.ok());
  auto r = st.as_rejection();
  EXPECT_EQ(r.code, code::message_too_large);
  EXPECT_EQ(r.limit, "stream.max_message_bytes");
  EXPECT_EQ(r.observed, uint64_t{1} << 40);
  EXPECT_EQ(r.max, 1024u);
  EXPECT_EQ(r.retry_after_ms, 0u);
  EXPECT_TRUE(p->check_message_bytes(1024).ok());
  // Exactly at the bound, with an id as long as allowed: stored.
  std::string id(128, 'i');
  std::string fits(1024 - 128 - 3, 'b');
  message at_bound = msg(fits, id, "key");
  EXPECT_EQ(message_bytes(at_bound), 1024u);
  auto stored = p->append(at_bound);
  ASSERT_TRUE(stored.ok()) << stored.error().to_string();
  EXPECT_EQ(p->next_offset(), 1u);

  // Key, id, body and headers count together; one oversize message refuses the batch.
  std::string body(1000, 'b');
  message over = msg(body, "id-1", "0123456789");
  over.headers.emplace_back("h", std::string(20, 'v'));
  auto refused = p->append(std::vector<message>{msg("fine"), over});
  ASSERT_FALSE(refused.ok());
  r = refused.error().as_rejection();
  EXPECT_EQ(r.code, code::message_too_large);
  EXPECT_EQ(r.observed, 1000u + 4 + 10 + 1 + 20);
  EXPECT_EQ(p->next_offset(), 1u);  // "fine" was not stored either
  EXPECT_EQ(p->stats().rejected_too_large, 1u);
  EXPECT_EQ(p->dedupe_entries(), 1u);  // the id of the message at the bound only
}

TEST_F(partition_fixture, RefusesLongIdsAndReservedHeaders) {
  config.max_message_id_bytes = 8;
  auto p = open_log();
  ASSERT_TRUE(p);
  auto r = p->append(msg("b", "123456789"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().as_rejection().limit, "stream.max_message_id_bytes");
  EXPECT_EQ(r.error().as_rejection().observed, 9u);
  message m = msg("b");
  m.headers.emplace_back("levee.id", "forged");
  r = p->append(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), code::bad_request);
  EXPECT_NE(r.error().message().find("the broker's own"), std::string::npos);
  auto empty = p->append(std::vector<message>{});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), code::bad_request);
  EXPECT_EQ(p->next_offset(), 0u);
}

TEST_F(partition_fixture, DuplicateIdIsAcknowledgedWithTheOriginalOffset) {
  auto p = open_log();
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->append(msg("zero")).ok());
  auto first = p->append(msg("one", "id-1"));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->offset, 1u);
  auto again = p->append(msg("one, retried", "id-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->offset, 1u);
  // In one batch: a duplicate of the window, a new id twice, a message without an id.
  auto acks = p->append(std::vector<message>{msg("a", "id-1"), msg("b", "id-2"), msg("c", "id-2"),
                                             msg("d")});
  ASSERT_TRUE(acks.ok());
  ASSERT_EQ(acks->size(), 4u);
  EXPECT_TRUE((*acks)[0].duplicate);
  EXPECT_EQ((*acks)[0].offset, 1u);
  EXPECT_FALSE((*acks)[1].duplicate);
  EXPECT_EQ((*acks)[1].offset, 2u);
  EXPECT_TRUE((*acks)[2].duplicate);
  EXPECT_EQ((*acks)[2].offset, 2u);
  EXPECT_FALSE((*acks)[3].duplicate);
  EXPECT_EQ((*acks)[3].offset, 3u);
  EXPECT_EQ(p->next_offset(), 4u);  // stored once each
  EXPECT_EQ(p->stats().duplicates, 3u);
  EXPECT_EQ(p->stats().appended, 4u);
  auto all = read_all(*p);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[1].id, "id-1");
  EXPECT_EQ(all[1].body, "one");
  EXPECT_TRUE(all[1].headers.empty());  // the id is not a header to the reader
}

/// Appends a message with `id` and checks its ack.
void expect_ack(partition_log& p, const std::string& id, bool duplicate, uint64_t offset) {
  auto ack = p.append(msg("m", id));
  ASSERT_TRUE(ack.ok()) << ack.error().to_string();
  EXPECT_EQ(ack->duplicate, duplicate) << id;
  EXPECT_EQ(ack->offset, offset) << id;
}

TEST_F(partition_fixture, DedupeWindowIsBoundedInTimeAndEntries) {
  config.dedupe_window_ms = 10'000;
  config.dedupe_max_entries = 3;
  auto p = open_log();
  ASSERT_TRUE(p);
  // Messages without an id take no place in the window.
  expect_ack(*p, "first", false, 0);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(p->append(msg("no id")).ok());
  EXPECT_EQ(p->dedupe_entries(), 1u);
  expect_ack(*p, "first", true, 0);
  p.reset();
  fs::remove_all(dir.path);
  p = open_log();
  ASSERT_TRUE(p);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(p->append(msg("m", "id-" + std::to_string(i))).ok());
  EXPECT_EQ(p->dedupe_entries(), 3u);
  EXPECT_EQ(p->stats().dedupe_forgotten_by_count, 2u);
  // id-0 and id-1 were forgotten (entries), so they are stored again; id-4 is not.
  expect_ack(*p, "id-0", false, 5);
  expect_ack(*p, "id-4", true, 4);
  clock.advance_ms(10'000);  // the window has passed for all of them
  expect_ack(*p, "id-4", false, 6);
  EXPECT_EQ(p->dedupe_entries(), 1u);
  EXPECT_EQ(p->stats().dedupe_forgotten_by_count, 3u);  // id-2 went for id-0
  EXPECT_EQ(p->stats().dedupe_forgotten_by_age, 3u);    // id-3, id-4, id-0
}

TEST_F(partition_fixture, DedupeWindowSurvivesReopen) {
  config.dedupe_window_ms = 60'000;
  config.dedupe_max_entries = 100;
  {
    auto p = open_log();
    ASSERT_TRUE(p);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(p->append(msg("m", "id-" + std::to_string(i))).ok());
      clock.advance_ms(1000);  // id-i stored at start + i s
    }
  }
  clock.advance_ms(40'000);  // now = start + 70 s: ids stored before start + 10 s are gone
  auto p = open_log();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dedupe_entries(), 19u);  // id-11 .. id-29 (id-10 is exactly 60 s old)
  expect_ack(*p, "id-29", true, 29);
  expect_ack(*p, "id-11", true, 11);
  expect_ack(*p, "id-5", false, 30);
  EXPECT_EQ(p->next_offset(), 31u);

  // The entry bound holds on rebuild too: only the newest ids are remembered.
  p.reset();
  config.dedupe_max_entries = 5;
  p = open_log();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dedupe_entries(), 5u);
  expect_ack(*p, "id-5", true, 30);
  expect_ack(*p, "id-20", false, 31);
}

TEST_F(partition_fixture, ExpectedLastOffsetIsCompareAndSet) {
  auto p = open_log();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->last_offset(), partition_log::no_last_offset);
  auto wrong_empty = p->append(msg("a"), 0);
  ASSERT_FALSE(wrong_empty.ok());
  EXPECT_EQ(wrong_empty.error().code(), code::precondition_failed);
  ASSERT_TRUE(p->append(msg("a"), partition_log::no_last_offset).ok());
  ASSERT_TRUE(p->append(msg("b", "id-b"), 0).ok());
  auto stale = p->append(msg("c"), 0);
  ASSERT_FALSE(stale.ok());
  auto r = stale.error().as_rejection();
  EXPECT_EQ(r.code, code::precondition_failed);
  EXPECT_TRUE(r.limit.empty());  // no limit refused: the expectation did not hold
  EXPECT_EQ(r.observed, 1u);     // the partition's last offset
  EXPECT_EQ(r.max, 0u);          // what the publish expected
  EXPECT_NE(r.detail.find("ends at offset 1, not 0"), std::string::npos) << r.detail;
  EXPECT_EQ(p->next_offset(), 2u);
  EXPECT_EQ(p->stats().rejected_expected_offset, 2u);
  // A retried publish that already landed is its duplicate, whatever it expected.
  auto retried = p->append(msg("b", "id-b"), 0);
  ASSERT_TRUE(retried.ok());
  EXPECT_TRUE(retried->duplicate);
  EXPECT_EQ(retried->offset, 1u);
  ASSERT_TRUE(p->append(msg("c"), 1).ok());
}

/// Appends `n` messages of `body_bytes` that LZ4 cannot shrink, one per append, advancing
/// the clock 1 ms each.
void fill(partition_log& p, manual_clock& clock, int n, size_t body_bytes = 100) {
  static uint64_t seed = 88172645463325252ull;
  std::string body(body_bytes, ' ');
  for (int i = 0; i < n; ++i) {
    for (auto& c : body) {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      c = static_cast<char>('!' + seed % 90);
    }
    auto ack = p.append(msg(body));
    ASSERT_TRUE(ack.ok()) << i << ": " << ack.error().to_string();
    clock.advance_ms(1);
  }
}

TEST_F(partition_fixture, RetentionByMessagesDropsWholeOldSegments) {
  config.retention_max_messages = 100;
  auto p = open_log();
  ASSERT_TRUE(p);
  fill(*p, clock, 500);
  auto kept = p->next_offset() - p->start_offset();
  EXPECT_GT(p->start_offset(), 0u);
  EXPECT_LE(kept, 100u + 40u);  // the bound plus at most the segment being written
  EXPECT_GE(kept, 60u);         // whole segments: never more dropped than needed
  EXPECT_EQ(p->stats().dropped_messages, p->start_offset());
  EXPECT_GT(p->stats().dropped_segments, 0u);
  EXPECT_GT(p->stats().dropped_bytes, 0u);
  auto all = read_all(*p);
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().offset, p->start_offset());
  EXPECT_EQ(all.back().offset, 499u);
}

TEST_F(partition_fixture, RetentionByMessagesRejectsWhenFull) {
  config.on_full = on_full_policy::reject;
  config.retention_max_messages = 10;
  auto p = open_log();
  ASSERT_TRUE(p);
  fill(*p, clock, 10);
  auto full = p->append(msg("eleven"));
  ASSERT_FALSE(full.ok());
  auto r = full.error().as_rejection();
  EXPECT_EQ(r.code, code::stream_full);
  EXPECT_EQ(static_cast<int>(r.code), 18);
  EXPECT_EQ(r.limit, "stream.retention_max_messages");
  EXPECT_EQ(r.observed, 11u);
  EXPECT_EQ(r.max, 10u);
  EXPECT_NE(r.detail.find("on_full is reject"), std::string::npos) << r.detail;
  // A batch that does not fit is refused whole.
  auto batch = p->append(std::vector<message>{msg("a"), msg("b")});
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.error().as_rejection().observed, 12u);
  EXPECT_EQ(p->next_offset(), 10u);
  EXPECT_EQ(p->stats().rejected_full, 2u);
  EXPECT_EQ(p->stats().dropped_messages, 0u);
}

TEST_F(partition_fixture, RetentionByBytesDropsOldest) {
  config.retention_max_bytes = 16 * 1024;
  auto p = open_log();
  ASSERT_TRUE(p);
  fill(*p, clock, 1000);
  EXPECT_LE(p->size_bytes(), 16u * 1024 + 4096 + 512);  // plus the segment being written
  EXPECT_GT(p->start_offset(), 0u);
  EXPECT_EQ(p->stats().dropped_messages, p->start_offset());
  EXPECT_EQ(read_all(*p).back().offset, 999u);
}

TEST_F(partition_fixture, RetentionByBytesRejectsWhenFull) {
  config.retention_max_bytes = 16 * 1024;
  config.on_full = on_full_policy::reject;
  auto p = open_log();
  ASSERT_TRUE(p);
  int stored = 0;
  for (; stored < 1000; ++stored) {
    auto ack = p->append(msg(std::string(100, 'x')));
    if (!ack.ok()) {
      auto r = ack.error().as_rejection();
      EXPECT_EQ(r.code, code::stream_full);
      EXPECT_EQ(r.limit, "stream.retention_max_bytes");
      EXPECT_GT(r.observed, r.max);
      EXPECT_EQ(r.max, 16u * 1024);
      break;
    }
  }
  EXPECT_LT(stored, 1000);
  EXPECT_GT(stored, 50);
  EXPECT_LE(p->size_bytes(), 16u * 1024);
  EXPECT_EQ(p->start_offset(), 0u);  // nothing dropped
  EXPECT_EQ(p->next_offset(), static_cast<uint64_t>(stored));
}

TEST_F(partition_fixture, RetentionByAgeDropsOldSegmentsUnderEitherPolicy) {
  for (auto policy : {on_full_policy::drop_oldest, on_full_policy::reject}) {
    SCOPED_TRACE(std::string{to_string(policy)});
    temp_dir own;
    config.on_full = policy;
    config.retention_max_age_ms = 60'000;
    partition_options o;
    o.dir = (own.path / "p").string();
    o.config = config;
    o.clock = &clock;
    auto p = std::move(*partition_log::open(o));
    fill(*p, clock, 100);  // ~3 segments, all within a second
    auto before = p->next_offset();
    clock.advance_ms(31'000);  // past half the age: the next append closes the segment
    fill(*p, clock, 1);
    auto none = p->apply_retention();
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none->segments, 0u);  // nothing is a minute old yet
    clock.advance_ms(30'000);
    auto dropped = p->apply_retention();
    ASSERT_TRUE(dropped.ok()) << dropped.error().to_string();
    EXPECT_EQ(dropped->messages, before);  // every message of the first second
    EXPECT_EQ(p->start_offset(), before);
    EXPECT_EQ(p->stats().dropped_messages, before);
    EXPECT_EQ(read_all(*p).size(), 1u);
  }
}

TEST_F(partition_fixture, RejectMakesRoomWhenOldMessagesAgeOut) {
  config.on_full = on_full_policy::reject;
  config.retention_max_messages = 50;
  config.retention_max_age_ms = 10'000;
  auto p = open_log();
  ASSERT_TRUE(p);
  fill(*p, clock, 40);
  clock.advance_ms(6'000);
  fill(*p, clock, 10);  // the first append rolled the segment (half the age passed)
  ASSERT_FALSE(p->append(msg("full")).ok());
  clock.advance_ms(5'000);  // the first 40 are now older than 10 s
  auto ack = p->append(msg("room"));
  ASSERT_TRUE(ack.ok()) << ack.error().to_string();
  EXPECT_EQ(ack->offset, 50u);
  EXPECT_EQ(p->start_offset(), 40u);
}

TEST_F(partition_fixture, CompactionKeepsTheLastMessagePerKey) {
  config.compact_by_key = true;
  auto p = open_log();
  ASSERT_TRUE(p);
  std::string body(100, 'v');
  for (int i = 0; i < 300; ++i) {
    auto key = "key-" + std::to_string(i % 10);
    auto value = body + std::to_string(i);
    ASSERT_TRUE(p->append(msg(value, "", key)).ok());
  }
  auto report = p->compact();
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_GT(report->records_removed, 0u);
  EXPECT_EQ(p->stats().compacted_records, report->records_removed);
  auto all = read_all(*p);
  EXPECT_EQ(all.size(), 300u - report->records_removed);
  // Offsets stay; the newest value of each key is still there.
  for (int k = 0; k < 10; ++k) {
    uint64_t newest = 290 + k;
    bool found = false;
    for (auto& m : all)
      found = found || (m.offset == newest && m.key == "key-" + std::to_string(k));
    EXPECT_TRUE(found) << k;
  }
  config.compact_by_key = false;
  p.reset();
  p = open_log();
  auto off = p->compact();
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->records_removed, 0u);
}

TEST_F(partition_fixture, ReadPositions) {
  auto p = open_log();
  ASSERT_TRUE(p);
  // Empty: every position is the end.
  EXPECT_EQ(*p->resolve(read_position::earliest()), 0u);
  EXPECT_EQ(*p->resolve(read_position::latest()), 0u);
  EXPECT_EQ(*p->resolve(read_position::new_only()), 0u);
  const int64_t t0 = clock.wall_ms();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(p->append(msg("m" + std::to_string(i))).ok());
    clock.advance_ms(10);  // message i is stamped t0 + 10 i
  }
  EXPECT_EQ(*p->resolve(read_position::earliest()), 0u);
  EXPECT_EQ(*p->resolve(read_position::latest()), 99u);
  EXPECT_EQ(*p->resolve(read_position::new_only()), 100u);
  EXPECT_EQ(*p->resolve(read_position::at_offset(42)), 42u);
  EXPECT_EQ(*p->resolve(read_position::at_offset(100)), 100u);
  auto beyond = p->resolve(read_position::at_offset(101));
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code(), code::not_found);
  EXPECT_NE(beyond.error().message().find("the next message gets 100"), std::string::npos);
  EXPECT_EQ(*p->resolve(read_position::at_time(t0)), 0u);
  EXPECT_EQ(*p->resolve(read_position::at_time(t0 + 500)), 50u);
  EXPECT_EQ(*p->resolve(read_position::at_time(t0 + 505)), 51u);
  EXPECT_EQ(*p->resolve(read_position::at_time(t0 - 100'000)), 0u);
  EXPECT_EQ(*p->resolve(read_position::at_time(t0 + 1'000'000)), 100u);

  // A read from time T returns messages stamped at or after T.
  read_request req;
  req.from = *p->resolve(read_position::at_time(t0 + 205));
  req.max_messages = 3;
  auto r = p->read(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[0].body, "m21");
  EXPECT_GE(r->messages[0].timestamp_ms, t0 + 205);
  EXPECT_EQ(r->next_offset, 24u);
  EXPECT_FALSE(r->done);

  // Stop at an offset (inclusive), in several reads.
  req.from = 90;
  req.max_messages = 4;
  req.stop_offset = 95;
  r = p->read(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 4u);
  EXPECT_FALSE(r->done);
  req.from = r->next_offset;
  r = p->read(req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages.back().offset, 95u);
  EXPECT_TRUE(r->done);

  // Stop at a time: nothing stamped after it.
  read_request by_time;
  by_time.from = 0;
  by_time.stop_time_ms = t0 + 30;
  r = p->read(by_time);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 4u);  // t0, +10, +20, +30
  EXPECT_TRUE(r->done);

  // Bounded by bytes: at least one message, even one larger than the bound.
  read_request small;
  small.from = 0;
  small.max_bytes = 5;
  r = p->read(small);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 2u);  // "m0" (2 bytes), "m1" (2 more): 4 < 5, then stop
  small.max_bytes = 1;
  r = p->read(small);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 1u);
}

TEST_F(partition_fixture, ReadFromARemovedOffsetSaysSoAndSkips) {
  config.retention_max_messages = 50;
  auto p = open_log();
  ASSERT_TRUE(p);
  fill(*p, clock, 200);
  auto start = p->start_offset();
  ASSERT_GT(start, 0u);
  auto old = p->resolve(read_position::at_offset(0));
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code(), code::not_found);
  EXPECT_NE(old.error().message().find("retention removed it; it starts at " + std::to_string(start)),
            std::string::npos)
    << old.error().message();
  // A reader whose next offset was removed continues from the start, told how many it lost.
  read_request req;
  req.from = 3;
  auto r = p->read(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->skipped, start - 3);
  ASSERT_FALSE(r->messages.empty());
  EXPECT_EQ(r->messages.front().offset, start);
}

TEST_F(partition_fixture, HighWaterMarkFollowsTheFsyncPolicy) {
  for (auto policy : {persistence::fsync_policy::every_batch, persistence::fsync_policy::none}) {
    temp_dir own;
    config.fsync = policy;
    partition_options o;
    o.dir = own.path.string();
    o.config = config;
    o.clock = &clock;
    auto p = std::move(*partition_log::open(o));
    ASSERT_TRUE(p->append(msg("a")).ok());
    EXPECT_EQ(p->high_water(), 1u) << to_string(policy);
  }

  config.fsync = persistence::fsync_policy::interval;
  config.fsync_interval_ms = 1000;
  auto p = open_log();
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->append(msg("a")).ok());
  ASSERT_TRUE(p->append(msg("b")).ok());
  EXPECT_EQ(p->high_water(), 0u);  // written, not yet synced: not committed
  read_request req;
  auto r = p->read(req);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->messages.empty());  // consumers see only what is below the mark
  EXPECT_EQ(*p->resolve(read_position::latest()), 2u);  // none committed: the end
  ASSERT_TRUE(p->sync_if_due().ok());
  EXPECT_EQ(p->high_water(), 0u);  // the interval has not passed
  clock.advance_ms(1000);
  ASSERT_TRUE(p->sync_if_due().ok());
  EXPECT_EQ(p->high_water(), 2u);
  EXPECT_EQ(p->stats().syncs, 1u);
  r = p->read(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 2u);
  // An append after the interval syncs itself.
  clock.advance_ms(1000);
  ASSERT_TRUE(p->append(msg("c")).ok());
  EXPECT_EQ(p->high_water(), 3u);
  ASSERT_TRUE(p->append(msg("d")).ok());
  EXPECT_EQ(p->high_water(), 3u);
  ASSERT_TRUE(p->sync().ok());
  EXPECT_EQ(p->high_water(), 4u);
  // Reopening makes what is there durable: the mark starts at the end.
  ASSERT_TRUE(p->append(msg("e")).ok());
  p.reset();
  p = open_log();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->high_water(), 5u);
}

// A publisher process appends messages with ids msg-0, msg-1, ... under every_batch and
// reports each ack; it is killed with SIGKILL at a random moment, 20 times over one
// partition. Each run first sends again the last few ids the previous runs had acked (a
// publisher retrying after a broker restart). Every acked message must read back, every
// retried one must be acknowledged as a duplicate with its original offset, and at the
// end each id is stored exactly once, in order: offset i holds msg-i.
TEST(PartitionLog, KilledPublisherLosesNothingAckedAndItsRetriesAreDuplicates) {
  temp_dir dir;
  stream_config config = small_stream();
  config.fsync = persistence::fsync_policy::every_batch;
  partition_options o;
  o.dir = dir.path.string();
  o.config = config;
  struct report {
    uint64_t id;
    uint64_t offset;
    uint64_t duplicate;
  };
  std::mt19937 rng{20261203};
  std::vector<uint64_t> offset_of;  // by id: what the acks said
  for (int run = 0; run < 20; ++run) {
    uint64_t first_id = offset_of.size() - std::min<uint64_t>(offset_of.size(), 3);
    auto publisher = [&](const std::function<void(const report&)>& send) {
      auto p = partition_log::open(o);
      if (!p.ok())
        ::_exit(2);
      for (uint64_t id = first_id;; ++id) {
        auto name = "msg-" + std::to_string(id);
        auto body = "body of " + name;
        auto ack = (*p)->append(msg(body, name));
        if (!ack.ok())
          ::_exit(3);
        send(report{id, ack->offset, ack->duplicate ? 1u : 0u});
      }
    };
    auto take = [&](const report& r) {
      if (r.id < offset_of.size()) {  // acked before: a retry
        EXPECT_EQ(r.duplicate, 1u) << "run " << run << " id " << r.id;
        EXPECT_EQ(r.offset, offset_of[r.id]) << "run " << run << " id " << r.id;
      } else {
        ASSERT_EQ(r.id, offset_of.size());
        offset_of.push_back(r.offset);
      }
    };
    ASSERT_TRUE(test::run_until_killed<report>(publisher, 4 + rng() % 30, take))
      << "run " << run << ": the publisher failed on its own";
  }
  auto p = partition_log::open(o);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  auto all = read_all(**p);
  ASSERT_GE(all.size(), offset_of.size());
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(all[i].offset, i);
    ASSERT_EQ(all[i].id, "msg-" + std::to_string(i)) << "offset " << i;
    ASSERT_EQ(all[i].body, "body of msg-" + std::to_string(i));
  }
  for (size_t id = 0; id < offset_of.size(); ++id)
    EXPECT_EQ(offset_of[id], id);
}

TEST_F(partition_fixture, AMessageLargerThanTheLogsDefaultBatchIsStored) {
  config.max_message_bytes = 8 * 1024 * 1024;  // twice the log's default batch bound
  config.max_segment_bytes = 16 * 1024 * 1024;
  auto p = open_log();
  ASSERT_TRUE(p);
  std::string body(8 * 1024 * 1024 - 16, 'q');
  body[12345] = 'x';
  auto ack = p->append(msg(body, "big-id"));
  ASSERT_TRUE(ack.ok()) << ack.error().to_string();
  read_request req;
  auto r = p->read(req);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0].body, body);
}

TEST_F(partition_fixture, ABatchLargerThanOneLogBatchIsStoredWhole) {
  config.max_message_bytes = 512 * 1024;
  config.max_segment_bytes = 16 * 1024 * 1024;
  auto p = open_log();
  ASSERT_TRUE(p);
  std::string body(400 * 1024, 'z');
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i)
    ids.push_back("big-" + std::to_string(i));
  std::vector<message> batch;
  for (auto& id : ids)  // ~4.8 MiB: more than one log batch (4 MiB)
    batch.push_back(msg(body, id));
  auto acks = p->append(batch);
  ASSERT_TRUE(acks.ok()) << acks.error().to_string();
  for (size_t i = 0; i < acks->size(); ++i)
    EXPECT_EQ((*acks)[i].offset, i);
  read_request req;
  req.max_bytes = 64 * 1024 * 1024;
  req.max_messages = 100;
  auto r = p->read(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 12u);
}

} // namespace
} // namespace levee::streams
