#include "net/listener.hpp"

#include <algorithm>
#include <future>

#include <caf/io/all.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/weak_timer.hpp"
#include "net/caf_io_shims.hpp"
#include "net/connection.hpp"

namespace levee::net {

using namespace std::chrono;

server_context::server_context(listener_config cfg, const clock_source& clock)
  : log(clock, 1, 5), cfg_(std::move(cfg)), clock_(clock) {
}

void server_context::expose(const std::string& name, caf::actor target) {
  std::lock_guard<std::mutex> guard{targets_mtx_};
  targets_[name] = std::move(target);
}

caf::actor server_context::target(const std::string& name) const {
  std::lock_guard<std::mutex> guard{targets_mtx_};
  auto i = targets_.find(name);
  return i == targets_.end() ? caf::actor{} : i->second;
}

namespace {

/// Adds one to `count` if it stays within `max`.
bool try_take(std::atomic<uint64_t>& count, uint64_t max) noexcept {
  auto cur = count.load();
  do {
    if (cur >= max)
      return false;
  } while (!count.compare_exchange_weak(cur, cur + 1));
  return true;
}

} // namespace

bool server_context::try_open_connection() noexcept {
  return try_take(stats.connections_open, cfg_.limits.max_connections);
}

void server_context::connection_closed() noexcept {
  stats.connections_open.fetch_sub(1);
}

bool server_context::try_open_satellite() noexcept {
  return try_take(stats.satellite_connections, max_satellite_connections());
}

void server_context::satellite_closed() noexcept {
  stats.satellite_connections.fetch_sub(1);
}

void server_context::add_connection(const caf::actor& conn) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_[conn.id()] = conn;
}

void server_context::remove_connection(caf::actor_id id) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_.erase(id);
  // By the names it holds, not a look at every named connection: at 10,000 satellites
  // closing together (a restart, a partition) that look made each close O(N).
  auto names = names_of_.find(id);
  if (names == names_of_.end())
    return;
  for (auto& node_id : names->second)
    if (auto i = named_.find(node_id); i != named_.end() && i->second.id() == id)
      named_.erase(i);
  names_of_.erase(names);
}

caf::actor server_context::connection_for(const std::string& node_id) const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  auto i = named_.find(node_id);
  return i == named_.end() ? caf::actor{} : i->second;
}

void server_context::name_connection(const std::string& node_id, const caf::actor& conn) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  auto& slot = named_[node_id];
  if (slot && slot.id() != conn.id())  // the name moves: the old holder no longer has it
    if (auto old = names_of_.find(slot.id()); old != names_of_.end()) {
      auto& v = old->second;
      v.erase(std::remove(v.begin(), v.end(), node_id), v.end());
      if (v.empty())
        names_of_.erase(old);
    }
  if (!slot || slot.id() != conn.id())
    names_of_[conn.id()].push_back(node_id);
  slot = conn;
}

std::chrono::milliseconds tick_interval_of(const listener_limits& limits) {
  auto shortest = std::min({limits.handshake_timeout_ms, limits.idle_timeout_ms,
                            limits.read_timeout_ms, limits.write_stall_timeout_ms});
  return milliseconds(std::clamp<uint64_t>(shortest / 4, 5, 1000));
}

namespace {

/// Sent by server_context::timer_relay to its relay: tick the connections (again).
using tick_all_atom = caf::atom_constant<caf::atom("tick_all")>;

/// The relay of server_context::timer_relay: forwards (id, message) to the connection with
/// that id, and ticks every open connection each `every` while there are any. A hidden
/// broker on the I/O thread: its ticks reach the connections without crossing a thread.
caf::actor spawn_connection_clock(caf::io::middleman& mm, std::weak_ptr<server_context> ctx,
                                  milliseconds every) {
  return mm.spawn_broker<caf::hidden>([ctx, every](broker* self) -> caf::behavior {
    auto ticking = std::make_shared<bool>(false);
    return {
      [ctx](uint64_t id, caf::message& msg) {
        if (auto c = ctx.lock())
          if (caf::actor dest = c->connection_by_id(id))
            caf::anon_send(dest, std::move(msg));
      },
      [=](tick_all_atom) {
        if (*ticking)
          return;
        *ticking = true;
        self->delayed_send(self, every, tick_atom::value);
      },
      [=](tick_atom) {
        auto c = ctx.lock();
        auto open = c ? c->connections() : std::vector<caf::actor>{};
        if (open.empty()) {
          *ticking = false;  // the next connection starts it again (timer_relay)
          return;
        }
        for (auto& conn : open)
          caf::anon_send(conn, tick_atom::value);
        self->delayed_send(self, every, tick_atom::value);
      },
    };
  });
}

} // namespace

caf::actor server_context::timer_relay(caf::actor_system& sys) {
  caf::actor relay;
  {
    std::lock_guard<std::mutex> guard{connections_mtx_};
    relay = caf::actor_cast<caf::actor>(timer_relay_);
    if (!relay) {
      relay = spawn_connection_clock(sys.middleman(), weak_from_this(),
                                     tick_interval_of(cfg_.limits));
      timer_relay_ = relay.address();
    }
  }
  caf::anon_send(relay, tick_all_atom::value);
  return relay;
}

caf::actor server_context::connection_by_id(caf::actor_id id) const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  auto i = connections_.find(id);
  return i == connections_.end() ? caf::actor{} : i->second;
}

std::vector<caf::actor> server_context::connections() const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  std::vector<caf::actor> out;
  for (auto& [id, conn] : connections_)
    out.push_back(conn);
  return out;
}

namespace {

caf::behavior acceptor(levee::broker* self, std::shared_ptr<server_context> ctx,
                       std::string host, uint16_t port,
                       std::shared_ptr<std::promise<result<uint16_t>>> bound) {
  auto res = self->add_tcp_doorman(port, host.c_str(), true);
  if (!res) {
    bound->set_value(status::error(code::unavailable,
                                   "cannot listen on " + host + ":" + std::to_string(port) + ": "
                                     + self->system().render(res.error())
                                     + "; is the port in use?"));
    self->quit();
    return {};
  }
  bound->set_value(res->second);
  return {
    [=](const caf::io::new_connection_msg& msg) {
      // A refused connection still gets a broker: it sends the Reject and closes.
      auto role = ctx->try_open_connection() ? conn_role::accepted : conn_role::refused;
      self->fork(connection, msg.handle, ctx, role, caf::actor{}, std::string{}, false);
    },
    [=](const caf::io::acceptor_closed_msg&) { self->quit(); },
  };
}

} // namespace

uint64_t connection_actors_alive() noexcept {
  return direct_write_broker::alive();
}

void stop_listener(const listener& l, server_context& ctx) {
  if (l.acceptor)
    caf::anon_send_exit(l.acceptor, caf::exit_reason::user_shutdown);
  for (auto& conn : ctx.connections())
    caf::anon_send(conn, stop_atom::value);
}

result<listener> start_listener(caf::actor_system& sys, std::shared_ptr<server_context> ctx,
                                const std::string& host, uint16_t port) {
  if (auto st = validate(ctx->config().limits); !st)
    return st;
  auto bound = std::make_shared<std::promise<result<uint16_t>>>();
  auto done = bound->get_future();
  auto acc = sys.middleman().spawn_broker(acceptor, ctx, host, port, bound);
  if (done.wait_for(seconds(30)) != std::future_status::ready)
    return status::error(code::unavailable, "the listener did not start within 30 s");
  auto r = done.get();
  if (!r)
    return r.error();
  return listener{acc, *r};
}

} // namespace levee::net
