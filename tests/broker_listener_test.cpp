// The "broker" target through the broker node's real listener on 127.0.0.1, with the C++
// client: a plain Request with a BrokerCall payload (create, publish) and a streamed one
// (subscribe) paced by the client's credit, and a refusal arriving as a Reject.

#include "levee/client.hpp"
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

} // namespace
} // namespace levee::broker::test
