#pragma once
// A node's HTTP listener (http/README.md) joined to its roles: /metrics renders what each
// role counts (apps/metrics_text.hpp), /readyz says whether every role takes work. Started
// before the roles (so /readyz answers 503 "starting" while they start) and stopped after
// them ("stopping" while they stop).

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "broker/node.hpp"
#include "http/server.hpp"
#include "satellite/satellite.hpp"
#include "server/node.hpp"

namespace levee::apps {

class node_http {
public:
  /// Starts the listener when opts.enabled(); without it every call below does nothing.
  /// Errors: the address or the port (the node does not start).
  static result<std::unique_ptr<node_http>> start(const http::http_options& opts,
                                                  caf::actor_system& sys, runtime& rt,
                                                  std::string roles);
  ~node_http();

  void add_server(std::shared_ptr<server::server_node> node);
  void add_broker(std::shared_ptr<broker::broker_node> node, bool clustered);
  /// `server`: the address it dials (for /readyz's reason).
  void add_satellite(std::string id, std::string server,
                     std::shared_ptr<satellite::satellite_stats> stats);
  /// Every role started: /readyz now asks the roles.
  void started();
  /// The roles are about to stop: /readyz answers 503 "stopping", and /metrics stops
  /// reading them (they may be gone), showing the process's figures only.
  void stopping();

  /// The bound port (0 without a listener).
  uint16_t port() const noexcept { return server_ ? server_->port() : 0; }

  struct roles_state;

private:
  node_http() = default;
  std::shared_ptr<roles_state> state_;
  std::unique_ptr<http::server> server_;
  caf::actor leader_watch_;
};

} // namespace levee::apps
