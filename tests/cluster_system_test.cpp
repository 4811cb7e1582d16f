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
#include "tests/process_support.hpp"
#include "tests/test_support.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

const std::string levee_binary = LEVEE_BINARY;
constexpr milliseconds bound = 20s;
// Short enough for the test to see a session expire, long enough for a loaded machine
// (twice the election timeout, as the config requires).
constexpr int session_timeout_ms = 1500;
constexpr int election_timeout_ms = 500;

struct member {
  uint64_t id = 0;
  uint16_t port = 0;       // the client listener
  uint16_t raft_port = 0;
  std::unique_ptr<test::child_process> proc;
  std::string stderr_path;
};

class cluster_fixture {
public:
  explicit cluster_fixture(int n) {
    for (int i = 1; i <= n; ++i) {
      member m;
      m.id = static_cast<uint64_t>(i);
      m.port = test::probe_free_port();
      m.raft_port = test::probe_free_port();
      members_.push_back(std::move(m));
    }
    for (auto& m : members_)
      raft_members_ += (raft_members_.empty() ? "" : ",") + std::to_string(m.id) + "=127.0.0.1:"
                       + std::to_string(m.raft_port);
  }

  std::string config_path(member& m, const std::string& raft_members) {
    test::ini cfg;
    cfg.set("node", "roles", "broker")
      .set("broker", "listen", "127.0.0.1:" + std::to_string(m.port))
      .set("broker", "data_dir", dir_.file("broker-" + std::to_string(m.id)))
      .set("broker", "id", std::to_string(m.id))
      .set("broker", "raft_listen", "127.0.0.1:" + std::to_string(m.raft_port))
      .set("broker", "raft_members", raft_members)
      .set("broker", "session_timeout_ms", std::to_string(session_timeout_ms))
      .set("broker", "raft_election_timeout_ms", std::to_string(election_timeout_ms));
    auto path = dir_.file("broker-" + std::to_string(m.id) + ".ini");
    test::write_file(path, cfg.text());
    return path;
  }

  bool start(member& m) {
    auto path = config_path(m, raft_members_);
    m.stderr_path = dir_.file("broker-" + std::to_string(m.id) + ".stderr");
    m.proc = std::make_unique<test::child_process>();
    if (!m.proc->start({levee_binary, "node", "--config", path}, m.stderr_path))
      return false;
    return m.proc->wait_for_line("broker listening on", bound).has_value();
  }
  bool start_all() {
    for (auto& m : members_)
      if (!start(m))
        return false;
    return true;
  }

  std::optional<cluster::ClusterInfo> info(const member& m) {
    client_options o;
    o.port = m.port;
    o.node_id = "cluster-system-test";
    o.connect_timeout = 1s;
    client c{o};
    if (!c.connect().ok())
      return std::nullopt;
    cluster::ClusterCall call;
    call.mutable_info();
    auto r = c.request("cluster", call.SerializeAsString(), 5s);
    cluster::ClusterInfo out;
    if (!r.ok() || !out.ParseFromString(*r.payload))
      return std::nullopt;
    return out;
  }

  /// Polls every live member until `pred` holds for all of their answers, within `bound`.
  template <class Pred>
  bool eventually(const std::vector<member*>& who, Pred pred, std::string& last) {
    auto deadline = steady_clock::now() + bound;
    while (steady_clock::now() < deadline) {
      bool all = true;
      std::vector<cluster::ClusterInfo> answers;
      for (auto* m : who) {
        auto i = info(*m);
        if (!i) {
          all = false;
          break;
        }
        answers.push_back(*i);
      }
      if (all && pred(answers))
        return true;
      if (!answers.empty())
        last = answers.front().DebugString();
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::vector<member>& members() { return members_; }
  member& by_id(uint64_t id) { return members_[id - 1]; }
  test::temp_dir& dir() { return dir_; }

private:
  test::temp_dir dir_;
  std::vector<member> members_;
  std::string raft_members_;
};

/// Every answer names the same leader (non-zero) and lists `n` brokers, each in `state`
/// except `except` (in `except_state`).
bool agree(const std::vector<cluster::ClusterInfo>& answers, size_t n, uint64_t except = 0,
           const std::string& except_state = "") {
  uint64_t leader = answers.front().leader_id();
  if (leader == 0)
    return false;
  for (auto& a : answers) {
    if (a.leader_id() != leader || a.brokers_size() != static_cast<int>(n))
      return false;
    for (auto& b : a.brokers())
      if (b.state() != (b.id() == except ? except_state : std::string{"alive"}))
        return false;
  }
  return true;
}

std::vector<member*> all_of(std::vector<member>& ms, uint64_t except = 0) {
  std::vector<member*> out;
  for (auto& m : ms)
    if (m.id != except)
      out.push_back(&m);
  return out;
}

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
  c.by_id(leader).proc->signal(SIGKILL);
  c.by_id(leader).proc->wait_exit(bound);
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
