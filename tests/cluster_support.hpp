#pragma once
// Three (or n) real `levee node` brokers on 127.0.0.1 forming the metadata cluster, for
// the cluster system tests (cluster_system_test.cpp, cluster_streams_system_test.cpp).
// Ports are found by binding port 0 first (libraft binds the configured port itself).
// Every wait is a bounded poll with a short pause; each process runs under a guard that
// SIGKILLs and reaps it, also when an assertion fails.

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include "broker/cluster.pb.h"
#include "levee/client.hpp"
#include "levee/streams.hpp"
#include "tests/process_support.hpp"
#include "tests/test_support.hpp"

namespace levee::test_cluster {

using namespace std::chrono;
using namespace std::chrono_literals;

inline const std::string levee_binary = LEVEE_BINARY;
constexpr milliseconds bound = 20s;
// Short enough for the test to see a session expire, long enough for a loaded machine
// (twice the election timeout, as the config requires).
constexpr int session_timeout_ms = 1500;
constexpr int election_timeout_ms = 500;

struct member {
  uint64_t id = 0;
  std::string name;        // its files: <name>/, <name>.ini, <name>.stderr ("broker-<id>")
  uint16_t port = 0;       // the client listener
  uint16_t raft_port = 0;
  std::unique_ptr<test::child_process> proc;
  std::string stderr_path;
};

class cluster_fixture {
public:
  explicit cluster_fixture(int n) {
    // Room for the brokers added at runtime (add_member): a member& stays valid.
    members_.reserve(static_cast<size_t>(n) + max_added);
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

  /// Its config: bootstrapping with `raft_members`, or, with `join` (a running broker's
  /// client address), added to the running cluster instead.
  std::string config_path(member& m, const std::string& raft_members, const std::string& join = "") {
    if (m.name.empty())
      m.name = "broker-" + std::to_string(m.id);
    test::ini cfg;
    cfg.set("node", "roles", "broker")
      .set("broker", "listen", "127.0.0.1:" + std::to_string(m.port))
      .set("broker", "data_dir", dir_.file(m.name))
      .set("broker", "id", std::to_string(m.id))
      .set("broker", "raft_listen", "127.0.0.1:" + std::to_string(m.raft_port))
      .set("broker", join.empty() ? "raft_members" : "join", join.empty() ? raft_members : join)
      .set("broker", "session_timeout_ms", std::to_string(session_timeout_ms))
      .set("broker", "raft_election_timeout_ms", std::to_string(election_timeout_ms));
    auto path = dir_.file(m.name + ".ini");
    test::write_file(path, cfg.text());
    return path;
  }

  /// Starts `m` (bootstrapping, or joining through `join`) and waits until it listens.
  bool start(member& m, const std::string& join = "") {
    auto path = config_path(m, raft_members_, join);
    m.stderr_path = dir_.file(m.name + ".stderr");
    m.proc = std::make_unique<test::child_process>();
    if (!m.proc->start({levee_binary, "node", "--config", path}, m.stderr_path))
      return false;
    return m.proc->wait_for_line("broker listening on", bound).has_value();
  }

  /// A new member (the next id, fresh ports), not started: start(m, join) adds it to the
  /// running cluster.
  member& add_member() {
    if (members_.size() == members_.capacity())
      throw std::logic_error("cluster_fixture: more than max_added members added");
    member m;
    m.id = members_.size() + 1;
    m.port = test::probe_free_port();
    m.raft_port = test::probe_free_port();
    members_.push_back(std::move(m));
    return members_.back();
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

  /// A stream client connected to `m` (connects with backoff; check connected()).
  std::unique_ptr<stream_client> streams_of(const member& m) {
    client_options o;
    o.port = m.port;
    o.node_id = "cluster-system-test";
    o.connect_timeout = 1s;
    auto sc = std::make_unique<stream_client>(o);
    (void)sc->connect_with_backoff(5s);
    return sc;
  }

  static std::string address(const member& m) { return "127.0.0.1:" + std::to_string(m.port); }

  /// kill -9, and reaped.
  void kill(member& m) {
    m.proc->signal(SIGKILL);
    m.proc->wait_exit(bound);
  }

  std::vector<member>& members() { return members_; }
  member& by_id(uint64_t id) { return members_[id - 1]; }
  test::temp_dir& dir() { return dir_; }

  static constexpr size_t max_added = 4;

private:
  test::temp_dir dir_;
  std::vector<member> members_;
  std::string raft_members_;
};

/// Every answer names the same leader (non-zero) and lists `n` brokers, each in `state`
/// except `except` (in `except_state`).
inline bool agree(const std::vector<cluster::ClusterInfo>& answers, size_t n, uint64_t except = 0,
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

inline std::vector<member*> all_of(std::vector<member>& ms, uint64_t except = 0) {
  std::vector<member*> out;
  for (auto& m : ms)
    if (m.id != except)
      out.push_back(&m);
  return out;
}

/// Starts every member and waits until they agree on a leader with all of them alive;
/// `last` holds the last answer when they do not.
inline bool start_agreed(cluster_fixture& c, std::string& last) {
  return c.start_all()
         && c.eventually(all_of(c.members()), [](auto& a) { return agree(a, 3); }, last);
}


// -- streams on the cluster (cluster_streams_system_test.cpp, cluster_membership_system_test.cpp)

/// Creates `spec`, retrying while the metadata has no serving leader yet (unavailable).
inline result<stream_info> create_eventually(stream_client& sc, const stream_spec& spec) {
  auto deadline = steady_clock::now() + bound;
  for (;;) {
    auto made = sc.create_stream(spec, 10s);
    if (made.ok() || made.error().code() != code::unavailable || steady_clock::now() > deadline)
      return made;
    std::this_thread::sleep_for(100ms);
  }
}

inline const cluster::ClusterPartition* partition_of(const cluster::ClusterInfo& info,
                                                     const std::string& stream, uint32_t p) {
  for (auto& s : info.streams())
    if (s.name() == stream && p < static_cast<uint32_t>(s.partitions_size()))
      return &s.partitions(static_cast<int>(p));
  return nullptr;
}

inline bool contains(const google::protobuf::RepeatedField<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

inline stream_spec spec_of(const std::string& name, uint32_t partitions, uint32_t replicas,
                           uint32_t min_isr = 1) {
  stream_spec spec;
  spec.name = name;
  spec.subject = name + ".>";
  spec.partitions = partitions;
  spec.replication_factor = replicas;
  spec.min_insync_replicas = min_isr;
  return spec;
}

} // namespace levee::test_cluster
