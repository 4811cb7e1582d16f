// raft_node for real: libraft 0.15 with its libuv I/O backend and TCP transport, several
// nodes in this process on 127.0.0.1, data dirs on disk (O_DIRECT: not tmpfs). Every wait
// is a bounded poll with a short pause; nothing sleeps in place of an event.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "metadata/raft_node.hpp"

namespace levee::metadata {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A port nobody listens on now: bind port 0, read what the kernel chose, close. libraft's
// transport binds the configured address itself, so the port is given, not 0; another
// process could take it in between, which a fresh port per node makes unlikely.
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds bound = 10s) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(5ms);  // a short pause between polls, not a wait for an event
  }
  return true;
}

// Collects the outcomes callbacks deliver on the loop threads.
struct outcomes {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<command_outcome> got;

  command_callback callback() {
    return [this](const command_outcome& o) {
      std::lock_guard<std::mutex> g{mu};
      got.push_back(o);
      cv.notify_all();
    };
  }
  bool wait_for(size_t n, std::chrono::milliseconds bound = 10s) {
    std::unique_lock<std::mutex> g{mu};
    return cv.wait_for(g, bound, [&] { return got.size() >= n; });
  }
  command_outcome at(size_t i) {
    std::lock_guard<std::mutex> g{mu};
    return got.at(i);
  }
};

// The end of a membership change, delivered on a loop thread.
struct change_result {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<status> got;

  change_callback callback() {
    return [this](const status& s) {
      std::lock_guard<std::mutex> g{mu};
      got = s;
      cv.notify_all();
    };
  }
  status wait(std::chrono::milliseconds bound = 10s) {
    std::unique_lock<std::mutex> g{mu};
    if (!cv.wait_for(g, bound, [&] { return got.has_value(); }))
      return status::error(code::deadline_exceeded, "no answer to the membership change within the bound");
    return *got;
  }
};

streams::stream_config stream_named(const std::string& name) {
  streams::stream_config c;
  c.name = name;
  c.subject = name + ".>";
  c.partitions = 2;
  return c;
}

class RaftNodeTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() / ("levee-raft-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    for (auto& n : nodes_)
      n.reset();
    fs::remove_all(root_);
  }

  raft_node_options options_for(uint64_t id, std::vector<raft_member> initial) {
    raft_node_options o;
    o.id = id;
    o.address = addresses_.at(id);
    o.data_dir = (root_ / ("node-" + std::to_string(id))).string();
    o.initial_members = std::move(initial);
    // Short timeouts keep elections well under a second on loopback.
    o.election_timeout_ms = 300;
    o.heartbeat_timeout_ms = 50;
    o.role_poll_ms = 5;
    return o;
  }

  // Gives ids 1..n addresses and starts them as one group.
  void start_group(uint64_t n, const std::function<void(raft_node_options&)>& tweak = {}) {
    std::vector<raft_member> members;
    for (uint64_t id = 1; id <= n; ++id) {
      addresses_[id] = "127.0.0.1:" + std::to_string(free_port());
      members.push_back({id, addresses_[id]});
    }
    initial_ = members;
    nodes_.resize(n + 2);
    for (uint64_t id = 1; id <= n; ++id) {
      auto o = options_for(id, members);
      if (tweak)
        tweak(o);
      options_[id] = o;
      start_node(id);
    }
  }

  void start_node(uint64_t id) {
    auto n = raft_node::start(options_.at(id));
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    nodes_.at(id) = std::move(n.value());
  }

  raft_node* node(uint64_t id) { return nodes_.at(id).get(); }

  // The node that serves as leader, once there is exactly one (bounded wait).
  raft_node* serving_leader(std::chrono::milliseconds bound = 10s) {
    raft_node* found = nullptr;
    wait_until(
        [&] {
          found = nullptr;
          for (auto& n : nodes_)
            if (n && n->serving_as_leader())
              found = n.get();
          return found != nullptr;
        },
        bound);
    return found;
  }

  command_outcome run(raft_node* on, command c) {
    outcomes o;
    status s = on->submit(std::move(c), o.callback());
    EXPECT_TRUE(s.ok()) << s.to_string();
    EXPECT_TRUE(o.wait_for(1)) << "no answer within the bound";
    return o.got.empty() ? command_outcome{} : o.at(0);
  }

  // Submits on the leader, following it if it moves, until applied.
  void apply_everywhere(command c) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      raft_node* leader = serving_leader();
      ASSERT_NE(leader, nullptr) << "no leader";
      auto out = run(leader, c);
      if (out.what == command_outcome::kind::applied)
        return;
    }
    FAIL() << "command not applied after 20 attempts";
  }

  bool all_caught_up(std::vector<uint64_t> ids) {
    return wait_until([&] {
      auto first = node(ids[0])->state_copy();
      for (auto id : ids) {
        auto s = node(id)->state_copy();
        if (s.applied_count() != first.applied_count() || s.chain_head() != first.chain_head())
          return false;
      }
      return first.applied_count() > 0;
    });
  }

  fs::path root_;
  std::map<uint64_t, std::string> addresses_;
  std::map<uint64_t, raft_node_options> options_;
  std::vector<raft_member> initial_;
  std::vector<std::unique_ptr<raft_node>> nodes_;
};

TEST_F(RaftNodeTest, ElectsALeaderAndEveryNodeAppliesTheSameSequence) {
  start_group(3);
  raft_node* leader = serving_leader();
  ASSERT_NE(leader, nullptr);
  for (uint64_t b = 1; b <= 3; ++b)
    apply_everywhere(register_broker{b, "127.0.0.1:" + std::to_string(7000 + b)});
  apply_everywhere(create_stream{stream_named("orders"), 3, 2});
  ASSERT_TRUE(all_caught_up({1, 2, 3}));
  for (uint64_t id = 1; id <= 3; ++id) {
    auto s = node(id)->state_copy();
    EXPECT_EQ(s.applied_count(), 4u);
    EXPECT_EQ(s.streams().at("orders").partitions.size(), 2u);
    EXPECT_TRUE(node(id)->health().ok());
    // The hand-off saw the same sequence, in order, on every node.
    auto batch = node(id)->drain_applied();
    EXPECT_FALSE(batch.resync);
    ASSERT_EQ(batch.entries.size(), 4u) << "node " << id;
    for (size_t i = 0; i < 4; ++i)
      EXPECT_EQ(batch.entries[i].outcome.sequence, i + 1);
    EXPECT_TRUE(std::holds_alternative<create_stream>(batch.entries[3].outcome.cmd));
  }
  EXPECT_GE(leader->stats().barriers_committed, 1u);
}

TEST_F(RaftNodeTest, NotLeaderCarriesTheLeaderHint) {
  start_group(3);
  raft_node* leader = serving_leader();
  ASSERT_NE(leader, nullptr);
  raft_node* follower = nullptr;
  for (uint64_t id = 1; id <= 3; ++id)
    if (node(id) != leader)
      follower = node(id);
  // A follower learns the leader from its first heartbeat.
  ASSERT_TRUE(wait_until([&] { return follower->leader().id == leader->id(); }));
  auto out = run(follower, register_broker{1, "127.0.0.1:7001"});
  EXPECT_EQ(out.what, command_outcome::kind::not_leader);
  EXPECT_EQ(out.leader_id, leader->id());
  EXPECT_EQ(out.leader_address, addresses_.at(leader->id()));
  EXPECT_EQ(out.refusal.code, code::not_leader);
  EXPECT_NE(out.refusal.detail.find("send the command to node " + std::to_string(leader->id())),
            std::string::npos)
      << out.refusal.detail;
}

TEST_F(RaftNodeTest, LeaderStoppedANewOneServesAndTheRestartedNodeCatchesUpWithItsData) {
  start_group(3);
  apply_everywhere(register_broker{1, "127.0.0.1:7001"});
  raft_node* leader = serving_leader();
  ASSERT_NE(leader, nullptr);
  uint64_t old_id = leader->id();
  auto t0 = std::chrono::steady_clock::now();
  nodes_.at(old_id).reset();  // stops: raft_close, transport, loop; joins the thread
  raft_node* next = serving_leader();
  ASSERT_NE(next, nullptr);
  auto failover = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_NE(next->id(), old_id);
  std::cout << "metadata failover (leader stopped -> new leader's barrier committed): "
            << failover.count() << " ms\n";
  apply_everywhere(register_broker{2, "127.0.0.1:7002"});
  apply_everywhere(register_broker{3, "127.0.0.1:7003"});

  start_node(old_id);  // same data dir: it rejoins, no bootstrap
  std::vector<uint64_t> all{1, 2, 3};
  ASSERT_TRUE(all_caught_up(all));
  auto s = node(old_id)->state_copy();
  EXPECT_EQ(s.applied_count(), 3u);
  EXPECT_EQ(s.brokers().size(), 3u);
  EXPECT_TRUE(node(old_id)->health().ok());
}

TEST_F(RaftNodeTest, SnapshotsKeepTheLogBoundedAndARestartedNodeRestoresFromOne) {
  start_group(3, [](raft_node_options& o) {
    o.snapshot_threshold = 8;
    o.snapshot_trailing = 2;
  });
  for (uint64_t b = 1; b <= 20; ++b)
    apply_everywhere(register_broker{b, "127.0.0.1:" + std::to_string(7000 + b)});
  ASSERT_TRUE(all_caught_up({1, 2, 3}));
  raft_node* leader = serving_leader();
  ASSERT_NE(leader, nullptr);
  uint64_t follower = leader->id() % 3 + 1;
  ASSERT_TRUE(wait_until([&] { return node(follower)->stats().snapshots_taken >= 1; }));
  nodes_.at(follower).reset();
  for (uint64_t b = 21; b <= 40; ++b)
    apply_everywhere(register_broker{b, "127.0.0.1:" + std::to_string(7000 + b)});
  // Its own snapshot is loaded at start, and the leader, whose log no longer reaches back
  // that far (trailing 2), sends its snapshot.
  start_node(follower);
  ASSERT_TRUE(all_caught_up({1, 2, 3}));
  EXPECT_GE(node(follower)->stats().snapshots_restored, 1u);
  auto s = node(follower)->state_copy();
  EXPECT_EQ(s.brokers().size(), 40u);
  EXPECT_EQ(s.applied_count(), 40u);
  EXPECT_TRUE(node(follower)->drain_applied().resync) << "a restore tells the owner to re-read";
}

TEST_F(RaftNodeTest, AddsAFourthNodeAndRemovesOne) {
  start_group(3);
  apply_everywhere(register_broker{1, "127.0.0.1:7001"});
  addresses_[4] = "127.0.0.1:" + std::to_string(free_port());
  options_[4] = options_for(4, {});  // not in the initial members: waits to be added
  start_node(4);

  raft_node* leader = serving_leader();
  ASSERT_NE(leader, nullptr);
  change_result added;
  ASSERT_TRUE(leader->add_member({4, addresses_[4]}, added.callback()).ok());
  status add_status = added.wait();
  ASSERT_TRUE(add_status.ok()) << add_status.to_string();
  ASSERT_TRUE(all_caught_up({1, 2, 3, 4}));
  // Every member's copy of the configuration shows the new one as a voter (promoted once
  // libraft's catch-up rounds ended), the new node's own included.
  for (uint64_t id = 1; id <= 4; ++id)
    ASSERT_TRUE(wait_until([&] {
      auto ms = node(id)->members();
      return ms.size() == 4 && ms.back().id == 4 && ms.back().role == member_role::voter &&
             ms.back().address == addresses_[4];
    })) << "node " << id << " does not list node 4 as a voter";

  // Adding an id or an address the group has already, or removing one it has not, is a
  // typed refusal, not a hang.
  change_result twice;
  ASSERT_TRUE(leader->add_member({4, "127.0.0.1:1"}, twice.callback()).ok());
  status twice_status = twice.wait();
  ASSERT_FALSE(twice_status.ok()) << twice_status.to_string();
  EXPECT_EQ(twice_status.as_rejection().code, code::precondition_failed);
  change_result same_address;
  ASSERT_TRUE(leader->add_member({9, addresses_[4]}, same_address.callback()).ok());
  status same_status = same_address.wait();
  ASSERT_FALSE(same_status.ok()) << same_status.to_string();
  EXPECT_EQ(same_status.as_rejection().code, code::precondition_failed);
  change_result unknown;
  ASSERT_TRUE(leader->remove_member(9, unknown.callback()).ok());
  status unknown_status = unknown.wait();
  ASSERT_FALSE(unknown_status.ok()) << unknown_status.to_string();
  EXPECT_EQ(unknown_status.as_rejection().code, code::not_found);

  uint64_t gone = leader->id() % 3 + 1;  // a follower of the first three
  change_result removed;
  ASSERT_TRUE(leader->remove_member(gone, removed.callback()).ok());
  status remove_status = removed.wait();
  ASSERT_TRUE(remove_status.ok()) << remove_status.to_string();
  nodes_.at(gone).reset();
  apply_everywhere(register_broker{2, "127.0.0.1:7002"});
  std::vector<uint64_t> rest;
  for (uint64_t id = 1; id <= 4; ++id)
    if (id != gone)
      rest.push_back(id);
  ASSERT_TRUE(all_caught_up(rest));
  EXPECT_EQ(node(4)->state_copy().brokers().size(), 2u);
  EXPECT_TRUE(wait_until([&] { return node(4)->members().size() == 3; }));
}

TEST_F(RaftNodeTest, AnAddWhoseNodeNeverAnswersFailsAndLeavesNoSpareBehind) {
  start_group(3);
  raft_node* leader = serving_leader();
  ASSERT_NE(leader, nullptr);
  // Nobody listens there: libraft adds it as a spare, then gives up the catch-up rounds.
  std::string nowhere = "127.0.0.1:" + std::to_string(free_port());
  change_result added;
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(leader->add_member({5, nowhere}, added.callback()).ok());
  status st = added.wait(60s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  ASSERT_FALSE(st.ok()) << "an add to a node that never answers succeeded";
  EXPECT_NE(st.code(), code::deadline_exceeded) << "libraft never ended the change (" << took.count() << " ms)";
  EXPECT_NE(st.message().find(nowhere), std::string::npos) << st.to_string();
  EXPECT_TRUE(wait_until([&] { return leader->members().size() == 3; }))
      << "the spare of the failed add stayed in the configuration";
  std::printf("an add to a silent node failed after %lld ms: %s\n", static_cast<long long>(took.count()),
              st.to_string().c_str());
  // The group takes the next change: nothing is left half-done.
  change_result removed;
  ASSERT_TRUE(leader->remove_member(leader->id() % 3 + 1, removed.callback()).ok());
  status rs = removed.wait();
  EXPECT_TRUE(rs.ok()) << rs.to_string();
}

TEST_F(RaftNodeTest, AFullCommandQueueIsRefusedWithTheTypedRejection) {
  start_group(1, [](raft_node_options& o) { o.max_pending_commands = 3; });
  raft_node* leader = serving_leader();
  ASSERT_NE(leader, nullptr);
  // Submitted from a completion callback, which runs on the loop thread: the loop cannot
  // take any of them before the callback returns, so the queue fills deterministically.
  outcomes later;
  std::vector<status> answers;
  outcomes first;
  ASSERT_TRUE(leader
                  ->submit(register_broker{1, "127.0.0.1:7001"},
                           [&](const command_outcome& o) {
                             for (int i = 0; i < 4; ++i)
                               answers.push_back(leader->submit(register_broker{2, "127.0.0.1:7002"},
                                                                later.callback()));
                             first.callback()(o);
                           })
                  .ok());
  ASSERT_TRUE(first.wait_for(1));
  ASSERT_EQ(answers.size(), 4u);
  EXPECT_TRUE(answers[0].ok() && answers[1].ok() && answers[2].ok());
  ASSERT_FALSE(answers[3].ok());
  rejection r = answers[3].as_rejection();
  EXPECT_EQ(r.code, code::too_many_inflight);
  EXPECT_EQ(r.limit, "metadata.max_pending_commands");
  EXPECT_EQ(r.observed, 4u);
  EXPECT_EQ(r.max, 3u);
  EXPECT_GT(r.retry_after_ms, 0u);
  EXPECT_EQ(leader->stats().refused_queue_full, 1u);
  ASSERT_TRUE(later.wait_for(3));  // the three accepted ones are answered
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(later.at(i).what, command_outcome::kind::applied);
}

TEST_F(RaftNodeTest, ADataDirWithoutDirectIoIsAClearError) {
  if (!fs::exists("/dev/shm"))
    GTEST_SKIP() << "no tmpfs at /dev/shm to try";
  std::string dir = "/dev/shm/levee-raft-" + std::to_string(::getpid());
  fs::create_directories(dir);
  status s = check_direct_io(dir);
  fs::remove_all(dir);
  if (s.ok())
    GTEST_SKIP() << "this kernel's tmpfs takes O_DIRECT (Linux 6.6 and later): nothing to refuse";
  EXPECT_EQ(s.code(), code::storage_error);
  EXPECT_NE(s.message().find("'" + dir + "' does not support O_DIRECT"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("put it on ext4 or xfs"), std::string::npos);
}

// Two brokers given one metadata directory would both write libraft's files: the second
// start is refused before libraft touches it, and the first keeps serving. Once the first
// stops, the directory is free again.
TEST_F(RaftNodeTest, ASecondNodeOnTheSameDataDirIsRefusedAndTheFirstServesOn) {
  start_group(1);
  ASSERT_NE(serving_leader(), nullptr);
  auto twin = options_.at(1);
  twin.address = "127.0.0.1:" + std::to_string(free_port());
  auto second = raft_node::start(twin);
  ASSERT_FALSE(second.ok()) << "a second node opened a directory the first one holds";
  EXPECT_EQ(second.error().code(), code::storage_error);
  EXPECT_NE(second.error().message().find("two brokers were given the same data directory"),
            std::string::npos)
    << second.error().message();
  EXPECT_NE(serving_leader(), nullptr) << "the first node stopped serving";
  nodes_.at(1).reset();
  auto again = raft_node::start(twin);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  nodes_.at(1) = std::move(again.value());
}

TEST_F(RaftNodeTest, AHostNameIsRefusedBeforeStarting) {
  raft_node_options o;
  o.id = 1;
  o.address = "localhost:7400";
  o.data_dir = (root_ / "n").string();
  auto n = raft_node::start(o);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code(), code::bad_request);
  EXPECT_NE(n.error().message().find("must be an IPv4 literal"), std::string::npos);
}

} // namespace
} // namespace levee::metadata
