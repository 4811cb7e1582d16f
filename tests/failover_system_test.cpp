// Failover of a replicated stream with real `levee node` brokers on 127.0.0.1 (issue 16):
// a publisher sends numbered messages with ack = all to a stream of replication factor 3
// and min ISR 2 while the partition's leader is killed with kill -9 (five times) or
// paused with SIGSTOP. After each, a new leader must be serving within a bound; every
// acknowledged message must be in the partition exactly once, in order, at the offset its
// ack named, read from the leader; and at the end, with every broker stopped, on every
// replica's files, which must agree below the high-water mark.
//
// The harness is tests/support/chaos.hpp (bench/chaos.cpp runs the same rounds a hundred
// times and prints the figures). Every wait is bounded; no figure is asserted against a
// time except the generous bound for a new leader.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "levee/client.hpp"
#include "levee/streams.hpp"
#include "tests/process_support.hpp"
#include "tests/support/chaos.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

const std::string levee_binary = LEVEE_BINARY;
const std::string stream_name = "chaos";
const std::string subject = "chaos.events";
// A new leader within this of a kill: the session (1.5 s) plus an election, with room
// for a slow, loaded machine.
constexpr milliseconds new_leader_bound = 45s;
constexpr milliseconds rejoin_bound = 60s;

client_options options_for(const std::string& address) {
  client_options co;
  co.port = static_cast<uint16_t>(std::stoi(address.substr(address.find(':') + 1)));
  co.node_id = "failover-test";
  return co;
}

class failover : public ::testing::Test {
protected:
  /// Each test may change the cluster's options before SetUp runs.
  virtual void adjust(chaos::cluster_options&) {}

  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    chaos::cluster_options o;
    o.levee_binary = levee_binary;
    o.dir = dir_.path();
    adjust(o);
    cluster_ = std::make_unique<chaos::broker_cluster>(o);
    auto st = cluster_->start_all();
    ASSERT_TRUE(st.ok()) << st.message();
    create_stream();
  }

  void create_stream() {
    stream_spec spec;
    spec.name = stream_name;
    spec.subject = "chaos.>";
    spec.partitions = 1;
    spec.replication_factor = 3;
    spec.min_insync_replicas = 2;
    // Any broker takes it (a follower of the metadata forwards it to the leader); the
    // first moments after start may still be electing.
    auto created = [&](std::string& last) {
      for (auto& address : cluster_->addresses()) {
        stream_client c{options_for(address)};
        if (!c.connect().ok())
          continue;
        auto r = c.create_stream(spec, 5s);
        if (r.ok())
          return true;
        last = r.error().message();
      }
      return false;
    };
    auto deadline = steady_clock::now() + 30s;
    std::string last;
    bool ok = false;
    while (!ok && steady_clock::now() < deadline) {
      ok = created(last);
      if (!ok)
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(ok) << "the stream could not be created: " << last;
    auto v = chaos::wait_for_leader(*cluster_, stream_name, 0, 0, 3, rejoin_bound);
    ASSERT_TRUE(v) << "the partition did not get a leader with three in its ISR";
  }

  /// One round of the harness; every problem it saw fails the test.
  milliseconds one_round(chaos::publisher& pub, chaos::fault how) {
    chaos::round_options o;
    o.stream = stream_name;
    o.how = how;
    o.new_leader_bound = new_leader_bound;
    o.rejoin_bound = rejoin_bound;
    auto r = chaos::run_round(*cluster_, pub, o);
    for (auto& e : r.errors)
      ADD_FAILURE() << e;
    EXPECT_TRUE(r.check.ok()) << "the leader's log after losing broker " << r.victim << ": "
                              << r.check.to_string();
    std::printf("round: lost broker %d (epoch %llu), broker %d leads (epoch %llu); first ack = all "
                "publish after %lld ms, %llu acknowledged so far\n",
                r.victim, static_cast<unsigned long long>(r.old_epoch), r.new_leader,
                static_cast<unsigned long long>(r.new_epoch),
                static_cast<long long>(r.first_ack.value_or(new_leader_bound).count()),
                static_cast<unsigned long long>(r.check.acknowledged));
    return r.first_ack.value_or(new_leader_bound);
  }

  /// Stops every broker and checks each replica's files.
  void check_every_replica(const std::vector<chaos::acked_message>& acked) {
    // The HW as the leader has it, before stopping.
    uint64_t hw = 0;
    for (auto& address : cluster_->addresses()) {
      stream_client c{options_for(address)};
      if (!c.connect().ok())
        continue;
      auto info = c.get_stream_info(stream_name, 5s);
      if (info.ok() && !info->partitions.empty())
        hw = std::max(hw, info->partitions[0].high_water);
    }
    ASSERT_GT(hw, 0u);
    std::vector<std::vector<chaos::read_message>> logs;
    for (int id = 1; id <= cluster_->size(); ++id) {
      auto code = cluster_->stop(id);
      EXPECT_TRUE(code) << "broker " << id << " did not stop within 30 s of SIGTERM; its stderr:\n"
                        << cluster_->stderr_tail(id);
      auto log = chaos::read_from_files(cluster_->data_dir(id), stream_name, 0);
      ASSERT_TRUE(log.ok()) << "broker " << id << ": " << log.error().message();
      auto rep = chaos::check_acked(acked, *log);
      EXPECT_TRUE(rep.ok()) << "broker " << id << "'s copy: " << rep.to_string();
      logs.push_back(std::move(*log));
    }
    for (size_t i = 1; i < logs.size(); ++i) {
      auto diff = chaos::compare_replicas(logs[0], logs[i], hw);
      EXPECT_TRUE(diff.empty()) << "broker 1 and broker " << i + 1 << " differ below the HW "
                                << hw << ": " << diff.front();
    }
  }

  /// Waits for a leader with all three brokers in its ISR; on failure, says what the
  /// newest view was and what each broker last wrote to stderr.
  ::testing::AssertionResult all_three_in_sync() {
    if (chaos::wait_for_leader(*cluster_, stream_name, 0, 0, 3, rejoin_bound))
      return ::testing::AssertionSuccess();
    auto out = ::testing::AssertionFailure();
    out << "no leader with three in its ISR within " << rejoin_bound.count() << " ms; ";
    if (auto v = chaos::view_partition(*cluster_, stream_name, 0, 1s)) {
      out << "newest view: leader " << v->leader << " (epoch " << v->leader_epoch
          << ", partition epoch " << v->partition_epoch << "), ISR [";
      for (auto b : v->isr)
        out << " " << b;
      out << " ]";
    } else {
      out << "no broker answered with the partition";
    }
    for (int id = 1; id <= cluster_->size(); ++id)
      out << "\n-- broker " << id << ":\n" << cluster_->stderr_tail(id);
    return out;
  }

  test::temp_dir dir_{"levee-failover"};
  std::unique_ptr<chaos::broker_cluster> cluster_;
};

chaos::publisher_options publisher_for(const chaos::broker_cluster& c) {
  chaos::publisher_options o;
  o.addresses = c.addresses();
  o.subject = subject;
  return o;
}

TEST_F(failover, FiveLeaderKillsUnderAckAllLoseAndDuplicateNothingAcknowledged) {
  chaos::publisher pub{publisher_for(*cluster_)};
  pub.start();
  std::vector<double> took;
  for (int round = 0; round < 5 && !HasFatalFailure(); ++round)
    took.push_back(static_cast<double>(one_round(pub, chaos::fault::kill).count()));
  ASSERT_TRUE(pub.wait_more_acks(20, new_leader_bound)) << pub.last_failure();
  pub.stop();
  std::printf("failover (kill -9 of the leader -> first ack = all publish): p50 %.0f ms, max %.0f ms\n",
              chaos::percentile(took, 50), chaos::percentile(took, 100));
  auto acked = pub.acked();
  ASSERT_TRUE(all_three_in_sync());
  check_every_replica(acked);
}

TEST_F(failover, PausedLeaderIsReplacedAndComesBackAsAFollowerLosingNothing) {
  chaos::publisher pub{publisher_for(*cluster_)};
  pub.start();
  one_round(pub, chaos::fault::pause);
  ASSERT_TRUE(pub.wait_more_acks(20, new_leader_bound)) << pub.last_failure();
  pub.stop();
  auto acked = pub.acked();
  ASSERT_TRUE(all_three_in_sync());
  check_every_replica(acked);
}

TEST_F(failover, AckAllPublishesAreOnEveryReplicaInTheSameOrderAndBytes) {
  chaos::publisher pub{publisher_for(*cluster_)};
  pub.start();
  ASSERT_TRUE(pub.wait_more_acks(300, rejoin_bound)) << pub.last_failure();
  pub.stop();
  auto acked = pub.acked();
  // Consumers read below the HW from the leader: every acknowledged message is there.
  auto served = chaos::read_from_leader(cluster_->addresses(), stream_name, 0,
                                        acked.back().offset + 1, rejoin_bound);
  ASSERT_TRUE(served.ok()) << served.error().message();
  auto rep = chaos::check_acked(acked, *served);
  EXPECT_TRUE(rep.ok()) << "what the leader serves: " << rep.to_string();
  ASSERT_TRUE(chaos::wait_for_leader(*cluster_, stream_name, 0, 0, 3, rejoin_bound));
  check_every_replica(acked);
}

/// A follower that is gone leaves the ISR after this lag (short, so the test is short).
class follower_restart : public failover {
protected:
  void adjust(chaos::cluster_options& o) override {
    o.extra.emplace_back("broker", "replica_max_lag_ms", "2000");
  }
};

TEST_F(follower_restart, AFollowerKilledAndRestartedCatchesUpAndRejoinsTheIsr) {
  chaos::publisher pub{publisher_for(*cluster_)};
  pub.start();
  ASSERT_TRUE(pub.wait_more_acks(50, rejoin_bound)) << pub.last_failure();
  auto v = chaos::wait_for_leader(*cluster_, stream_name, 0, 0, 3, rejoin_bound);
  ASSERT_TRUE(v);
  int follower = v->leader % cluster_->size() + 1;
  cluster_->kill(follower);
  // Out of the ISR; min ISR 2 keeps ack = all publishes going meanwhile.
  auto deadline = steady_clock::now() + rejoin_bound;
  bool shrunk = false;
  while (!shrunk && steady_clock::now() < deadline) {
    auto now = chaos::view_partition(*cluster_, stream_name, 0, 1s);
    shrunk = now && now->isr.size() == 2
             && std::find(now->isr.begin(), now->isr.end(), follower) == now->isr.end();
    if (!shrunk)
      std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(shrunk) << "broker " << follower << " stayed in the ISR after kill -9";
  ASSERT_TRUE(pub.wait_more_acks(100, rejoin_bound))
    << "ack = all stopped with two of three in the ISR: " << pub.last_failure();
  // Back with its data: it asks the leader where its last epoch ended, cuts its log there,
  // fetches what it missed, and is taken back into the ISR.
  ASSERT_TRUE(cluster_->start(follower).ok()) << cluster_->stderr_tail(follower);
  ASSERT_TRUE(chaos::wait_for_leader(*cluster_, stream_name, 0, 0, 3, rejoin_bound))
    << "broker " << follower << " did not rejoin the ISR: " << cluster_->stderr_tail(follower);
  ASSERT_TRUE(pub.wait_more_acks(50, rejoin_bound)) << pub.last_failure();
  pub.stop();
  check_every_replica(pub.acked());
}

/// Every broker behind a stallable proxy that it advertises, and a short replica lag.
class stalled_link : public failover {
protected:
  void adjust(chaos::cluster_options& o) override {
    o.proxies = true;
    o.extra.emplace_back("broker", "replica_max_lag_ms", "2000");
  }
};

TEST_F(stalled_link, ReplicasCutOffByAStalledLinkLeaveTheIsrAndComeBackLosingNothing) {
  chaos::publisher pub{publisher_for(*cluster_)};
  pub.start();
  ASSERT_TRUE(pub.wait_more_acks(20, new_leader_bound)) << pub.last_failure();
  auto v = chaos::wait_for_leader(*cluster_, stream_name, 0, 0, 3, rejoin_bound);
  ASSERT_TRUE(v);
  int leader = v->leader;
  // The followers fetch from the leader through its proxy: stall it. Connections stay
  // open and nothing moves, as on a link that stopped.
  cluster_->proxy(leader)->stall(true);
  auto deadline = steady_clock::now() + new_leader_bound;
  std::optional<chaos::partition_view> shrunk;
  while (steady_clock::now() < deadline) {
    auto now = chaos::view_partition(*cluster_, stream_name, 0, 1s);
    if (now && now->leader == leader && now->isr.size() == 1) {
      shrunk = now;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(shrunk) << "the ISR did not shrink to the leader alone while its followers were "
                         "cut off";
  // Below min ISR (2): an ack = all publish to the leader is refused, not promised.
  {
    stream_client c{options_for(cluster_->address(leader))};
    ASSERT_TRUE(c.connect().ok());
    publish_options po;
    po.ack = ack_mode::all;
    po.partition = 0;
    po.timeout = 10s;
    out_message m;
    m.body = "refused";
    auto r = c.publish(subject, {m}, po);
    ASSERT_FALSE(r.ok()) << "an ack = all publish was acknowledged with the ISR below min ISR";
    EXPECT_EQ(r.error().code(), code::insufficient_replicas) << r.error().message();
  }
  auto acked_during = pub.acked_count();
  cluster_->proxy(leader)->stall(false);
  ASSERT_TRUE(chaos::wait_for_leader(*cluster_, stream_name, 0, 0, 3, rejoin_bound))
    << "the followers did not rejoin the ISR once the link moved again";
  ASSERT_TRUE(pub.wait_more_acks(20, new_leader_bound)) << pub.last_failure();
  EXPECT_GT(pub.acked_count(), acked_during);
  pub.stop();
  check_every_replica(pub.acked());
}

} // namespace
} // namespace levee
