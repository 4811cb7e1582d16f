#pragma once
// Serving your own actors over the wire protocol (net/PROTOCOL.md): a listener with every
// limit of a node's connection gate, on which you expose actors by name, so that clients
// (include/levee/client.hpp), other nodes and `levee load --target actor NAME` reach them.
//
//   levee::system_config cfg;          // CAF's I/O layer with Levee's loop and error category
//   caf::actor_system sys{cfg};
//   levee::runtime rt{limits};
//   auto echo = levee::spawn_limited<my_echo>(sys, rt, "echo");
//   auto l = levee::wire_listener::start(sys, "127.0.0.1:7700", net_keys);
//   (*l)->expose("echo", caf::actor_cast<caf::actor>(echo));
//
// What an exposed actor receives (actors/wire_target.hpp has them as typed interfaces):
//   (wire_request_atom, std::string payload) -> std::string answer
// A request travels through two gates before your code runs: the connection's (frame size,
// msgs/s and bytes/s, in-flight requests, deadlines: [net] keys) and your actor's own
// (mailbox, message size, rate: [limits.<kind>]). A refusal at either comes back to the
// client as a typed rejection (code, limit, observed, max, retry_after_ms) and is counted;
// an error your handler returns (levee::to_error(rejection), include/levee/levee.hpp)
// reaches the client as that rejection, every field kept; any other error as `unavailable`. A request nobody is exposed as comes
// back `not_found`. The listener never holds more than its bounds: connections over
// net.max_connections are refused with `too_many_connections`.
//
// examples/exposed_actor.cpp is a whole program; include/levee/EXTENDING.md the guide.

#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "limits/config_file.hpp"
#include "limits/status.hpp"

namespace levee {

/// The actor system configuration of a program that serves or dials over the wire: loads
/// CAF's I/O layer (the middleman) with Levee's I/O loop (net/multiplexer.hpp: it looks
/// for work for `busy_poll_us` before it sleeps; 0 sleeps at once, as CAF's own loop does)
/// and registers Levee's error category (levee::add_error_category), so rejections cross
/// actors as typed errors. Build the caf::actor_system from it before starting a listener.
class system_config : public caf::actor_system_config {
public:
  explicit system_config(uint64_t busy_poll_us = 0);
};

/// A listener's counters, read at any time.
struct listener_counters {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // over net.max_connections
  uint64_t connections_open = 0;
  uint64_t requests_answered = 0;
  uint64_t rejects_sent = 0;         // Reject frames of every code
};

class wire_listener {
public:
  /// Listens on `listen` ("host:port"; port 0 takes any free port, see port()) with the
  /// connection limits and token of the [net] keys in `net_keys` (net.max_connections,
  /// net.max_frame_bytes, net.max_msgs_per_sec, net.token, ...: `levee config-keys` lists
  /// them; keys outside [net] are ignored, absent ones take their defaults).
  /// Errors: bad_request (a bad address or [net] value: the message names the key and
  /// what it takes; or `sys` was not built from levee::system_config), unavailable (the
  /// address cannot be bound: taken, or not this machine's).
  static result<std::unique_ptr<wire_listener>> start(caf::actor_system& sys,
                                                      const std::string& listen,
                                                      const flat_config& net_keys = {});

  /// Stops it (stop()). Destroy it before its actor system.
  ~wire_listener();
  wire_listener(const wire_listener&) = delete;
  wire_listener& operator=(const wire_listener&) = delete;

  /// Makes `target` reachable as Request{target: name}. Safe from any thread; expose a name
  /// before clients use it (a connection remembers what a name meant when it first used
  /// it). The listener holds the handle until it is destroyed.
  void expose(const std::string& name, caf::actor target);

  /// The port it listens on (the one the kernel chose, for port 0).
  uint16_t port() const noexcept;

  /// Stops accepting and closes every connection with a Reject `shutting_down` (requests
  /// in flight are not answered). Idempotent; returns at once.
  void stop();

  listener_counters counters() const;

private:
  struct impl;
  explicit wire_listener(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace levee
