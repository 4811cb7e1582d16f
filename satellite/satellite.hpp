#pragma once
// A satellite (ARCHITECTURE.md "Satellites and the server"): sources that collect events, a store
// (its own segment log with retention) that also runs queries, and an agent that dials out
// to the server over one connection, registers, heartbeats and reconnects with backoff.
// Every actor here is a limited actor with its kind's limits from config: "store",
// "source", "satellite".

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_actor.hpp>

#include "actors/runtime.hpp"
#include "events/file_tail.hpp"
#include "events/json.hpp"
#include "events/proc_metrics.hpp"
#include "events/source_registry.hpp"
#include "events/synthetic.hpp"
#include "events/unix_socket_source.hpp"
#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/status.hpp"
#include "net/net_config.hpp"
#include "satellite/agent_protocol.hpp"
#include "satellite/source_protocol.hpp"
#include "satellite/store_protocol.hpp"

namespace levee::satellite {

/// [satellite]
struct satellite_options {
  std::string id;                        // empty: the server assigns one
  std::string server = "127.0.0.1:7400"; // host:port the satellite dials
  std::string satellite_token;           // presented in Register
  std::map<std::string, std::string> labels;  // labels = env=prod,region=eu
  std::string data_dir;                  // the store's segment log
  uint64_t max_concurrent_queries = defaults::satellite_max_concurrent_queries;
  uint64_t batch_max_rows = defaults::satellite_batch_max_rows;
  uint64_t batch_max_bytes = defaults::satellite_batch_max_bytes;
  uint64_t scan_step_bytes = defaults::satellite_scan_step_bytes;
  uint64_t read_cache_bytes = defaults::satellite_read_cache_bytes;  // 0 = none
  uint64_t connect_timeout_ms = defaults::net_connect_timeout_ms;  // per TCP connect to the server
  /// The heartbeat interval asked of the server (0: the server's); the server grants it
  /// within its bounds and the agent beats at what it granted.
  uint64_t heartbeat_interval_ms = defaults::satellite_heartbeat_interval_ms;
  /// Each beat comes up to this percent of the interval early, at random; the first after
  /// a registration at a random point of the first interval (0: exactly on the interval).
  uint64_t heartbeat_jitter_pct = defaults::satellite_heartbeat_jitter_pct;
  uint64_t poll_interval_ms = defaults::satellite_poll_interval_ms;
  uint64_t poll_max_events = defaults::satellite_poll_max_events;
  uint64_t retention_interval_ms = defaults::satellite_retention_interval_ms;
  uint64_t retention_max_bytes = defaults::satellite_retention_max_bytes;
  uint64_t retention_max_age_ms = 0;     // 0 = no age limit
  uint64_t retention_max_events = 0;     // 0 = no count limit
  uint64_t max_segment_bytes = defaults::log_max_segment_bytes;
  uint64_t max_segment_age_ms = defaults::satellite_max_segment_age_ms;
  uint64_t fsync_interval_ms = defaults::log_fsync_interval_ms;  // the store syncs this often
  /// The background scrub of the store's closed segments: its rate (0 = none) and the
  /// pause between passes. It runs in steps of at most scan_step_bytes (and of at most one
  /// second's rate), between queries and appends like a scan step.
  uint64_t scrub_bytes_per_sec = defaults::satellite_scrub_bytes_per_sec;
  uint64_t scrub_interval_ms = defaults::satellite_scrub_interval_ms;
  /// Not a key: called once, on the agent's thread, when the server refused the
  /// registration in a way no retry can fix (a wrong satellite_token: agent.cpp
  /// "refused_for_good"), with the refusal; the agent then stops registering. It must
  /// return at once: `levee node` wakes its main thread, which stops the node and exits 1.
  /// Empty: the agent keeps retrying with backoff, as for any other refusal.
  std::function<void(const std::string& why)> on_refused_for_good;
};

/// [source.<name>]: one source; `type` says which of the four built in, or names a type
/// the program registered (events/source_registry.hpp).
struct source_spec {
  std::string name;
  std::string type;  // file_tail | unix_socket | proc | synthetic | a registered type
  events::file_tail_config file_tail;
  events::unix_socket_config unix_socket;
  events::proc_metrics_config proc;
  events::synthetic_config synthetic;
  events::source_settings custom;  // a registered type's section, as written
  uint64_t poll_interval_ms = 0;  // 0: satellite.poll_interval_ms
};

/// Reads [satellite], [events] (the JSON line limits) and every [source.<name>]; unknown
/// keys and bad values are errors naming the key.
struct satellite_config {
  satellite_options satellite;
  events::json_limits json;
  std::vector<source_spec> sources;
  /// Place the store on the I/O thread (actors/placement.hpp), next to the satellite's
  /// one connection (no thread hand-off per query). Only for a node whose multiplexer serves
  /// nothing else: the store's disk work (appends, syncs) would stall a server's
  /// connections. `levee node` sets it for satellite-only nodes.
  bool store_on_multiplexer = false;
};
result<satellite_config> satellite_from_config(const flat_config& cfg);

/// Every key satellite_from_config accepts: [satellite], [events] and
/// `source.<name>.<key>` for the keys of every source type (`<name>` stands for any name).
std::vector<std::string> config_keys();

/// Counters of one satellite, for heartbeats and `levee stats`.
struct satellite_stats {
  std::atomic<uint64_t> events_stored{0};
  std::atomic<uint64_t> bad_lines{0};
  std::atomic<uint64_t> store_refusals{0};   // appends the store refused (retried later)
  std::atomic<uint64_t> events_dropped{0};   // single events too large for the store's bound
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> queries_refused{0};
  std::atomic<uint64_t> queries_running{0};
  std::atomic<uint64_t> registrations{0};
  std::atomic<bool> registered{false};
  std::mutex mtx;
  std::string assigned_id;                   // under mtx
  std::string last_error;                    // under mtx: the last registration refusal etc.
};

struct satellite_node {
  store_actor store;
  agent_actor agent;
  caf::actor uplink;
  std::vector<source_actor> sources;
  std::shared_ptr<satellite_stats> stats;
};

/// Opens the store (recovering its log; progress on stderr for big ones) and the positions
/// its file_tail sources had (`<data_dir>/source-positions` and the log after it; each
/// source resumes there, saying how on stderr), starts the sources, the uplink to
/// opts.server and the agent. `net_cfg` holds the limits this
/// satellite enforces on its connection and the connection token.
result<satellite_node> start_satellite(caf::actor_system& sys, runtime& rt,
                                       const satellite_config& cfg,
                                       const net::listener_config& net_cfg);

/// Stops the sources, ends running queries with `shutting_down`, syncs the store, closes
/// the uplink. Returns when the store has synced (bounded wait).
void stop_satellite(caf::actor_system& sys, satellite_node& node);

} // namespace levee::satellite
