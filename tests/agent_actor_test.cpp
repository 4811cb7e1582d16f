// The satellite's agent in process (deterministic_system.hpp): a registration refused with
// a retry time is tried again after that time (plus at most a quarter more of jitter), not
// before; one refused without a retry time backs off, doubling, also with jitter. A fake
// uplink stands where the connection to the server stands, a fake store answers its stats.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "net/satellite.pb.h"
#include "satellite/agent.hpp"
#include "tests/deterministic_system.hpp"

namespace levee::satellite {
namespace {

/// What the fake uplink saw: when each registration came (ms on the manual clock).
struct uplink_seen {
  std::vector<int64_t> registrations_ms;
  std::vector<rejection> answers;  // refusals to give, in order; then acks
};

caf::behavior fake_uplink(caf::event_based_actor*, const clock_source* clock, uplink_seen* seen) {
  return {
    [=](wire_request_atom, const std::string& target,
        const std::string&) -> caf::result<std::string> {
      if (target != "register")
        return wire::HeartbeatAck{}.SerializeAsString();
      auto n = seen->registrations_ms.size();
      seen->registrations_ms.push_back(clock->now_ns() / 1'000'000);
      if (n < seen->answers.size())
        return to_error(seen->answers[n]);
      wire::RegisterAck ack;
      ack.set_satellite_id("sat-a");
      ack.set_heartbeat_interval_ms(60'000);
      return ack.SerializeAsString();
    },
  };
}

caf::behavior fake_store(caf::event_based_actor*) {
  return {
    [](caf::get_atom) { return wire::StoreStats{}; },
  };
}

struct AgentActorTest : ::testing::Test {
  test::deterministic_system t;
  uplink_seen seen;
  caf::actor uplink, store;
  agent_actor agent;

  void SetUp() override { t.start(); }

  void start() {
    uplink = t.sys->spawn(fake_uplink, &t.clock, &seen);
    store = t.sys->spawn(fake_store);
    agent = spawn_agent(*t.sys, *t.rt, caf::actor_cast<store_actor>(store), satellite_options{},
                        std::make_shared<satellite_stats>());
    caf::anon_send(agent, uplink_atom::value, uplink);
    caf::anon_send(agent, connected_atom::value, std::string{"server"});
    t.run();
  }

  void TearDown() override {
    caf::anon_send(agent, stop_atom::value);
    caf::anon_send_exit(uplink, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    t.stop();
  }

  /// Advances the clock 10 ms at a time until `n` registrations came (at most `bound_ms`).
  int64_t until_registrations(size_t n, int64_t bound_ms) {
    int64_t passed = 0;
    while (seen.registrations_ms.size() < n && passed < bound_ms) {
      t.advance(10);
      passed += 10;
    }
    return passed;
  }
};

TEST_F(AgentActorTest, ARefusedRegistrationIsTriedAgainAfterItsRetryTimeWithJitter) {
  seen.answers = {rejection::of(code::rate_limited)
                    .limit("server.max_registrations_per_sec")
                    .retry_after_ms(3'000)
                    .detail("later")};
  start();
  ASSERT_EQ(seen.registrations_ms.size(), 1u);
  until_registrations(2, 5'000);
  ASSERT_EQ(seen.registrations_ms.size(), 2u);
  auto waited = seen.registrations_ms[1] - seen.registrations_ms[0];
  EXPECT_GE(waited, 3'000) << "not before the server's retry time";
  EXPECT_LE(waited, 3'000 + 750 + 10) << "at most a quarter more of jitter";
}

TEST_F(AgentActorTest, RefusalsWithoutARetryTimeBackOffDoubling) {
  auto refusal = rejection::of(code::permission_denied).detail("a live id");
  seen.answers = {refusal, refusal, refusal};
  start();
  until_registrations(4, 20'000);
  ASSERT_EQ(seen.registrations_ms.size(), 4u);
  auto& at = seen.registrations_ms;
  for (size_t i = 1; i < 4; ++i) {
    int64_t base = int64_t{1000} << (i - 1);  // 1 s, 2 s, 4 s
    EXPECT_GE(at[i] - at[i - 1], base) << i;
    EXPECT_LE(at[i] - at[i - 1], base + base / 4 + 10) << i;
  }
}

} // namespace
} // namespace levee::satellite
