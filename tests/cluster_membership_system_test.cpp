// Adding a broker to a running cluster and removing one (issue 16, broker/README.md "Adding
// and removing brokers"), with real `levee node` processes on 127.0.0.1: three brokers
// bootstrap, a fourth joins through broker.join (added as a spare, promoted to voter once
// caught up), applies the metadata and becomes a partition replica; it keeps its
// membership from its own log when restarted; `levee cluster remove` refuses a broker that
// holds replicas and removes one that holds none, after which the remaining three still
// elect a leader with one of them killed (with the removed one still counted, two of four
// would not be a majority); bad joins and removals are clear errors.
//
// Every wait is a bounded poll; each process runs under a guard that SIGKILLs and reaps it.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "broker/cluster.pb.h"
#include "levee/streams.hpp"
#include "tests/cluster_support.hpp"
#include "tests/process_support.hpp"
#include "tests/test_support.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using namespace levee::test_cluster;

struct cli_run {
  int exit_code = -1;
  std::string out;  // the stdout line that holds `expect`, if any came
  std::string err;
};

/// `levee cluster remove ID --broker <at>`, to its exit.
cli_run remove_through(cluster_fixture& c, const member& at, uint64_t id, const std::string& expect) {
  cli_run out;
  test::child_process p;
  auto err = c.dir().file("remove-" + std::to_string(id) + "-" + std::to_string(at.id) + ".stderr");
  if (!p.start({levee_binary, "cluster", "remove", std::to_string(id), "--broker", cluster_fixture::address(at)},
               err))
    return out;
  if (auto line = p.wait_for_line(expect, bound))
    out.out = *line;
  out.exit_code = p.wait_exit(bound).value_or(-1);
  out.err = test::read_file(err);
  return out;
}

/// The broker `id` in an answer, or null.
const cluster::ClusterBroker* broker_in(const cluster::ClusterInfo& info, uint64_t id) {
  for (auto& b : info.brokers())
    if (b.id() == id)
      return &b;
  return nullptr;
}

/// Every answer lists `n` alive brokers, each a voter of the Raft group with `n` members,
/// under one leader.
bool all_voters(const std::vector<cluster::ClusterInfo>& answers, size_t n) {
  if (!agree(answers, n))
    return false;
  for (auto& a : answers) {
    if (a.members_size() != static_cast<int>(n))
      return false;
    for (auto& b : a.brokers())
      if (b.raft_role() != "voter")
        return false;
  }
  return true;
}

/// A member that does not lead the metadata (the join and the removal go through it, so
/// the not_leader hint is followed).
member& a_follower(cluster_fixture& c, const std::vector<member*>& among) {
  uint64_t leader = c.info(*among.front())->leader_id();
  for (auto* m : among)
    if (m->id != leader)
      return *m;
  return *among.front();
}

TEST(ClusterMembership, AFourthBrokerJoinsAppliesTheMetadataAndBecomesAReplica) {
  cluster_fixture c{3};
  std::string last;
  ASSERT_TRUE(start_agreed(c, last)) << last;
  auto& joiner = c.add_member();
  auto started = steady_clock::now();
  ASSERT_TRUE(c.start(joiner, cluster_fixture::address(a_follower(c, all_of(c.members())))))
    << test::read_file(joiner.stderr_path);
  ASSERT_TRUE(c.eventually(all_of(c.members()), [](auto& a) { return all_voters(a, 4); }, last))
    << "the four do not agree on four voters; last answer:\n" << last;
  std::printf("broker 4 joined and every broker lists it as an alive voter after %lld ms\n",
              static_cast<long long>(duration_cast<milliseconds>(steady_clock::now() - started).count()));

  // A stream created after the join: two partitions of three replicas on four brokers put
  // the new one, which holds nothing yet, in the second partition (placement: fewest
  // replicas first), and every broker, the new one included, agrees on it.
  auto sc = c.streams_of(c.by_id(1));
  auto made = create_eventually(*sc, spec_of("orders", 2, 3, 2));
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  ASSERT_TRUE(c.eventually(all_of(c.members()),
                           [](auto& a) {
                             for (auto& x : a) {
                               auto* p = partition_of(x, "orders", 1);
                               if (p == nullptr || p->leader() == 0 || !contains(p->replicas(), 4))
                                 return false;
                             }
                             return true;
                           },
                           last))
    << "broker 4 is not a replica of orders/1 everywhere; last answer:\n" << last;
  auto on_joiner = c.streams_of(joiner);
  auto listed = on_joiner->list_streams(5s);
  ASSERT_TRUE(listed.ok()) << listed.error().to_string();
  ASSERT_EQ(listed->streams.size(), 1u);
  EXPECT_EQ(listed->streams[0].config.name, "orders");
  EXPECT_EQ(listed->streams[0].partitions.size(), 2u);
  // Its own partition actor runs: it reports its replica of orders/1 as local.
  ASSERT_TRUE(c.eventually({&joiner},
                           [](auto& a) {
                             auto* p = partition_of(a.front(), "orders", 1);
                             return p != nullptr && p->local_replica();
                           },
                           last))
    << last;

  // A broker that holds replicas is not removed: precondition_failed naming them.
  auto held = remove_through(c, c.by_id(1), 4, "removed");
  EXPECT_EQ(held.exit_code, 1) << held.err;
  EXPECT_NE(held.err.find("precondition_failed"), std::string::npos) << held.err;
  EXPECT_NE(held.err.find("orders/1"), std::string::npos) << held.err;

  // Restarted, the new broker is a member from its own log: its broker.join now names an
  // address where nothing listens, and it neither asks nor needs it.
  c.kill(joiner);
  uint16_t nowhere = test::probe_free_port();
  ASSERT_TRUE(c.start(joiner, "127.0.0.1:" + std::to_string(nowhere))) << test::read_file(joiner.stderr_path);
  ASSERT_TRUE(c.eventually(all_of(c.members()), [](auto& a) { return all_voters(a, 4); }, last))
    << "broker 4 did not come back as a voter; last answer:\n" << last;
}

TEST(ClusterMembership, ARemovedBrokerLeavesAndTheRemainingThreeStillElectWithOneKilled) {
  cluster_fixture c{3};
  std::string last;
  ASSERT_TRUE(start_agreed(c, last)) << last;
  auto& joiner = c.add_member();
  ASSERT_TRUE(c.start(joiner, cluster_fixture::address(c.by_id(1)))) << test::read_file(joiner.stderr_path);
  ASSERT_TRUE(c.eventually(all_of(c.members()), [](auto& a) { return all_voters(a, 4); }, last)) << last;

  // Holding no replica, broker 4 is removed (asked through a follower: the CLI follows
  // the leader's address); it disappears from every remaining broker's view.
  auto through = all_of(c.members(), 4);
  auto removed = remove_through(c, a_follower(c, through), 4, "removed");
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_NE(removed.out.find("broker 4 removed"), std::string::npos) << removed.out;
  ASSERT_TRUE(c.eventually(through,
                           [](auto& a) {
                             for (auto& x : a)
                               if (broker_in(x, 4) != nullptr)
                                 return false;
                             return all_voters(a, 3);
                           },
                           last))
    << "broker 4 is still listed; last answer:\n" << last;
  c.kill(joiner);

  // Removing it again, or a broker that never was, is not_found.
  auto again = remove_through(c, c.by_id(1), 4, "removed");
  EXPECT_EQ(again.exit_code, 1) << again.err;
  EXPECT_NE(again.err.find("not_found"), std::string::npos) << again.err;
  auto unknown = remove_through(c, c.by_id(1), 9, "removed");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.err;
  EXPECT_NE(unknown.err.find("no broker 9"), std::string::npos) << unknown.err;

  // kill -9 the metadata leader: two of the three remaining voters are a majority.
  uint64_t leader = c.info(c.by_id(1))->leader_id();
  ASSERT_NE(leader, 0u);
  c.kill(c.by_id(leader));
  std::vector<member*> survivors;
  for (auto* m : through)
    if (m->id != leader)
      survivors.push_back(m);
  ASSERT_TRUE(c.eventually(survivors,
                           [&](auto& a) {
                             uint64_t l = a.front().leader_id();
                             bool serving = false;
                             for (auto& x : a) {
                               if (x.leader_id() != l)
                                 return false;
                               serving = serving || x.serving_as_leader();
                             }
                             return l != 0 && l != leader && serving;
                           },
                           last))
    << "the two survivors elected no leader; last answer:\n" << last;
}

TEST(ClusterMembership, RemovingTheMetadataLeaderHandsItsLeadershipOverFirst) {
  cluster_fixture c{3};
  std::string last;
  ASSERT_TRUE(start_agreed(c, last)) << last;
  uint64_t leader = c.info(c.by_id(1))->leader_id();
  ASSERT_NE(leader, 0u);
  // Asked of the leader itself: it hands leadership over (unavailable, retried by the CLI),
  // and the new leader removes it.
  auto removed = remove_through(c, c.by_id(leader), leader, "removed");
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  auto rest = all_of(c.members(), leader);
  ASSERT_TRUE(c.eventually(rest,
                           [&](auto& a) {
                             for (auto& x : a)
                               if (broker_in(x, leader) != nullptr || x.leader_id() == leader)
                                 return false;
                             return all_voters(a, 2);
                           },
                           last))
    << "the old leader is still listed; last answer:\n" << last;
}

TEST(ClusterMembership, BadJoinsAreClearStartErrors) {
  cluster_fixture c{3};
  std::string last;
  ASSERT_TRUE(start_agreed(c, last)) << last;
  auto refused_start = [&](member& m, const std::string& join, const std::string& says) {
    auto path = c.config_path(m, "", join);
    test::child_process p;
    auto err = c.dir().file(m.name + ".stderr");
    ASSERT_TRUE(p.start({levee_binary, "node", "--config", path}, err));
    auto rc = p.wait_exit(bound);
    ASSERT_TRUE(rc.has_value()) << "a bad join did not end the start";
    EXPECT_NE(*rc, 0);
    auto text = test::read_file(err);
    EXPECT_NE(text.find(says), std::string::npos) << text;
  };
  // An id the group has already (broker 2's), on ports of its own.
  auto& twin = c.add_member();
  twin.id = 2;
  twin.name = "twin-of-2";
  refused_start(twin, cluster_fixture::address(c.by_id(1)), "is a member of the metadata group already");
  // broker.join where no broker answers.
  auto& lost = c.add_member();
  lost.name = "lost";
  refused_start(lost, "127.0.0.1:" + std::to_string(test::probe_free_port()), "no broker answers at");
  // The cluster is as it was.
  EXPECT_TRUE(c.eventually({&c.by_id(1), &c.by_id(2), &c.by_id(3)},
                           [](auto& a) { return all_voters(a, 3); }, last))
    << last;
}

} // namespace
} // namespace levee
