// The gate's decisions, one bound at a time: at the limit accepted, one over refused with
// the exact code, limit name, observed and max.

#include <gtest/gtest.h>

#include <memory>

#include "actors/gate.hpp"
#include "actors/runtime.hpp"

namespace levee {
namespace {

/// The actor handled the message: what limited<Base>::consume does around the handler.
void finish(gate& g, const gate_ticket& t) {
  g.on_handling(t);
  g.on_handled(t);
}

struct GateTest : ::testing::Test {
  manual_clock clock;

  std::unique_ptr<runtime> make_runtime(actor_limits svc, uint64_t budget = 1 << 30) {
    limits_config cfg;
    cfg.memory_budget_bytes = budget;
    cfg.default_limits = svc;
    cfg.kinds.emplace("svc", svc);
    EXPECT_TRUE(validate(cfg).ok()) << validate(cfg).to_string();
    return std::make_unique<runtime>(cfg, clock);
  }

  static actor_limits small() {
    auto l = actor_limits::defaults();
    l.mailbox_capacity = 4;
    l.mailbox_capacity_bytes = 1000;
    l.max_message_bytes = 400;
    l.max_inflight_per_requester = 2;
    return l;
  }
};

TEST_F(GateTest, MailboxCapacityInMessages) {
  auto rt = make_runtime(small());
  auto g = rt->make_gate("svc");
  gate_ticket t[5];
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(g->admit(t[i] = gate_ticket{10, 0}).accepted()) << i;
  auto v = g->admit(t[4] = gate_ticket{10, 0});
  ASSERT_FALSE(v.accepted());
  auto r = g->explain(v);
  EXPECT_EQ(r.code, code::mailbox_full);
  EXPECT_EQ(r.limit, "limits.svc.mailbox_capacity");
  EXPECT_EQ(r.observed, 5u);
  EXPECT_EQ(r.max, 4u);
  EXPECT_EQ(r.retry_after_ms, 10u);
  finish(*g, t[0]);
  EXPECT_TRUE(g->admit(t[0] = gate_ticket{10, 0}).accepted());
}

TEST_F(GateTest, MailboxCapacityInBytes) {
  auto rt = make_runtime(small());
  auto g = rt->make_gate("svc");
  gate_ticket t;
  ASSERT_TRUE(g->admit(t = gate_ticket{400, 0}).accepted());
  ASSERT_TRUE(g->admit(t = gate_ticket{400, 0}).accepted());
  ASSERT_TRUE(g->admit(t = gate_ticket{200, 0}).accepted());  // exactly 1000
  auto v = g->admit(t = gate_ticket{1, 0});
  auto r = g->explain(v);
  EXPECT_EQ(r.code, code::mailbox_full);
  EXPECT_EQ(r.limit, "limits.svc.mailbox_capacity_bytes");
  EXPECT_EQ(r.observed, 1001u);
  EXPECT_EQ(r.max, 1000u);
  // The refused message took no message slot: one more small message fits the count.
  EXPECT_EQ(g->depth(), 3u);
}

TEST_F(GateTest, MessageSizeCap) {
  auto rt = make_runtime(small());
  auto g = rt->make_gate("svc");
  gate_ticket t;
  ASSERT_TRUE(g->admit(t = gate_ticket{400, 0}).accepted());
  auto r = g->explain(g->admit(t = gate_ticket{401, 0}));
  EXPECT_EQ(r.code, code::message_too_large);
  EXPECT_EQ(r.limit, "limits.svc.max_message_bytes");
  EXPECT_EQ(r.observed, 401u);
  EXPECT_EQ(r.max, 400u);
  EXPECT_EQ(r.retry_after_ms, 0u);  // the same message will never pass
}

TEST_F(GateTest, InflightPerRequester) {
  auto rt = make_runtime(small());
  auto g = rt->make_gate("svc");
  gate_ticket a, b, c;
  ASSERT_TRUE(g->admit(a = gate_ticket{1, 42}).accepted());
  ASSERT_TRUE(g->admit(b = gate_ticket{1, 42}).accepted());
  auto r = g->explain(g->admit(c = gate_ticket{1, 42}));
  EXPECT_EQ(r.code, code::too_many_inflight);
  EXPECT_EQ(r.limit, "limits.svc.max_inflight_per_requester");
  EXPECT_EQ(r.observed, 3u);
  EXPECT_EQ(r.max, 2u);
  EXPECT_TRUE(g->admit(c = gate_ticket{1, 43}).accepted());  // another requester
  finish(*g, a);
  EXPECT_EQ(g->in_flight(42), 1u);
  EXPECT_TRUE(g->admit(a = gate_ticket{1, 42}).accepted());
}

TEST_F(GateTest, NodeBudgetIsSharedAcrossActors) {
  auto l = small();
  l.mailbox_capacity_bytes = 1000;
  auto rt = make_runtime(l, 600);
  auto g1 = rt->make_gate("svc");
  auto g2 = rt->make_gate("svc");
  gate_ticket t1, t2;
  ASSERT_TRUE(g1->admit(t1 = gate_ticket{400, 0}).accepted());
  ASSERT_TRUE(g2->admit(t2 = gate_ticket{200, 0}).accepted());  // exactly the budget
  auto r = g2->explain(g2->admit(t2 = gate_ticket{1, 0}));
  EXPECT_EQ(r.code, code::memory_budget_exhausted);
  EXPECT_EQ(r.limit, "limits.memory_budget_bytes");
  EXPECT_EQ(r.observed, 601u);
  EXPECT_EQ(r.max, 600u);
  EXPECT_EQ(g2->depth(), 1u);  // the refused message left nothing behind
  finish(*g1, t1);
  EXPECT_EQ(rt->budget().in_use(), 200u);
}

TEST_F(GateTest, MessageRateWithRetryAfter) {
  auto l = small();
  l.mailbox_capacity = 100;
  l.rate_msgs_per_sec = 10;
  l.rate_burst_msgs = 3;
  auto rt = make_runtime(l);
  auto g = rt->make_gate("svc");
  gate_ticket t;
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(g->admit(t = gate_ticket{1, 0}).accepted());
  auto r = g->explain(g->admit(t = gate_ticket{1, 0}));
  EXPECT_EQ(r.code, code::rate_limited);
  EXPECT_EQ(r.limit, "limits.svc.rate_msgs_per_sec");
  EXPECT_EQ(r.observed, 4u);
  EXPECT_EQ(r.max, 3u);
  EXPECT_EQ(r.retry_after_ms, 100u);
  EXPECT_EQ(g->depth(), 3u);
  clock.advance_ms(100);
  EXPECT_TRUE(g->admit(t = gate_ticket{1, 0}).accepted());
}

TEST_F(GateTest, ByteRateRefundsTheMessageToken) {
  auto l = small();
  l.mailbox_capacity = 100;
  l.mailbox_capacity_bytes = 100000;
  l.rate_msgs_per_sec = 1000;
  l.rate_burst_msgs = 2;
  l.rate_bytes_per_sec = 1000;
  l.rate_burst_bytes = 500;
  auto rt = make_runtime(l);
  auto g = rt->make_gate("svc");
  gate_ticket t;
  ASSERT_TRUE(g->admit(t = gate_ticket{400, 0}).accepted());
  auto r = g->explain(g->admit(t = gate_ticket{400, 0}));
  EXPECT_EQ(r.code, code::rate_limited);
  EXPECT_EQ(r.limit, "limits.svc.rate_bytes_per_sec");
  EXPECT_EQ(r.max, 500u);
  EXPECT_EQ(r.retry_after_ms, 300u);  // 300 bytes over the burst at 1000 B/s
  // The message token taken before the byte check was given back: one more small
  // message passes the msgs/s burst of 2.
  EXPECT_TRUE(g->admit(t = gate_ticket{50, 0}).accepted());
}

TEST_F(GateTest, LiveChangesOfSizeAndRate) {
  auto rt = make_runtime(small());
  auto g = rt->make_gate("svc");
  gate_ticket t;
  ASSERT_TRUE(g->admit(t = gate_ticket{300, 0}).accepted());
  ASSERT_TRUE(g->set_max_message_bytes(200).ok());
  EXPECT_EQ(g->explain(g->admit(t = gate_ticket{300, 0})).code, code::message_too_large);
  auto bad = g->set_max_message_bytes(5000);  // above mailbox_capacity_bytes
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("limits.svc.mailbox_capacity_bytes"), std::string::npos);
  ASSERT_TRUE(g->set_rates(1, 1, 0, 0).ok());
  EXPECT_TRUE(g->admit(t = gate_ticket{1, 0}).accepted());
  EXPECT_EQ(g->explain(g->admit(t = gate_ticket{1, 0})).code, code::rate_limited);
  EXPECT_EQ(g->limits().rate_msgs_per_sec, 1u);
}

TEST_F(GateTest, StatsCountAcceptedRejectedAndDepth) {
  auto rt = make_runtime(small());
  auto g = rt->make_gate("svc");
  gate_ticket t[4];
  for (auto& x : t)
    ASSERT_TRUE(g->admit(x = gate_ticket{10, 0}).accepted());
  for (int i = 0; i < 3; ++i)
    g->record_rejection(g->admit(t[0] = gate_ticket{10, 0}));
  finish(*g, t[0]);
  auto s = rt->stats_for("svc")->snapshot();
  EXPECT_EQ(s.accepted, 4u);
  EXPECT_EQ(s.rejected[static_cast<size_t>(code::mailbox_full)], 3u);
  EXPECT_EQ(s.processed, 1u);
  EXPECT_EQ(s.queued_messages, 3u);
  EXPECT_EQ(s.queued_bytes, 30u);
  EXPECT_EQ(s.max_actor_depth, 4u);
  EXPECT_EQ(s.actors, 1u);
  EXPECT_EQ(rt->budget().in_use(), 30u);
  // Closing (the actor terminated) gives back what was never taken up.
  g->close();
  EXPECT_TRUE(g->admit(t[0] = gate_ticket{10, 0}).closed);
  s = rt->stats_for("svc")->snapshot();
  EXPECT_EQ(s.dropped_on_exit, 3u);
  EXPECT_EQ(s.queued_messages, 0u);
  EXPECT_EQ(rt->budget().in_use(), 0u);
  g.reset();
  s = rt->stats_for("svc")->snapshot();
  EXPECT_EQ(s.actors, 0u);
  EXPECT_EQ(s.accepted, 4u);  // the figures of a gone actor stay in the kind's totals
}

} // namespace
} // namespace levee
