#pragma once
// The listening side of the wire protocol over CAF's I/O layer: an acceptor broker that
// enforces the connection bound, and one broker per connection that runs the connection
// gate (ARCHITECTURE.md "The three gates", 1; net/connection.hpp): frame limits before
// allocation, Hello with credentials and advertised limits, per-connection msgs/s and
// bytes/s buckets (refuse, then stop reading while the connection owes time), in-flight
// requests, a bound on bytes waiting for a slow peer, handshake, idle and read timeouts,
// overweight permits. Requests are bridged to the actors exposed by name, through their
// own gates; every refusal goes back as a Reject frame and is counted by code.
// server_context is what the connections of one listener (or of an uplink,
// net/uplink.hpp) share: the exposed actors, the registry of open connections, counters.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "limits/clock.hpp"
#include "limits/error_code.hpp"
#include "limits/log_limiter.hpp"
#include "limits/status.hpp"
#include "net/net_config.hpp"

namespace levee::net {

/// Counters of one listener, updated by its connections; read at any time.
struct net_stats {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_refused{0};  // over net.max_connections
  std::atomic<uint64_t> connections_open{0};
  /// Of connections_open, those whose peer said in its Hello that it is a satellite (at
  /// most net.max_connections - net.reserved_connections).
  std::atomic<uint64_t> satellite_connections{0};
  std::atomic<uint64_t> frames_in{0};
  std::atomic<uint64_t> frames_out{0};
  std::atomic<uint64_t> requests_answered{0};
  /// Requests whose actor had not answered by their deadline plus as long again (at least
  /// 1 s): the peer was told deadline_exceeded at the deadline; the slot is given back.
  std::atomic<uint64_t> requests_abandoned{0};
  /// Times a connection stopped taking its peer's input because the peer was behind on
  /// reading (more than half of net.max_write_buffer_bytes waited for it).
  std::atomic<uint64_t> input_paused_for_slow_reader{0};
  /// Credit frames received (flow control of streamed answers).
  std::atomic<uint64_t> credit_frames_in{0};
  /// Reject frames sent, by code.
  std::array<std::atomic<uint64_t>, max_code_number + 1> rejects{};
  /// Connections this side closed, by the code of the Reject that closed them.
  std::array<std::atomic<uint64_t>, max_code_number + 1> closes{};

  uint64_t rejected(code c) const { return rejects[static_cast<size_t>(c)].load(); }
  uint64_t closed(code c) const { return closes[static_cast<size_t>(c)].load(); }
};

/// Everything the connections of one listener share. Create with make_shared; expose
/// targets before start_listener.
/// How often a connection checks its timeouts (handshake, read, write stall, idle): a
/// quarter of the shortest, between 5 ms and 1 s.
std::chrono::milliseconds tick_interval_of(const listener_limits& limits);

class server_context : public std::enable_shared_from_this<server_context> {
public:
  explicit server_context(listener_config cfg,
                          const clock_source& clock = steady_clock_source::instance());

  /// Makes `target` reachable by Request{target: name}. It receives
  /// (wire_request_atom, std::string payload) and answers std::string; a streamed request
  /// is (wire_stream_atom, payload, uint64_t id) -> (stream_tail, summary), with batches
  /// sent before the answer as (wire_batch_atom, id, part) or, the last ones, in its tail
  /// (actors/wire_target.hpp), and (cancel_atom, id) when the
  /// peer cancels or goes. The id is the connection's, unique on it (not the peer's
  /// request id, which the peer may use again once a request is over).
  void expose(const std::string& name, caf::actor target);
  caf::actor target(const std::string& name) const;

  const listener_config& config() const noexcept { return cfg_; }
  const clock_source& clock() const noexcept { return clock_; }
  net_stats stats;
  /// Lines about this listener's connections (abandoned requests), rate-limited.
  log_limiter log;

  /// Counts a new connection if the bound allows it.
  bool try_open_connection() noexcept;
  void connection_closed() noexcept;

  /// Counts an open connection as a satellite's (its Hello said so) if satellites hold
  /// fewer than net.max_connections - net.reserved_connections: the reserve is kept for
  /// the peers that are not satellites (operators, clients).
  bool try_open_satellite() noexcept;
  void satellite_closed() noexcept;
  /// How many connections satellites may hold.
  uint64_t max_satellite_connections() const noexcept {
    return cfg_.limits.max_connections - cfg_.limits.reserved_connections;
  }

  /// The connection whose peer said `node_id` in its Hello (the last one to say it), for
  /// sending requests to that peer: (wire_request_atom, target, payload) -> std::string,
  /// or streamed: (wire_stream_atom, target, payload, uint64_t tag) -> (stream_tail,
  /// summary), the batches coming to the requester as (wire_batch_atom, tag, part) before
  /// the answer (the last one in its tail when it came with the end), and
  /// (cancel_atom, tag) from the requester cancelling it (the peer gets a Cancel frame).
  /// Any actor that sent a request over a connection (its current sender) is such a
  /// connection too. Null when no such connection is open.
  caf::actor connection_for(const std::string& node_id) const;
  void name_connection(const std::string& node_id, const caf::actor& conn);

  /// The relay this listener's connections send their timers through (actors/
  /// weak_timer.hpp), finding them by id among the open connections: a connection that
  /// closes is destroyed at once, not when its last timer fires. Held by the connections
  /// (and pending timers), not by the context, so it never outlives the actor system;
  /// spawned again when none holds it any more.
  ///
  /// It is also the connections' one clock: every tick_interval_of(limits) it sends each
  /// open connection tick_atom, from one timer for all of them (one wake-up of the I/O
  /// thread per interval, not one per connection: issue 14). It ticks while there are
  /// connections; each call (a new connection) starts it again if it had stopped.
  caf::actor timer_relay(caf::actor_system& sys);

  /// The open connection with this actor id, or null.
  caf::actor connection_by_id(caf::actor_id id) const;

  /// The connection actors alive now (for shutdown).
  void add_connection(const caf::actor& conn);
  void remove_connection(caf::actor_id id);
  std::vector<caf::actor> connections() const;

private:
  mutable std::mutex connections_mtx_;
  std::map<caf::actor_id, caf::actor> connections_;
  std::map<std::string, caf::actor> named_;  // peer node id -> connection
  std::unordered_map<caf::actor_id, std::vector<std::string>> names_of_;  // the reverse
  caf::actor_addr timer_relay_;
  listener_config cfg_;
  const clock_source& clock_;
  mutable std::mutex targets_mtx_;
  std::map<std::string, caf::actor> targets_;
};

struct listener {
  caf::actor acceptor;  // send it an exit message to stop accepting
  uint16_t port = 0;
};

/// Listens on host:port (port 0 = any free port) with the limits of `ctx`. The actor
/// system must have loaded caf::io::middleman.
result<listener> start_listener(caf::actor_system& sys, std::shared_ptr<server_context> ctx,
                                const std::string& host, uint16_t port);

/// Stops accepting and closes every connection with a Reject shutting_down (requests in
/// flight are not answered). Returns at once; connections_open reaches 0 shortly after.
void stop_listener(const listener& l, server_context& ctx);

/// Connection actors of this process not yet destroyed (their memory not yet given back),
/// accepted and dialed: after every connection closed, this returns to 0.
uint64_t connection_actors_alive() noexcept;

} // namespace levee::net
