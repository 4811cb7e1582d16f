// Replication between partition actors (broker/README.md "Replicas") in one real actor
// system: each "broker" is a partition actor on its own real segment log, behind a real
// listener on 127.0.0.1 that serves the replication calls of the "broker" target, and
// followers fetch through their fetchers with the real C++ client. The metadata is played
// by a small stand-in for the controller: it applies an isr_change compare-and-set on the
// partition epoch and tells every partition actor its new role, as the Raft-backed
// controller does (what the multi-process cluster tests cover end to end).

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "broker/leader.hpp"
#include "broker/replica_calls.hpp"
#include "levee/client.hpp"
#include "net/listener.hpp"
#include "tests/test_support.hpp"

namespace levee::broker::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;
using levee::test::wait_until;

/// The partition's metadata as the stand-in holds it.
struct metadata {
  std::mutex mtx;
  partition_role truth;  // `self` unused
  std::vector<leader_actor> actors;  // by broker id - 1 (null: not running)
  std::vector<std::string> addresses;
  uint64_t isr_changes = 0;

  std::vector<uint64_t> isr() {
    std::lock_guard<std::mutex> lock{mtx};
    return truth.isr;
  }
};

void tell_roles_locked(metadata& md) {
  for (size_t i = 0; i < md.actors.size(); ++i)
    if (md.actors[i]) {
      auto r = md.truth;
      r.self = i + 1;
      r.leader_address = md.truth.leader == 0 ? "" : md.addresses[md.truth.leader - 1];
      caf::anon_send(md.actors[i], role_atom::value, std::move(r));
    }
}

/// The controller's part: ISR changes compare-and-set on the partition epoch, then every
/// replica hears its new role.
controller_actor::behavior_type metadata_stand_in(controller_actor::pointer self,
                                                  std::shared_ptr<metadata> md) {
  (void)self;
  return {
    [](wire_request_atom, const std::string&) -> caf::result<std::string> {
      return to_error(rejection::of(code::bad_request).detail("not in this test"));
    },
    [](applied_atom) {},
    [](proposed_atom, const std::string&, int32_t, const std::string&) {},
    [](tick_atom) {},
    [md](isr_atom, const isr_change& c) {
      std::lock_guard<std::mutex> lock{md->mtx};
      if (c.expected_partition_epoch != md->truth.partition_epoch || c.leader != md->truth.leader)
        return;  // decided on an older view
      md->truth.isr = c.isr;
      ++md->truth.partition_epoch;
      ++md->isr_changes;
      tell_roles_locked(*md);
    },
    // Not used by these tests (the stream and membership calls of the real controller).
    [](propose_atom, const std::string&) -> caf::result<uint64_t> {
      return to_error(rejection::of(code::bad_request).detail("not in this test"));
    },
    [](answered_atom, uint64_t, uint64_t, const caf::error&) {},
    [](watch_atom, const broker_actor&) {},
    [](member_changed_atom, uint64_t, const caf::error&) {},
    [](stop_atom) { return true; },
  };
}

/// "broker" on a replica's listener: the replication calls, to its partition actor.
wire_request_target::behavior_type replica_target(limited<wire_request_target::base>* self,
                                                  std::shared_ptr<metadata> md, size_t index) {
  return {
    [=](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      wire::BrokerCall call;
      if (!call.ParseFromString(payload) || !is_replica_call(call))
        return to_error(rejection::of(code::bad_request).detail("replication calls only"));
      leader_actor partition;
      {
        std::lock_guard<std::mutex> lock{md->mtx};
        partition = md->actors[index];
      }
      if (!partition)
        return to_error(rejection::of(code::unavailable).detail("not running"));
      return forward_replica_call(self, partition, call);
    },
  };
}

streams::stream_config replicated_stream() {
  streams::stream_config c;
  c.name = "orders";
  c.subject = "orders.>";
  c.fsync = persistence::fsync_policy::none;  // one process: durability is not under test
  c.max_segment_bytes = 64 * 1024;
  c.retention_max_bytes = 1ull << 30;
  return c;
}

struct replica_node {
  std::shared_ptr<streams::partition_log> log;
  leader_actor actor;
  std::shared_ptr<partition_gauges> gauges = std::make_shared<partition_gauges>();
  std::shared_ptr<broker_stats> stats = std::make_shared<broker_stats>();
  std::shared_ptr<net::server_context> ctx;
  net::listener listener;
  wire_request_target target;
};

struct ReplicationFixture : ::testing::Test {
  fs::path dir;
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::shared_ptr<metadata> md = std::make_shared<metadata>();
  controller_actor controller;
  std::vector<replica_node> nodes;
  replication_limits replication;

  void SetUp() override {
    dir = fs::temp_directory_path()
          / ("levee-replication-test-" + std::to_string(::getpid()) + "-"
             + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    cfg = std::make_unique<caf::actor_system_config>();
    cfg->load<caf::io::middleman>();
    cfg->set("scheduler.max-threads", 4);
    add_error_category(*cfg);
    sys = std::make_unique<caf::actor_system>(*cfg);
    rt = std::make_unique<runtime>(limits_config{});
    controller = sys->spawn(metadata_stand_in, md);
    replication.fetch_max_wait_ms = 200;
    replication.max_lag_ms = 400;
  }

  void TearDown() override {
    for (size_t i = 0; i < nodes.size(); ++i)
      stop_node(i + 1);
    for (auto& n : nodes) {
      if (n.ctx && n.listener.acceptor)
        net::stop_listener(n.listener, *n.ctx);
      if (n.target)
        caf::anon_send_exit(n.target, caf::exit_reason::user_shutdown);
    }
    caf::anon_send_exit(controller, caf::exit_reason::user_shutdown);
    controller = nullptr;
    auto begun = steady_clock::now();
    sys = nullptr;  // waits for every actor, the fetchers' threads included
    // Stopping never waits out a held fetch (fetcher.hpp): well under one fetch wait.
    EXPECT_LT(duration_cast<milliseconds>(steady_clock::now() - begun).count(), 2000);
    rt = nullptr;
    fs::remove_all(dir);
  }

  /// Brokers 1..n, each with a listener; none running a partition actor yet.
  void brokers(size_t n) {
    nodes.resize(n);
    md->actors.resize(n);
    md->addresses.resize(n);
    for (size_t i = 0; i < n; ++i) {
      auto& node = nodes[i];
      node.ctx = std::make_shared<net::server_context>(net::listener_config{});
      node.target = spawn_limited_fun(*sys, *rt, "broker", placement::worker(), replica_target, md, i);
      node.ctx->expose("broker", caf::actor_cast<caf::actor>(node.target));
      auto l = net::start_listener(*sys, node.ctx, "127.0.0.1", 0);
      ASSERT_TRUE(l.ok()) << l.error().to_string();
      node.listener = *l;
      md->addresses[i] = "127.0.0.1:" + std::to_string(node.listener.port);
    }
  }

  /// Opens broker `id`'s log and spawns its partition actor; it hears its role at once.
  void start_node(uint64_t id) {
    auto& node = nodes[id - 1];
    streams::partition_options o;
    o.dir = (dir / ("broker-" + std::to_string(id))).string();
    o.config = replicated_stream();
    auto log = streams::partition_log::open(o);
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    node.log = std::shared_ptr<streams::partition_log>(std::move(*log));
    leader_setup s;
    s.log = node.log.get();
    s.keep_alive = node.log;
    s.stream = "orders";
    s.partition = 0;
    s.max_subscriptions = 16;
    s.maintenance_interval_ms = 60'000;
    s.gauges = node.gauges;
    s.stats = node.stats;
    s.clock = &rt->clock();
    s.controller = controller;
    s.replication = replication;
    s.node_id = "broker-" + std::to_string(id);
    fill_gauges(*node.log, *node.gauges);
    auto limits = rt->config().for_kind("stream");
    limits.max_inflight_per_requester = std::max(limits.max_inflight_per_requester,
                                                 limits.mailbox_capacity);
    node.actor = spawn_leader(*sys, *rt, limits, std::move(s));
    std::lock_guard<std::mutex> lock{md->mtx};
    md->actors[id - 1] = node.actor;
    tell_roles_locked(*md);
  }

  /// Stops broker `id`'s partition actor and closes its log (as a broker stopping).
  void stop_node(uint64_t id) {
    auto& node = nodes[id - 1];
    if (!node.actor)
      return;
    {
      std::lock_guard<std::mutex> lock{md->mtx};
      md->actors[id - 1] = nullptr;
    }
    caf::scoped_actor self{*sys};
    self->request(node.actor, seconds(30), stop_atom::value, false)
      .receive([](bool) {}, [](caf::error&) {});
    node.actor = nullptr;
    // The actor ended: nothing else uses the log; wait until its last reference goes.
    EXPECT_TRUE(wait_until([&] { return node.log.use_count() == 1; }));
    node.log = nullptr;
  }

  /// The metadata says `leader` leads at a new epoch with `isr`.
  void elect(uint64_t leader, std::vector<uint64_t> replicas, std::vector<uint64_t> isr,
             uint32_t min_insync) {
    std::lock_guard<std::mutex> lock{md->mtx};
    md->truth.leader = leader;
    ++md->truth.leader_epoch;
    ++md->truth.partition_epoch;
    md->truth.replicas = std::move(replicas);
    md->truth.isr = std::move(isr);
    md->truth.min_insync_replicas = min_insync;
    tell_roles_locked(*md);
  }

  struct outcome {
    std::optional<append_acks> acks;
    std::optional<rejection> refused;
  };

  outcome append(uint64_t id, const std::vector<std::string>& bodies, ack_level ack,
                 milliseconds bound = seconds(30), const std::string& id_prefix = {}) {
    append_batch b;
    b.ack = ack;
    for (size_t i = 0; i < bodies.size(); ++i)
      b.messages.push_back(owned_message{{}, id_prefix.empty() ? "" : id_prefix + bodies[i],
                                         bodies[i], {}});
    outcome out;
    caf::scoped_actor self{*sys};
    self->request(nodes[id - 1].actor, bound, append_atom::value, std::move(b))
      .receive([&](append_acks& a) { out.acks = std::move(a); },
               [&](caf::error& err) {
                 out.refused = rejection_from(err).value_or(
                   rejection::of(code::deadline_exceeded).detail(sys->render(err)));
               });
    return out;
  }

  uint64_t end_of(uint64_t id) { return nodes[id - 1].gauges->next_offset.load(); }
  uint64_t high_water_of(uint64_t id) { return nodes[id - 1].gauges->high_water.load(); }

  /// Every segment file of broker `id`, concatenated in offset order.
  std::string segment_bytes(uint64_t id) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(dir / ("broker-" + std::to_string(id))))
      if (e.path().extension() == ".log")
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::string all;
    for (auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    return all;
  }
};

std::vector<std::string> numbered(const std::string& prefix, int from, int n) {
  std::vector<std::string> out;
  for (int i = from; i < from + n; ++i)
    out.push_back(prefix + std::to_string(i) + std::string(static_cast<size_t>(i % 200), 'p'));
  return out;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

TEST_F(ReplicationFixture, FollowersCatchUpByteIdenticalAndRefuseClientsWithTheLeadersAddress) {
  brokers(3);
  elect(1, {1, 2, 3}, {1}, 1);
  start_node(1);
  for (int i = 0; i < 40; ++i)  // 20,000 messages, ~2.5 MB, before any follower runs
    ASSERT_TRUE(append(1, numbered("m", i * 500, 500), ack_level::leader).acks);
  ASSERT_EQ(end_of(1), 20'000u);
  auto begun = steady_clock::now();
  start_node(2);
  start_node(3);
  ASSERT_TRUE(wait_until([&] { return end_of(2) == 20'000 && end_of(3) == 20'000; }));
  auto catch_up_ms = duration_cast<milliseconds>(steady_clock::now() - begun).count();
  std::printf("catch-up: two followers copied 20,000 messages (%.1f MB) in %lld ms\n",
              static_cast<double>(nodes[0].gauges->size_bytes.load()) / 1e6,
              static_cast<long long>(catch_up_ms));
  // Caught up: the leader asks for them back into the ISR.
  ASSERT_TRUE(wait_until([&] { return md->isr().size() == 3; }));
  EXPECT_EQ(nodes[0].stats->isr_expands.load(), 2u);
  EXPECT_GT(nodes[0].stats->fetches_served.load(), 0u);
  EXPECT_EQ(nodes[1].stats->bytes_copied.load(), nodes[0].gauges->size_bytes.load());

  auto refused = append(2, {"x"}, ack_level::leader);
  ASSERT_TRUE(refused.refused);
  EXPECT_EQ(refused.refused->code, code::not_leader);
  EXPECT_NE(refused.refused->detail.find(md->addresses[0]), std::string::npos)
    << refused.refused->detail;
  // The followers learn the mark from the leader.
  ASSERT_TRUE(wait_until([&] { return high_water_of(2) == 20'000 && high_water_of(3) == 20'000; }));
  for (uint64_t id : {1, 2, 3})
    stop_node(id);
  auto leader_bytes = segment_bytes(1);
  EXPECT_EQ(segment_bytes(2), leader_bytes);
  EXPECT_EQ(segment_bytes(3), leader_bytes);
}

TEST_F(ReplicationFixture, AckAllIsAnsweredOnceEveryIsrMemberHasTheMessage) {
  brokers(3);
  elect(1, {1, 2, 3}, {1, 2, 3}, 2);
  for (uint64_t id : {1, 2, 3})
    start_node(id);
  std::vector<double> ack_all_us;
  for (int i = 0; i < 300; ++i) {
    auto t0 = steady_clock::now();
    auto r = append(1, {"all-" + std::to_string(i)}, ack_level::all);
    ack_all_us.push_back(duration_cast<nanoseconds>(steady_clock::now() - t0).count() / 1e3);
    ASSERT_TRUE(r.acks) << r.refused->to_string();
    auto needed = r.acks->acks[0].offset + 1;
    // Answered only once the leader knew both followers had it: each wrote it (and its
    // gauges) before fetching past it.
    EXPECT_GE(end_of(2), needed);
    EXPECT_GE(end_of(3), needed);
    EXPECT_GE(high_water_of(1), needed);
  }
  std::printf("ack = all, R3, in process over loopback: p50 %.0f us, p99 %.0f us (300 sequential)\n",
              percentile(ack_all_us, 0.5), percentile(ack_all_us, 0.99));
  std::vector<double> ack_leader_us;
  for (int i = 0; i < 300; ++i) {
    auto t0 = steady_clock::now();
    ASSERT_TRUE(append(1, {"leader-" + std::to_string(i)}, ack_level::leader).acks);
    ack_leader_us.push_back(duration_cast<nanoseconds>(steady_clock::now() - t0).count() / 1e3);
  }
  std::printf("ack = leader, same partition: p50 %.0f us, p99 %.0f us\n",
              percentile(ack_leader_us, 0.5), percentile(ack_leader_us, 0.99));

  // A follower that stops fetching holds ack = all until it leaves the ISR (max lag), and
  // then the publish is answered: two of three are still min_insync_replicas.
  stop_node(3);
  auto t0 = steady_clock::now();
  auto held = append(1, {"waits"}, ack_level::all);
  auto waited = duration_cast<milliseconds>(steady_clock::now() - t0).count();
  ASSERT_TRUE(held.acks) << held.refused->to_string();
  EXPECT_GE(waited, static_cast<long long>(replication.max_lag_ms) / 2);
  EXPECT_EQ(md->isr(), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(nodes[0].stats->isr_shrinks.load(), 1u);
}

TEST_F(ReplicationFixture, BelowMinInsyncAckAllIsRefusedThenRecoversWhenAReplicaRejoins) {
  brokers(3);
  elect(1, {1, 2, 3}, {1, 2, 3}, 2);
  for (uint64_t id : {1, 2, 3})
    start_node(id);
  ASSERT_TRUE(append(1, numbered("a", 0, 10), ack_level::all).acks);
  stop_node(2);
  stop_node(3);
  // Both lag past replica_max_lag_ms: the ISR shrinks to the leader alone.
  ASSERT_TRUE(wait_until([&] { return md->isr() == std::vector<uint64_t>{1}; }));
  auto refused = append(1, {"too-few"}, ack_level::all);
  ASSERT_TRUE(refused.refused);
  EXPECT_EQ(refused.refused->code, code::insufficient_replicas);
  EXPECT_EQ(refused.refused->limit, "stream.min_insync_replicas");
  EXPECT_EQ(refused.refused->observed, 1u);
  EXPECT_EQ(refused.refused->max, 2u);
  EXPECT_EQ(refused.refused->retry_after_ms, 1000u);
  EXPECT_GE(nodes[0].stats->rejected(code::insufficient_replicas), 1u);
  // ack = leader still works, and nothing refused was stored.
  auto end = end_of(1);
  ASSERT_TRUE(append(1, numbered("b", 0, 5), ack_level::leader).acks);
  EXPECT_EQ(end_of(1), end + 5);

  // Broker 2 comes back, catches up, rejoins: ack = all works again.
  start_node(2);
  ASSERT_TRUE(wait_until([&] { return md->isr() == std::vector<uint64_t>{1, 2}; }));
  auto again = append(1, {"enough"}, ack_level::all);
  ASSERT_TRUE(again.acks) << again.refused->to_string();
  EXPECT_EQ(nodes[0].stats->isr_expands.load(), 1u);
  EXPECT_GE(nodes[0].stats->isr_shrinks.load(), 1u);  // one change, or one per follower
}

TEST_F(ReplicationFixture, ADivergentTailAboveTheMarkIsTruncatedByEpochAfterALeaderChange) {
  brokers(2);
  elect(1, {1, 2}, {1, 2}, 1);
  start_node(1);
  start_node(2);
  ASSERT_TRUE(append(1, numbered("common", 0, 100), ack_level::all).acks);
  ASSERT_TRUE(wait_until([&] { return end_of(2) == 100; }));
  stop_node(2);
  // Broker 1 takes 10 more that nobody copies: above the mark, never acknowledged as all.
  ASSERT_TRUE(append(1, numbered("lost", 0, 10), ack_level::leader).acks);
  EXPECT_EQ(end_of(1), 110u);
  stop_node(1);
  // Broker 1 "died"; 2 is elected (it is in the ISR) and writes 20 of its own.
  elect(2, {1, 2}, {2}, 1);
  start_node(2);
  ASSERT_TRUE(append(2, numbered("new", 0, 20), ack_level::all).acks);
  // Broker 1 comes back as a follower: it asks where epoch 1 ended (100), cuts its tail.
  start_node(1);
  ASSERT_TRUE(wait_until([&] { return end_of(1) == 120 && high_water_of(1) == 120; }));
  EXPECT_EQ(nodes[0].stats->truncations.load(), 1u);
  ASSERT_TRUE(wait_until([&] { return md->isr().size() == 2; }));
  stop_node(1);
  stop_node(2);
  EXPECT_EQ(segment_bytes(1), segment_bytes(2));
}

TEST_F(ReplicationFixture, AFetchAtAStaleOrFutureEpochIsRefusedTyped) {
  brokers(2);
  elect(1, {1, 2}, {1}, 1);
  elect(1, {1, 2}, {1}, 1);  // epoch 2
  start_node(1);
  ASSERT_TRUE(append(1, {"x"}, ack_level::leader).acks);
  client_options co;
  co.port = nodes[0].listener.port;
  client c{co};
  ASSERT_TRUE(c.connect().ok());
  auto fetch = [&](uint64_t epoch, uint64_t replica) {
    wire::BrokerCall call;
    auto* f = call.mutable_fetch();
    f->set_stream("orders");
    f->set_replica(replica);
    f->set_leader_epoch(epoch);
    return c.request("broker", call.SerializeAsString(), seconds(10));
  };
  auto stale = fetch(1, 2);
  ASSERT_TRUE(stale.rejected);
  EXPECT_EQ(stale.rejected->code, code::not_leader);
  EXPECT_NE(stale.rejected->detail.find("fenced"), std::string::npos);
  auto future = fetch(3, 2);
  ASSERT_TRUE(future.rejected);
  EXPECT_EQ(future.rejected->code, code::unavailable);
  EXPECT_GT(future.rejected->retry_after_ms, 0u);
  auto stranger = fetch(2, 7);
  ASSERT_TRUE(stranger.rejected);
  EXPECT_EQ(stranger.rejected->code, code::bad_request);
  auto ok = fetch(2, 2);
  ASSERT_TRUE(ok.ok()) << ok.rejected->to_string();
  wire::FetchReply reply;
  ASSERT_TRUE(reply.ParseFromString(*ok.payload));
  EXPECT_EQ(reply.next_offset(), 1u);
  EXPECT_EQ(reply.log_end(), 1u);
  EXPECT_EQ(reply.leader_epoch(), 2u);
  ASSERT_EQ(reply.epochs_size(), 1);
  EXPECT_EQ(reply.epochs(0).epoch(), 2u);
  EXPECT_FALSE(reply.batches().empty());
}

} // namespace
} // namespace levee::broker::test
