// The CAF gate end to end: real actor systems, real senders, exact answers.

#include "tests/actor_test_support.hpp"

#include <caf/all.hpp>

namespace levee {
namespace {

using test::event_counter;
using test::held_service;
using test::latch;

struct LimitedActorTest : ::testing::Test {
  std::unique_ptr<caf::actor_system_config> cfg = test::make_system_config();
  std::unique_ptr<caf::actor_system> sys = std::make_unique<caf::actor_system>(*cfg);
  manual_clock clock;
  std::unique_ptr<runtime> rt;
  latch release;
  event_counter handled;
  event_counter entered;

  void SetUp() override { set_log_sink([](std::string_view) {}); }

  void TearDown() override {
    release.open();
    sys.reset();
  }

  void make_runtime(actor_limits svc, uint64_t budget = 1 << 30) {
    limits_config lc;
    lc.memory_budget_bytes = budget;
    lc.default_limits = svc;
    lc.kinds.emplace("svc", svc);
    ASSERT_TRUE(validate(lc).ok()) << validate(lc).to_string();
    rt = std::make_unique<runtime>(lc, clock);
  }

  caf::actor spawn_svc() {
    return spawn_limited<held_service>(*sys, *rt, "svc", &release, &handled, &entered);
  }

  /// Makes `svc` busy in a held handler; from then on, what is sent to it stays queued.
  void hold(const caf::actor& svc) {
    auto before = entered.value();
    caf::anon_send(svc, std::string{"hold"});
    ASSERT_TRUE(entered.wait_for_at_least(before + 1));
  }

  /// Sends a request and returns the rejection it got (nullopt if it was answered).
  std::optional<rejection> request_rejection(const caf::actor& dest, std::string payload) {
    caf::scoped_actor self{*sys};
    std::optional<rejection> out;
    bool answered = false;
    self->request(dest, std::chrono::seconds(30), std::move(payload))
      .receive([&](uint64_t) { answered = true; },
               [&](caf::error& err) {
                 out = rejection_from(err);
                 EXPECT_TRUE(out.has_value()) << sys->render(err);
               });
    EXPECT_TRUE(answered || out.has_value());
    return out;
  }

  static actor_limits small() {
    auto l = actor_limits::defaults();
    l.mailbox_capacity = 4;
    l.mailbox_capacity_bytes = 4096;
    l.max_message_bytes = 1024;
    return l;
  }
};

TEST_F(LimitedActorTest, RequestAtMailboxLimitGetsMailboxFullWithAllFields) {
  make_runtime(small());
  auto svc = spawn_svc();
  hold(svc);  // the message being handled counts too
  for (int i = 0; i < 3; ++i)
    caf::anon_send(svc, std::string(10, 'x'));
  auto g = gate_of(svc);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->depth(), 4u);
  auto r = request_rejection(svc, "one over");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::mailbox_full);
  EXPECT_EQ(r->limit, "limits.svc.mailbox_capacity");
  EXPECT_EQ(r->observed, 5u);
  EXPECT_EQ(r->max, 4u);
  EXPECT_EQ(r->retry_after_ms, 10u);
  EXPECT_FALSE(r->detail.empty());
  release.open();
  ASSERT_TRUE(handled.wait_for_at_least(4));
  // Once drained, the same request is answered: the refusal left nothing behind.
  EXPECT_FALSE(request_rejection(svc, "now fits").has_value());
  EXPECT_EQ(handled.value(), 5u);
  auto stats = rt->stats_for("svc");
  ASSERT_TRUE(test::wait_until([&] { return stats->snapshot().processed == 5; }));
  auto s = stats->snapshot();
  EXPECT_EQ(s.accepted, 5u);
  EXPECT_EQ(s.rejected[static_cast<size_t>(code::mailbox_full)], 1u);
  EXPECT_EQ(s.max_actor_depth, 4u);
}

TEST_F(LimitedActorTest, MessageOverSizeCapIsRefusedAndNeverProcessed) {
  make_runtime(small());
  auto svc = spawn_svc();
  EXPECT_FALSE(request_rejection(svc, std::string(1024, 'a')).has_value());  // at the cap
  auto r = request_rejection(svc, std::string(1025, 'a'));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::message_too_large);
  EXPECT_EQ(r->limit, "limits.svc.max_message_bytes");
  EXPECT_EQ(r->observed, 1025u);
  EXPECT_EQ(r->max, 1024u);
  EXPECT_EQ(r->retry_after_ms, 0u);
  EXPECT_EQ(handled.value(), 1u);
}

TEST_F(LimitedActorTest, MailboxBytesBound) {
  auto l = small();
  l.mailbox_capacity = 100;
  make_runtime(l);
  auto svc = spawn_svc();
  hold(svc);                                                    // 4 bytes
  for (int i = 0; i < 3; ++i)
    caf::anon_send(svc, std::string(1024, 'b'));
  caf::anon_send(svc, std::string(1020, 'b'));                  // exactly 4096 bytes
  auto r = request_rejection(svc, "z");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::mailbox_full);
  EXPECT_EQ(r->limit, "limits.svc.mailbox_capacity_bytes");
  EXPECT_EQ(r->observed, 4097u);
  EXPECT_EQ(r->max, 4096u);
}

TEST_F(LimitedActorTest, InflightPerRequesterCountsUntilAnswered) {
  auto l = small();
  l.mailbox_capacity = 100;
  l.max_inflight_per_requester = 2;
  make_runtime(l);
  auto svc = spawn_svc();
  hold(svc);
  caf::scoped_actor self{*sys};
  auto first = self->request(svc, std::chrono::seconds(30), std::string{"r1"});
  auto second = self->request(svc, std::chrono::seconds(30), std::string{"r2"});
  auto g = gate_of(svc);
  EXPECT_EQ(g->in_flight(detail::requester_key(caf::actor_cast<caf::strong_actor_ptr>(self))), 2u);
  std::optional<rejection> r;
  self->request(svc, std::chrono::seconds(30), std::string{"r3"})
    .receive([](uint64_t) { FAIL() << "third request must be refused"; },
             [&](caf::error& err) { r = rejection_from(err); });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::too_many_inflight);
  EXPECT_EQ(r->limit, "limits.svc.max_inflight_per_requester");
  EXPECT_EQ(r->observed, 3u);
  EXPECT_EQ(r->max, 2u);
  // Another requester is not affected.
  caf::scoped_actor other{*sys};
  auto theirs = other->request(svc, std::chrono::seconds(30), std::string{"o1"});
  release.open();
  first.receive([](uint64_t n) { EXPECT_EQ(n, 2u); }, [](caf::error&) { FAIL(); });
  second.receive([](uint64_t n) { EXPECT_EQ(n, 2u); }, [](caf::error&) { FAIL(); });
  theirs.receive([](uint64_t n) { EXPECT_EQ(n, 2u); }, [](caf::error&) { FAIL(); });
  EXPECT_EQ(g->in_flight(detail::requester_key(caf::actor_cast<caf::strong_actor_ptr>(self))), 0u);
}

TEST_F(LimitedActorTest, RateLimitWithManualClockAndRetryAfter) {
  auto l = small();
  l.mailbox_capacity = 100;
  l.rate_msgs_per_sec = 50;
  l.rate_burst_msgs = 2;
  make_runtime(l);
  auto svc = spawn_svc();
  EXPECT_FALSE(request_rejection(svc, "a").has_value());
  EXPECT_FALSE(request_rejection(svc, "b").has_value());
  auto r = request_rejection(svc, "c");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::rate_limited);
  EXPECT_EQ(r->limit, "limits.svc.rate_msgs_per_sec");
  EXPECT_EQ(r->retry_after_ms, 20u);
  clock.advance_ms(20);
  EXPECT_FALSE(request_rejection(svc, "c").has_value());
}

TEST_F(LimitedActorTest, NodeBudgetSpansActors) {
  auto l = small();
  l.mailbox_capacity = 100;
  make_runtime(l, 2048);
  auto a = spawn_svc();
  auto b = spawn_svc();
  hold(a);                                         // 4 bytes
  hold(b);                                         // 8
  caf::anon_send(a, std::string(1020, 'a'));       // 1028
  caf::anon_send(b, std::string(1020, 'b'));       // 2048: exactly the budget
  auto r = request_rejection(b, "x");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::memory_budget_exhausted);
  EXPECT_EQ(r->limit, "limits.memory_budget_bytes");
  EXPECT_EQ(r->observed, 2049u);
  EXPECT_EQ(r->max, 2048u);
  release.open();
  ASSERT_TRUE(handled.wait_for_at_least(4));
  // Every byte comes back once the messages are handled.
  EXPECT_FALSE(request_rejection(b, "x").has_value());
  EXPECT_TRUE(test::wait_until([&] { return rt->budget().in_use() == 0; }));
}

TEST_F(LimitedActorTest, FireAndForgetFromActorGetsOneCoalescedNotice) {
  make_runtime(small());
  auto svc = spawn_svc();
  hold(svc);
  caf::scoped_actor self{*sys};
  for (int i = 0; i < 3; ++i)
    self->send(svc, std::string{"fill"});
  for (int i = 0; i < 100; ++i)
    self->send(svc, std::string{"over"});
  uint64_t notices = 0, told = 0;
  rejection first;
  bool more = true;
  while (more)
    self->receive(
      [&](rejection_notice& n) {
        ++notices;
        first = n.first;
        told += n.take();
      },
      caf::after(std::chrono::seconds(0)) >> [&] { more = false; });
  EXPECT_EQ(notices, 1u);  // one on its way at a time, whatever the flood
  EXPECT_EQ(told, 100u);   // every refusal is counted in it
  EXPECT_EQ(first.code, code::mailbox_full);
  EXPECT_EQ(first.limit, "limits.svc.mailbox_capacity");
  // After take(), the next refusal sends a new notice.
  self->send(svc, std::string{"over"});
  self->receive([&](rejection_notice& n) { EXPECT_EQ(n.take(), 1u); },
                caf::after(std::chrono::seconds(0)) >> [] { FAIL() << "no new notice"; });
  auto s = rt->stats_for("svc")->snapshot();
  EXPECT_EQ(s.notices_sent, 2u);
  EXPECT_EQ(s.notices_coalesced, 99u);
}

TEST_F(LimitedActorTest, AnonymousFloodIsCountedAndLoggedWithARateLimit) {
  std::vector<std::string> lines;
  std::mutex mtx;
  set_log_sink([&](std::string_view line) {
    std::lock_guard<std::mutex> guard{mtx};
    lines.emplace_back(line);
  });
  make_runtime(small());
  auto svc = spawn_svc();
  hold(svc);
  for (int i = 0; i < 1003; ++i)
    caf::anon_send(svc, std::string{"m"});
  auto s = rt->stats_for("svc")->snapshot();
  EXPECT_EQ(s.accepted, 4u);
  EXPECT_EQ(s.rejected[static_cast<size_t>(code::mailbox_full)], 1000u);
  std::lock_guard<std::mutex> guard{mtx};
  EXPECT_EQ(lines.size(), 20u);  // the default burst of rejection_log_burst_lines
  EXPECT_NE(lines[0].find("observed 5 > max 4"), std::string::npos) << lines[0];
}

TEST_F(LimitedActorTest, TerminatedActorGivesBackEveryQueuedByte) {
  make_runtime(small());
  auto svc = spawn_svc();
  hold(svc);
  for (int i = 0; i < 3; ++i)
    caf::anon_send(svc, std::string(100, 'q'));
  EXPECT_EQ(rt->budget().in_use(), 304u);  // "hold" is being handled and still counts
  caf::anon_send_exit(svc, caf::exit_reason::user_shutdown);  // ungated: gets through
  release.open();
  caf::scoped_actor self{*sys};
  self->wait_for(svc);
  svc = nullptr;
  EXPECT_EQ(rt->budget().in_use(), 0u);
  auto s = rt->stats_for("svc")->snapshot();
  EXPECT_EQ(s.accepted, 4u);
  EXPECT_EQ(s.processed + s.dropped_on_exit, 4u);
  EXPECT_EQ(s.queued_messages, 0u);
}

TEST_F(LimitedActorTest, LiveSizeChangeOnARunningActor) {
  make_runtime(small());
  auto svc = spawn_svc();
  EXPECT_FALSE(request_rejection(svc, std::string(600, 'a')).has_value());
  ASSERT_TRUE(gate_of(svc)->set_max_message_bytes(512).ok());
  auto r = request_rejection(svc, std::string(600, 'a'));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::message_too_large);
  EXPECT_EQ(r->max, 512u);
}

// Function-based and stateful actors get the same gate.
struct counter_state {
  uint64_t sum = 0;
};

TEST_F(LimitedActorTest, FunctionBasedAndStatefulActorsAreGated) {
  auto l = small();
  l.max_message_bytes = 8;
  l.mailbox_capacity_bytes = 64;
  make_runtime(l);
  auto fun = spawn_limited_fun(*sys, *rt, "svc", [](limited_actor*) -> caf::behavior {
    return {[](const std::string& s) -> uint64_t { return s.size(); }};
  });
  EXPECT_FALSE(request_rejection(fun, "12345678").has_value());
  EXPECT_EQ(request_rejection(fun, "123456789")->code, code::message_too_large);
  using stateful = caf::stateful_actor<counter_state, limited_actor>;
  auto st = spawn_limited_fun(*sys, *rt, "svc", [](stateful* self) -> caf::behavior {
    return {[=](const std::string& s) -> uint64_t { return self->state.sum += s.size(); }};
  });
  EXPECT_FALSE(request_rejection(st, "abc").has_value());
  EXPECT_EQ(request_rejection(st, "123456789")->code, code::message_too_large);
  EXPECT_NE(gate_of(st), nullptr);
  EXPECT_EQ(gate_of(caf::actor{}), nullptr);
}

// What an actor sends itself is work it already accepted (the next step of a long task):
// it passes its own gate, so a full mailbox cannot stall the actor's own progress.
TEST_F(LimitedActorTest, MessagesToSelfPassTheGate) {
  make_runtime(small());  // mailbox_capacity 4
  test::event_counter steps;
  auto a = spawn_limited_fun(*sys, *rt, "svc", [&steps](limited_actor* self) -> caf::behavior {
    return {
      [=](const std::string& go) {
        for (int i = 0; i < 50; ++i)
          self->send(self, static_cast<uint64_t>(i));
        return go.size();
      },
      [&steps](uint64_t) { steps.add(); },
    };
  });
  EXPECT_FALSE(request_rejection(a, "go").has_value());
  ASSERT_TRUE(steps.wait_for_at_least(50));
  uint64_t rejected = 0;
  for (auto& k : rt->snapshot().kinds)
    for (auto n : k.rejected)
      rejected += n;
  EXPECT_EQ(rejected, 0u);
}

TEST_F(LimitedActorTest, ErrorsRenderAsRejectionLines) {
  rejection r = rejection::of(code::rate_limited)
    .limit("limits.svc.rate_msgs_per_sec")
    .observed(11)
    .max(10)
    .retry_after_ms(5)
    .detail("slow down");
  auto err = to_error(r);
  EXPECT_EQ(err.category(), caf::atom("levee"));
  EXPECT_EQ(err.code(), 3);
  EXPECT_EQ(*rejection_from(err), r);
  EXPECT_EQ(sys->render(err), "levee: " + r.to_string());
  caf::error plain = caf::make_error(caf::sec::unexpected_message);
  EXPECT_FALSE(rejection_from(plain).has_value());
  caf::error bare{code::not_found};
  EXPECT_EQ(rejection_from(bare)->code, code::not_found);
  // A not_leader's hint (the leader's address) travels with it, to the wire's Reject.
  rejection moved = rejection::of(code::not_leader).leader_hint("127.0.0.1:7602").detail("not here");
  EXPECT_EQ(*rejection_from(to_error(moved)), moved);
  EXPECT_NE(moved.to_string().find("leader at 127.0.0.1:7602"), std::string::npos) << moved.to_string();
}

} // namespace
} // namespace levee

namespace levee {
namespace {

using flip_atom = caf::atom_constant<caf::atom("flip")>;

// A message the actor skips stays in CAF's stash: it counts against the bound again,
// and is given back exactly once when finally handled.
TEST_F(LimitedActorTest, SkippedMessagesCountAgainUntilHandled) {
  auto l = small();
  l.mailbox_capacity = 10;
  make_runtime(l);
  event_counter handled_later;
  auto later = &handled_later;
  auto svc = spawn_limited_fun(*sys, *rt, "svc", [later](limited_actor* self) -> caf::behavior {
    return {
      [=](flip_atom) {
        self->become(caf::keep_behavior,
                     caf::behavior{[=](const std::string&) { later->add(); }});
      },
      [](const std::string&) -> caf::result<void> { return caf::skip(); },
      [](int x) { return x; },
    };
  });
  for (int i = 0; i < 3; ++i)
    caf::anon_send(svc, std::string(100, 's'));
  // Once a later message is answered, all three were looked at and skipped: they are
  // stashed, and counted against the bound again.
  auto g = gate_of(svc);
  caf::scoped_actor self{*sys};
  self->request(svc, std::chrono::seconds(30), 7).receive([](int) {}, [](caf::error&) {});
  ASSERT_TRUE(test::wait_until([&] { return g->depth() == 3; }));  // the int is done
  EXPECT_EQ(g->queued_bytes(), 300u);
  EXPECT_EQ(rt->budget().in_use(), 300u);
  self->request(svc, std::chrono::seconds(30), flip_atom::value).receive([] {}, [](caf::error&) {});
  ASSERT_TRUE(handled_later.wait_for_at_least(3));
  EXPECT_EQ(handled_later.value(), 3u);
  ASSERT_TRUE(test::wait_until([&] { return g->depth() == 0; }));
  EXPECT_EQ(rt->budget().in_use(), 0u);
  auto s = rt->stats_for("svc")->snapshot();
  EXPECT_EQ(s.processed, 5u);  // three strings, the int and the flip
  EXPECT_EQ(s.accepted, 5u);
}

} // namespace
} // namespace levee

namespace levee {
namespace {

// A user payload type that carries its own size.
struct blob {
  std::vector<char> data;
  size_t size_bytes() const { return data.size() + 8; }  // data plus a header
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, blob& x) {
  return f(caf::meta::type_name("blob"), x.data);
}

struct opaque {
  char bytes[4096];
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, opaque&) {
  return f(caf::meta::type_name("opaque"));
}

TEST_F(LimitedActorTest, RegisteredPayloadTypesCountTheirOwnSize) {
  register_payload_type<blob>();
  auto l = small();
  l.max_message_bytes = 1000;
  make_runtime(l);
  auto svc = spawn_limited_fun(*sys, *rt, "svc", [](limited_actor*) -> caf::behavior {
    return {[](const blob& b) -> uint64_t { return b.data.size(); },
            [](const opaque&) -> uint64_t { return 0; }};
  });
  caf::scoped_actor self{*sys};
  auto ask = [&](auto payload) {
    std::optional<rejection> out;
    self->request(svc, std::chrono::seconds(30), std::move(payload))
      .receive([](uint64_t) {}, [&](caf::error& err) { out = rejection_from(err); });
    return out;
  };
  EXPECT_FALSE(ask(blob{std::vector<char>(992)}).has_value());  // 1000 with the header
  auto r = ask(blob{std::vector<char>(993)});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::message_too_large);
  EXPECT_EQ(r->observed, 1001u);
  // A type Levee knows nothing about counts a fixed unregistered_element_bytes.
  EXPECT_FALSE(ask(opaque{}).has_value());
  caf::message m = caf::make_message(opaque{});
  EXPECT_EQ(message_bytes(m.content()), unregistered_element_bytes);
}

} // namespace
} // namespace levee
