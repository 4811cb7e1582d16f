#pragma once
// What the broker's actors say to each other (README.md "Actors"): the broker (the stream
// table, exposed as "broker") and one stream leader per partition. Inside the process
// messages carry structs; protobuf is only the wire's (a BrokerCall in, its answers and
// MessageBatch parts out).

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/wire_target.hpp"
#include "metadata/metadata_state.hpp"
#include "streams/partition_log.hpp"

namespace levee::broker {

/// (append_atom, append_batch) -> append_acks: messages for one partition.
using append_atom = caf::atom_constant<caf::atom("b_append")>;
/// (subscribe_atom, subscription_request) -> SubscribeEnd bytes, batches on the way.
using subscribe_atom = caf::atom_constant<caf::atom("b_sub")>;
/// (read_atom): a leader's own: one read step for the next subscriber that may go.
using read_atom = caf::atom_constant<caf::atom("b_read")>;
/// (sync_atom): a leader's own: fsync = interval's timer.
using sync_atom = caf::atom_constant<caf::atom("b_sync")>;
/// (maintain_atom): a leader's own: retention and compaction.
using maintain_atom = caf::atom_constant<caf::atom("b_maint")>;
/// (commit_atom): a leader's own: the appends taken since the last one, as one write.
using commit_atom = caf::atom_constant<caf::atom("b_commit")>;
/// (paced_atom): a leader's own timer: a subscriber held by [limits.consumer]'s rates
/// may go again.
using paced_atom = caf::atom_constant<caf::atom("b_paced")>;

/// (role_atom, partition_role): the broker tells a partition's actor what the replicated
/// metadata says about its partition (issue 16: who leads, at which leader epoch, the ISR).
/// A partition's actor that never gets one (a broker alone) leads with replication factor 1.
using role_atom = caf::atom_constant<caf::atom("b_role")>;

/// (metadata_atom, metadata_view): the controller tells the broker the applied metadata
/// after every change (README.md "Streams in the metadata"); the broker creates, deletes
/// and tells roles to its partitions from it.
using metadata_atom = caf::atom_constant<caf::atom("b_meta")>;
using metadata_view = std::shared_ptr<const metadata::metadata_state>;

/// (cursors_atom, cursor_update): clustered, the controller tells the broker the cursor
/// commits and stream deletes the metadata applied, in their order, or the whole table
/// (`replace`) at first and after a resync (README.md "Cursors in the metadata"); and
/// (`early`) a commit of this broker that the metadata leader applied before this
/// broker's own node did, so that its answer need not wait for that.
using cursors_atom = caf::atom_constant<caf::atom("b_cursors")>;
struct cursor_op {
  std::string stream;
  uint32_t partition = 0;
  std::string group;  // empty: every cursor of `stream` goes (it was deleted)
  uint64_t offset = 0;
  uint64_t sequence = 0;  // the metadata entry that applied it (replace: the table's)
};
struct cursor_update {
  bool replace = false;  // the table becomes exactly what `ops` set
  bool early = false;    // `ops` were applied on the metadata leader, not here yet
  std::vector<cursor_op> ops;
};

/// (fetch_atom, fetch_request) -> FetchReply bytes: a follower's fetch, at the leader
/// (README.md "Replicas"; wire::Fetch).
using fetch_atom = caf::atom_constant<caf::atom("b_fetch")>;
/// (epoch_end_atom, epoch_end_request) -> EpochEndOffsetReply bytes.
using epoch_end_atom = caf::atom_constant<caf::atom("b_epochend")>;
/// (fetch_expired_atom, replica, sequence): a leader's own: a held fetch's wait is over.
using fetch_expired_atom = caf::atom_constant<caf::atom("b_fetchexp")>;
/// (replica_tick_atom): a leader's own: ISR lag check, high-water checkpoint.
using replica_tick_atom = caf::atom_constant<caf::atom("b_reptick")>;
/// (follow_atom, generation): a follower's own: its next fetch step (after a backoff).
using follow_atom = caf::atom_constant<caf::atom("b_follow")>;

/// A follower's Fetch as its leader's partition actor takes it (wire::Fetch's fields).
struct fetch_request {
  uint64_t replica = 0;
  uint64_t fetch_offset = 0;
  uint64_t leader_epoch = 0;
  uint64_t max_bytes = 0;
  uint32_t max_wait_ms = 0;
};

/// A follower's EpochEndOffset (wire::EpochEndOffset's fields).
struct epoch_end_request {
  uint64_t replica = 0;
  uint64_t leader_epoch = 0;
  uint64_t epoch = 0;
};

/// How a publish is acknowledged (wire::Ack): `leader` once the leader stored it by its
/// fsync policy; `all` once the high-water mark passed it (every ISR member has it).
enum class ack_level : uint8_t { leader, all };

/// One partition as the metadata has it, seen from one broker (`self`).
struct partition_role {
  uint64_t self = 0;              // this broker's id
  uint64_t leader = 0;            // the leading broker's id
  std::string leader_address;     // its client listener, host:port: where a follower
                                  // fetches, and the not_leader hint
  uint64_t leader_epoch = 0;
  uint64_t partition_epoch = 0;   // the compare-and-set token of an ISR change
  std::vector<uint64_t> replicas; // broker ids, replicas[0] the preferred leader
  std::vector<uint64_t> isr;
  uint32_t min_insync_replicas = 1;

  bool leads() const noexcept { return leader == self; }
};

/// A message by value, as the broker took it off the wire.
struct owned_message {
  std::string key;
  std::string id;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  uint64_t size_bytes() const noexcept {
    uint64_t n = key.size() + id.size() + body.size();
    for (auto& [name, value] : headers)
      n += name.size() + value.size();
    return n;
  }
};

/// Messages for one partition, appended in order as one batch.
struct append_batch {
  std::vector<owned_message> messages;
  std::optional<uint64_t> expected_last_offset;
  ack_level ack = ack_level::leader;

  /// What the leader's gate counts (actors/message_size.hpp).
  uint64_t size_bytes() const noexcept {
    uint64_t n = 0;
    for (auto& m : messages)
      n += m.size_bytes() + sizeof(owned_message);
    return n;
  }
};

/// One ack per message of an append_batch, in order.
struct append_acks {
  std::vector<streams::append_ack> acks;
};

/// A subscription the broker hands a leader; the leader sends the batches to
/// `connection` itself, and the broker relays credit and cancel by (connection, tag).
struct subscription_request {
  wire_stream_sink connection;
  uint64_t tag = 0;               // the connection's id of the streamed request
  streams::read_position start;
  std::optional<uint64_t> stop_offset;
  std::optional<int64_t> stop_time_ms;
  uint64_t max_messages = 0;      // per batch
  uint64_t max_bytes = 0;
  uint64_t credit_batches = 0;    // the first credit
  uint64_t credit_bytes = 0;
};

/// A partition's figures, written by its leader after each change and read by the
/// broker for StreamInfo without a message (PartitionInfo's fields).
struct partition_gauges {
  std::atomic<uint64_t> start_offset{0};
  std::atomic<uint64_t> next_offset{0};
  std::atomic<uint64_t> high_water{0};
  std::atomic<uint64_t> size_bytes{0};
  std::atomic<uint64_t> appended{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> dropped_messages{0};
  std::atomic<uint64_t> dropped_segments{0};
  std::atomic<uint64_t> compacted{0};
  std::atomic<uint64_t> subscribers{0};
  // Replication: the role as the partition actor last applied it.
  std::atomic<bool> leading{false};
  std::atomic<uint64_t> leader_epoch{0};
  std::atomic<uint64_t> replicas{0};
  std::atomic<uint64_t> isr_size{0};
  std::atomic<uint64_t> max_follower_lag{0};  // leading: messages, the furthest replica behind
};

/// Every local partition's gauges by (stream, partition): the broker adds and removes
/// them, the controller reads them for ClusterInfo (HW, log end) without a message.
struct gauge_board {
  std::mutex mu;
  std::map<std::pair<std::string, uint32_t>, std::shared_ptr<partition_gauges>> partitions;
};

/// A stream leader (leader.hpp): one partition's log, its appends and its readers.
/// [limits.consumer]'s rates: what each subscription may be sent, per second, with its
/// burst (0 = no bound; a burst of 0 is one second's worth). A subscription over them
/// waits (it is paced, not refused), and each wait is counted.
struct consumer_rates {
  uint64_t msgs_per_sec = 0;
  uint64_t burst_msgs = 0;
  uint64_t bytes_per_sec = 0;
  uint64_t burst_bytes = 0;
};

using leader_actor = caf::typed_actor<
  caf::replies_to<append_atom, append_batch>::with<append_acks>,
  caf::replies_to<subscribe_atom, subscription_request>::with<std::string>,
  /// (credit_atom, tag, batches, bytes) from the connection itself: a connection sends
  /// credit to whoever sends it the batches (net/connection.cpp), the leader.
  caf::reacts_to<credit_atom, uint64_t, uint64_t, uint64_t>,
  /// (credit_atom, connection, tag, batches, bytes): the same relayed by the broker, the
  /// stream's target, for credit that came before the first batch.
  caf::reacts_to<credit_atom, caf::actor_addr, uint64_t, uint64_t, uint64_t>,
  /// (cancel_atom, connection, tag): ends it with `cancelled`.
  caf::reacts_to<cancel_atom, caf::actor_addr, uint64_t>,
  /// (stop_atom, deleted): ends every subscription (unavailable when the stream is being
  /// deleted, shutting_down otherwise), syncs and ends; true if the sync succeeded.
  caf::replies_to<stop_atom, bool>::with<bool>,
  caf::reacts_to<read_atom>, caf::reacts_to<sync_atom>, caf::reacts_to<maintain_atom>,
  caf::reacts_to<commit_atom>, caf::reacts_to<paced_atom>,
  caf::reacts_to<role_atom, partition_role>,
  caf::replies_to<fetch_atom, fetch_request>::with<std::string>,
  caf::replies_to<epoch_end_atom, epoch_end_request>::with<std::string>,
  caf::reacts_to<fetch_expired_atom, uint64_t, uint64_t>, caf::reacts_to<replica_tick_atom>,
  caf::reacts_to<follow_atom, uint64_t>>;

/// The broker: the wire's "broker" target, a plain and a streamed request in one actor.
using broker_actor = wire_stream_target::extend_with<wire_request_target>::extend<
  /// Stops every leader (and waits for them), then ends: true when every sync succeeded.
  caf::replies_to<stop_atom>::with<bool>,
  /// Forgets idle publishers.
  caf::reacts_to<tick_atom>,
  caf::reacts_to<metadata_atom, metadata_view>,
  caf::reacts_to<cursors_atom, cursor_update>>;

} // namespace levee::broker

// They stay inside the process: CAF never serializes them.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::append_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::append_acks)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::subscription_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::partition_role)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::metadata_view)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::cursor_update)

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::fetch_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::epoch_end_request)
