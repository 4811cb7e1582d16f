// Consumer-group cursors: commit and fetch, a subscription from a group's cursor, the
// cursors after a broker restart (read back from the internal compacted stream), the
// bound on cursors held, and the internal stream hidden from clients.

#include "tests/broker_test_support.hpp"

namespace levee::broker::test {
namespace {

using BrokerCursors = BrokerFixture;

wire::BrokerCall commit(const std::string& group, const std::string& stream, uint64_t offset) {
  wire::BrokerCall c;
  auto& cc = *c.mutable_commit_cursor();
  cc.set_group(group);
  cc.set_stream(stream);
  cc.set_offset(offset);
  return c;
}

wire::BrokerCall fetch(const std::string& group, const std::string& stream) {
  wire::BrokerCall c;
  auto& f = *c.mutable_fetch_cursor();
  f.set_group(group);
  f.set_stream(stream);
  return c;
}

TEST_F(BrokerCursors, CommitFetchAndResumeAfterRestart) {
  start();
  ASSERT_TRUE(create("orders", "orders").payload);
  ASSERT_TRUE(publish("orders", numbered("m", 6)).payload);
  EXPECT_FALSE(call(fetch("billing", "orders")).as<wire::CursorAck>().found());
  auto ack = call(commit("billing", "orders", 2)).as<wire::CursorAck>();
  EXPECT_EQ(ack.offset(), 2u);
  ASSERT_TRUE(call(commit("billing", "orders", 4)).payload);  // the last commit wins
  ASSERT_TRUE(call(commit("audit", "orders", 1)).payload);

  restart();
  auto got = call(fetch("billing", "orders")).as<wire::CursorAck>();
  EXPECT_TRUE(got.found());
  EXPECT_EQ(got.offset(), 4u);
  EXPECT_EQ(call(fetch("audit", "orders")).as<wire::CursorAck>().offset(), 1u);

  auto s = from("orders", wire::START_CURSOR);
  s.set_group("billing");
  s.set_stop_offset(5);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink_and_rec = subscribe(s);
  [[maybe_unused]] auto& sink = sink_and_rec.first;
  [[maybe_unused]] auto& rec = sink_and_rec.second;
  ASSERT_TRUE(wait_until([&] { return rec->ended(); }));
  EXPECT_EQ(rec->offsets(), (std::vector<uint64_t>{4, 5}));
  // A group with no cursor starts at the earliest.
  s.set_group("newcomer");
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto sink2_and_rec2 = subscribe(s);
  [[maybe_unused]] auto& sink2 = sink2_and_rec2.first;
  [[maybe_unused]] auto& rec2 = sink2_and_rec2.second;
  ASSERT_TRUE(wait_until([&] { return rec2->ended(); }));
  EXPECT_EQ(rec2->offsets().size(), 6u);
}

TEST_F(BrokerCursors, ADeletedStreamsCursorsGoWithIt) {
  start();
  ASSERT_TRUE(create("o", "o").payload);
  ASSERT_TRUE(create("keep", "keep").payload);
  ASSERT_TRUE(call(commit("g", "o", 3)).payload);
  ASSERT_TRUE(call(commit("g", "keep", 5)).payload);
  wire::BrokerCall del;
  del.mutable_delete_stream()->set_name("o");
  ASSERT_TRUE(call(del).payload);
  ASSERT_TRUE(create("o", "o").payload);  // the same name again: no cursor
  EXPECT_FALSE(call(fetch("g", "o")).as<wire::CursorAck>().found());
  restart();
  EXPECT_FALSE(call(fetch("g", "o")).as<wire::CursorAck>().found());
  EXPECT_EQ(call(fetch("g", "keep")).as<wire::CursorAck>().offset(), 5u);
}

TEST_F(BrokerCursors, CursorsHeldAreBounded) {
  opts.limits.max_cursors = 2;
  start();
  ASSERT_TRUE(create("o", "o").payload);
  ASSERT_TRUE(call(commit("a", "o", 1)).payload);
  ASSERT_TRUE(call(commit("b", "o", 1)).payload);
  ASSERT_TRUE(call(commit("a", "o", 2)).payload);  // an existing one moves
  auto third = call(commit("c", "o", 1));
  ASSERT_TRUE(third.refused);
  EXPECT_EQ(third.refused->code, code::memory_budget_exhausted);
  EXPECT_EQ(third.refused->limit, "broker.max_cursors");
  EXPECT_EQ(third.refused->observed, 3u);
  EXPECT_EQ(third.refused->max, 2u);
}

TEST_F(BrokerCursors, TheInternalStreamIsHiddenAndUnreachable) {
  start();
  ASSERT_TRUE(create("all", ">").payload);
  // A client's publish to the internal stream's subject lands only in client streams.
  auto acks = publish("levee.internal.cursors", {"x"}).as<wire::PublishAck>();
  ASSERT_EQ(acks.acks_size(), 1);
  EXPECT_EQ(acks.acks(0).stream(), "all");
  EXPECT_EQ(refusal_of(from("__cursors")).value_or(rejection{}).code, code::not_found);
  wire::BrokerCall del;
  del.mutable_delete_stream()->set_name("__cursors");
  ASSERT_TRUE(call(del).refused);
  auto unknown = call(commit("g", "nope", 0));
  ASSERT_TRUE(unknown.refused);
  EXPECT_EQ(unknown.refused->code, code::not_found);
  auto no_group = call(commit("", "all", 0));
  ASSERT_TRUE(no_group.refused);
  EXPECT_EQ(no_group.refused->code, code::bad_request);
}

} // namespace
} // namespace levee::broker::test
