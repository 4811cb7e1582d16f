#include "server/registry.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "limits/config_fields.hpp"
#include "net/satellite.pb.h"
#include "server/watchers.hpp"

namespace levee::server {

namespace {

using O = server_options;

const field_spec<O> fields[] = {
  {"heartbeat_interval_ms", &O::heartbeat_interval_ms, 10, 3'600'000, "ms"},
  {"max_heartbeat_interval_ms", &O::max_heartbeat_interval_ms, 10, 3'600'000, "ms"},
  {"unhealthy_after", &O::unhealthy_after, 1, 1000, "heartbeats"},
  {"disconnect_after", &O::disconnect_after, 1, 10'000, "heartbeats"},
  {"max_satellites", &O::max_satellites, 1, 1u << 20, "satellites"},
  {"max_queries", &O::max_queries, 1, 1u << 20, "queries"},
  {"max_queries_per_client", &O::max_queries_per_client, 1, 1u << 20, "queries"},
  {"max_result_bytes", &O::max_result_bytes, 1024, 64 * defaults::GiB, "bytes"},
  {"query_window_bytes", &O::query_window_bytes, 4096, 1 * defaults::GiB, "bytes"},
  {"query_deadline_ms", &O::query_deadline_ms, 1, 86'400'000, "ms"},
  {"max_list_watchers", &O::max_list_watchers, 1, 1u << 16, "requests"},
  {"max_list_watchers_per_client", &O::max_list_watchers_per_client, 1, 1u << 16, "requests"},
  {"max_list_wait_ms", &O::max_list_wait_ms, 1, 3'600'000, "ms"},
};

enum class health { healthy, unhealthy, disconnected };

const char* name_of(health h) {
  switch (h) {
    case health::healthy: return "healthy";
    case health::unhealthy: return "unhealthy";
    default: return "disconnected";
  }
}

wire::SatelliteInfo::State wire_state_of(health h) {
  switch (h) {
    case health::healthy: return wire::SatelliteInfo::healthy;
    case health::unhealthy: return wire::SatelliteInfo::unhealthy;
    default: return wire::SatelliteInfo::disconnected;
  }
}

struct entry {
  std::map<std::string, std::string> labels;
  caf::actor connection;
  health state = health::healthy;
  int64_t last_seen_ms = 0;
  int64_t interval_ms = 1000;  // granted at registration: missed beats count in it
  int64_t changed_ms = 0;  // when the state last changed (the oldest disconnected goes first)
  uint64_t sequence = 0;
  wire::StoreStats store;
  double load = 0;
  std::string address;
  uint32_t queries_running = 0;
};

struct registry_state {
  std::map<std::string, entry> satellites;
  uint64_t next_assigned = 1;
  std::shared_ptr<satellite_routes> routes;
  bool routes_changed = false;  // a route's state, labels or connection changed: publish
  // What `satellites` lists moves on with version; requests waiting for it to move.
  uint64_t version = 1;
  std::optional<watcher_set> watchers;
  const clock_source* clock = nullptr;
  const char* name = "levee.registry";

  int64_t now_ms() const noexcept { return clock->now_ns() / 1'000'000; }
};

// Its work per message is a map operation: cheap enough for the I/O thread, where the
// node places it next to the connections (placement.hpp); it does not know where it runs.
using registry_self = caf::stateful_actor<registry_state, limited<registry_actor::base>>;

void set_state(registry_state& st, entry& e, health h, int64_t now) {
  if (e.state != h) {
    e.state = h;
    e.changed_ms = now;
    st.routes_changed = true;
    ++st.version;
  }
}

/// What `satellites` answers: every registered satellite, and the list's version.
std::string render_list(const registry_state& st) {
  wire::SatelliteList out;
  auto now = st.now_ms();
  for (auto& [id, e] : st.satellites) {
    auto& s = *out.add_satellites();
    s.set_satellite_id(id);
    for (auto& [k, v] : e.labels)
      (*s.mutable_labels())[k] = v;
    s.set_state(wire_state_of(e.state));
    s.set_since_heartbeat_ms(static_cast<uint64_t>(std::max<int64_t>(0, now - e.last_seen_ms)));
    s.set_sequence(e.sequence);
    *s.mutable_store() = e.store;
    // Marked for an operator to see before a query fails; queries still go to it.
    s.set_store_damaged(e.store.scrub_damaged_segments() > 0);
    s.set_load(e.load);
    s.set_address(e.address);
    s.set_queries_running(e.queries_running);
  }
  out.set_version(st.version);
  return out.SerializeAsString();
}

/// Publishes the routes when they changed since the last time.
void publish_routes(registry_state& st) {
  if (!st.routes_changed)
    return;
  st.routes_changed = false;
  auto t = std::make_shared<satellite_routes::table>();
  t->reserve(st.satellites.size());
  for (auto& [id, e] : st.satellites)
    t->push_back(satellite_routes::route{id, e.labels, e.connection, name_of(e.state),
                                         e.state == health::healthy && e.connection});
  st.routes->publish(std::move(t));
}

/// Moves satellites along healthy -> unhealthy -> disconnected by missed heartbeats; a
/// disconnected one's connection is closed, so queries on it fail at once.
void check_heartbeats(registry_self* self, const server_options& opts) {
  auto now = self->state.now_ms();
  for (auto& [id, e] : self->state.satellites) {
    if (e.state == health::disconnected)
      continue;
    auto missed = (now - e.last_seen_ms) / e.interval_ms;
    if (missed >= static_cast<int64_t>(opts.disconnect_after)) {
      set_state(self->state, e, health::disconnected, now);
      if (e.connection)  // closes it; its queries get unavailable (it needs no sender)
        caf::anon_send(e.connection, stop_atom::value,
                   static_cast<uint32_t>(code::unavailable),
                   std::string{"server.disconnect_after"},
                   "no heartbeat for " + std::to_string(missed) + " intervals of "
                     + std::to_string(e.interval_ms)
                     + " ms: disconnected; reconnect and register again");
      e.connection = nullptr;
    } else if (missed >= static_cast<int64_t>(opts.unhealthy_after)) {
      set_state(self->state, e, health::unhealthy, now);
    }
  }
  publish_routes(self->state);
}

/// A burst of list changes (heartbeats) within this is answered once.
constexpr int64_t list_coalesce_ns = 20'000'000;

registry_actor::behavior_type registry(registry_self* self, server_options opts,
                                      std::shared_ptr<satellite_routes> routes,
                                      const clock_source* clock) {
  self->state.routes = std::move(routes);
  self->state.clock = clock;
  self->state.watchers.emplace(
    watcher_set::bounds{opts.max_list_watchers, opts.max_list_watchers_per_client,
                        opts.max_list_wait_ms, list_coalesce_ns},
    *clock);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    for (auto& [id, e] : st.satellites)
      if (e.connection && e.connection.address() == msg.source) {
        e.connection = nullptr;
        st.routes_changed = true;
        set_state(st, e, health::disconnected, st.now_ms());
      }
    publish_routes(st);
    self->state.watchers->changed(self);
  });
  auto check_every = std::chrono::milliseconds(std::max<uint64_t>(opts.heartbeat_interval_ms / 4, 5));
  self->delayed_send(self, check_every, tick_atom::value);
  return {
    [=](register_atom, const wire::Register& reg) -> caf::result<std::string> {
      auto& st = self->state;
      if (!opts.satellite_token.empty() && reg.token() != opts.satellite_token)
        return to_error(rejection::of(code::unauthenticated)
                          .limit("server.satellite_token")
                          .detail(reg.token().empty()
                                    ? "this server requires a satellite token; set "
                                      "satellite.satellite_token to the server's"
                                    : "wrong satellite token; set satellite.satellite_token to "
                                      "the server's"));
      auto conn = caf::actor_cast<caf::actor>(self->current_sender());
      auto id = reg.satellite_id();
      if (id.empty()) {
        do
          id = "sat-" + std::to_string(st.next_assigned++);
        while (st.satellites.count(id) != 0);
      }
      auto now = st.now_ms();
      auto it = st.satellites.find(id);
      if (it != st.satellites.end() && it->second.state != health::disconnected
          && it->second.connection && it->second.connection != conn)
        return to_error(rejection::of(code::permission_denied)
                          .detail("satellite id '" + id
                                  + "' is registered by another live connection; give this "
                                    "satellite another id or stop the other one"));
      if (it == st.satellites.end() && st.satellites.size() >= opts.max_satellites) {
        // At the bound: forget the satellite disconnected longest ago, if any.
        auto oldest = st.satellites.end();
        for (auto i = st.satellites.begin(); i != st.satellites.end(); ++i)
          if (i->second.state == health::disconnected
              && (oldest == st.satellites.end() || i->second.changed_ms < oldest->second.changed_ms))
            oldest = i;
        if (oldest == st.satellites.end())
          return to_error(rejection::of(code::too_many_connections)
                            .limit("server.max_satellites")
                            .observed(st.satellites.size() + 1)
                            .max(opts.max_satellites)
                            // A silent satellite's place is free after this at most.
                            .retry_after_ms(opts.heartbeat_interval_ms * opts.disconnect_after)
                            .detail("the registry is full of live satellites; raise "
                                    "server.max_satellites (and net.max_connections) on "
                                    "the server, or stop one"));
        st.satellites.erase(oldest);
        st.routes_changed = true;
        ++st.version;
      }
      auto& e = st.satellites[id];
      e.labels.clear();
      for (auto& [k, v] : reg.labels())
        e.labels.emplace(k, v);
      if (e.connection != conn && conn)
        self->monitor(conn);
      e.connection = conn;
      e.state = health::healthy;
      e.changed_ms = now;
      e.last_seen_ms = now;
      e.interval_ms = static_cast<int64_t>(
        granted_heartbeat_interval_ms(opts, reg.heartbeat_interval_ms()));
      e.sequence = 0;
      e.store = reg.store();
      e.address = reg.address();
      st.routes_changed = true;
      ++st.version;
      publish_routes(st);
      self->state.watchers->changed(self);
      wire::RegisterAck ack;
      ack.set_satellite_id(id);
      ack.set_heartbeat_interval_ms(static_cast<uint32_t>(e.interval_ms));
      return ack.SerializeAsString();
    },
    [=](heartbeat_atom, const wire::Heartbeat& hb) -> caf::result<std::string> {
      auto it = self->state.satellites.find(hb.satellite_id());
      auto conn = caf::actor_cast<caf::actor>(self->current_sender());
      if (it == self->state.satellites.end() || it->second.connection != conn)
        return to_error(rejection::of(code::not_found)
                          .detail("satellite '" + hb.satellite_id()
                                  + "' is not registered on this connection; register again"));
      auto& e = it->second;
      auto now = self->state.now_ms();
      e.last_seen_ms = now;
      e.sequence = hb.sequence();
      e.store = hb.store();
      e.load = hb.load();
      e.queries_running = hb.queries_running();
      if (!hb.address().empty())
        e.address = hb.address();
      set_state(self->state, e, health::healthy, now);
      ++self->state.version;
      publish_routes(self->state);
      self->state.watchers->changed(self);
      return wire::HeartbeatAck{}.SerializeAsString();
    },
    [=](list_atom, uint64_t after_version, uint32_t wait_ms) -> caf::result<std::string> {
      auto& st = self->state;
      return st.watchers->hold(self, st.version, after_version, wait_ms,
                               [&] { return render_list(st); });
    },
    [=](watch_atom, int64_t armed_for) {
      auto& st = self->state;
      st.watchers->on_timer(self, armed_for, st.version, [&] { return render_list(st); });
    },
    [=](tick_atom) {
      auto before = self->state.version;
      check_heartbeats(self, opts);
      if (self->state.version != before)
        self->state.watchers->changed(self);
      self->delayed_send(self, check_every, tick_atom::value);
    },
  };
}

} // namespace

uint64_t granted_heartbeat_interval_ms(const server_options& opts, uint64_t asked_ms) {
  return std::clamp(asked_ms, opts.heartbeat_interval_ms, opts.max_heartbeat_interval_ms);
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  append_keys(out, "server", fields, {"satellite_token", "listen"});
  return out;
}

result<server_options> server_from_config(const flat_config& cfg) {
  server_options out;
  if (auto st = read_fields(out, cfg, "server", fields, {"satellite_token", "listen"}); !st)
    return st;
  if (auto i = cfg.find("server.satellite_token"); i != cfg.end())
    out.satellite_token = i->second;
  if (auto i = cfg.find("server.listen"); i != cfg.end())
    out.listen = i->second;
  if (out.max_heartbeat_interval_ms < out.heartbeat_interval_ms)
    return status::error(code::bad_request,
                         "server.max_heartbeat_interval_ms = "
                           + std::to_string(out.max_heartbeat_interval_ms)
                           + ": must be at least server.heartbeat_interval_ms ("
                           + std::to_string(out.heartbeat_interval_ms)
                           + "), the interval of satellites that ask for none");
  if (out.disconnect_after <= out.unhealthy_after)
    return status::error(code::bad_request,
                         "server.disconnect_after = " + std::to_string(out.disconnect_after)
                           + ": must be more than server.unhealthy_after ("
                           + std::to_string(out.unhealthy_after) + ")");
  return out;
}

status check_with_listener(const server_options& opts, uint64_t request_deadline_ms) {
  if (opts.query_deadline_ms > request_deadline_ms)
    return status::error(code::bad_request,
                         "server.query_deadline_ms = " + std::to_string(opts.query_deadline_ms)
                           + ": must be at most net.request_deadline_ms ("
                           + std::to_string(request_deadline_ms)
                           + "), the deadline of the request that carries a query");
  if (opts.max_list_wait_ms >= request_deadline_ms)
    return status::error(code::bad_request,
                         "server.max_list_wait_ms = " + std::to_string(opts.max_list_wait_ms)
                           + ": must be below net.request_deadline_ms ("
                           + std::to_string(request_deadline_ms)
                           + "), or a waiting `satellites` request would time out first");
  return {};
}

void satellite_routes::publish(std::shared_ptr<const table> t) {
  std::lock_guard<std::mutex> guard{mtx_};
  table_ = std::move(t);
}

std::shared_ptr<const satellite_routes::table> satellite_routes::current() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return table_;
}

caf::expected<std::vector<satellite_ref>>
satellite_routes::lookup(const wire::QueryRequest& q) const {
  auto t = current();
  std::vector<satellite_ref> out;
  if (!q.satellite_id().empty()) {
    auto it = std::lower_bound(t->begin(), t->end(), q.satellite_id(),
                               [](const route& r, const std::string& id) { return r.id < id; });
    if (it == t->end() || it->id != q.satellite_id())
      return to_error(rejection::of(code::not_found)
                        .detail("no satellite '" + q.satellite_id()
                                + "' is registered; `levee satellites` lists them"));
    if (!it->healthy)
      return to_error(rejection::of(code::unavailable)
                        .detail("satellite '" + q.satellite_id() + "' is " + it->state
                                + "; `levee satellites` shows when it last sent a heartbeat"));
    out.push_back(satellite_ref{it->id, it->connection});
    return out;
  }
  size_t matching = 0;
  for (auto& r : *t) {
    bool match = true;
    for (auto& [k, v] : q.selector()) {
      auto l = r.labels.find(k);
      match = match && l != r.labels.end() && l->second == v;
    }
    if (!match)
      continue;
    ++matching;
    if (r.healthy)
      out.push_back(satellite_ref{r.id, r.connection});
  }
  if (matching == 0)
    return to_error(rejection::of(code::not_found)
                      .detail(q.selector().empty()
                                ? "no satellite is registered; start one pointed at this server"
                                : "no registered satellite has these labels; `levee "
                                  "satellites` lists them"));
  if (out.empty())
    return to_error(rejection::of(code::unavailable)
                      .detail(std::to_string(matching)
                              + " satellites match, none of them healthy; `levee satellites` "
                                "shows their state"));
  return out;
}

registry_actor spawn_registry(caf::actor_system& sys, runtime& rt, placement where,
                              server_options opts, std::shared_ptr<satellite_routes> routes) {
  // Registrations and heartbeats reach the registry parsed; its gate counts them by their
  // encoded size (labels, store stats), as it counted the bytes they arrived as, not as
  // an unknown 16-byte element that would slip past the mailbox's byte bound.
  register_payload_type<wire::Register>();
  register_payload_type<wire::Heartbeat>();
  return spawn_limited_fun(sys, rt, "registry", where, registry, std::move(opts),
                           std::move(routes), &rt.clock());
}

} // namespace levee::server
