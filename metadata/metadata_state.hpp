#pragma once
// The replicated metadata's state machine (README.md "State"): brokers, streams and, per
// partition, its replicas, leader, ISR and epochs. Deterministic and CAF-free: every node
// applies the same entries in the same order and must end in the same state, so nothing
// here reads a clock, a random number or the order of an unordered container.
//
// Entries are chained: each carries the chain head its proposer expected before it, and
// applying it moves the head to SHA-256(head || command bytes). A node whose head differs
// from an entry's expectation has applied a different sequence than the proposer (the
// libraft 0.15 "Figure 8" gap, a corrupted log); it stops (failure()) instead of serving
// a state the others do not share.
//
// Not thread-safe: raft_node applies on its loop thread and copies under its own lock.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "limits/rejection.hpp"
#include "limits/status.hpp"
#include "streams/stream_config.hpp"

namespace levee::metadata {

/// The format of entries and snapshots this build writes and reads (metadata.proto).
constexpr uint32_t format_version = 1;

using chain_hash = std::array<uint8_t, 32>;  // SHA-256

/// SHA-256(head || command): the chain head after applying `command` (its logged bytes).
chain_hash next_chain_hash(const chain_hash& head, std::string_view command);
/// Lowercase hex of the first 8 bytes, enough to tell two heads apart in an error.
std::string short_hex(const chain_hash& h);
/// Broker ids as "[1,2,3]", for errors and logs.
std::string ids_text(const std::vector<uint64_t>& ids);

enum class broker_state { alive, fenced, unreachable };
/// "alive", "fenced", "unreachable".
const char* to_string(broker_state s) noexcept;

struct broker_info {
  uint64_t id = 0;
  std::string address;  // the broker's client listener, host:port
  broker_state state = broker_state::alive;
  uint64_t epoch = 1;  // bumps on every change (register, mark): mark_broker's CAS token
};

struct partition_info {
  std::vector<uint64_t> replicas;  // broker ids; replicas[0] is the preferred leader
  uint64_t leader = 0;             // 0: offline (no ISR member alive)
  std::vector<uint64_t> isr;
  uint64_t leader_epoch = 1;     // bumps when the leader changes
  uint64_t partition_epoch = 1;  // bumps on every change; the compare-and-set token
};

struct stream_info {
  streams::stream_config config;
  uint32_t replication_factor = 1;
  uint32_t min_insync_replicas = 1;
  std::vector<partition_info> partitions;
  uint64_t created_at = 0;  // the sequence of the entry that created it
};

bool operator==(const broker_info& a, const broker_info& b);
bool operator==(const partition_info& a, const partition_info& b);
bool operator==(const stream_info& a, const stream_info& b);

// Commands. Each is safe to apply twice: registering a broker again and creating a
// stream identical to an existing one change nothing, and a partition change names the
// partition_epoch it was decided on, so a re-proposed change is refused, not reapplied.
struct register_broker {
  uint64_t id = 0;
  std::string address;
};
struct create_stream {
  streams::stream_config config;
  uint32_t replication_factor = 1;
  uint32_t min_insync_replicas = 1;
};
struct delete_stream {
  std::string name;
};
struct change_partition {
  std::string stream;
  uint32_t partition = 0;
  uint64_t expected_partition_epoch = 0;
  uint64_t leader = 0;
  std::vector<uint64_t> isr;
};
/// Sets a broker's state (the metadata leader marks one whose session expired as
/// unreachable, README.md "State"), at `expected_epoch`: a register applied since (the
/// broker came back) moved the epoch and the mark is refused.
struct mark_broker {
  uint64_t id = 0;
  uint64_t expected_epoch = 0;
  broker_state state = broker_state::unreachable;
};
/// A consumer group's cursor in one partition (README.md "Cursors").
struct cursor_key {
  std::string stream;
  uint32_t partition = 0;
  std::string group;
};
bool operator<(const cursor_key& a, const cursor_key& b);
bool operator==(const cursor_key& a, const cursor_key& b);
/// bytes of a group name: part of every cursor's key; 256 holds any sane one (the
/// broker's cursors.hpp checks the same bound before proposing).
constexpr uint64_t max_cursor_group_bytes = 256;

/// Sets a group's cursor (README.md "Cursors"). Committed through the partition's leader:
/// refused not_leader unless `leader` leads it at `leader_epoch` when the entry applies (a
/// deposed leader's late commit must not overwrite the new leader's). A new cursor past
/// `max_cursors` (the committing broker's broker.max_cursors, carried so every node
/// decides alike) is memory_budget_exhausted.
struct commit_cursor {
  cursor_key key;
  uint64_t offset = 0;
  uint64_t leader = 0;
  uint64_t leader_epoch = 0;
  uint64_t max_cursors = 0;
};
/// Removes a broker at runtime (README.md "Membership"): refused with precondition_failed
/// while it is a replica of any partition (delete or move its streams first), not_found
/// when no such broker is registered. Its id is kept as removed: never registered again.
struct remove_broker {
  uint64_t id = 0;
};
using command = std::variant<register_broker, create_stream, delete_stream, change_partition, mark_broker,
                             commit_cursor, remove_broker>;

/// A command's serialized form (metadata.proto Command), what the chain hashes.
std::string encode_command(const command& c);
/// The command in `bytes` (encode_command's); storage_error when they do not parse, or
/// unsupported_version for a kind this build does not know. `where` names them in errors.
result<command> decode_command(const std::string& bytes, const std::string& where);
/// An Entry: format_version, `expected` and the command's bytes.
std::string encode_entry(std::string_view command_bytes, const chain_hash& expected);

/// What applying one entry did. A refused command is still applied (the chain moves on
/// and every node refuses it alike); `refusal` says why it changed nothing.
struct apply_outcome {
  uint64_t sequence = 0;             // 1-based count of entries applied, this one included
  command cmd;                       // what the entry asked for
  std::optional<rejection> refusal;  // set when the command changed nothing
};

class metadata_state {
public:
  metadata_state() = default;

  /// Applies one Entry. An error (unknown format version, an entry that does not parse,
  /// a chain head that differs from the entry's expectation) puts the state in failure():
  /// it applies nothing more, and every later call returns the same error.
  result<apply_outcome> apply(std::string_view entry);

  /// The whole state and the chain head, as a Snapshot.
  std::string encode_snapshot() const;
  /// Replaces the state with a Snapshot's; on error the state is unchanged.
  status restore(std::string_view snapshot);

  /// Stops the state with `why` (an entry its carrier could not unwrap): as apply's errors.
  void stop(status why) { (void)fail(std::move(why)); }

  /// OK, or why this node stopped serving metadata.
  const status& failure() const noexcept { return failure_; }
  const chain_hash& chain_head() const noexcept { return head_; }
  uint64_t applied_count() const noexcept { return applied_; }
  const std::map<uint64_t, broker_info>& brokers() const noexcept { return brokers_; }
  const std::map<std::string, stream_info>& streams() const noexcept { return streams_; }
  /// Every group's cursor, by (stream, partition, group); a stream's go when it is deleted.
  const std::map<cursor_key, uint64_t>& cursors() const noexcept { return cursors_; }
  /// A copy of everything but the cursors (cheap whatever their number: what the
  /// controller's cache needs, which takes the cursors from the applied entries instead).
  metadata_state copy_without_cursors();
  /// Brokers removed at runtime (remove_broker): their ids are not registered again.
  const std::set<uint64_t>& removed_brokers() const noexcept { return removed_; }

private:
  std::optional<rejection> apply_command(const register_broker& c);
  std::optional<rejection> apply_command(const create_stream& c);
  std::optional<rejection> apply_command(const delete_stream& c);
  std::optional<rejection> apply_command(const change_partition& c);
  std::optional<rejection> apply_command(const mark_broker& c);
  std::optional<rejection> apply_command(const commit_cursor& c);
  void forget_cursors(const std::string& stream);
  std::optional<rejection> apply_command(const remove_broker& c);
  status fail(status s);

  std::map<uint64_t, broker_info> brokers_;
  std::map<std::string, stream_info> streams_;
  std::map<cursor_key, uint64_t> cursors_;
  std::set<uint64_t> removed_;  // remove_broker's ids (membership)
  chain_hash head_{};
  uint64_t applied_ = 0;
  uint64_t applying_ = 0;  // the sequence of the entry being applied (created_at)
  status failure_;
};

/// Where a new stream's partitions go: for each partition the `replication_factor` alive
/// brokers with the fewest replicas so far, the one of them with the fewest leaderships
/// first (ties by id), so leaders and replicas spread across brokers and streams.
/// insufficient_replicas when fewer alive brokers than the factor.
/// What the metadata leader proposes when brokers are no longer alive (README.md
/// "Failover"): for every partition whose leader or ISR names a broker that is not alive,
/// one change_partition at its current epoch: a leader that is not alive gives way to the
/// first alive ISR member in replica order (the preferred one first), and members that are
/// not alive leave the ISR. No unclean election: with no ISR member alive the partition
/// goes offline (leader 0) and keeps its ISR, so that one of them leads again once it is
/// back. An offline partition whose ISR has a member alive again gets it as leader.
std::vector<change_partition> failover_changes(const metadata_state& state);

/// The partitions ("stream/0") that name broker `id` as a replica: what keeps it from
/// being removed (remove_broker).
std::vector<std::string> partitions_replicated_on(const metadata_state& state, uint64_t id);

result<std::vector<partition_info>> place_partitions(const std::map<uint64_t, broker_info>& brokers,
                                                     const std::map<std::string, stream_info>& streams,
                                                     uint32_t partitions,
                                                     uint32_t replication_factor);

} // namespace levee::metadata
