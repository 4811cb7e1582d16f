#pragma once
// A stream leader (README.md "Actors"): the one owner of one partition's log. It appends
// (dedupe, expected offset, room: streams/partition_log.hpp), serves the partition's
// subscriptions within the credit their connections lend, syncs under fsync = interval
// and runs retention and compaction on a timer. Placed on a worker: its work is disk I/O.

#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "broker/broker_protocol.hpp"
#include "broker/broker_stats.hpp"
#include "broker/controller_protocol.hpp"
#include "limits/defaults.hpp"
#include "streams/partition_log.hpp"

namespace levee::broker {

/// Replication's bounds ([broker] replica_*, README.md "Replicas"; defaults and reasons in
/// limits/defaults.hpp).
struct replication_limits {
  uint64_t fetch_max_bytes = defaults::broker_replica_fetch_max_bytes;  // per fetch answer
  uint64_t fetch_max_wait_ms = defaults::broker_replica_fetch_max_wait_ms;  // a held fetch
  uint64_t max_lag_ms = defaults::broker_replica_max_lag_ms;  // then out of the ISR
};

struct leader_setup {
  /// The partition's log. The leader is its only user from the spawn on; `keep_alive`
  /// owns it (the catalog) and must not drop it before the leader ends.
  streams::partition_log* log = nullptr;
  std::shared_ptr<const void> keep_alive;
  std::string stream;
  uint32_t partition = 0;
  uint64_t max_subscriptions = 0;    // broker.max_subscriptions_per_partition
  uint64_t maintenance_interval_ms = 0;
  consumer_rates consumer;
  std::shared_ptr<partition_gauges> gauges;
  std::shared_ptr<broker_stats> stats;
  const clock_source* clock = nullptr;  // wall time for stop_time_ms; must outlive it
  /// This broker's controller (ISR changes go through it), null on a broker alone.
  controller_actor controller;
  replication_limits replication;
  /// Names this broker to a leader it fetches from (the client's node id).
  std::string node_id = "levee-follower";
};

/// Writes `log`'s figures into `g` (subscribers aside): the leader after each change, and
/// its spawner once before, so StreamInfo never reads a leader that has not run yet.
void fill_gauges(const streams::partition_log& log, partition_gauges& g);

/// Spawns the leader of kind "stream" with `limits` (the kind's with the stream's
/// overrides, streams::effective_limits).
leader_actor spawn_leader(caf::actor_system& sys, runtime& rt, const actor_limits& limits,
                          leader_setup setup);

} // namespace levee::broker
