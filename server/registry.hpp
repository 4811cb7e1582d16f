#pragma once
// The satellite registry of a server (ARCHITECTURE.md "Satellites and the server"):
// satellites register over the connection they dialed, heartbeat every interval (the
// server's, or the longer one a satellite asked for, granted_heartbeat_interval_ms), and
// move healthy -> unhealthy (unhealthy_after missed beats) -> disconnected
// (disconnect_after missed beats, or their connection closed). A live id registering
// again is refused with `permission_denied`. Queries only go to healthy satellites.
// Every event (a registration, a heartbeat, a state change, a disconnect) costs the same
// at 100 or 100,000 satellites: the registry writes the one satellite's route into the
// shared index (server/routes.hpp), keeps deadlines in buckets (a health check looks only
// at satellites whose deadline passed), and finds a closed connection's satellites by the
// connection.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/placement.hpp"
#include "actors/runtime.hpp"
#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/status.hpp"
#include "server/registry_protocol.hpp"
#include "server/routes.hpp"

namespace levee::server {

/// [server]: the registry's and the proxyers' settings.
struct server_options {
  uint64_t heartbeat_interval_ms = defaults::server_heartbeat_interval_ms;
  uint64_t max_heartbeat_interval_ms = defaults::server_max_heartbeat_interval_ms;
  uint64_t unhealthy_after = defaults::server_unhealthy_after;
  uint64_t disconnect_after = defaults::server_disconnect_after;
  uint64_t max_satellites = defaults::server_max_satellites;
  uint64_t max_queries = defaults::server_max_queries;
  uint64_t max_queries_per_client = defaults::server_max_queries_per_client;
  uint64_t max_result_bytes = defaults::server_max_result_bytes;
  uint64_t query_window_bytes = defaults::server_query_window_bytes;
  uint64_t query_deadline_ms = defaults::server_query_deadline_ms;
  uint64_t max_list_watchers = defaults::server_max_list_watchers;
  uint64_t max_list_watchers_per_client = defaults::server_max_list_watchers_per_client;
  uint64_t max_list_wait_ms = defaults::server_max_list_wait_ms;
  uint64_t max_list_page = defaults::server_max_list_page;
  uint64_t max_list_page_bytes = defaults::server_max_list_page_bytes;
  uint64_t max_registrations_per_sec = defaults::server_max_registrations_per_sec;
  std::string satellite_token;  // a satellite's Register must carry it; empty = any
  std::string listen = "127.0.0.1:7400";
};

/// The heartbeat interval a satellite that asks for `asked_ms` (0: none) is granted, told
/// in its RegisterAck and judged by: at least server.heartbeat_interval_ms (a satellite
/// cannot make the server read more beats than it chose), at most
/// server.max_heartbeat_interval_ms.
uint64_t granted_heartbeat_interval_ms(const server_options& opts, uint64_t asked_ms);

/// Reads [server] (unknown keys and bad values are errors naming the key).
result<server_options> server_from_config(const flat_config& cfg);

/// Every key server_from_config accepts (`levee config-keys`).
std::vector<std::string> config_keys();

/// The server's settings that depend on its listener's: a query's deadline, and how long a
/// `satellites` request may wait, may not be longer than the deadline of the request that
/// carries them (net.request_deadline_ms).
status check_with_listener(const server_options& opts, uint64_t request_deadline_ms);

/// Spawns the registry (a limited actor of kind "registry", registry_protocol.hpp) where
/// `where` says and returns it. It is the only writer of `routes` (where queries may go),
/// and reads its time (last heartbeats, held list requests, admissions) from `rt.clock()`.
registry_actor spawn_registry(caf::actor_system& sys, runtime& rt, placement where,
                              server_options opts, std::shared_ptr<satellite_routes> routes);

} // namespace levee::server
