#pragma once
// The broker actor (README.md "Actors"): the stream table. It owns the catalog, starts a
// leader per partition, answers CreateStream/DeleteStream/ListStreams/StreamInfo, routes
// publishes to the leaders of every matching stream and subscriptions to their
// partition's leader, keeps the cursors and the per-connection publish rates. Exposed
// on the wire as "broker": every request's payload is a wire::BrokerCall.

#include <memory>

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "broker/broker_protocol.hpp"
#include "broker/broker_stats.hpp"
#include "broker/controller_protocol.hpp"
#include "broker/leader.hpp"
#include "broker/publishers.hpp"
#include "streams/stream_catalog.hpp"

namespace levee::broker {

struct broker_limits {
  uint64_t max_subscriptions_per_partition = defaults::broker_max_subscriptions_per_partition;
  uint64_t max_cursors = defaults::broker_max_cursors;
  uint64_t maintenance_interval_ms = defaults::broker_maintenance_interval_ms;
  publisher_limits publishers{defaults::broker_publish_msgs_per_sec,
                              defaults::broker_publish_bytes_per_sec,
                              defaults::broker_max_publishers,
                              defaults::broker_publisher_idle_ms};
  consumer_rates consumer;  // [limits.consumer]
  replication_limits replication;  // [broker] replica_*
};

struct broker_setup {
  /// Opened; from the spawn on only the broker and (through their partitions) its
  /// leaders use it. The leaders hold it too, so it outlives every one of them.
  std::shared_ptr<streams::stream_catalog> catalog;
  streams::stream_settings settings;
  broker_limits limits;
  std::shared_ptr<broker_stats> stats;
  const clock_source* clock = nullptr;  // must outlive the broker
  /// net.max_inflight_requests of the listener in front: the broker's per-requester
  /// in-flight bound is at least this (a connection is one requester).
  uint64_t connection_inflight = 0;
  /// Clustered (broker.raft_listen set): this broker's controller and id. Streams then come
  /// from the metadata (README.md "Streams in the metadata"); null: a broker alone.
  controller_actor controller;
  uint64_t broker_id = 0;
  /// The local partitions' gauges, shared with the controller (ClusterInfo); may be null.
  std::shared_ptr<gauge_board> gauges;
};

/// Spawns the broker (kind "broker", on a worker: it creates and deletes directories)
/// and a leader for every partition of the catalog's streams (clustered: for the
/// partitions the metadata makes it a replica of, once the controller told it). Creates the internal
/// cursor stream if missing and reads the cursors back first: an error when it cannot.
result<broker_actor> spawn_broker(caf::actor_system& sys, runtime& rt, broker_setup setup);

} // namespace levee::broker
