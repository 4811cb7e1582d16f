#include "server/registry.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "limits/config_fields.hpp"
#include "limits/token_bucket.hpp"
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
  {"max_list_page", &O::max_list_page, 1, 100'000, "satellites"},
  {"max_list_page_bytes", &O::max_list_page_bytes, 4096, 64 * defaults::MiB, "bytes"},
  {"max_registrations_per_sec", &O::max_registrations_per_sec, 1, 10'000'000, "registrations"},
};

using health = satellite_health;

wire::SatelliteInfo::State wire_state_of(health h) {
  switch (h) {
    case health::healthy: return wire::SatelliteInfo::healthy;
    case health::unhealthy: return wire::SatelliteInfo::unhealthy;
    default: return wire::SatelliteInfo::disconnected;
  }
}

/// What the registry keeps of a satellite besides its route (labels, state and connection
/// live in the shared index, routes.hpp).
struct entry {
  caf::actor connection;
  health state = health::healthy;
  int64_t last_seen_ms = 0;   // the clock's time of its last beat (what the list shows)
  int64_t beat_judged_ms = 0; // the same on the judged clock (what its health is judged by)
  int64_t interval_ms = 1000; // granted at registration: missed beats count in it
  int64_t changed_ms = 0;     // when the state last changed (the oldest disconnected goes first)
  int64_t bucket = -1;        // its deadline's bucket (-1: none); older entries are stale
  uint64_t sequence = 0;
  wire::StoreStats store;
  double load = 0;
  std::string address;
  uint32_t queries_running = 0;
};

struct registry_state {
  std::unordered_map<std::string, entry> satellites;
  /// The satellites each connection registered (almost always one), so a closed
  /// connection costs a lookup, not a scan of every satellite.
  std::unordered_map<caf::actor_id, std::vector<std::string>> by_connection;
  /// The disconnected ones, oldest first: forgotten first when the registry is full.
  std::set<std::pair<int64_t, std::string>> disconnected;
  /// Deadlines (when a satellite's state next moves if no beat comes), bucketed by tick on
  /// the judged clock. A beat does not touch them: a bucket that comes due looks at its
  /// satellites once and moves each that beat meanwhile to its new deadline's bucket.
  std::map<int64_t, std::vector<std::string>> buckets;
  uint64_t next_assigned = 1;
  std::shared_ptr<satellite_routes> routes;
  // What `satellites` lists moves on with version; requests waiting for it to move.
  uint64_t version = 1;
  std::optional<watcher_set> watchers;
  std::optional<token_bucket> admissions;
  int64_t admit_horizon_ns = 0;  // the latest retry time told to a refused registration
  const clock_source* clock = nullptr;
  // The judged clock: the registry's time minus the time it was late itself. It moves
  // with the clock between ticks, but a tick that comes late (the server was behind: its
  // loop did not get to the registry) adds only one tick's worth (plus slack), so
  // satellites whose beats waited unread meanwhile are not counted late for it.
  int64_t tick_real_ms = 0;
  int64_t tick_judged_ms = 0;
  int64_t check_ms = 0;
  uint64_t late_ticks = 0;
  const char* name = "levee.registry";

  int64_t now_ms() const noexcept { return clock->now_ns() / 1'000'000; }
  int64_t judged_ms() const noexcept {
    return tick_judged_ms + std::min(now_ms() - tick_real_ms, check_ms + check_ms / 2);
  }
};

// Its work per message is a few hash and tree operations: cheap enough for the I/O thread,
// where the node places it next to the connections (placement.hpp); it does not know
// where it runs.
using registry_self = caf::stateful_actor<registry_state, limited<registry_actor::base>>;

/// Moves `e` to state `h` (and its route, with `e.connection`).
void set_state(registry_state& st, const std::string& id, entry& e, health h, int64_t now) {
  if (e.state == h)
    return;
  if (e.state == health::disconnected)
    st.disconnected.erase({e.changed_ms, id});
  e.state = h;
  e.changed_ms = now;
  if (h == health::disconnected)
    st.disconnected.emplace(now, id);
  st.routes->set_state(id, h, e.connection);
  ++st.version;
}

/// Puts `id` in the bucket of its deadline, unless it waits in an earlier one already
/// (which looks again when it comes due).
void schedule(registry_state& st, const std::string& id, entry& e, int64_t due_judged_ms) {
  auto b = due_judged_ms / st.check_ms;
  if (e.bucket >= 0 && e.bucket <= b)
    return;
  st.buckets[b].push_back(id);
  e.bucket = b;
}

/// When `e`'s state moves next if no beat comes (judged clock).
int64_t deadline_of(const entry& e, const server_options& opts) {
  auto after = e.state == health::healthy ? opts.unhealthy_after : opts.disconnect_after;
  return e.beat_judged_ms + static_cast<int64_t>(after) * e.interval_ms;
}

/// Forgets which connection `id` came on.
void unlink_connection(registry_state& st, const caf::actor& conn, const std::string& id) {
  if (!conn)
    return;
  auto i = st.by_connection.find(conn.id());
  if (i == st.by_connection.end())
    return;
  auto& ids = i->second;
  ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
  if (ids.empty())
    st.by_connection.erase(i);
}

/// The view of the list one SatellitesRequest asks for (its fields but the wait's).
std::string view_of(const wire::SatellitesRequest& req) {
  wire::SatellitesRequest v = req;
  v.clear_after_version();
  v.clear_wait_ms();
  return v.SerializeAsString();
}

/// What `satellites` answers: one page of the registered satellites (the view's filters,
/// in id order), the counts of the whole registry, and the list's version.
std::string render_list(const registry_state& st, const server_options& opts,
                        const std::string& view) {
  wire::SatellitesRequest req;
  req.ParseFromString(view);
  wire::SatelliteList out;
  auto now = st.now_ms();
  size_t limit = req.limit() == 0 ? opts.max_list_page
                                  : std::min<uint64_t>(req.limit(), opts.max_list_page);
  label_map selector(req.selector().begin(), req.selector().end());
  uint32_t states = 0;
  for (auto s : req.states())
    if (s >= wire::SatelliteInfo::healthy && s <= wire::SatelliteInfo::disconnected)
      states |= satellite_routes::state_bit(static_cast<health>(s - 1));
  if (req.states_size() > 0 && states == 0) {
    out.set_version(st.version);  // only unknown states: nothing matches
    return out.SerializeAsString();
  }
  size_t bytes = 0;
  auto next = st.routes->scan(
    selector, states, req.after_id(), 16 * limit, [&](const satellite_routes::route& r) {
      auto i = st.satellites.find(r.id);
      if (i == st.satellites.end())
        return true;
      auto& e = i->second;
      auto& s = *out.add_satellites();
      s.set_satellite_id(r.id);
      for (auto& [k, v] : r.labels)
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
      bytes += s.ByteSizeLong();
      return static_cast<size_t>(out.satellites_size()) < limit
             && bytes < opts.max_list_page_bytes;
    });
  out.set_next_after_id(next);
  out.set_registered(st.satellites.size());
  out.set_healthy(st.routes->count(health::healthy));
  out.set_unhealthy(st.routes->count(health::unhealthy));
  out.set_disconnected(st.routes->count(health::disconnected));
  out.set_late_ticks(st.late_ticks);
  out.set_version(st.version);
  return out.SerializeAsString();
}

/// Disconnects `e` for missing its beats: its connection is closed, so its queries get
/// unavailable at once.
void disconnect_silent(registry_state& st, const std::string& id, entry& e,
                       const server_options& opts, int64_t missed, int64_t now) {
  auto conn = std::move(e.connection);
  e.connection = nullptr;
  unlink_connection(st, conn, id);
  set_state(st, id, e, health::disconnected, now);
  if (conn)  // closes it; its queries get unavailable (it needs no sender)
    caf::anon_send(conn, stop_atom::value, static_cast<uint32_t>(code::unavailable),
                   std::string{"server.disconnect_after"},
                   "no heartbeat for " + std::to_string(missed) + " intervals of "
                     + std::to_string(e.interval_ms)
                     + " ms: disconnected; reconnect and register again");
}

/// The registry's tick: moves the judged clock on, then looks at the satellites whose
/// deadline bucket came due (and only those) along healthy -> unhealthy -> disconnected.
void check_heartbeats(registry_self* self, const server_options& opts) {
  auto& st = self->state;
  auto now = st.now_ms();
  auto elapsed = now - st.tick_real_ms;
  auto counted = std::min(elapsed, st.check_ms + st.check_ms / 2);
  if (counted < elapsed)
    ++st.late_ticks;  // the server was behind: its lateness is not the satellites'
  st.tick_real_ms = now;
  st.tick_judged_ms += counted;
  auto judged = st.tick_judged_ms;
  // Take the due buckets out first: a satellite not due yet goes back into one of them.
  std::vector<std::pair<int64_t, std::vector<std::string>>> due;
  auto last = judged / st.check_ms;
  while (!st.buckets.empty() && st.buckets.begin()->first <= last) {
    due.emplace_back(st.buckets.begin()->first, std::move(st.buckets.begin()->second));
    st.buckets.erase(st.buckets.begin());
  }
  auto& work = st.routes->work();
  for (auto& [b, ids] : due) {
    work.deadlines_examined.fetch_add(ids.size(), std::memory_order_relaxed);
    for (auto& id : ids) {
      auto it = st.satellites.find(id);
      if (it == st.satellites.end() || it->second.bucket != b)
        continue;  // forgotten, or waits in another bucket now
      auto& e = it->second;
      e.bucket = -1;
      if (e.state == health::disconnected)
        continue;
      auto missed = (judged - e.beat_judged_ms) / e.interval_ms;  // in its own interval
      if (missed >= static_cast<int64_t>(opts.disconnect_after)) {
        disconnect_silent(st, id, e, opts, missed, now);
        continue;
      }
      if (missed >= static_cast<int64_t>(opts.unhealthy_after))
        set_state(st, id, e, health::unhealthy, now);
      schedule(st, id, e, deadline_of(e, opts));
    }
  }
}

/// A burst of list changes (heartbeats) within this is answered once.
constexpr int64_t list_coalesce_ns = 20'000'000;

/// Refuses a registration beyond server.max_registrations_per_sec, with a retry time that
/// spreads a herd: each refused one is told a later time than the last, one
/// registration's worth of rate apart.
std::optional<rejection> admit(registry_state& st, const server_options& opts) {
  auto d = st.admissions->try_acquire(1);
  if (d.allowed)
    return std::nullopt;
  auto now = st.clock->now_ns();
  auto spacing = static_cast<int64_t>(1'000'000'000 / opts.max_registrations_per_sec);
  auto at = std::max(now + static_cast<int64_t>(d.retry_after_ns), st.admit_horizon_ns);
  st.admit_horizon_ns = at + spacing;
  auto retry_ms = token_bucket::to_retry_ms(static_cast<uint64_t>(at - now));
  return rejection::of(code::rate_limited)
    .limit("server.max_registrations_per_sec")
    .observed(d.observed_units)
    .max(st.admissions->burst())
    .retry_after_ms(retry_ms)
    .detail("the server admits " + std::to_string(opts.max_registrations_per_sec)
            + " registrations a second and more are waiting; register again after "
              "retry_after_ms (satellites do, with jitter)");
}

registry_actor::behavior_type registry(registry_self* self, server_options opts,
                                      std::shared_ptr<satellite_routes> routes,
                                      const clock_source* clock) {
  auto& st0 = self->state;
  st0.routes = std::move(routes);
  st0.clock = clock;
  st0.watchers.emplace(
    watcher_set::bounds{opts.max_list_watchers, opts.max_list_watchers_per_client,
                        opts.max_list_wait_ms, list_coalesce_ns},
    *clock);
  st0.admissions.emplace(*clock, opts.max_registrations_per_sec, opts.max_registrations_per_sec);
  st0.check_ms = static_cast<int64_t>(std::max<uint64_t>(opts.heartbeat_interval_ms / 4, 5));
  st0.tick_real_ms = st0.now_ms();
  st0.tick_judged_ms = st0.tick_real_ms;
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    auto i = st.by_connection.find(msg.source.id());
    if (i == st.by_connection.end())
      return;
    auto ids = std::move(i->second);
    st.by_connection.erase(i);
    auto now = st.now_ms();
    for (auto& id : ids)
      if (auto it = st.satellites.find(id); it != st.satellites.end()) {
        it->second.connection = nullptr;
        if (it->second.state == health::disconnected)
          st.routes->set_state(id, health::disconnected, nullptr);
        else
          set_state(st, id, it->second, health::disconnected, now);
      }
    st.watchers->changed(self);
  });
  auto check_every = std::chrono::milliseconds(st0.check_ms);
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
      if (auto refused = admit(st, opts))
        return to_error(*refused);
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
          && it->second.connection && it->second.connection != conn) {
        st.admissions->refund(1);
        return to_error(rejection::of(code::permission_denied)
                          .detail("satellite id '" + id
                                  + "' is registered by another live connection; give this "
                                    "satellite another id or stop the other one"));
      }
      if (it == st.satellites.end() && st.satellites.size() >= opts.max_satellites) {
        // At the bound: forget the satellite disconnected longest ago, if any.
        if (st.disconnected.empty()) {
          st.admissions->refund(1);
          return to_error(rejection::of(code::too_many_connections)
                            .limit("server.max_satellites")
                            .observed(st.satellites.size() + 1)
                            .max(opts.max_satellites)
                            // A silent satellite's place is free after this at most.
                            .retry_after_ms(opts.heartbeat_interval_ms * opts.disconnect_after)
                            .detail("the registry is full of live satellites; raise "
                                    "server.max_satellites (and net.max_connections) on "
                                    "the server, or stop one"));
        }
        auto oldest = st.disconnected.begin()->second;
        st.disconnected.erase(st.disconnected.begin());
        st.satellites.erase(oldest);
        st.routes->erase(oldest);
        ++st.version;
      }
      auto& e = st.satellites[id];
      if (e.state == health::disconnected)
        st.disconnected.erase({e.changed_ms, id});
      if (e.connection != conn) {
        unlink_connection(st, e.connection, id);
        if (conn) {
          auto& ids = st.by_connection[conn.id()];
          if (ids.empty())
            self->monitor(conn);
          ids.push_back(id);
        }
      }
      e.connection = conn;
      e.state = health::healthy;
      e.changed_ms = now;
      e.last_seen_ms = now;
      e.interval_ms = static_cast<int64_t>(
        granted_heartbeat_interval_ms(opts, reg.heartbeat_interval_ms()));
      e.beat_judged_ms = st.judged_ms();
      e.sequence = 0;
      e.store = reg.store();
      e.address = reg.address();
      st.routes->put(id, label_map(reg.labels().begin(), reg.labels().end()), conn,
                     health::healthy);
      schedule(st, id, e, deadline_of(e, opts));
      ++st.version;
      st.watchers->changed(self);
      wire::RegisterAck ack;
      ack.set_satellite_id(id);
      ack.set_heartbeat_interval_ms(static_cast<uint32_t>(e.interval_ms));
      return ack.SerializeAsString();
    },
    [=](heartbeat_atom, const wire::Heartbeat& hb) -> caf::result<std::string> {
      auto& st = self->state;
      auto it = st.satellites.find(hb.satellite_id());
      auto conn = caf::actor_cast<caf::actor>(self->current_sender());
      if (it == st.satellites.end() || it->second.connection != conn)
        return to_error(rejection::of(code::not_found)
                          .detail("satellite '" + hb.satellite_id()
                                  + "' is not registered on this connection; register again"));
      auto& e = it->second;
      auto now = st.now_ms();
      e.last_seen_ms = now;
      e.beat_judged_ms = st.judged_ms();
      e.sequence = hb.sequence();
      e.store = hb.store();
      e.load = hb.load();
      e.queries_running = hb.queries_running();
      if (!hb.address().empty())
        e.address = hb.address();
      if (e.state != health::healthy) {
        set_state(st, it->first, e, health::healthy, now);
        schedule(st, it->first, e, deadline_of(e, opts));
      }
      ++st.version;
      st.watchers->changed(self);
      return wire::HeartbeatAck{}.SerializeAsString();
    },
    [=](list_atom, const wire::SatellitesRequest& req) -> caf::result<std::string> {
      auto& st = self->state;
      return st.watchers->hold(self, st.version, req.after_version(), req.wait_ms(),
                               view_of(req),
                               [&](const std::string& view) { return render_list(st, opts, view); });
    },
    [=](watch_atom, int64_t armed_for) {
      auto& st = self->state;
      st.watchers->on_timer(self, armed_for, st.version,
                            [&](const std::string& view) { return render_list(st, opts, view); });
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

registry_actor spawn_registry(caf::actor_system& sys, runtime& rt, placement where,
                              server_options opts, std::shared_ptr<satellite_routes> routes) {
  // Registrations and heartbeats reach the registry parsed; its gate counts them by their
  // encoded size (labels, store stats), as it counted the bytes they arrived as, not as
  // an unknown 16-byte element that would slip past the mailbox's byte bound.
  register_payload_type<wire::Register>();
  register_payload_type<wire::Heartbeat>();
  register_payload_type<wire::SatellitesRequest>();
  return spawn_limited_fun(sys, rt, "registry", where, registry, std::move(opts),
                           std::move(routes), &rt.clock());
}

} // namespace levee::server
