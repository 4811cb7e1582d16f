#pragma once
// The target's side of a load run: its counters before and after (the StatsReply of its
// "stats" target, flattened by apps/load_cli.cpp into named counters), its process's CPU
// and memory when it runs on this machine (found from its listening port through /proc),
// and the check that the target accounted for every request the tool sent.
//
// The accounting check reads the target's listener counters, which every node kind keeps
// the same way (net/PROTOCOL.md "StatsReply"): each request a connection takes ends as a
// Response (`listener.requests_answered`) or a Reject (`listener.rejects_sent.<code>`).
// So, between the two snapshots, answered + refused on the target = requests the tool put
// on the wire, and by code the target's refusals = the Rejects the tool read. A request
// the tool gave up on (timed out, or its connection was lost) may or may not have been
// answered: each one widens the check by one, never more.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace levee::load {

/// Counters of a target, by name: "listener.requests_answered",
/// "listener.rejects_sent.rate_limited", "broker.rejections_by_limit.broker.publish_msgs_per_sec".
/// Only counters (they only grow while the target runs), so after - before is what the
/// run (and anyone else meanwhile) caused.
using target_counters = std::map<std::string, uint64_t>;

/// after - before, by name, leaving out those that did not move. A counter lower after
/// than before (the target restarted) is kept as 0 and named in `went_back`.
target_counters counter_deltas(const target_counters& before, const target_counters& after,
                               std::vector<std::string>* went_back = nullptr);

/// One look at a process (Linux /proc).
struct process_sample {
  uint64_t cpu_ns = 0;         // user + system time used since it started
  uint64_t rss_bytes = 0;      // VmRSS
  uint64_t peak_rss_bytes = 0; // VmHWM
  std::chrono::steady_clock::time_point at;
};

/// Whether `host` names this machine: a loopback address, "localhost", 0.0.0.0, or an
/// address one of its interfaces has.
bool is_local_host(const std::string& host);

/// The process listening on TCP `port` (IPv4 or IPv6, any local address), from
/// /proc/net/tcp{,6} (the socket's inode) and /proc/*/fd (who holds it). nullopt, with
/// `why` set, when there is none this user may see.
std::optional<int> find_listening_pid(uint16_t port, std::string& why);

/// The figures of process `pid` now; nullopt when it is gone.
std::optional<process_sample> sample_process(int pid);

/// What the target's process did during the run, or why it is not known.
struct process_figures {
  std::string status;  // "pid 1234", "not local (HOST is not this machine)", "not found: ..."
  int pid = 0;         // 0: not known
  std::optional<process_sample> before, after;

  bool known() const noexcept { return before && after; }
  double cpu_seconds() const noexcept;
  /// CPU used over the wall time between the samples, in % of one core.
  double cpu_percent() const noexcept;
};

/// What the tool saw of its requests on the wire, warm-up included (the target counts
/// those too). Kept per sending thread and summed.
struct wire_accounting {
  uint64_t sent = 0;           // requests written to a connection
  uint64_t refused_locally = 0;  // refused by the client before sending (never reached the target)
  uint64_t accepted = 0;       // answered with a Response
  /// Answered with a Reject, by code (found by a view: counting one allocates nothing).
  std::map<std::string, uint64_t, std::less<>> refused;
  uint64_t unanswered = 0;     // timed out, or in flight when the connection was lost
  /// The tool's own requests answered between the snapshots (the first stats request,
  /// counted by the second), and its own refused there by code (refused tries of the
  /// second): the target's counts include them.
  uint64_t own_requests = 0;
  std::map<std::string, uint64_t, std::less<>> own_refused;

  void refused_with(std::string_view code);
  void merge(const wire_accounting& other);
};

/// The verdict of the accounting check.
struct accounting_check {
  bool made = false;   // false: the target's counters were not read (then `held` is true)
  bool held = true;
  std::vector<std::string> differences;  // one sentence each, when it did not hold
};

/// The prefix of the target's refusal counters by code.
inline constexpr const char* rejects_sent_prefix = "listener.rejects_sent.";

/// Where the check reads the target's answers and refusals: a node's listener by default;
/// an in-process target's actor kind (`kinds.KIND.processed`, `kinds.KIND.rejected.`).
struct accounting_names {
  std::string answered = "listener.requests_answered";
  std::string refused_prefix = rejects_sent_prefix;
};

/// Compares the tool's view with the target's counter deltas (`delta`, from
/// counter_deltas). `other_traffic`: the target also served others meanwhile, so its
/// counts need only be at least the tool's.
accounting_check check_accounting(const wire_accounting& tool, const target_counters& delta,
                                  bool other_traffic, const accounting_names& names = {});

/// Everything the report shows of the target.
struct target_side {
  std::string stats_status;  // "read" or why the counters are missing
  target_counters before, after, delta;
  process_figures process;
  wire_accounting tool;
  accounting_check accounting;
  bool other_traffic = false;

  /// The section of the text summary.
  std::string text() const;
  /// `"target_side":{...}` members as one JSON object (load/README.md lists its keys).
  std::string json() const;
};

} // namespace levee::load
