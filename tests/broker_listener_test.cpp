// The "broker" target through the broker node's real listener on 127.0.0.1, with the C++
// client: a plain Request with a BrokerCall payload (create, publish) and a streamed one
// (subscribe) paced by the client's credit, and a refusal arriving as a Reject.

#include "levee/client.hpp"
#include "levee/streams.hpp"
#include "net/satellite.pb.h"
#include "tests/broker_test_support.hpp"

namespace levee::broker::test {
namespace {

using BrokerListener = BrokerFixture;

TEST_F(BrokerListener, RequestsAndASubscriptionThroughARealConnection) {
  start();
  ASSERT_NE(node->listener.port, 0);
  client_options co;
  co.port = node->listener.port;
  client c{co};
  ASSERT_TRUE(c.connect().ok());

  wire::BrokerCall create;
  create.mutable_create_stream()->set_name("net");
  create.mutable_create_stream()->set_subject("net.>");
  auto made = c.request("broker", create.SerializeAsString(), std::chrono::seconds(10));
  ASSERT_TRUE(made.ok()) << made.rejected->to_string();

  wire::BrokerCall pub;
  pub.mutable_publish()->set_subject("net.a");
  for (int i = 0; i < 50; ++i)
    pub.mutable_publish()->add_messages()->set_body("body-" + std::to_string(i));
  auto acked = c.request("broker", pub.SerializeAsString(), std::chrono::seconds(10));
  ASSERT_TRUE(acked.ok()) << acked.rejected->to_string();
  wire::PublishAck acks;
  ASSERT_TRUE(acks.ParseFromString(*acked.payload));
  EXPECT_EQ(acks.acks_size(), 50);

  wire::BrokerCall sub;
  sub.mutable_subscribe()->set_stream("net");
  sub.mutable_subscribe()->set_stop_offset(49);
  sub.mutable_subscribe()->set_max_batch_messages(5);
  uint64_t id = 0;
  ASSERT_FALSE(c.send_stream_request("broker", sub.SerializeAsString(), id));
  std::vector<std::string> bodies;
  for (;;) {
    auto r = c.receive(std::chrono::seconds(10));
    ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "");
    if (r.end_of_stream) {
      wire::SubscribeEnd end;
      ASSERT_TRUE(end.ParseFromString(*r.payload));
      EXPECT_EQ(end.messages(), 50u);
      break;
    }
    wire::MessageBatch b;
    ASSERT_TRUE(b.ParseFromString(*r.payload));
    for (auto& m : b.messages())
      bodies.push_back(m.body());
  }
  EXPECT_EQ(bodies, numbered("body-", 50));

  wire::BrokerCall nowhere;
  nowhere.mutable_publish()->set_subject("other.x");
  nowhere.mutable_publish()->add_messages()->set_body("x");
  auto refused = c.request("broker", nowhere.SerializeAsString(), std::chrono::seconds(10));
  ASSERT_TRUE(refused.rejected);
  EXPECT_EQ(refused.rejected->code, code::not_found);

  // "stats" on the same listener: its counters and the actor kinds (leaders: "stream").
  auto stats = c.request("stats", wire::StatsRequest{}.SerializeAsString(),
                         std::chrono::seconds(10));
  ASSERT_TRUE(stats.ok()) << stats.rejected->to_string();
  wire::StatsReply reply;
  ASSERT_TRUE(reply.ParseFromString(*stats.payload));
  EXPECT_GE(reply.listener().requests_answered(), 3u);
  bool leaders = false;
  for (auto& k : reply.kinds())
    leaders = leaders || (k.kind() == "stream" && k.actors() >= 1);
  EXPECT_TRUE(leaders);
}

// The Envelope's own stream members (50-57), which the connection maps onto "broker",
// through the public stream client: admin, publish with acks, a credit-paced
// subscription, cursors, and a refusal with its code.
TEST_F(BrokerListener, TheStreamClientSpeaksToTheBrokerThroughTheEnvelope) {
  start();
  client_options co;
  co.port = node->listener.port;
  co.stream_credit_batches = 2;  // the subscription below needs more credit as it reads
  stream_client sc{co};
  ASSERT_TRUE(sc.connect().ok());
  stream_spec spec;
  spec.name = "env";
  spec.subject = "env.*";
  spec.partitions = 1;
  auto made = sc.create_stream(spec, std::chrono::seconds(10));
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  EXPECT_EQ(made->config.name, "env");

  std::vector<out_message> msgs;
  for (int i = 0; i < 30; ++i)
    msgs.push_back(out_message{"", "id-" + std::to_string(i), "m" + std::to_string(i), {}});
  auto acks = sc.publish("env.x", msgs);
  ASSERT_TRUE(acks.ok()) << acks.error().to_string();
  ASSERT_EQ(acks->size(), 30u);
  auto again = sc.publish("env.x", {msgs[3]});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->at(0).duplicate);
  EXPECT_EQ(again->at(0).offset, 3u);

  subscribe_options so;
  so.stream = "env";
  so.stop_offset = 29;
  so.max_batch_messages = 4;
  auto sub = sc.subscribe(so);
  ASSERT_TRUE(sub.ok()) << sub.error().to_string();
  std::vector<std::string> bodies;
  for (;;) {
    auto ev = sc.next(*sub, std::chrono::seconds(10));
    ASSERT_FALSE(ev.error) << ev.error->to_string() << " after " << bodies.size();
    if (ev.end)
      break;
    for (auto& m : ev.batch->messages)
      bodies.push_back(m.body);
  }
  EXPECT_EQ(bodies, numbered("m", 30));

  ASSERT_TRUE(sc.commit_cursor("g", "env", 0, 17, std::chrono::seconds(10)).ok());
  auto cursor = sc.fetch_cursor("g", "env", 0, std::chrono::seconds(10));
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(cursor->value_or(0), 17u);

  auto nowhere = sc.publish("other", {msgs[0]});
  ASSERT_FALSE(nowhere.ok());
  EXPECT_EQ(nowhere.error().code(), code::not_found);
  auto list = sc.list_streams(std::chrono::seconds(10));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->streams.size(), 1u);
  EXPECT_EQ(list->streams[0].partitions.at(0).next_offset, 30u);
}

} // namespace
} // namespace levee::broker::test
