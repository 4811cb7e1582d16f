// Subscriptions: exact contents in order across segment rolls, every start position, a
// stop offset, credit (one batch of credit: one batch until more), waiting at the
// high-water mark and waking on a publish, cancel, a stream deleted under a subscriber,
// and the bound on subscriptions per partition.

#include "tests/broker_test_support.hpp"

namespace levee::broker::test {
namespace {

using BrokerSubscribe = BrokerFixture;

TEST_F(BrokerSubscribe, ReadsExactContentsInOrderAcrossSegmentRolls) {
  start();
  ASSERT_TRUE(create("s", "s", [](wire::CreateStream& c) {
                c.set_max_segment_bytes(4096);  // many segments
                c.set_max_message_bytes(1024);
              }).payload);
  std::vector<std::string> sent;
  for (int round = 0; round < 20; ++round) {
    auto bodies = numbered("r" + std::to_string(round) + "-" + std::string(200, 'x') + "-", 10);
    ASSERT_TRUE(publish("s", bodies).payload);
    sent.insert(sent.end(), bodies.begin(), bodies.end());
  }
  auto s = from("s");
  s.set_stop_offset(sent.size() - 1);
  s.set_max_batch_messages(7);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink_and_rec = subscribe(s);
  [[maybe_unused]] auto& sink = sink_and_rec.first;
  [[maybe_unused]] auto& rec = sink_and_rec.second;
  ASSERT_TRUE(wait_until([&] { return rec->ended(); }));
  ASSERT_FALSE(rec->refused) << rec->refused->to_string();
  EXPECT_EQ(rec->bodies(), sent);
  EXPECT_EQ(rec->summary->messages(), sent.size());
  EXPECT_EQ(rec->summary->next_offset(), sent.size());
  for (auto& b : rec->batches)
    EXPECT_LE(b.messages_size(), 7);
}

TEST_F(BrokerSubscribe, EveryStartPosition) {
  start();
  ASSERT_TRUE(create("p", "p").payload);
  ASSERT_TRUE(publish("p", {"0", "1", "2", "3"}).payload);
  auto run = [&](wire::Subscribe s, uint64_t stop) {
    s.set_stop_offset(stop);
    // Named, not a structured binding: clang 14 cannot capture those in lambdas.
    auto sink_and_rec = subscribe(s);
    [[maybe_unused]] auto& sink = sink_and_rec.first;
    [[maybe_unused]] auto& rec = sink_and_rec.second;
    EXPECT_TRUE(wait_until([&] { return rec->ended(); }));
    return rec->offsets();
  };
  EXPECT_EQ(run(from("p"), 3), (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(run(from("p", wire::START_LATEST), 3), (std::vector<uint64_t>{3}));
  auto at = from("p", wire::START_OFFSET);
  at.set_start_offset(2);
  EXPECT_EQ(run(at, 3), (std::vector<uint64_t>{2, 3}));
  auto by_time = from("p", wire::START_TIME);
  by_time.set_start_time_ms(0);
  EXPECT_EQ(run(by_time, 1), (std::vector<uint64_t>{0, 1}));
  // new: only what is published after it started.
  auto s = from("p", wire::START_NEW);
  s.set_stop_offset(4);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink_and_rec = subscribe(s);
  [[maybe_unused]] auto& sink = sink_and_rec.first;
  [[maybe_unused]] auto& rec = sink_and_rec.second;
  ASSERT_TRUE(wait_until([&] { return info("p").partitions(0).subscribers() == 1; }));
  ASSERT_TRUE(publish("p", {"4"}).payload);
  ASSERT_TRUE(wait_until([&] { return rec->ended(); }));
  EXPECT_EQ(rec->offsets(), (std::vector<uint64_t>{4}));
  // An offset not written yet: not_found naming the range.
  auto beyond = from("p", wire::START_OFFSET);
  beyond.set_start_offset(99);
  EXPECT_EQ(refusal_of(beyond).value_or(rejection{}).code, code::not_found);
}

TEST_F(BrokerSubscribe, CreditForOneBatchDeliversExactlyOneBatch) {
  start();
  ASSERT_TRUE(create("c", "c").payload);
  ASSERT_TRUE(publish("c", numbered("m", 10)).payload);
  auto s = from("c");
  s.set_max_batch_messages(2);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink_and_rec = subscribe(s, 1, 1 << 20);
  [[maybe_unused]] auto& sink = sink_and_rec.first;
  [[maybe_unused]] auto& rec = sink_and_rec.second;
  ASSERT_TRUE(wait_until([&] { return rec->batch_count() == 1; }));
  // A publish wakes the leader; still no credit, so still one batch.
  ASSERT_TRUE(publish("c", {"more"}).payload);
  ASSERT_EQ(info("c").partitions(0).next_offset(), 11u);
  EXPECT_EQ(rec->batch_count(), 1u);
  caf::anon_send(sink, credit_atom::value, uint64_t{2}, uint64_t{1 << 20});
  ASSERT_TRUE(wait_until([&] { return rec->batch_count() == 3; }));
  EXPECT_EQ(rec->offsets(), (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_FALSE(rec->ended());
  caf::anon_send(sink, cancel_atom::value);
  ASSERT_TRUE(wait_until([&] { return rec->ended(); }));
  ASSERT_TRUE(rec->refused);
  EXPECT_EQ(rec->refused->code, code::cancelled);
}

TEST_F(BrokerSubscribe, WaitsAtTheHighWaterMarkAndWakesOnPublish) {
  start();
  ASSERT_TRUE(create("w", "w").payload);
  auto s = from("w");
  s.set_stop_offset(2);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink_and_rec = subscribe(s);
  [[maybe_unused]] auto& sink = sink_and_rec.first;
  [[maybe_unused]] auto& rec = sink_and_rec.second;
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(publish("w", {"m" + std::to_string(i)}).payload);
  ASSERT_TRUE(wait_until([&] { return rec->ended(); }));
  EXPECT_EQ(rec->bodies(), (std::vector<std::string>{"m0", "m1", "m2"}));
}

TEST_F(BrokerSubscribe, IntervalFsyncShowsMessagesOnceSynced) {
  start();
  ASSERT_TRUE(create("i", "i", [](wire::CreateStream& c) {
                c.set_fsync(wire::FSYNC_INTERVAL);
                c.set_fsync_interval_ms(20);
              }).payload);
  auto s = from("i");
  s.set_stop_offset(0);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink_and_rec = subscribe(s);
  [[maybe_unused]] auto& sink = sink_and_rec.first;
  [[maybe_unused]] auto& rec = sink_and_rec.second;
  ASSERT_TRUE(publish("i", {"late"}).payload);
  // The leader's sync timer moves the high-water mark and wakes the subscriber.
  ASSERT_TRUE(wait_until([&] { return rec->ended(); }));
  EXPECT_EQ(rec->bodies(), (std::vector<std::string>{"late"}));
}

TEST_F(BrokerSubscribe, DeletingTheStreamEndsItsSubscriptionsUnavailable) {
  start();
  ASSERT_TRUE(create("gone", "gone").payload);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink_and_rec = subscribe(from("gone"));
  [[maybe_unused]] auto& sink = sink_and_rec.first;
  [[maybe_unused]] auto& rec = sink_and_rec.second;
  ASSERT_TRUE(wait_until([&] { return info("gone").partitions(0).subscribers() == 1; }));
  wire::BrokerCall del;
  del.mutable_delete_stream()->set_name("gone");
  ASSERT_TRUE(call(del).payload);
  ASSERT_TRUE(wait_until([&] { return rec->ended(); }));
  ASSERT_TRUE(rec->refused);
  EXPECT_EQ(rec->refused->code, code::unavailable);
}

TEST_F(BrokerSubscribe, UnknownStreamOrPartitionIsNotFound) {
  start();
  ASSERT_TRUE(create("one", "one").payload);
  EXPECT_EQ(refusal_of(from("nope")).value_or(rejection{}).code, code::not_found);
  auto bad_partition = from("one");
  bad_partition.set_partition(3);
  EXPECT_EQ(refusal_of(bad_partition).value_or(rejection{}).code, code::not_found);
}

TEST_F(BrokerSubscribe, SubscriptionsPerPartitionAreBounded) {
  opts.limits.max_subscriptions_per_partition = 1;
  start();
  ASSERT_TRUE(create("b", "b").payload);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto s1_and_r1 = subscribe(from("b"));
  [[maybe_unused]] auto& s1 = s1_and_r1.first;
  [[maybe_unused]] auto& r1 = s1_and_r1.second;
  ASSERT_TRUE(wait_until([&] { return info("b").partitions(0).subscribers() == 1; }));
  auto second = refusal_of(from("b")).value_or(rejection{});
  EXPECT_EQ(second.code, code::too_many_inflight);
  EXPECT_EQ(second.limit, "broker.max_subscriptions_per_partition");
  EXPECT_EQ(second.max, 1u);
  EXPECT_FALSE(r1->ended());
}

} // namespace
} // namespace levee::broker::test
