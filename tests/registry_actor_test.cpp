// The satellite registry as one actor, in process and deterministic (deterministic_system.hpp):
// heartbeat states move as the manual clock passes the configured intervals, held list
// requests are answered on a change or at the end of their wait, and refusals name a real
// config key or none. Each test runs with the registry on a worker and placed on the I/O
// loop. A driver actor stands where a satellite's connection stands.

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "actors/message_size.hpp"
#include "net/satellite.pb.h"
#include "server/registry.hpp"
#include "tests/deterministic_system.hpp"

namespace levee::server {
namespace {

// The registry takes registrations and heartbeats parsed, not their wire bytes.
static_assert(test::accepts<registry_actor, register_atom, wire::Register>);
static_assert(test::accepts<registry_actor, heartbeat_atom, wire::Heartbeat>);
static_assert(test::accepts<registry_actor, list_atom, wire::SatellitesRequest>);
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
    [=](list_atom, wire::SatellitesRequest& req) {
      self->request(registry, caf::infinite, list_atom::value, std::move(req))
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
    wire::SatellitesRequest req;
    req.set_after_version(after_version);
    req.set_wait_ms(wait_ms);
    list(std::move(req));
  }

  void list(wire::SatellitesRequest req) {
    caf::anon_send(conn, list_atom::value, std::move(req));
    t.run();
  }

  /// The route's state in the registry's index; "" when it has none.
  std::string state_of(const std::string& id) const {
    auto r = routes->find(id);
    return r ? name_of(r->state) : "";
  }

  void expect_placement() { EXPECT_EQ(t.placement_mismatch(GetParam()), ""); }

  /// Registers `ids` from `from` with `labels`, a batch at a time (the registry's mailbox
  /// is bounded like any other).
  void register_all(const caf::actor& from, const std::vector<std::string>& ids,
                    const label_map& labels = {{"zone", "a"}}) {
    size_t sent = 0;
    for (auto& id : ids) {
      wire::Register reg;
      reg.set_satellite_id(id);
      for (auto& [k, v] : labels)
        (*reg.mutable_labels())[k] = v;
      caf::anon_send(from, register_atom::value, std::move(reg));
      if (++sent % 32 == 0)  // within limits.registry.max_inflight_per_requester
        t.run();
    }
    t.run();
  }

  void heartbeat_all(const std::vector<std::string>& ids) {
    size_t sent = 0;
    for (auto& id : ids) {
      wire::Heartbeat hb;
      hb.set_satellite_id(id);
      caf::anon_send(conn, heartbeat_atom::value, std::move(hb));
      if (++sent % 32 == 0)  // within limits.registry.max_inflight_per_requester
        t.run();
    }
    t.run();
  }

  /// Lets `ms` pass tick by tick while every one of `ids` beats once per interval.
  void pass_beating(int64_t ms, const std::vector<std::string>& ids) {
    for (int64_t done = 0; done < ms; done += check_ms) {
      t.advance(check_ms);
      if ((done + check_ms) % interval_ms == 0)
        heartbeat_all(ids);
    }
  }
};

std::vector<std::string> ids_of(size_t n, const std::string& prefix = "sat-") {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    auto num = std::to_string(i);
    out.push_back(prefix + std::string(6 - num.size(), '0') + num);
  }
  return out;
}

/// What the registry and its index did between two readings of their counters.
struct work_done {
  uint64_t routes_written, postings_written, routes_examined, deadlines_examined;
  static work_done of(const satellite_routes& r) {
    auto& w = r.work();
    return {w.routes_written.load(), w.postings_written.load(), w.routes_examined.load(),
            w.deadlines_examined.load()};
  }
  work_done operator-(const work_done& o) const {
    return {routes_written - o.routes_written, postings_written - o.postings_written,
            routes_examined - o.routes_examined, deadlines_examined - o.deadlines_examined};
  }
  bool operator==(const work_done& o) const {
    return routes_written == o.routes_written && postings_written == o.postings_written
           && routes_examined == o.routes_examined && deadlines_examined == o.deadlines_examined;
  }
};

std::ostream& operator<<(std::ostream& os, const work_done& w) {
  return os << "{routes_written " << w.routes_written << ", postings_written "
            << w.postings_written << ", routes_examined " << w.routes_examined
            << ", deadlines_examined " << w.deadlines_examined << "}";
}

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


// The registry's cost per event is counted, not timed: what one registration, one
// heartbeat, one state change and one disconnect write into the index and look at must
// be the same with 100 and with 10,000 satellites registered, and the health check must
// look at each satellite a bounded number of times per interval, whatever the fleet.
TEST_P(RegistryActorTest, EachEventCostsTheSameAt100And10000Satellites) {
  opts.max_satellites = 20'000;
  opts.max_registrations_per_sec = 1'000'000;
  start_registry();
  struct costs {
    work_done registration, heartbeat, state_change, disconnect, per_interval;
  };
  std::vector<std::string> everyone;  // every satellite that beats
  // Grows the fleet by `n` (registered from `conn`), lets it beat, and measures.
  auto measure = [&](size_t n, const std::string& prefix) {
    auto fleet = ids_of(n, prefix);
    register_all(conn, fleet);
    everyone.insert(everyone.end(), fleet.begin(), fleet.end());
    pass_beating(2 * interval_ms, everyone);  // every bucket settled
    costs c;
    auto before = work_done::of(*routes);
    pass_beating(4 * interval_ms, everyone);
    c.per_interval = work_done::of(*routes) - before;
    c.per_interval.deadlines_examined /= 4;  // per interval
    // One more satellite, on a connection of its own.
    seen lone_seen;
    auto lone = t.sys->spawn(connection, registry, &lone_seen);
    before = work_done::of(*routes);
    send_register(lone, prefix + "lone");
    c.registration = work_done::of(*routes) - before;
    EXPECT_EQ(lone_seen.registered.size(), 1u);
    before = work_done::of(*routes);
    heartbeat(fleet[n / 2]);
    c.heartbeat = work_done::of(*routes) - before;
    // Its connection closes: it is disconnected, found by its connection.
    before = work_done::of(*routes);
    caf::anon_send_exit(lone, caf::exit_reason::user_shutdown);
    t.run();
    c.disconnect = work_done::of(*routes) - before;
    EXPECT_EQ(state_of(prefix + "lone"), "disconnected");
    // One satellite of the fleet falls silent while the others beat: its state change.
    auto silent = fleet[n / 3];
    auto rest = everyone;
    rest.erase(std::find(rest.begin(), rest.end(), silent));
    before = work_done::of(*routes);
    pass_beating(2 * interval_ms, rest);
    c.state_change = work_done::of(*routes) - before;
    EXPECT_EQ(state_of(silent), "unhealthy");
    heartbeat_all({silent});
    return c;
  };
  auto small = measure(100, "a-");
  auto large = measure(10'000, "b-");  // 10,100 registered by then
  EXPECT_EQ(small.registration, large.registration);
  EXPECT_EQ(large.registration.routes_written, 1u) << "a registration writes its own route";
  EXPECT_EQ(small.heartbeat, large.heartbeat);
  EXPECT_EQ(large.heartbeat, (work_done{0, 0, 0, 0})) << "a heartbeat writes no route";
  EXPECT_EQ(small.disconnect, large.disconnect);
  EXPECT_EQ(large.disconnect.routes_written, 1u);
  EXPECT_EQ(large.disconnect.deadlines_examined, 0u) << "found by its connection, not a scan";
  // The state change: one route written; the health check looked only at due buckets.
  EXPECT_EQ(small.state_change.routes_written, 1u);
  EXPECT_EQ(large.state_change.routes_written, 1u);
  // The health check's work per satellite and interval is the same (and small) for both:
  // each satellite comes due about once per interval while it beats.
  auto per_satellite = [](const work_done& w, size_t n) {
    return static_cast<double>(w.deadlines_examined) / static_cast<double>(n);
  };
  EXPECT_LE(per_satellite(small.per_interval, 100), 1.5);
  EXPECT_LE(per_satellite(large.per_interval, 10'100), 1.5);
  EXPECT_NEAR(per_satellite(small.per_interval, 100), per_satellite(large.per_interval, 10'100),
              0.1);
  EXPECT_EQ(large.per_interval.routes_written, 0u) << "punctual beats write no route";
}

// A selector is answered from the label index: a query for 10 racked satellites among
// thousands looks at those 10, and finds exactly the healthy ones a scan would.
TEST_P(RegistryActorTest, ALabelSelectorIsAnsweredFromTheIndex) {
  opts.max_satellites = 10'000;
  opts.max_registrations_per_sec = 1'000'000;
  start_registry();
  auto fleet = ids_of(3'000);
  register_all(conn, fleet, {{"zone", "a"}});
  std::vector<std::string> racked;
  for (size_t i = 0; i < 10; ++i)
    racked.push_back("rack-" + std::to_string(i));
  register_all(conn, racked, {{"zone", "a"}, {"rack", "r1"}});
  register_all(conn, {"rack-b"}, {{"zone", "b"}, {"rack", "r1"}});
  // One racked satellite falls silent: unhealthy, not selected.
  std::vector<std::string> beating = fleet;
  beating.insert(beating.end(), racked.begin() + 1, racked.end());
  beating.push_back("rack-b");
  pass_beating(2 * interval_ms, beating);
  ASSERT_EQ(state_of("rack-0"), "unhealthy");
  auto select = [&](const label_map& selector, size_t* examined) {
    wire::QueryRequest q;
    for (auto& [k, v] : selector)
      (*q.mutable_selector())[k] = v;
    auto before = routes->work().routes_examined.load();
    auto refs = routes->lookup(q);
    *examined = routes->work().routes_examined.load() - before;
    std::vector<std::string> out;
    if (refs)
      for (auto& r : *refs)
        out.push_back(r.id);
    return out;
  };
  size_t examined = 0;
  std::vector<std::string> want(racked.begin() + 1, racked.end());
  EXPECT_EQ(select({{"zone", "a"}, {"rack", "r1"}}, &examined), want);
  EXPECT_EQ(examined, 11u) << "the rack's posting, not the fleet";
  want.push_back("rack-b");  // in id order
  EXPECT_EQ(select({{"rack", "r1"}}, &examined), want);
  EXPECT_EQ(examined, 11u);
  EXPECT_EQ(select({{"rack", "r9"}}, &examined), std::vector<std::string>{});
  EXPECT_EQ(examined, 0u);
  EXPECT_EQ(select({{"zone", "a"}}, &examined).size(), 3'009u);
  // The list filters with the same index.
  wire::SatellitesRequest req;
  (*req.mutable_selector())["rack"] = "r1";
  req.add_states(wire::SatelliteInfo::healthy);
  list(req);
  ASSERT_EQ(out.lists.size(), 1u);
  std::vector<std::string> listed;
  for (auto& s : out.lists[0].satellites())
    listed.push_back(s.satellite_id());
  EXPECT_EQ(listed, want);
  EXPECT_EQ(out.lists[0].next_after_id(), "");
  EXPECT_EQ(out.lists[0].registered(), 3'011u);
  EXPECT_EQ(out.lists[0].unhealthy(), 1u);
  EXPECT_EQ(out.lists[0].healthy(), 3'010u);
  req.clear_selector();
  req.clear_states();
  req.add_states(wire::SatelliteInfo::unhealthy);
  list(req);
  ASSERT_EQ(out.lists.size(), 2u);
  ASSERT_EQ(out.lists[1].satellites_size(), 1);
  EXPECT_EQ(out.lists[1].satellites(0).satellite_id(), "rack-0");
}

// A server that falls behind (its tick comes seconds late, the beats that came meanwhile
// still unread) does not count its own lateness against punctual satellites; a satellite
// that really fell silent is still found once the server keeps time again.
// A fan-out hands the proxyer the matching satellites it left out for not being healthy
// (QueryStats.skipped): the first 64 in id order, all of them counted; when none is
// healthy the refusal names the first few.
TEST_P(RegistryActorTest, AFanOutHandsOverTheMatchingSatellitesItSkipped) {
  opts.max_registrations_per_sec = 1'000'000;
  start_registry();
  auto silent = ids_of(70, "c-");
  register_all(conn, silent, {{"zone", "c"}});
  register_all(conn, {"c-live"}, {{"zone", "c"}});
  register_all(conn, {"d-live"}, {{"zone", "d"}});
  pass_beating(2 * interval_ms, {"c-live", "d-live"});
  ASSERT_EQ(state_of("c-000000"), "unhealthy");
  ASSERT_EQ(state_of("c-live"), "healthy");
  wire::QueryRequest q;
  (*q.mutable_selector())["zone"] = "c";
  skipped_satellites skipped;
  auto refs = routes->lookup(q, &skipped);
  ASSERT_TRUE(refs);
  ASSERT_EQ(refs->size(), 1u);
  EXPECT_EQ((*refs)[0].id, "c-live");
  EXPECT_EQ(skipped.total, 70u);
  ASSERT_EQ(skipped.listed.size(), skipped_satellites::max_listed);
  EXPECT_EQ(skipped.listed.front().first, "c-000000");
  EXPECT_EQ(skipped.listed.front().second, satellite_health::unhealthy);
  EXPECT_EQ(skipped.listed.back().first, "c-000063");
  // Another zone's silent satellites are not this selector's business.
  (*q.mutable_selector())["zone"] = "d";
  skipped_satellites none_skipped;
  ASSERT_TRUE(routes->lookup(q, &none_skipped));
  EXPECT_EQ(none_skipped.total, 0u);
  EXPECT_TRUE(none_skipped.listed.empty());
  // All of zone c silent: refused, the first few named with their state.
  pass_beating(2 * interval_ms, {"d-live"});
  (*q.mutable_selector())["zone"] = "c";
  auto refused = routes->lookup(q);
  ASSERT_FALSE(refused);
  auto why = rejection_from(refused.error());
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->code, code::unavailable);
  // (unhealthy or disconnected by now: the silent ones are 4 intervals quiet)
  EXPECT_NE(why->detail.find("71 satellites match, none of them healthy: c-000000 ("),
            std::string::npos)
    << why->detail;
  EXPECT_NE(why->detail.find("c-000004 ("), std::string::npos) << why->detail;
  EXPECT_EQ(why->detail.find("c-000005"), std::string::npos)
    << why->detail;
}

TEST_P(RegistryActorTest, ALateServerDoesNotFlipPunctualSatellites) {
  start_registry();
  auto fleet = ids_of(20);
  register_all(conn, fleet);
  pass_beating(3 * interval_ms, fleet);
  // The server stalls for longer than disconnect_after intervals: its tick comes late.
  t.advance(5 * interval_ms);
  for (auto& id : fleet)
    EXPECT_EQ(state_of(id), "healthy") << id;
  EXPECT_FALSE(out.closed.has_value());
  list(0, 0);
  ASSERT_EQ(out.lists.size(), 1u);
  EXPECT_EQ(out.lists[0].late_ticks(), 1u) << "the stall is counted where operators see it";
  // Then it reads the beats that waited; all punctual satellites beat on.
  heartbeat_all(fleet);
  auto silent = fleet.back();
  fleet.pop_back();
  pass_beating(2 * interval_ms - check_ms, fleet);
  for (auto& id : fleet)
    EXPECT_EQ(state_of(id), "healthy") << id;
  EXPECT_EQ(state_of(silent), "healthy");  // its beat came just after the stall
  pass_beating(check_ms, fleet);
  EXPECT_EQ(state_of(silent), "unhealthy");
  pass_beating(2 * interval_ms, fleet);
  EXPECT_EQ(state_of(silent), "disconnected");
  for (auto& id : fleet)
    EXPECT_EQ(state_of(id), "healthy") << id;
  expect_placement();
}

// A herd of registrations (a fleet reconnecting after a server restart) is admitted at
// server.max_registrations_per_sec; the rest are refused with rate_limited and a
// retry_after that spreads them over the following seconds instead of all at one time.
TEST_P(RegistryActorTest, AHerdOfRegistrationsIsAdmittedAtABoundedRate) {
  opts.max_registrations_per_sec = 10;
  opts.heartbeat_interval_ms = 60'000;  // nobody turns unhealthy while the herd waits
  start_registry();
  auto herd = ids_of(50);
  register_all(conn, herd);
  ASSERT_EQ(out.registered.size(), 10u) << "one second's burst";
  ASSERT_EQ(out.refused.size(), 40u);
  uint64_t previous = 0;
  for (auto& r : out.refused) {
    EXPECT_EQ(r.code, code::rate_limited);
    EXPECT_EQ(r.limit, "server.max_registrations_per_sec");
    EXPECT_EQ(r.max, 10u);
    EXPECT_GT(r.retry_after_ms, previous) << "each later than the one before";
    previous = r.retry_after_ms;
  }
  EXPECT_LE(previous, 4'200u) << "40 more at 10 a second";
  // Each comes back when it was told: all are admitted, within the rate.
  std::set<std::string> admitted(out.registered.begin(), out.registered.end());
  std::multimap<int64_t, std::string> waiting;
  size_t k = 0;
  for (auto& id : herd)
    if (admitted.count(id) == 0)
      waiting.emplace(static_cast<int64_t>(out.refused.at(k++).retry_after_ms), id);
  int64_t elapsed = 0;
  size_t refused_before = out.refused.size();
  while (!waiting.empty() && elapsed < 10'000) {
    t.advance(10);
    elapsed += 10;
    std::vector<std::string> now_due;
    while (!waiting.empty() && waiting.begin()->first <= elapsed) {
      now_due.push_back(waiting.begin()->second);
      waiting.erase(waiting.begin());
    }
    auto refused_now = out.refused.size();
    auto registered_now = out.registered.size();
    register_all(conn, now_due);
    std::set<std::string> in(out.registered.begin() + static_cast<std::ptrdiff_t>(registered_now),
                             out.registered.end());
    size_t r = refused_now;
    for (auto& id : now_due)  // told again: later
      if (in.count(id) == 0)
        waiting.emplace(elapsed + static_cast<int64_t>(out.refused.at(r++).retry_after_ms), id);
  }
  EXPECT_EQ(out.registered.size(), 50u);
  EXPECT_LE(out.refused.size() - refused_before, 5u) << "spread, they rarely collide";
  EXPECT_LE(elapsed, 4'300);
}

// Paging: every satellite registered throughout is listed exactly once across the pages,
// in id order, while others register and disconnect between the pages.
TEST_P(RegistryActorTest, PagesListEverySatelliteExactlyOnceWhileOthersRegister) {
  opts.max_satellites = 10'000;
  opts.max_registrations_per_sec = 1'000'000;
  opts.max_list_page = 64;
  start_registry();
  auto fleet = ids_of(500, "m-");
  register_all(conn, fleet);
  ASSERT_EQ(out.registered.size(), 500u) << (out.refused.empty() ? "" : out.refused[0].to_string());
  std::map<std::string, int> listed;
  std::string after;
  std::string last;
  size_t pages = 0;
  wire::SatellitesRequest req;
  req.set_limit(100);  // above the server's bound: 64 per page
  for (;;) {
    req.set_after_id(after);
    list(req);
    ASSERT_EQ(out.lists.size(), ++pages);
    auto& page = out.lists.back();
    EXPECT_LE(page.satellites_size(), 64);
    for (auto& s : page.satellites()) {
      EXPECT_GT(s.satellite_id(), last) << "in id order";
      last = s.satellite_id();
      ++listed[s.satellite_id()];
    }
    if (page.next_after_id().empty())
      break;
    after = page.next_after_id();
    // Meanwhile: some register before the cursor, some after it, one disconnects.
    auto n = std::to_string(pages);
    register_all(conn, {"a-" + n, "z-" + n});
    if (pages < 5)
      register_all(conn, {"m-000" + n + "x"});
    ASSERT_LT(pages, 50u);
  }
  for (auto& id : fleet)
    EXPECT_EQ(listed[id], 1) << id;
  for (auto& [id, times] : listed)
    EXPECT_EQ(times, 1) << id;
  // Those after the cursor are listed, those before it are not.
  EXPECT_EQ(listed.count("a-1"), 0u);
  EXPECT_EQ(listed.count("z-1"), 1u);
  EXPECT_GE(pages, 500u / 64);
  // The counts cover the whole registry.
  EXPECT_EQ(out.lists.back().registered(), 500u + 2 * (pages - 1) + std::min<size_t>(pages - 1, 4));
}

// A page also ends at server.max_list_page_bytes (satellites with large labels), and a held
// request is answered with its own page and filters: one render per distinct view.
TEST_P(RegistryActorTest, APageEndsAtItsBytesAndHeldRequestsKeepTheirViews) {
  opts.max_list_page_bytes = 16 * 1024;
  start_registry();
  register_all(conn, ids_of(20), {{"zone", "a"}, {"big", std::string(4000, 'x')}});
  register_all(conn, {"small"}, {{"zone", "b"}});
  list(0, 0);
  ASSERT_EQ(out.lists.size(), 1u);
  auto& page = out.lists[0];
  EXPECT_GE(page.satellites_size(), 4);
  EXPECT_LE(page.satellites_size(), 5);
  EXPECT_EQ(page.next_after_id(), page.satellites(page.satellites_size() - 1).satellite_id());
  auto version = page.version();
  // Two held requests, two views: each gets its own.
  wire::SatellitesRequest only_b;
  (*only_b.mutable_selector())["zone"] = "b";
  only_b.set_after_version(version);
  only_b.set_wait_ms(3'000);
  list(only_b);
  wire::SatellitesRequest second_page;
  second_page.set_after_id(page.next_after_id());
  second_page.set_limit(2);
  second_page.set_after_version(version);
  second_page.set_wait_ms(3'000);
  list(second_page);
  ASSERT_EQ(out.lists.size(), 1u) << "answered before anything changed";
  heartbeat("small");
  t.advance(20);
  ASSERT_EQ(out.lists.size(), 3u);
  ASSERT_EQ(out.lists[1].satellites_size(), 1);
  EXPECT_EQ(out.lists[1].satellites(0).satellite_id(), "small");
  ASSERT_EQ(out.lists[2].satellites_size(), 2);
  EXPECT_GT(out.lists[2].satellites(0).satellite_id(), page.next_after_id());
  expect_placement();
}

INSTANTIATE_TEST_SUITE_P(Placements, RegistryActorTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "IoThread" : "Worker"; });

} // namespace
} // namespace levee::server
