// The satellite registry as one actor, in process and deterministic (deterministic_system.hpp):
// heartbeat states move as the manual clock passes the configured intervals, held list
// requests are answered on a change or at the end of their wait, and refusals name a real
// config key or none. Each test runs with the registry on a worker and placed on the I/O
// loop. A driver actor stands where a satellite's connection stands.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "actors/message_size.hpp"
#include "server/registry.hpp"
#include "tests/deterministic_system.hpp"

namespace levee::server {
namespace {

// The registry takes registrations and heartbeats parsed, not their wire bytes.
static_assert(test::accepts<registry_actor, register_atom, wire::Register>);
static_assert(test::accepts<registry_actor, heartbeat_atom, wire::Heartbeat>);
static_assert(test::accepts<registry_actor, list_atom, uint64_t, uint32_t>);
static_assert(!test::accepts<registry_actor, register_atom, std::string>);
static_assert(!test::accepts<registry_actor, heartbeat_atom, std::string>);
static_assert(!test::accepts<registry_actor, wire_request_atom, std::string>);

/// What a connection saw.
struct seen {
  std::vector<std::string> registered;  // ids in RegisterAcks
  std::vector<uint32_t> intervals;      // heartbeat intervals in RegisterAcks
  uint64_t heartbeats_acked = 0;
  std::vector<rejection> refused;
  std::vector<wire::SatelliteList> lists;
  std::optional<rejection> closed;  // the registry closed the connection
};

/// Plays a satellite's connection: what the test sends it goes to the registry as its own
/// request, so the registry sees it as the satellite's connection.
caf::behavior connection(caf::event_based_actor* self, registry_actor registry, seen* out) {
  auto refused = [=](caf::error& err) {
    auto r = rejection_from(err);
    ASSERT_TRUE(r.has_value()) << self->system().render(err);
    out->refused.push_back(*r);
  };
  return {
    [=](register_atom, wire::Register& reg) {
      self->request(registry, caf::infinite, register_atom::value, std::move(reg))
        .then(
          [=](std::string& bytes) {
            wire::RegisterAck ack;
            ASSERT_TRUE(ack.ParseFromString(bytes));
            out->registered.push_back(ack.satellite_id());
            out->intervals.push_back(ack.heartbeat_interval_ms());
          },
          refused);
    },
    [=](heartbeat_atom, wire::Heartbeat& hb) {
      self->request(registry, caf::infinite, heartbeat_atom::value, std::move(hb))
        .then([=](std::string&) { ++out->heartbeats_acked; }, refused);
    },
    [=](list_atom, uint64_t after_version, uint32_t wait_ms) {
      self->request(registry, caf::infinite, list_atom::value, after_version, wait_ms)
        .then(
          [=](std::string& bytes) {
            out->lists.emplace_back();
            ASSERT_TRUE(out->lists.back().ParseFromString(bytes));
          },
          refused);
    },
    [=](stop_atom, uint32_t code_number, std::string& limit, std::string& detail) {
      auto c = code_from_number(code_number);
      ASSERT_TRUE(c.has_value());
      out->closed = rejection::of(*c).limit(limit).detail(detail);
    },
  };
}

constexpr int64_t interval_ms = 1000;  // server.heartbeat_interval_ms
constexpr int64_t check_ms = interval_ms / 4;  // the registry's tick

struct RegistryActorTest : ::testing::TestWithParam<bool> {
  test::deterministic_system t;
  server_options opts;
  std::shared_ptr<satellite_routes> routes = std::make_shared<satellite_routes>();
  registry_actor registry;
  caf::actor conn;
  seen out;

  void SetUp() override {
    opts.heartbeat_interval_ms = interval_ms;
    opts.unhealthy_after = 2;
    opts.disconnect_after = 4;
    opts.max_list_wait_ms = 5'000;
    t.start();
  }

  void start_registry() {
    registry = spawn_registry(*t.sys, *t.rt, t.where(GetParam()), opts, routes);
    conn = t.sys->spawn(connection, registry, &out);
    t.run();
  }

  void TearDown() override {
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(conn, caf::exit_reason::user_shutdown);
    registry = nullptr;
    conn = nullptr;
    t.stop();
  }

  /// Lets `ms` pass tick by tick, as a real clock would.
  void pass(int64_t ms) {
    for (int64_t done = 0; done < ms; done += check_ms)
      t.advance(check_ms);
  }

  void send_register(const caf::actor& from, const std::string& id, const std::string& token = "",
                     uint32_t asked_interval_ms = 0) {
    wire::Register reg;
    reg.set_satellite_id(id);
    reg.set_token(token);
    reg.set_heartbeat_interval_ms(asked_interval_ms);
    (*reg.mutable_labels())["zone"] = "a";
    caf::anon_send(from, register_atom::value, std::move(reg));
    t.run();
  }

  void heartbeat(const std::string& id) {
    wire::Heartbeat hb;
    hb.set_satellite_id(id);
    caf::anon_send(conn, heartbeat_atom::value, std::move(hb));
    t.run();
  }

  void list(uint64_t after_version, uint32_t wait_ms) {
    caf::anon_send(conn, list_atom::value, after_version, wait_ms);
    t.run();
  }

  /// The route's state as the registry last published it; "" when it has none.
  std::string state_of(const std::string& id) const {
    for (auto& r : *routes->current())
      if (r.id == id)
        return r.state;
    return "";
  }

  void expect_placement() { EXPECT_EQ(t.placement_mismatch(GetParam()), ""); }
};

TEST_P(RegistryActorTest, HeartbeatStatesMoveWithTheClockAndBackOnAHeartbeat) {
  start_registry();
  send_register(conn, "sat-a");
  ASSERT_EQ(out.registered, std::vector<std::string>{"sat-a"});
  EXPECT_EQ(state_of("sat-a"), "healthy");
  // unhealthy_after = 2 missed intervals: not a tick before.
  pass(2 * interval_ms - check_ms);
  EXPECT_EQ(state_of("sat-a"), "healthy");
  pass(check_ms);
  EXPECT_EQ(state_of("sat-a"), "unhealthy");
  heartbeat("sat-a");
  EXPECT_EQ(out.heartbeats_acked, 1u);
  EXPECT_EQ(state_of("sat-a"), "healthy");
  // disconnect_after = 4: unhealthy at 2, disconnected at 4, its connection closed.
  pass(2 * interval_ms);
  EXPECT_EQ(state_of("sat-a"), "unhealthy");
  pass(2 * interval_ms - check_ms);
  EXPECT_EQ(state_of("sat-a"), "unhealthy");
  EXPECT_FALSE(out.closed.has_value());
  pass(check_ms);
  EXPECT_EQ(state_of("sat-a"), "disconnected");
  ASSERT_TRUE(out.closed.has_value());
  EXPECT_EQ(out.closed->code, code::unavailable);
  EXPECT_EQ(out.closed->limit, "server.disconnect_after");
  // Disconnected: a heartbeat is refused (no limit refused it); registering again works.
  heartbeat("sat-a");
  ASSERT_EQ(out.refused.size(), 1u);
  EXPECT_EQ(out.refused[0].code, code::not_found);
  EXPECT_EQ(out.refused[0].limit, "");
  send_register(conn, "sat-a");
  EXPECT_EQ(state_of("sat-a"), "healthy");
  expect_placement();
}

// Issue 14: a satellite may ask for a longer interval than the server's (a large fleet
// beats every 10 s); the server judges it by what it granted, not by its own setting, and
// grants no more than server.max_heartbeat_interval_ms and no less than its own interval.
TEST_P(RegistryActorTest, EachSatelliteIsJudgedByTheIntervalItWasGranted) {
  opts.max_heartbeat_interval_ms = 8 * interval_ms;
  start_registry();
  send_register(conn, "slow", "", 5 * interval_ms);
  seen fast_seen, capped_seen;
  auto fast = t.sys->spawn(connection, registry, &fast_seen);
  auto capped = t.sys->spawn(connection, registry, &capped_seen);
  send_register(fast, "fast", "", 10);  // below the server's: raised to it
  send_register(capped, "capped", "", 60 * interval_ms);  // above the bound: capped
  EXPECT_EQ(out.intervals, std::vector<uint32_t>{5 * interval_ms});
  EXPECT_EQ(fast_seen.intervals, std::vector<uint32_t>{interval_ms});
  EXPECT_EQ(capped_seen.intervals, std::vector<uint32_t>{8 * interval_ms});
  // Four of the server's intervals without a beat: the server's own satellite is
  // disconnected (disconnect_after = 4); the one granted 5 s has not missed one.
  pass(4 * interval_ms);
  EXPECT_EQ(state_of("fast"), "disconnected");
  EXPECT_EQ(state_of("slow"), "healthy");
  EXPECT_EQ(state_of("capped"), "healthy");
  // unhealthy_after = 2 of its own intervals.
  pass(6 * interval_ms - check_ms);
  EXPECT_EQ(state_of("slow"), "healthy");
  pass(check_ms);
  EXPECT_EQ(state_of("slow"), "unhealthy");
  heartbeat("slow");
  EXPECT_EQ(state_of("slow"), "healthy");
  // disconnect_after = 4 of its intervals, told in its own interval.
  pass(20 * interval_ms);
  EXPECT_EQ(state_of("slow"), "disconnected");
  ASSERT_TRUE(out.closed.has_value());
  EXPECT_NE(out.closed->detail.find("intervals of 5000 ms"), std::string::npos)
    << out.closed->detail;
  EXPECT_EQ(state_of("capped"), "unhealthy");  // 3 of its 8 s intervals missed
  pass(2 * interval_ms);
  EXPECT_EQ(state_of("capped"), "disconnected");
  caf::anon_send_exit(fast, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(capped, caf::exit_reason::user_shutdown);
  expect_placement();
}

TEST(ServerConfig, AnIntervalBoundBelowTheServersIntervalIsAnError) {
  auto bad = server_from_config(flat_config{{"server.heartbeat_interval_ms", "2000"},
                                            {"server.max_heartbeat_interval_ms", "1000"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("server.max_heartbeat_interval_ms = 1000: must be at "
                                       "least server.heartbeat_interval_ms (2000)"),
            std::string::npos)
    << bad.error().message();
  auto good = server_from_config(flat_config{{"server.max_heartbeat_interval_ms", "30000"}});
  ASSERT_TRUE(good.ok()) << good.error().message();
  EXPECT_EQ(good->max_heartbeat_interval_ms, 30'000u);
  EXPECT_EQ(server_options{}.max_heartbeat_interval_ms, 60'000u);
  EXPECT_EQ(granted_heartbeat_interval_ms(*good, 0), good->heartbeat_interval_ms);
  EXPECT_EQ(granted_heartbeat_interval_ms(*good, 10'000), 10'000u);
  EXPECT_EQ(granted_heartbeat_interval_ms(*good, 90'000), 30'000u);
}

TEST_P(RegistryActorTest, AHeldListIsAnsweredOnAChange) {
  start_registry();
  send_register(conn, "sat-a");
  list(0, 0);
  ASSERT_EQ(out.lists.size(), 1u);
  auto version = out.lists[0].version();
  list(version, 3'000);
  EXPECT_EQ(out.lists.size(), 1u) << "answered before anything changed";
  heartbeat("sat-a");
  // A burst of changes is answered once, 20 ms after the first.
  heartbeat("sat-a");
  EXPECT_EQ(out.lists.size(), 1u);
  t.advance(20);
  ASSERT_EQ(out.lists.size(), 2u);
  EXPECT_GT(out.lists[1].version(), version);
  ASSERT_EQ(out.lists[1].satellites_size(), 1);
  EXPECT_EQ(out.lists[1].satellites(0).satellite_id(), "sat-a");
  expect_placement();
}

TEST_P(RegistryActorTest, AHeldListIsAnsweredAtTheEndOfItsWait) {
  start_registry();
  send_register(conn, "sat-a");
  list(0, 0);
  auto version = out.lists.at(0).version();
  list(version, 1'500);
  pass(1'500 - check_ms);
  EXPECT_EQ(out.lists.size(), 1u) << "answered before its wait was over";
  pass(check_ms);
  ASSERT_EQ(out.lists.size(), 2u);
  EXPECT_EQ(out.lists[1].version(), version);  // nothing moved: the same list
  EXPECT_EQ(out.lists[1].satellites(0).since_heartbeat_ms(), 1'500u);
  expect_placement();
}

// Registrations and heartbeats reach the registry parsed; its gate must count them by
// their encoded size (4 KiB of labels is 4 KiB against the mailbox's byte bound), not as
// an unknown 16-byte element.
TEST_P(RegistryActorTest, RegistrationsAndHeartbeatsCountTheirEncodedSizeAtTheGate) {
  start_registry();
  wire::Register reg;
  reg.set_satellite_id("sat-a");
  (*reg.mutable_labels())["big"] = std::string(4096, 'x');
  auto r = message_bytes(caf::make_message(register_atom::value, reg).content());
  EXPECT_GE(r, reg.ByteSizeLong());
  EXPECT_LT(r, reg.ByteSizeLong() + 64);
  wire::Heartbeat hb;
  hb.set_satellite_id(std::string(2048, 'y'));
  auto h = message_bytes(caf::make_message(heartbeat_atom::value, hb).content());
  EXPECT_GE(h, hb.ByteSizeLong());
  EXPECT_LT(h, hb.ByteSizeLong() + 64);
}

TEST_P(RegistryActorTest, RefusalsNameTheKeyThatRefusedOrNone) {
  opts.max_satellites = 1;
  opts.satellite_token = "secret";
  start_registry();
  send_register(conn, "sat-a", "wrong");
  ASSERT_EQ(out.refused.size(), 1u);
  EXPECT_EQ(out.refused[0].code, code::unauthenticated);
  EXPECT_EQ(out.refused[0].limit, "server.satellite_token");
  send_register(conn, "sat-a", "secret");
  ASSERT_EQ(out.registered.size(), 1u);
  // The same id from another live connection: no limit refused it.
  seen other_seen;
  auto other = t.sys->spawn(connection, registry, &other_seen);
  send_register(other, "sat-a", "secret");
  ASSERT_EQ(other_seen.refused.size(), 1u);
  EXPECT_EQ(other_seen.refused[0].code, code::permission_denied);
  EXPECT_EQ(other_seen.refused[0].limit, "");
  // Another id: the registry is full of live satellites.
  send_register(other, "sat-b", "secret");
  ASSERT_EQ(other_seen.refused.size(), 2u);
  EXPECT_EQ(other_seen.refused[1].code, code::too_many_connections);
  EXPECT_EQ(other_seen.refused[1].limit, "server.max_satellites");
  EXPECT_EQ(other_seen.refused[1].observed, 2u);
  EXPECT_EQ(other_seen.refused[1].max, 1u);
  // Retry once a silent satellite's place could be free.
  EXPECT_EQ(other_seen.refused[1].retry_after_ms, interval_ms * opts.disconnect_after);
  caf::anon_send_exit(other, caf::exit_reason::user_shutdown);
}

INSTANTIATE_TEST_SUITE_P(Placements, RegistryActorTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IoThread" : "Worker"; });

} // namespace
} // namespace levee::server
