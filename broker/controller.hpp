#pragma once
// The controller (README.md "Controller"): this broker's member of the metadata's Raft
// group. It owns the raft_node, keeps a replica of the metadata (metadata_state) as the
// cache the broker reads, registers this broker and heartbeats it to the metadata leader,
// and, while this broker leads, marks brokers whose session expired. Exposed on the wire
// as "cluster" (broker/cluster.proto).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/limited_actor.hpp"
#include "actors/runtime.hpp"
#include "actors/wire_target.hpp"
#include "broker/controller_protocol.hpp"
#include "limits/clock.hpp"
#include "metadata/raft_node.hpp"

namespace levee::broker {

struct controller_options {
  uint64_t id = 0;                 // broker.id
  std::string raft_listen;         // broker.raft_listen: libraft's transport (IPv4:port)
  std::vector<metadata::raft_member> members;  // broker.raft_members (bootstrap only)
  /// broker.join: a running broker's client address; a broker started with it (and not a
  /// member yet) asks to be added to the metadata group before it serves (join_cluster).
  std::string join;
  std::string advertise;           // broker.advertise: clients reach this broker here
  std::string raft_dir;            // <broker.data_dir>/raft
  uint64_t session_timeout_ms = 0;     // broker.session_timeout_ms
  uint64_t max_pending_commands = 0;   // metadata.max_pending_commands
  unsigned election_timeout_ms = 1000; // broker.raft_election_timeout_ms
  /// The broker's local partitions' gauges (ClusterInfo's HW and log end); may be null.
  std::shared_ptr<gauge_board> gauges;
};

/// Starts the raft_node (its data dir, bootstrap or rejoin) and spawns the controller
/// (kind "controller", on a worker) with its forwarder. Errors: the raft options, the
/// data dir (O_DIRECT), the Raft port.
result<controller_actor> spawn_controller(caf::actor_system& sys, runtime& rt,
                                          controller_options opts, const clock_source* clock);

/// A new broker's side of broker.join (README.md "Adding and removing brokers"): asks the
/// broker at opts.join (following not_leader hints to the metadata leader, retrying
/// unavailable within defaults::broker_join_timeout_ms) to add opts.id at opts.raft_listen,
/// and returns once it is a voter, or the refusal with what to do.
[[nodiscard]] status join_cluster(const controller_options& opts);

/// Answers "cluster" on a broker that runs alone (no broker.raft_listen): a ClusterInfo
/// with clustered = false (kind "broker").
wire_request_target::behavior_type single_broker_cluster_target(limited<wire_request_target::base>* self);

} // namespace levee::broker
