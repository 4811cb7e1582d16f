#pragma once
// One member of the metadata's Raft group (README.md "raft_node"): the one wrapper around
// libraft 0.15 (nothing else in Levee includes raft.h), so a newer engine can replace it
// without touching the controller.
//
// Threads. The node owns a libuv loop on a thread of its own; every libraft call and every
// state machine callback runs there. Other threads reach it only through:
//   - submit() / add_member() / remove_member(): a bounded queue and uv_async_send; a
//     full queue is a typed refusal (too_many_inflight, `metadata.max_pending_commands`);
//   - the completion callback of each request, called on the loop thread;
//   - drain_applied(): applied entries wait in a bounded queue; on_applied_ready is called
//     (on the loop thread) when that queue goes from empty to not empty, and the owner
//     drains it from its own thread. When the owner falls behind by more than
//     max_applied_backlog entries, the oldest are dropped and the next drain says
//     `resync` (read state_copy()): the loop never waits for the owner;
//   - state_copy(), leader(), status(): copies taken under a mutex.
// Callbacks must only hand off (post a message, notify a condvar): they run on the loop
// thread and a slow one stalls the Raft group's heartbeats.
//
// Guards against libraft 0.15's known defects (../shared/DESIGN.md "Metadata on libraft
// 0.15"): a node that becomes leader commits a barrier in its own term before it accepts
// a command (0.15 appends no no-op and may commit an older term's entry by counting);
// the leader fills each entry's expected chain head, and a node whose chain differs stops
// serving metadata (metadata_state::failure()).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "limits/defaults.hpp"
#include "limits/rejection.hpp"
#include "limits/status.hpp"
#include "metadata/metadata_state.hpp"

namespace levee::metadata {

struct raft_member {
  uint64_t id = 0;
  std::string address;  // IPv4 literal and port, "10.0.0.5:7400" (libraft 0.15: no names, no IPv6)
};

/// A member's role in libraft's configuration (raft.h): a voter counts in majorities; a
/// standby receives the log without voting; a spare neither (raft_add's first role).
enum class member_role { voter, standby, spare };
/// "voter", "standby", "spare".
const char* to_string(member_role r) noexcept;

/// One member of the Raft group's configuration as this node last knew it.
struct member_info {
  uint64_t id = 0;
  std::string address;  // its Raft address
  member_role role = member_role::voter;
};

struct raft_node_options {
  uint64_t id = 0;      // 1.. ; unique in the group, never reused after a removal
  std::string address;  // where libraft's TCP transport listens and peers dial (IPv4:port)
  /// libraft's log, term/vote and snapshots. Must support O_DIRECT (ext4, xfs; not tmpfs);
  /// created if missing.
  std::string data_dir;
  /// The group's first members. A node whose id is listed bootstraps them once, when its
  /// data dir is empty; later starts rejoin with the data. A node started with an empty
  /// list joins only when a member adds it (add_member).
  std::vector<raft_member> initial_members;
  /// commands and membership changes waiting for the loop (queued, or held for the
  /// leader's barrier) or handed to libraft and not yet answered. 256: metadata changes are rare (stream creation, leader changes); a
  /// burst larger than that means a caller is looping.
  uint64_t max_pending_commands = defaults::metadata_max_pending_commands;
  /// applied entries the owner has not drained yet. 4096 rides out a long GC-like pause of
  /// the owner; past it the owner re-reads the whole state instead.
  uint64_t max_applied_backlog = 4096;
  unsigned election_timeout_ms = 1000;   // libraft's default
  unsigned heartbeat_timeout_ms = 100;   // libraft's default
  /// take a snapshot every `snapshot_threshold` entries and keep `snapshot_trailing`
  /// entries behind it for followers slightly behind (libraft defaults: 1024, 2048).
  unsigned snapshot_threshold = 1024;
  unsigned snapshot_trailing = 2048;
  /// the loop looks at libraft's role after every batch of I/O callbacks (so a new
  /// leader's barrier goes out in the iteration it won), and at least this often when
  /// nothing happens (to answer held commands when leadership moved), ms.
  unsigned role_poll_ms = 10;
};

/// What became of a submitted command.
struct command_outcome {
  enum class kind {
    applied,        // committed and applied; `applied` holds the state machine's answer
    not_leader,     // refused before proposing: send it to `leader_id` at `leader_address`
    indeterminate,  // proposed, then leadership was lost: it may still commit; retry (CAS)
    refused,        // refused here: `refusal` says why (stopping, this node failed, ...)
  };
  kind what = kind::refused;
  apply_outcome applied;
  uint64_t leader_id = 0;      // not_leader: the leader this node knows, 0 if none
  std::string leader_address;  // not_leader: its Raft address ("" if none)
  rejection refusal;           // not_leader, indeterminate, refused: the typed refusal
};
using command_callback = std::function<void(const command_outcome&)>;
/// A membership change's end: OK, or why it failed.
using change_callback = std::function<void(const status&)>;

struct applied_entry {
  uint64_t index = 0;     // the Raft log index
  apply_outcome outcome;  // the command and what it did
};

struct applied_batch {
  std::vector<applied_entry> entries;
  /// Entries were dropped because the owner fell max_applied_backlog behind: read
  /// state_copy() instead of replaying the batch on an old copy.
  bool resync = false;
};

struct raft_node_stats {
  uint64_t refused_queue_full = 0;  // submit()s refused by max_pending_commands
  uint64_t applied = 0;             // entries applied by the state machine
  uint64_t snapshots_taken = 0;
  uint64_t snapshots_restored = 0;
  uint64_t applied_dropped = 0;     // applied entries dropped past max_applied_backlog
  uint64_t barriers_committed = 0;  // one per leadership won and confirmed
};

class raft_node {
public:
  struct callbacks {
    /// Called on the loop thread when drain_applied() has something; must only hand off.
    std::function<void()> on_applied_ready;
  };

  /// Checks the options and the data dir (exists or can be made, supports O_DIRECT),
  /// starts the loop thread, bootstraps or loads, and starts libraft. An error says which
  /// option or directory and what to do.
  static result<std::unique_ptr<raft_node>> start(raft_node_options options, callbacks cbs = {});

  /// Stops (as stop()) and joins the loop thread.
  ~raft_node();
  raft_node(const raft_node&) = delete;
  raft_node& operator=(const raft_node&) = delete;

  /// Closes libraft, then the transport and the loop, and joins the thread. Queued
  /// requests end as refused (shutting_down); proposed ones as indeterminate. Idempotent.
  void stop();

  /// Queues a command for the leader. Refused at once (and counted) when
  /// max_pending_commands are pending; otherwise `done` is called exactly once, on the loop
  /// thread.
  [[nodiscard]] status submit(command cmd, command_callback done);

  /// Membership (leader only): adds a node as a voter (raft_add, then raft_assign once it
  /// is known), or removes one. Bounded and refused like submit(); `done` is called once,
  /// on the loop thread. libraft takes one change at a time: a second one while another
  /// runs is `unavailable` with a retry; an id or address already in the group is
  /// `precondition_failed`, removing an id that is not is `not_found`. An add whose
  /// catch-up fails (the new node never answered: libraft gives up after its catch-up
  /// rounds) removes the spare it had added before answering, so a wrong address does not
  /// stay in the configuration.
  [[nodiscard]] status add_member(raft_member member, change_callback done);
  [[nodiscard]] status remove_member(uint64_t id, change_callback done);
  /// Leader only: hands leadership to another voter (libraft picks the most up to date),
  /// so that this node can be removed. `done` says whether libraft took the request; the
  /// move shows in leader() within an election timeout.
  [[nodiscard]] status transfer_leadership(change_callback done);

  /// Takes what was applied since the last drain (any thread).
  applied_batch drain_applied();

  /// A copy of the replicated state as this node has applied it (any thread).
  metadata_state state_copy() const;
  /// The same without the consumer-group cursors: O(brokers + streams) whatever their
  /// number (the controller's cache takes the cursors from the applied entries).
  metadata_state state_copy_without_cursors() const;

  /// True when this node is leader and its barrier committed: it accepts commands.
  bool serving_as_leader() const;
  /// The leader this node knows (0 and "" when none).
  raft_member leader() const;
  /// The group's configuration as this node knows it (from its log and snapshots, updated
  /// on every look at its role), by id. Empty on a node that was never added.
  std::vector<member_info> members() const;
  /// The Raft term as of the loop's last look at its role (every role_poll_ms at most).
  uint64_t term() const;
  /// OK, or why this node stopped serving metadata (its chain diverged, an entry it cannot
  /// read, libraft stopped with an error).
  status health() const;
  raft_node_stats stats() const;
  uint64_t id() const noexcept;

  struct impl;

private:
  explicit raft_node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Checks that `dir` accepts O_DIRECT writes, as libraft's uv backend needs: OK, or an
/// error naming the dir and what to do (put it on ext4 or xfs, not tmpfs).
status check_direct_io(const std::string& dir);

/// What libraft 0.15's transport takes: an IPv4 literal and a port from 1 ("10.0.0.5:7400").
/// A clear error naming `name` (a config key) otherwise.
status check_raft_address(const std::string& address, const std::string& name);

} // namespace levee::metadata
