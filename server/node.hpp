#pragma once
// A server node: the client listener, the satellite registry and the query router, and the
// stats target. Satellites and clients use the same listener and wire protocol.

#include <memory>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "actors/wire_target.hpp"
#include "limits/log.hpp"
#include "net/listener.hpp"
#include "server/proxy.hpp"
#include "server/registry.hpp"

namespace levee::wire {
class StatsReply;
} // namespace levee::wire

namespace levee::server {

struct server_node {
  std::shared_ptr<net::server_context> ctx;
  net::listener listener;
  registry_actor registry;
  router_actor router;
  // Wire targets that parse requests and pass them on to the registry or the router.
  std::vector<wire_request_target> adapters;
  std::shared_ptr<proxy_stats> queries;
  std::shared_ptr<satellite_routes> routes;  // read for the satellites by state (stats)
};

/// Starts everything on opts.listen (port 0: any free port; the bound one is in
/// node.listener.port). `net_cfg` holds the listener's limits and its connection token.
result<std::shared_ptr<server_node>> start_server(caf::actor_system& sys, runtime& rt, const server_options& opts,
                                 const net::listener_config& net_cfg);

/// Ends the queries in flight with `shutting_down`, stops accepting, closes every
/// connection with `shutting_down`, and stops the server's actors.
void stop_server(server_node& node);

/// The satellite token configs/server.ini ships with: anyone who has read the repository
/// knows it, so on an address other machines reach it keeps no one out.
constexpr const char* placeholder_satellite_token = "change-me";

/// True for a listen host only this machine reaches: 127.0.0.0/8, ::1, localhost.
bool is_loopback_host(const std::string& host);

/// What a server says at start about server.satellite_token when listening on `host`
/// (from server.listen; `listen` is the address it bound, for the message): nothing on loopback or
/// with a token of the operator's own; an error-level line when the token is the shipped
/// placeholder, a warning when there is none.
struct token_warning {
  log_level level = log_level::warn;
  std::string text;
};
std::optional<token_warning> satellite_token_warning(const std::string& token,
                                                     const std::string& host,
                                                     const std::string& listen);

/// `levee stats` (and /metrics): the listener's counters, the I/O loop, the queries, the
/// satellites by state, the node budget and every actor kind, into `out` (all but its
/// version).
void fill_server_stats(const server_node& node, const runtime& rt, wire::StatsReply& out);

} // namespace levee::server
