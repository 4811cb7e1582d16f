#pragma once
// The broker actor's state and the handlers split over broker.cpp (the table: create,
// delete, list, info, stop) and broker_calls.cpp (publish, subscribe, cursors). Internal
// to broker/.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/stateful_actor.hpp>

#include "actors/limited_actor.hpp"
#include "broker/broker.hpp"
#include "broker/cursors.hpp"
#include "limits/log_limiter.hpp"
#include "net/streams.pb.h"

namespace levee::broker {

struct partition_entry {
  leader_actor leader;                       // null when the partition did not open, or
                                             // (clustered) this broker is no replica of it
  std::shared_ptr<partition_gauges> gauges;
  /// For check_message_bytes only (reads the stream's fixed config): the leader owns it.
  const streams::partition_log* log = nullptr;
  std::string problem;                       // why it did not open
  /// Clustered: what the metadata says of the partition (told to `leader` on change).
  std::optional<partition_role> role;
};

struct stream_entry {
  streams::stream* stream = nullptr;         // the catalog's
  std::vector<partition_entry> partitions;
  bool deleting = false;                     // its leaders are stopping
  /// Clustered: the sequence of the metadata entry that created this copy (its sidecar
  /// file), and whether the metadata told so far holds that incarnation (else the
  /// entry is dormant: no leaders, requests answered unavailable).
  uint64_t created_at = 0;
  bool in_metadata = true;
  uint32_t replication_factor = 1;
  uint32_t min_insync_replicas = 1;
};

struct broker_state {
  broker_setup setup;
  runtime* rt = nullptr;
  std::map<std::string, stream_entry, std::less<>> streams;
  std::optional<cursor_table> cursors;
  std::optional<publisher_rates> publishers;
  /// Where a connection's credit and cancel for a subscription go: (connection, tag) ->
  /// the partition's leader, until the subscription ends.
  std::map<std::pair<caf::actor_addr, uint64_t>, leader_actor> subscriptions;
  std::optional<log_limiter> log;            // refusals of ack = none publishes
  bool stopping = false;
  const char* name = "levee.broker";
  /// Clustered: the metadata the controller told last, and how many local deletes it
  /// started are still stopping leaders (the table is reconciled again after each).
  metadata_view meta;
  size_t deletes_running = 0;
  /// Clustered: cursors of this broker's commits the metadata leader applied before this
  /// broker's node did (cursor_update::early): key -> (entry, offset), until the entry
  /// applies here. Older entries applied meanwhile must not undo them.
  std::map<std::string, std::pair<uint64_t, uint64_t>, std::less<>> early_cursors;

  bool clustered() const noexcept { return static_cast<bool>(setup.controller); }
};

using broker_self = caf::stateful_actor<broker_state, limited<broker_actor::base>>;

/// Counts `r` and makes it the error the connection turns into a Reject.
caf::error refuse(broker_self* self, const rejection& r);
caf::error refuse(broker_self* self, code c, std::string detail);

/// The stream's entry, or the not_found naming what exists (internal streams included
/// only when `internal`).
stream_entry* find_stream(broker_self* self, const std::string& name, bool internal = false);

/// Clustered: nullopt when this broker leads partition `p` of `e`; else not_leader with the
/// leader's client address as the hint (none when the partition is offline), or
/// unavailable while the metadata of the stream has not reached this broker. A broker
/// alone always leads.
std::optional<rejection> check_leads(broker_self* self, const stream_entry& e, uint32_t p);

/// Clustered: makes the table what the metadata `m` says (README.md "Streams in the
/// metadata"): creates and deletes local copies, spawns the leaders of the partitions this
/// broker is a replica of and tells each its partition_role when it changes.
void apply_metadata(broker_self* self, metadata_view m);

/// The entry of a stream whose catalog copy exists: leaders for every partition that
/// opened (all, or, with `only`, those it says), gauges registered on the board.
stream_entry start_leaders(broker_self* self, streams::stream& s,
                           const std::function<bool(uint32_t)>& only = {});
/// Stops the leaders of `e` and waits for them; then `done` (true: every sync succeeded).
void stop_leaders(broker_self* self, stream_entry& e, bool deleted, std::function<void(bool)> done);
/// The stats' gauges of the table: streams (the internal one aside) and their partitions.
void count_streams(broker_state& st);
/// Clustered: the created_at of a local copy (its sidecar file; 0 when it has none).
uint64_t read_created_at(const streams::stream& s);
/// A follower's Fetch or EpochEndOffset (replica_calls.hpp): delegated to the partition's
/// actor here, which answers it when it leads at the follower's epoch; not_leader with the
/// hint when this broker holds no replica of the partition.
caf::result<std::string> replica_call(broker_self* self, const wire::BrokerCall& call);
/// A deleted stream's cursors go, with tombstones in `__cursors` (a broker alone; a
/// clustered broker's go with the metadata's cursor updates).
void forget_cursors(broker_self* self, const std::string& stream);
/// Clustered: the metadata's cursor commits and deletes, in order, or its whole table
/// (README.md "Cursors in the metadata").
void apply_cursors(broker_self* self, const cursor_update& u);
/// Clustered: a metadata command of this broker through the controller; `applied` makes
/// the answer once this broker applied it (it was told that state first), a refusal of
/// the state machine is the answer.
caf::result<std::string> propose(broker_self* self, const metadata::command& cmd,
                                 std::function<std::optional<std::string>()> applied);

caf::result<std::string> publish(broker_self* self, wire::Publish& req);
caf::result<stream_tail, std::string> subscribe(broker_self* self, const wire::Subscribe& req,
                                                uint64_t tag, uint64_t credit_batches,
                                                uint64_t credit_bytes);
caf::result<std::string> commit_cursor(broker_self* self, const wire::CommitCursor& req);
caf::result<std::string> fetch_cursor(broker_self* self, const wire::FetchCursor& req);

} // namespace levee::broker
