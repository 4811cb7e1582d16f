#pragma once
// The dialing side of the wire protocol: a node that connects out to a Levee server (no
// inbound port, e.g. a satellite), reconnects with backoff, and carries requests both
// ways on its one connection. The connection itself is the same gate as an accepted one
// (net/connection.hpp).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "limits/defaults.hpp"
#include "net/listener.hpp"

namespace levee::net {

struct uplink_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string token;  // presented in the Hello
  /// Says in its Hello that this node is a satellite: the server counts the connection
  /// among its satellites' (net.max_connections - net.reserved_connections), not in the
  /// reserve kept for operators and clients.
  bool satellite = false;
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  /// How long one TCP connect may wait for the server; then the next address or a retry.
  std::chrono::milliseconds connect_timeout{defaults::net_connect_timeout_ms};
  /// Told (connected_atom, server node id) after every (re)connection's handshake, e.g. to
  /// register again with a restarted server.
  caf::actor notify;
};

/// Dials out to a Levee server and keeps the connection up, reconnecting with exponential
/// backoff, jittered, and never sooner than the retry-after of a server that refused it
/// (a node that needs no inbound port, e.g. a satellite). A connect is
/// non-blocking and waits at most connect_timeout per address, so a server that does not
/// answer (SYNs dropped) delays neither stop nor the answers to requests; a failure is
/// written to stderr once per distinct reason (and again every 30 s while it lasts), with
/// the reconnection that ends it. The returned actor
///   - forwards (wire_request_atom, target, payload) -> std::string to the server, through
///     the server's gates; while disconnected it answers `unavailable` at once;
///   - answers (get_atom) -> bool: connected or not;
///   - stops on (stop_atom).
/// Requests the server sends over this connection reach the actors exposed in `ctx`, which
/// also sets the limits this side enforces and its node id. Needs caf::io::middleman.
caf::actor start_uplink(caf::actor_system& sys, std::shared_ptr<server_context> ctx,
                        uplink_options opts);

} // namespace levee::net
