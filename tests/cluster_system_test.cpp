// The brokers' metadata cluster as real `levee node` processes on 127.0.0.1 (issue 16,
// second part): three brokers form the Raft group and register; the metadata leader
// killed with kill -9, a new one is elected, the survivors agree, the killed broker is
// marked unreachable after its session and registered again when it comes back with its
// data; a bad raft_members is a clear start error.
//
// Ports are found by binding port 0 first (libraft binds the configured port itself).
// Every wait is a bounded poll with a short pause; each process runs under a guard that
// SIGKILLs and reaps it, also when an assertion fails.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include "broker/cluster.pb.h"
#include "levee/client.hpp"
#include "tests/cluster_support.hpp"
#include "tests/process_support.hpp"
#include "tests/test_support.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using namespace levee::test_cluster;

TEST(ClusterSystem, ThreeBrokersFormTheMetadataClusterAndSurviveTheLeadersKill) {
  cluster_fixture c{3};
  ASSERT_TRUE(c.start_all());
  std::string last;
  ASSERT_TRUE(c.eventually(all_of(c.members()), [](auto& a) { return agree(a, 3); }, last))
    << "the three did not agree on a leader with three alive brokers; last answer:\n" << last;
  uint64_t leader = c.info(c.members()[0])->leader_id();
  auto before = c.info(c.by_id(leader));
  ASSERT_TRUE(before);
  EXPECT_TRUE(before->serving_as_leader());
  EXPECT_TRUE(before->clustered());

  // kill -9 the metadata leader: the survivors elect another and mark it unreachable
  // once its session has expired.
  auto killed_at = steady_clock::now();
  c.kill(c.by_id(leader));
  auto survivors = all_of(c.members(), leader);
  ASSERT_TRUE(c.eventually(survivors,
                           [&](auto& a) {
                             uint64_t l = a.front().leader_id();
                             for (auto& x : a)
                               if (x.leader_id() != l)
                                 return false;
                             return l != 0 && l != leader;
                           },
                           last))
    << "the survivors did not agree on a new leader; last answer:\n" << last;
  std::printf("new metadata leader agreed on by both survivors %lld ms after the kill\n",
              static_cast<long long>(duration_cast<milliseconds>(steady_clock::now() - killed_at).count()));
  ASSERT_TRUE(c.eventually(survivors,
                           [&](auto& a) {
                             return agree(a, 3, leader, "unreachable") && a.front().leader_id() != leader;
                           },
                           last))
    << "the survivors did not elect a new leader and mark broker " << leader
    << " unreachable; last answer:\n" << last;
  auto took = duration_cast<milliseconds>(steady_clock::now() - killed_at).count();
  std::printf("broker %llu unreachable %lld ms after the kill\n",
              static_cast<unsigned long long>(leader), static_cast<long long>(took));
  EXPECT_GE(took, session_timeout_ms) << "marked before its session could expire";
  auto a1 = c.info(*survivors[0]);
  auto a2 = c.info(*survivors[1]);
  ASSERT_TRUE(a1 && a2);

  // Restarted with its data, it rejoins and registers again.
  ASSERT_TRUE(c.start(c.by_id(leader)));
  EXPECT_TRUE(c.by_id(leader).proc->wait_for_line("registered in the metadata cluster", bound))
    << test::read_file(c.by_id(leader).stderr_path);
  ASSERT_TRUE(c.eventually(all_of(c.members()), [](auto& a) { return agree(a, 3); }, last))
    << "the restarted broker did not show as registered again everywhere; last answer:\n" << last;
  // Every broker applied the same sequence: the same chain head at the same index.
  auto deadline = steady_clock::now() + bound;
  bool same = false;
  while (!same && steady_clock::now() < deadline) {
    std::map<uint64_t, std::string> heads;
    for (auto& m : c.members())
      if (auto i = c.info(m))
        heads[i->applied_index()] = i->chain_head();
    same = heads.size() == 1;
    if (!same)
      std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(same) << "the brokers' chains differ";
  for (auto& m : c.members()) {
    m.proc->signal(SIGTERM);
    EXPECT_EQ(m.proc->wait_exit(bound), 0);
  }
}

TEST(ClusterSystem, ABadRaftMembersValueIsAClearStartError) {
  cluster_fixture c{1};
  auto& m = c.members()[0];
  auto path = c.config_path(m, "1=localhost:7701");
  test::child_process p;
  auto err = c.dir().file("bad.stderr");
  ASSERT_TRUE(p.start({levee_binary, "node", "--config", path}, err));
  auto rc = p.wait_exit(bound);
  ASSERT_TRUE(rc.has_value());
  EXPECT_NE(*rc, 0);
  auto text = test::read_file(err);
  EXPECT_NE(text.find("broker.raft_members"), std::string::npos) << text;
  EXPECT_NE(text.find("IPv4"), std::string::npos) << text;
}

TEST(ClusterSystem, ABrokerAloneSaysSo) {
  test::temp_dir dir;
  test::ini cfg;
  auto port = test::probe_free_port();
  cfg.set("node", "roles", "broker")
    .set("broker", "listen", "127.0.0.1:" + std::to_string(port))
    .set("broker", "data_dir", dir.file("data"));
  auto path = dir.file("alone.ini");
  test::write_file(path, cfg.text());
  test::child_process p;
  ASSERT_TRUE(p.start({levee_binary, "node", "--config", path}, dir.file("alone.stderr")));
  ASSERT_TRUE(p.wait_for_line("broker listening on", bound));
  test::child_process cli;
  ASSERT_TRUE(cli.start({levee_binary, "cluster", "--broker", "127.0.0.1:" + std::to_string(port), "--json"}));
  auto line = cli.wait_for_line("clustered", bound);
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("\"clustered\":false"), std::string::npos) << *line;
  EXPECT_EQ(cli.wait_exit(bound), 0);
}

} // namespace
} // namespace levee
