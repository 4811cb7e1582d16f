#include "server/node.hpp"

#include <cstdio>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/io_loop.hpp"
#include "actors/limited_actor.hpp"
#include "actors/wire_target.hpp"
#include "base/host_port.hpp"
#include "limits/log.hpp"
#include "net/multiplexer.hpp"
#include "net/satellite.pb.h"
#include "net/stats_reply.hpp"
#include "net/wire_text.hpp"

namespace levee::server {

namespace {

// The wire adapters: each parses its request once, at the seam, and hands the registry or
// the router a struct, the connection still its sender (delegation), so the registry
// knows which connection a satellite dialed and the answer goes straight back. A
// malformed request is refused with no limit named: none refused it.

using adapter_self = limited<wire_request_target::base>;

/// Parses `payload` as a `Message`: bad UTF-8 names its field (net/wire_text.hpp).
template <class Message>
std::optional<rejection> parse_wire(const std::string& payload, Message& out) {
  if (auto refused = net::check_text_fields(*Message::descriptor(), payload))
    return refused;
  if (!out.ParseFromString(payload))
    return rejection::of(code::bad_request)
      .detail("a " + Message::descriptor()->name()
              + " that does not parse; send one built from net/satellite.proto");
  return std::nullopt;
}

/// `register` and `heartbeat`: (Atom, Message) to the registry.
template <class Atom, class Message>
wire_request_target::behavior_type pass_to(adapter_self* self, registry_actor registry) {
  return {
    [=](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      Message msg;
      if (auto refused = parse_wire(payload, msg))
        return to_error(*refused);
      return self->delegate(registry, Atom::value, std::move(msg));
    },
  };
}

wire_request_target::behavior_type list_target(adapter_self* self, registry_actor registry) {
  return {
    [=](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      wire::SatellitesRequest req;
      if (auto refused = parse_wire(payload, req))
        return to_error(*refused);
      return self->delegate(registry, list_atom::value, std::move(req));
    },
  };
}

wire_request_target::behavior_type stats_target(adapter_self* self, router_actor router,
                                                std::function<void(wire::StatsReply&)> fill,
                                                std::shared_ptr<proxy_stats> queries) {
  return {
    [=](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      wire::StatsRequest req;
      if (auto refused = parse_wire(payload, req))
        return to_error(*refused);
      if (req.wait_ms() == 0) {
        wire::StatsReply reply;
        reply.set_version(queries->version());
        fill(reply);
        return reply.SerializeAsString();
      }
      // The router sees every query start and end: it holds the request until then.
      return self->delegate(router, watch_atom::value, req.after_version(), req.wait_ms());
    },
  };
}

} // namespace

result<std::shared_ptr<server_node>> start_server(caf::actor_system& sys, runtime& rt, const server_options& opts,
                                 const net::listener_config& net_cfg) {
  base::host_port listen;
  std::string bad_listen;
  if (!base::parse_host_port("server.listen", opts.listen, listen, bad_listen,
                             base::port_zero::any_free_port))
    return status::error(code::bad_request, bad_listen);
  auto& [host, port] = listen;
  auto node = std::make_shared<server_node>();
  node->ctx = std::make_shared<net::server_context>(net_cfg);
  node->queries = std::make_shared<proxy_stats>();
  auto routes = std::make_shared<satellite_routes>();
  node->routes = routes;
  // The registry and the router (and its proxyers) on the I/O thread with the connections:
  // their work per message is small, and a query then crosses the server without waking
  // a worker (ARCHITECTURE.md "Processes and threads").
  auto io_thread = io_thread_of(sys);
  node->registry = spawn_registry(sys, rt, io_thread, opts, routes);
  std::weak_ptr<server_node> weak = node;
  auto* rtp = &rt;
  std::function<void(wire::StatsReply&)> fill{[weak, rtp](wire::StatsReply& reply) {
    if (auto n = weak.lock())
      fill_server_stats(*n, *rtp, reply);
  }};
  node->router = spawn_query_router(sys, rt, io_thread, routes, opts, node->queries, fill);
  // The adapters parse a small message and pass it on: on the I/O thread too, so that a
  // satellite's heartbeat (every interval, from every satellite) goes connection -> adapter
  // -> registry -> connection without waking a worker or writing to the loop's wake-up
  // pipe (issue 14: at 10,000 satellites that pipe filled, and the node deadlocked).
  auto reg = spawn_limited_fun(sys, rt, "server", io_thread,
                               pass_to<register_atom, wire::Register>, node->registry);
  auto hb = spawn_limited_fun(sys, rt, "server", io_thread,
                              pass_to<heartbeat_atom, wire::Heartbeat>, node->registry);
  auto list = spawn_limited_fun(sys, rt, "server", io_thread, list_target, node->registry);
  auto st = spawn_limited_fun(sys, rt, "server", io_thread, stats_target, node->router, fill,
                              node->queries);
  node->adapters = {reg, hb, list, st};
  // The connection speaks to its targets untyped (actors/wire_target.hpp).
  node->ctx->expose("register", caf::actor_cast<caf::actor>(reg));
  node->ctx->expose("heartbeat", caf::actor_cast<caf::actor>(hb));
  node->ctx->expose("satellites", caf::actor_cast<caf::actor>(list));
  node->ctx->expose("stats", caf::actor_cast<caf::actor>(st));
  node->ctx->expose("query", caf::actor_cast<caf::actor>(node->router));
  auto l = net::start_listener(sys, node->ctx, host, port);
  if (!l) {
    stop_server(*node);
    return l.error();
  }
  node->listener = *l;
  if (auto w = satellite_token_warning(opts.satellite_token, host,
                                      host + ":" + std::to_string(node->listener.port)))
    LEVEE_LOG(w->level, "server", "%s", w->text.c_str());
  return node;
}

bool is_loopback_host(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "::1";
}

std::optional<token_warning> satellite_token_warning(const std::string& token,
                                                     const std::string& host,
                                                     const std::string& listen) {
  if (is_loopback_host(host))
    return std::nullopt;
  if (token.empty())
    return token_warning{log_level::warn,
                         "server.satellite_token is empty on " + listen
                           + ": anyone who can connect can register as a satellite (and take "
                             "a disconnected one's id); set a token"};
  if (token == placeholder_satellite_token)
    return token_warning{log_level::error,
                         "server.satellite_token is the shipped placeholder '"
                           + std::string{placeholder_satellite_token} + "' on " + listen
                           + ", which other machines reach: anyone who has read configs/"
                             "server.ini can register as a satellite; set [server] "
                             "satellite_token to a secret of your own (and each satellite's "
                             "[satellite] satellite_token to the same) and restart"};
  return std::nullopt;
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

namespace {

void fill_queries(const proxy_stats& q, wire::QueryCounters& out) {
  out.set_started(q.started.load());
  out.set_running(q.running.load());
  out.set_completed(q.completed.load());
  out.set_failed(q.failed.load());
  out.set_cancelled(q.cancelled.load());
  out.set_refused(q.refused.load());
  out.set_rows_returned(q.rows.load());
  out.set_bytes_returned(q.bytes.load());
  out.set_partial(q.partial.load());
  out.set_skipping_satellites(q.skipping_satellites.load());
  out.set_satellites_skipped(q.satellites_skipped.load());
  auto& d = *out.mutable_duration_us();
  for (auto bound : duration_histogram::bounds_us)
    d.add_upper_bounds(bound);
  for (size_t i = 0; i < duration_histogram::buckets; ++i)
    d.add_counts(q.durations.count(i));
  d.set_sum(q.durations.sum_us());
}

} // namespace

void fill_server_stats(const server_node& node, const runtime& rt, wire::StatsReply& out) {
  net::fill_listener_stats(node.ctx->stats, *out.mutable_listener());
  if (node.router)
    net::fill_io_loop_stats(node.router->home_system(), out);
  fill_queries(*node.queries, *out.mutable_queries());
  if (node.routes) {
    // The routes' counts under their mutex: no message to the registry, so a scrape never
    // waits behind it.
    auto& sats = *out.mutable_satellites();
    sats.set_registered(node.routes->size());
    sats.set_healthy(node.routes->count(satellite_health::healthy));
    sats.set_unhealthy(node.routes->count(satellite_health::unhealthy));
    sats.set_disconnected(node.routes->count(satellite_health::disconnected));
  }
  net::fill_runtime_stats(rt.snapshot(), out);
}

} // namespace levee::server
