// The broker's stream table and publish path: create, list, info, delete, restart, subject
// matching over overlapping streams, dedupe, expected offsets and every publish refusal,
// each with its exact code and limit.

#include "tests/broker_test_support.hpp"

namespace levee::broker::test {
namespace {

using BrokerStreams = BrokerFixture;

TEST_F(BrokerStreams, CreateListInfoDeleteAndRestart) {
  start();
  auto made = create("orders", "orders.>", [](wire::CreateStream& c) { c.set_partitions(2); });
  auto created = made.as<wire::StreamInfo>();
  EXPECT_EQ(created.config().name(), "orders");
  EXPECT_EQ(created.config().partitions(), 2u);
  EXPECT_EQ(created.partitions_size(), 2);
  ASSERT_TRUE(create("audit", "audit.*").payload);
  ASSERT_TRUE(publish("orders.eu", {"a", "b", "c"}).payload);

  wire::BrokerCall list;
  list.mutable_list_streams();
  auto l = call(list).as<wire::StreamList>();
  ASSERT_EQ(l.streams_size(), 2);  // the internal cursor stream is not listed
  EXPECT_EQ(l.streams(0).config().name(), "audit");
  EXPECT_EQ(l.streams(1).config().name(), "orders");

  restart();
  auto again = info("orders");
  EXPECT_EQ(again.config().subject(), "orders.>");
  uint64_t stored = 0;
  for (auto& p : again.partitions())
    stored += p.next_offset();
  EXPECT_EQ(stored, 3u);

  wire::BrokerCall del;
  del.mutable_delete_stream()->set_name("orders");
  EXPECT_EQ(call(del).as<wire::StreamDeleted>().name(), "orders");
  wire::BrokerCall ask;
  ask.mutable_stream_info()->set_name("orders");
  auto gone = call(ask);
  ASSERT_TRUE(gone.refused);
  EXPECT_EQ(gone.refused->code, code::not_found);
  restart();
  EXPECT_EQ(call(list).as<wire::StreamList>().streams_size(), 1);
}

TEST_F(BrokerStreams, PublishIsStoredByEveryMatchingStream) {
  start();
  ASSERT_TRUE(create("all", ">").payload);
  ASSERT_TRUE(create("eu", "orders.eu.*").payload);
  ASSERT_TRUE(create("created", "orders.*.created").payload);
  auto acks = publish("orders.eu.created", {"x", "y"}).as<wire::PublishAck>();
  ASSERT_EQ(acks.acks_size(), 6);  // 2 messages x 3 streams, stream by stream, in order
  std::vector<std::string> streams;
  for (auto& a : acks.acks())
    streams.push_back(a.stream());
  EXPECT_EQ(streams[0], streams[1]);
  EXPECT_EQ(acks.acks(0).offset(), 0u);
  EXPECT_EQ(acks.acks(1).offset(), 1u);
  auto us = publish("orders.us.created", {"z"}).as<wire::PublishAck>();
  EXPECT_EQ(us.acks_size(), 2);  // all and created
  auto none = publish("billing.eu", {"q"}).as<wire::PublishAck>();
  EXPECT_EQ(none.acks_size(), 1);  // all
  EXPECT_EQ(node->stats->messages_stored.load(), 9u);
}

TEST_F(BrokerStreams, RefusalsCarryTheirCodeAndLimit) {
  start();
  ASSERT_TRUE(create("small", "small.>", [](wire::CreateStream& c) {
                c.set_max_message_bytes(16);
                c.set_on_full(wire::ON_FULL_REJECT);
                c.set_retention_max_messages(3);
              }).payload);
  auto nowhere = publish("nobody.listens", {"x"});
  ASSERT_TRUE(nowhere.refused);
  EXPECT_EQ(nowhere.refused->code, code::not_found);
  EXPECT_NE(nowhere.refused->detail.find("nobody.listens"), std::string::npos);

  auto bad = publish("small..x", {"x"});
  ASSERT_TRUE(bad.refused);
  EXPECT_EQ(bad.refused->code, code::bad_request);
  EXPECT_NE(bad.refused->detail.find("at position 6"), std::string::npos) << bad.refused->detail;

  auto big = publish("small.x", {std::string(17, 'b')});
  ASSERT_TRUE(big.refused);
  EXPECT_EQ(big.refused->code, code::message_too_large);
  EXPECT_EQ(big.refused->limit, "stream.max_message_bytes");
  EXPECT_EQ(big.refused->observed, 17u);
  EXPECT_EQ(big.refused->max, 16u);

  ASSERT_TRUE(publish("small.x", {"1", "2", "3"}).payload);
  auto full = publish("small.x", {"4"});
  ASSERT_TRUE(full.refused);
  EXPECT_EQ(full.refused->code, code::stream_full);
  EXPECT_EQ(full.refused->limit, "stream.retention_max_messages");

  auto garbage = raw_call(std::string("\xff\xff\xff\x01garbage", 11));
  ASSERT_TRUE(garbage.refused);
  EXPECT_EQ(garbage.refused->code, code::bad_request);
  EXPECT_NE(garbage.refused->detail.find("BrokerCall"), std::string::npos);

  // A broker alone keeps one copy: a replication factor above 1 says to run a cluster.
  auto replicated = create("r3", "r3.>", [](wire::CreateStream& c) { c.set_replication_factor(3); });
  ASSERT_TRUE(replicated.refused);
  EXPECT_EQ(replicated.refused->code, code::bad_request);
  EXPECT_NE(replicated.refused->detail.find("cluster"), std::string::npos)
    << replicated.refused->detail;
  auto one = create("r1", "r1.>", [](wire::CreateStream& c) {
    c.set_replication_factor(1);
    c.set_min_insync_replicas(1);
  });
  ASSERT_TRUE(one.payload);
  EXPECT_EQ(one.as<wire::StreamInfo>().config().replication_factor(), 1u);

  auto internal = create("__mine", "mine.>");
  ASSERT_TRUE(internal.refused);
  EXPECT_EQ(internal.refused->code, code::bad_request);
  EXPECT_GE(node->stats->rejected(code::bad_request), 4u);
  EXPECT_EQ(node->stats->rejected_by_limit()["stream.max_message_bytes"], 1u);
}

TEST_F(BrokerStreams, DuplicateIdIsAckedWithTheOriginalOffset) {
  start();
  ASSERT_TRUE(create("d", "d").payload);
  auto with_id = [](const std::string& id) {
    return [id](wire::Publish& p) { p.mutable_messages(0)->set_id(id); };
  };
  auto first = publish("d", {"one"}, with_id("m-1")).as<wire::PublishAck>();
  ASSERT_TRUE(publish("d", {"two"}).payload);
  auto again = publish("d", {"one"}, with_id("m-1")).as<wire::PublishAck>();
  ASSERT_EQ(again.acks_size(), 1);
  EXPECT_TRUE(again.acks(0).duplicate());
  EXPECT_EQ(again.acks(0).offset(), first.acks(0).offset());
  EXPECT_EQ(node->stats->duplicates.load(), 1u);
}

TEST_F(BrokerStreams, ExpectedLastOffsetIsRefusedWhenItDoesNotHold) {
  start();
  ASSERT_TRUE(create("cas", "cas").payload);
  ASSERT_TRUE(publish("cas", {"a"}).payload);  // offset 0
  auto wrong = publish("cas", {"b"}, [](wire::Publish& p) { p.set_expected_last_offset(5); });
  ASSERT_TRUE(wrong.refused);
  EXPECT_EQ(wrong.refused->code, code::precondition_failed);
  auto right = publish("cas", {"b"}, [](wire::Publish& p) { p.set_expected_last_offset(0); });
  EXPECT_EQ(right.as<wire::PublishAck>().acks(0).offset(), 1u);
}

TEST_F(BrokerStreams, AckNoneAnswersAtOnceAndCountsRefusals) {
  start();
  ASSERT_TRUE(create("n", "n", [](wire::CreateStream& c) {
                c.set_on_full(wire::ON_FULL_REJECT);
                c.set_retention_max_messages(1);
              }).payload);
  auto none = [](wire::Publish& p) { p.set_ack(wire::ACK_NONE); };
  EXPECT_EQ(publish("n", {"a"}, none).as<wire::PublishAck>().acks_size(), 0);
  EXPECT_TRUE(publish("n", {"b"}, none).payload);  // refused by the leader, later
  EXPECT_TRUE(wait_until([&] { return node->stats->unacked_refusals.load() == 1; }));
  EXPECT_EQ(node->stats->rejected(code::stream_full), 1u);
}

TEST_F(BrokerStreams, PerConnectionRateIsRefusedWithRetryAfter) {
  opts.limits.publishers.msgs_per_sec = 2;
  start();
  ASSERT_TRUE(create("r", "r").payload);
  // One requester is one publishing connection.
  caf::scoped_actor conn{*sys};
  auto send = [&](std::vector<std::string> bodies) {
    wire::BrokerCall c;
    c.mutable_publish()->set_subject("r");
    for (auto& b : bodies)
      c.mutable_publish()->add_messages()->set_body(b);
    answer out;
    conn->request(node->broker, std::chrono::seconds(30), wire_request_atom::value,
                  c.SerializeAsString())
      .receive([&](std::string& p) { out.payload = std::move(p); },
               [&](caf::error& err) { out.refused = rejection_from(err); });
    return out;
  };
  ASSERT_TRUE(send({"1", "2"}).payload);
  auto over = send({"3"});
  EXPECT_TRUE(publish("r", {"other"}).payload);  // another connection has its own bucket
  ASSERT_TRUE(over.refused);
  EXPECT_EQ(over.refused->code, code::rate_limited);
  EXPECT_EQ(over.refused->limit, "broker.publish_msgs_per_sec");
  EXPECT_GT(over.refused->retry_after_ms, 0u);
}

TEST_F(BrokerStreams, StreamOverridesOfLeaderLimitsAreKept) {
  start();
  auto made = create("lim", "lim", [](wire::CreateStream& c) {
    (*c.mutable_limits())["mailbox_capacity"] = 7;
  });
  EXPECT_EQ(made.as<wire::StreamInfo>().config().limits().at("mailbox_capacity"), 7u);
  restart();
  EXPECT_EQ(info("lim").config().limits().at("mailbox_capacity"), 7u);
  // The leaders are of kind "stream": counted there.
  bool found = false;
  for (auto& k : rt->snapshot().kinds)
    found = found || (k.kind == "stream" && k.actors >= 1);
  EXPECT_TRUE(found);
}

TEST_F(BrokerStreams, AStreamsLeaderLimitsAreItsKindsWithItsOverrides) {
  start();
  // max_message_bytes of the leader's gate, not the stream's: a batch of two 800-byte
  // messages is one 1600-byte message to the leader.
  ASSERT_TRUE(create("capped", "capped", [](wire::CreateStream& c) {
                (*c.mutable_limits())["max_message_bytes"] = 1024;
              }).payload);
  ASSERT_TRUE(create("open", "open").payload);
  auto bodies = std::vector<std::string>{std::string(800, 'a'), std::string(800, 'b')};
  auto refused = publish("capped", bodies);
  ASSERT_TRUE(refused.refused);
  EXPECT_EQ(refused.refused->code, code::message_too_large);
  EXPECT_EQ(refused.refused->limit, "limits.stream.max_message_bytes");
  EXPECT_EQ(refused.refused->max, 1024u);
  EXPECT_TRUE(publish("open", bodies).payload);  // the kind's own limits
  EXPECT_TRUE(publish("capped", {bodies[0]}).payload);
}

} // namespace
} // namespace levee::broker::test
