#include "server/node.hpp"

#include <cstdio>
#include <sstream>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/limited_actor.hpp"
#include "net/multiplexer.hpp"
#include "net/satellite.pb.h"
#include "satellite/satellite.hpp"

namespace levee::server {

namespace {

/// A wire target that hands each request to `dest` as (Atom, payload), the connection still
/// its sender (delegation), so the registry knows which connection a satellite dialed.
template <class Atom>
caf::behavior pass_to(limited_actor* self, caf::actor dest) {
  return {
    [=](wire_request_atom, std::string& payload) -> caf::result<std::string> {
      self->delegate(dest, Atom::value, std::move(payload));
      return caf::delegated<std::string>{};
    },
  };
}

caf::behavior list_target(limited_actor* self, caf::actor registry) {
  return {
    [=](wire_request_atom, std::string& payload) -> caf::result<std::string> {
      wire::SatellitesRequest req;
      if (!req.ParseFromString(payload))
        return to_error(rejection{code::bad_request, "server.satellites", 0, 0, 0,
                                  "a SatellitesRequest that does not parse"});
      self->delegate(registry, list_atom::value, req.after_version(), req.wait_ms());
      return caf::delegated<std::string>{};
    },
  };
}

caf::behavior stats_target(limited_actor* self, caf::actor router,
                           std::function<std::string()> render,
                           std::shared_ptr<proxy_stats> queries) {
  return {
    [=](wire_request_atom, std::string& payload) -> caf::result<std::string> {
      wire::StatsRequest req;
      if (!req.ParseFromString(payload))
        return to_error(rejection{code::bad_request, "server.stats", 0, 0, 0,
                                  "a StatsRequest that does not parse"});
      if (req.wait_ms() == 0) {
        wire::StatsReply reply;
        reply.set_version(queries->version());
        reply.set_text(render());
        return reply.SerializeAsString();
      }
      // The router sees every query start and end: it holds the request until then.
      self->delegate(router, watch_atom::value, req.after_version(), req.wait_ms());
      return caf::delegated<std::string>{};
    },
  };
}

} // namespace

result<std::shared_ptr<server_node>> start_server(caf::actor_system& sys, runtime& rt, const server_options& opts,
                                 const net::listener_config& net_cfg) {
  std::string host;
  uint16_t port = 0;
  if (opts.listen.size() > 2 && opts.listen.substr(opts.listen.size() - 2) == ":0") {
    host = opts.listen.substr(0, opts.listen.size() - 2);  // any free port
  } else if (auto st = satellite::parse_host_port("server.listen", opts.listen, host, port); !st) {
    return st;
  }
  auto node = std::make_shared<server_node>();
  node->ctx = std::make_shared<net::server_context>(net_cfg);
  node->queries = std::make_shared<proxy_stats>();
  auto routes = std::make_shared<satellite_routes>();
  node->registry = spawn_registry(sys, rt, opts, routes);
  std::weak_ptr<server_node> weak = node;
  auto* rtp = &rt;
  std::function<std::string()> render{[weak, rtp] {
    auto n = weak.lock();
    return n ? render_server_stats(*n, *rtp) : std::string{};
  }};
  node->router = spawn_query_router(sys, rt, routes, opts, node->queries, render);
  auto reg = spawn_limited_fun(sys, rt, "server", pass_to<register_atom>, node->registry);
  auto hb = spawn_limited_fun(sys, rt, "server", pass_to<heartbeat_atom>, node->registry);
  auto list = spawn_limited_fun(sys, rt, "server", list_target, node->registry);
  auto st = spawn_limited_fun(sys, rt, "server", stats_target, node->router, render,
                              node->queries);
  node->adapters = {reg, hb, list, st};
  node->ctx->expose("register", reg);
  node->ctx->expose("heartbeat", hb);
  node->ctx->expose("satellites", list);
  node->ctx->expose("stats", st);
  node->ctx->expose("query", node->router);
  auto l = net::start_listener(sys, node->ctx, host, port);
  if (!l) {
    stop_server(*node);
    return l.error();
  }
  node->listener = *l;
  if (opts.satellite_token.empty() && host.rfind("127.", 0) != 0 && host != "localhost"
      && host != "::1")
    std::fprintf(stderr,
                 "levee server: warning: server.satellite_token is empty on %s: anyone who can "
                 "connect can register as a satellite (and take a disconnected one's id); set "
                 "a token\n",
                 opts.listen.c_str());
  return node;
}

void stop_server(server_node& node) {
  if (node.router) {
    // Queries in flight end with shutting_down first; then the connections close.
    caf::scoped_actor self{node.router->home_system()};
    self->request(node.router, std::chrono::seconds(5), stop_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
  }
  if (node.ctx)
    net::stop_listener(node.listener, *node.ctx);
  for (auto& a : node.adapters)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  if (node.router)
    caf::anon_send_exit(node.router, caf::exit_reason::user_shutdown);
  if (node.registry)
    caf::anon_send_exit(node.registry, caf::exit_reason::user_shutdown);
}

std::string render_server_stats(const server_node& node, const runtime& rt) {
  std::ostringstream out;
  auto& n = node.ctx->stats;
  out << "listener: " << n.connections_open.load() << " connections open, "
      << n.connections_accepted.load() << " accepted, " << n.connections_refused.load()
      << " refused; frames in " << n.frames_in.load() << ", out " << n.frames_out.load()
      << "; requests answered " << n.requests_answered.load() << ", abandoned "
      << n.requests_abandoned.load() << "\n";
  out << "flow control: " << n.credit_frames_in.load() << " credit frames in; input paused "
      << n.input_paused_for_slow_reader.load() << " times for slow readers; "
      << n.rejected(code::slow_consumer) << " answers or connections refused as "
      << "slow_consumer\n";
  if (node.router)
    if (auto io = net::io_loop_stats_of(node.router->home_system())) {
      char looked[32];
      std::snprintf(looked, sizeof looked, "%.1f", static_cast<double>(io->looked_ns) / 1e6);
      if (io->window_us == 0)
        out << "io thread: sleeps as soon as nothing is ready (node.busy_poll_us = 0)\n";
      else
        out << "io thread: looks " << io->window_us
            << " us for work before it sleeps (node.busy_poll_us); slept " << io->sleeps
            << " times; looked " << looked << " ms without work (" << io->empty_polls
            << " empty polls)\n";
    }
  bool any = false;
  for (uint8_t c = 1; c <= max_code_number; ++c) {
    auto r = n.rejects[c].load();
    if (r == 0)
      continue;
    out << (any ? ", " : "rejects sent: ") << to_string(static_cast<code>(c)) << " " << r;
    any = true;
  }
  if (any)
    out << "\n";
  auto& q = *node.queries;
  out << "queries: " << q.started.load() << " started, " << q.running.load() << " running, "
      << q.completed.load() << " completed, " << q.failed.load() << " failed, "
      << q.cancelled.load() << " cancelled, " << q.refused.load() << " refused; "
      << q.rows.load() << " rows, " << q.bytes.load() << " bytes returned\n";
  out << rt.render_stats();
  return out.str();
}

} // namespace levee::server
