#pragma once
// A broker node (README.md): the stream catalog in its data directory, the broker actor
// and its leaders, and a listener of its own exposing them as "broker". Started by a
// node with roles = broker (apps/node.cpp) like a server (server/node.hpp).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "broker/broker.hpp"
#include "broker/controller.hpp"
#include "limits/config_file.hpp"
#include "net/listener.hpp"
#include "streams/stream_config.hpp"

namespace levee::wire {
class StatsReply;
} // namespace levee::wire

namespace levee::broker {

struct broker_options {
  std::string listen = "127.0.0.1:7600";  // broker.listen; port 0 = any free port
  std::string data_dir;                   // broker.data_dir: required
  streams::stream_settings streams;       // the [stream] section
  broker_limits limits;                   // the other [broker] keys
  /// Set when broker.raft_listen is: the broker is a member of a metadata cluster
  /// (README.md "Controller"); raft_dir is filled from data_dir.
  std::optional<controller_options> cluster;
};

/// Reads [broker] (listen, data_dir, and the limits of broker_limits) and [stream]
/// (streams::stream_settings_from_config). An unknown key, a bad value or a missing
/// data_dir is a bad_request naming the key.
result<broker_options> broker_options_from_config(const flat_config& cfg);

/// Every [broker] key (`levee config-keys`); [stream]'s are streams::config_keys().
std::vector<std::string> config_keys();

struct broker_node {
  std::shared_ptr<net::server_context> ctx;
  net::listener listener;   // listener.port: the bound port
  broker_actor broker;
  wire_request_target stats_target;  // exposed as "stats"
  controller_actor controller;       // exposed as "cluster" (clustered brokers)
  wire_request_target single_cluster_target;  // exposed as "cluster" (a broker alone)
  std::shared_ptr<broker_stats> stats;
  std::shared_ptr<streams::stream_catalog> catalog;  // the broker's: do not use it
  std::shared_ptr<gauge_board> gauges;               // the broker's and the controller's
};

/// Opens the catalog in opts.data_dir, starts the broker and its leaders and a listener
/// on opts.listen with `net_cfg`'s limits, exposing "broker". Errors: the data directory
/// (storage_error), the cursor stream, the listen address, the port.
result<std::shared_ptr<broker_node>> start_broker(caf::actor_system& sys, runtime& rt,
                                                  const broker_options& opts,
                                                  const net::listener_config& net_cfg);

/// `levee stats` against the broker, and /metrics: its listener, I/O loop, node budget,
/// actor kinds and streams, into `out` (nothing once stop_broker ran).
void fill_broker_node_stats(const broker_node& node, const runtime& rt, wire::StatsReply& out);

/// Stops accepting, closes the connections (shutting_down), ends every subscription
/// (shutting_down), syncs and stops every leader, then the broker. Returns once the
/// leaders are gone: the data directory may then be opened again.
void stop_broker(broker_node& node);

} // namespace levee::broker
