#pragma once
// The failover harness (issue 16): a cluster of real `levee node` brokers on 127.0.0.1, a
// publisher that sends numbered messages with ack = all and remembers which were
// acknowledged, and the checks that every acknowledged message is in the partition exactly
// once and in order, on the leader while it runs and on every replica's files afterwards.
// Used by tests/failover_system_test.cpp (a few kills, in CI) and bench/chaos.cpp (as many
// as asked, with the figures per kill).
//
// Processes are test::child_process: SIGKILLed and reaped when the cluster goes away,
// whatever happened. Every wait is bounded and polls with a short pause.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "limits/status.hpp"
#include "tests/process_support.hpp"

namespace levee::cluster {
class ClusterInfo;
}

namespace levee::chaos {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

/// A TCP relay on 127.0.0.1 in front of one address, on a thread of its own, that can be
/// stalled: while stalled it reads nothing from either side, so the connections stay open
/// and whatever is sent waits in the kernel's buffers (a link that stopped moving, not
/// one that failed). Used to cut a replica off from its leader.
class tcp_proxy {
public:
  explicit tcp_proxy(uint16_t target_port);
  ~tcp_proxy();
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;
  uint16_t port() const noexcept { return port_; }  // where it listens (0: it could not)
  void stall(bool on) { stalled_ = on; }
  bool stalled() const noexcept { return stalled_; }

private:
  void run();
  uint16_t target_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stalled_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct cluster_options {
  std::string levee_binary;
  std::string dir;            // configs, data directories and stderr files go here
  int brokers = 3;
  int session_timeout_ms = 1500;   // short, so a kill is noticed soon; twice the election
  int election_timeout_ms = 500;
  /// Further config lines: (section, key, value).
  std::vector<std::tuple<std::string, std::string, std::string>> extra;
  milliseconds start_bound{30000};
  /// Each broker behind a tcp_proxy that it advertises: every connection to it from
  /// another broker (fetches, forwarded heartbeats) and from a client that follows a
  /// leader hint goes through the proxy; Raft's own traffic does not.
  bool proxies = false;
};

/// N brokers forming one metadata group; ids 1..N.
class broker_cluster {
public:
  explicit broker_cluster(cluster_options opts);
  ~broker_cluster();
  broker_cluster(const broker_cluster&) = delete;
  broker_cluster& operator=(const broker_cluster&) = delete;

  /// Starts broker `id` (again: with its data) and waits until it listens.
  status start(int id);
  status start_all();
  /// SIGKILL, reaped.
  void kill(int id);
  /// SIGSTOP (returns once stopped) and SIGCONT.
  bool pause(int id);
  bool resume(int id);
  /// SIGTERM and waits for the exit (SIGKILL after the bound); its exit code.
  std::optional<int> stop(int id, milliseconds bound = milliseconds{30000});
  bool running(int id) const;

  int size() const noexcept { return static_cast<int>(members_.size()); }
  std::string address(int id) const;  // host:port of its client listener
  uint16_t port(int id) const;
  std::string data_dir(int id) const;
  std::string stderr_path(int id) const;
  std::vector<std::string> addresses() const;
  /// The last lines of its stderr, for a failure message.
  std::string stderr_tail(int id, size_t lines = 20) const;

  /// The proxy in front of the broker (cluster_options::proxies), else nullptr.
  tcp_proxy* proxy(int id) const;

  /// The broker's ClusterInfo ("cluster" target), nullopt when it does not answer.
  std::optional<cluster::ClusterInfo> info(int id, milliseconds timeout) const;

private:
  struct member {
    int id = 0;
    uint16_t port = 0;
    uint16_t raft_port = 0;
    std::string config;
    std::unique_ptr<test::child_process> proc;
    std::unique_ptr<tcp_proxy> proxy;
  };
  cluster_options opts_;
  std::vector<member> members_;
};

/// A partition's state as the metadata has it (from any live broker's ClusterInfo).
struct partition_view {
  int leader = 0;  // 0: none
  uint64_t leader_epoch = 0;
  uint64_t partition_epoch = 0;  // bumped by every change of leader or ISR
  std::vector<int> isr;
  std::vector<int> replicas;
};
/// Asks every live broker and keeps the newest view (the highest partition epoch: a
/// broker just resumed from SIGSTOP may still hold an old one); nullopt when none answers.
std::optional<partition_view> view_partition(const broker_cluster& c, const std::string& stream,
                                             uint32_t partition, milliseconds timeout);
/// Waits until the partition has a leader other than `not_this` (0: any) whose ISR holds
/// at least `min_isr` brokers; the view, or nullopt after `bound`.
std::optional<partition_view> wait_for_leader(const broker_cluster& c, const std::string& stream,
                                              uint32_t partition, int not_this, size_t min_isr,
                                              milliseconds bound);

/// One acknowledged message: its sequence number and where it was stored.
struct acked_message {
  uint64_t seq = 0;
  uint64_t offset = 0;
  steady::time_point sent;  // when its (last) publish call began
  steady::time_point at;    // when the ack was read
};

struct publisher_options {
  std::vector<std::string> addresses;  // any broker; not_leader hints and failures move on
  std::string subject;
  uint32_t partition = 0;
  size_t body_bytes = 100;
  milliseconds attempt_timeout{2000};
  /// Pause after a failed attempt before the next (the next broker, or the hinted one).
  milliseconds retry_pause{20};
};

/// A thread that publishes messages 0, 1, 2, ... one at a time with ack = all: message n
/// has id "chaos-n" (so a retry after a lost ack is a duplicate the broker recognises) and
/// body "n" padded to body_bytes. A message is sent again, same id, until it is
/// acknowledged; only then comes the next. Failures are counted by code.
class publisher {
public:
  explicit publisher(publisher_options opts);
  ~publisher();  // stops the thread
  void start();
  void stop();

  std::vector<acked_message> acked() const;
  uint64_t acked_count() const;
  /// When the first acknowledgement of a publish sent at or after `t` was read, waited for
  /// up to `bound`. A publish sent before `t` may still be answered by a leader killed at
  /// `t` (its ack was in the socket), so it does not count: with one publish at a time,
  /// a publish sent after the kill can only be acknowledged by a live leader.
  std::optional<steady::time_point> first_ack_after(steady::time_point t, milliseconds bound) const;
  /// Waits until `n` more messages than now are acknowledged; false after `bound`.
  bool wait_more_acks(uint64_t n, milliseconds bound) const;
  std::map<std::string, uint64_t> failures() const;  // by code name
  std::string last_failure() const;

private:
  void run();
  publisher_options opts_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<acked_message> acked_;
  std::map<std::string, uint64_t> failures_;
  std::string last_failure_;
};

/// One message as read back: offset, id, body.
struct read_message {
  uint64_t offset = 0;
  std::string id;
  std::string body;
};

/// What a check found.
struct check_report {
  uint64_t acknowledged = 0;
  uint64_t lost = 0;          // acknowledged, not in the log
  uint64_t duplicated = 0;    // acknowledged, in the log more than once
  uint64_t out_of_order = 0;  // acknowledged messages not in sequence order
  uint64_t moved = 0;         // found at another offset than the ack said
  std::vector<std::string> problems;  // the first few, as text
  bool ok() const { return lost == 0 && duplicated == 0 && out_of_order == 0 && moved == 0 && problems.empty(); }
  std::string to_string() const;
};

/// Every acknowledged message in `log` exactly once, in order, at its acknowledged offset.
check_report check_acked(const std::vector<acked_message>& acked,
                         const std::vector<read_message>& log);

/// Reads the partition from its leader over the wire, from earliest to the high-water
/// mark, once that mark is at least `min_high_water` (a new leader's HW may trail what
/// the old one acknowledged for a moment); tries every address.
result<std::vector<read_message>> read_from_leader(const std::vector<std::string>& addresses,
                                                   const std::string& stream, uint32_t partition,
                                                   uint64_t min_high_water, milliseconds bound);

/// Reads a stopped broker's copy of the partition from its files (its data dir).
result<std::vector<read_message>> read_from_files(const std::string& data_dir,
                                                  const std::string& stream, uint32_t partition);

/// Two replicas agree below `below`: same ids and bodies at every offset. Problems as text.
std::vector<std::string> compare_replicas(const std::vector<read_message>& a,
                                          const std::vector<read_message>& b, uint64_t below);

/// How a round takes the leader away.
enum class fault { kill, pause };

struct round_options {
  std::string stream;
  uint32_t partition = 0;
  size_t replicas = 3;             // the ISR a round starts with and waits to get back
  fault how = fault::kill;
  uint64_t acks_before = 20;       // acknowledged messages the publisher adds first
  milliseconds new_leader_bound{45000};
  milliseconds rejoin_bound{60000};
};

/// One round: waits for progress and a full ISR, kills (or pauses) the partition's
/// leader, times the first acknowledged publish after it and the new leader's view,
/// brings the broker back (restart with its data, or SIGCONT), waits until it is in the
/// ISR again, and checks what the leader serves against everything acknowledged.
struct round_result {
  int victim = 0;
  /// The victim also led the metadata (Raft) group when it was lost: the failover then
  /// waits for a metadata election first (and the new metadata leader's session wait).
  bool victim_led_metadata = false;
  int new_leader = 0;
  uint64_t old_epoch = 0;
  uint64_t new_epoch = 0;
  std::optional<milliseconds> first_ack;   // loss -> first acknowledged publish
  std::optional<milliseconds> new_view;    // loss -> the metadata names another leader
  std::optional<milliseconds> rejoined;    // back -> in the ISR again
  check_report check;                      // the leader's log after the round
  std::vector<std::string> errors;         // what went wrong, as text (empty: nothing)
  bool ok() const { return errors.empty() && check.ok(); }
};
round_result run_round(broker_cluster& c, const publisher& pub, const round_options& o);

/// Percentile (0..100) of `values` (sorted inside); 0 when empty.
double percentile(std::vector<double> values, double pct);

} // namespace levee::chaos
