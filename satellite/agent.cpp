// The agent: registers the satellite over the uplink, heartbeats, registers again after
// a reconnection or a server restart (agent.hpp).

#include "satellite/agent.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>

#include <unistd.h>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "limits/log.hpp"
#include "net/satellite.pb.h"
#include "satellite/heartbeat_timing.hpp"

namespace levee::satellite {

namespace {

using namespace std::chrono;

struct agent_state {
  caf::actor uplink;
  std::string id;           // assigned or configured
  uint64_t sequence = 0;
  uint64_t generation = 0;  // a heartbeat loop per registration
  milliseconds interval{1000};  // as the server granted it (RegisterAck)
  std::string address_sent;     // the host name the server has: sent again only if it changes
  std::minstd_rand rng{std::random_device{}() ^ static_cast<unsigned>(::getpid())};
  std::uniform_real_distribution<double> uniform{0.0, 1.0};
  bool registering = false;
  milliseconds register_backoff{1000};  // after a refusal that names no retry time
  const char* name = "levee.satellite_agent";
};

using agent_self = caf::stateful_actor<agent_state, limited<agent_actor::base>>;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    return "unknown";
  return buf;
}

double load_average() {
  double l[1] = {0};
  return ::getloadavg(l, 1) == 1 ? l[0] : 0;
}

void do_register(agent_self* self, store_actor store, const satellite_options& opts,
                 const std::shared_ptr<satellite_stats>& stats);

/// A refusal of the registration that only the operator can end: the server says "do not
/// retry" (retry_after_ms 0) because this satellite's token is wrong or missing. Other
/// refusals without a retry time end by themselves and are retried with backoff: a live
/// connection holding the id (permission_denied) goes when it dies, and "not connected"
/// (unavailable) when the uplink is back.
bool refused_for_good(const rejection& r) noexcept {
  return r.code == code::unauthenticated && r.retry_after_ms == 0;
}

/// Schedules the heartbeat after this one (or the first after a registration), jittered
/// (heartbeat_timing.hpp).
void next_heartbeat(agent_self* self, const satellite_options& opts, bool first,
                    uint64_t generation) {
  auto& s = self->state;
  auto delay = heartbeat_delay(s.interval, opts.heartbeat_jitter_pct, first, s.uniform(s.rng));
  self->delayed_send(self, delay, tick_atom::value, generation);
}

/// How long to wait before registering again after a refusal: the server's retry_after_ms
/// when it names one (a herd admitted at server.max_registrations_per_sec), else a backoff
/// that doubles from 1 s to 30 s; made up to satellite.heartbeat_jitter_pct longer at
/// random (heartbeat_timing.hpp), so satellites refused together do not come back together.
milliseconds register_wait(agent_state& s, const satellite_options& opts,
                           uint64_t retry_after_ms) {
  auto base = retry_after_ms;
  if (base == 0) {
    base = static_cast<uint64_t>(s.register_backoff.count());
    s.register_backoff = std::min(s.register_backoff * 2, milliseconds{30'000});
  }
  return register_retry_delay(base, opts.heartbeat_jitter_pct, s.uniform(s.rng));
}

void heartbeat(agent_self* self, store_actor store, satellite_options opts,
               std::shared_ptr<satellite_stats> stats, uint64_t generation) {
  auto& st = self->state;
  if (generation != st.generation)
    return;  // a loop of an earlier registration
  self->request(store, seconds(10), caf::get_atom::value)
    .then([=](wire::StoreStats& store_stats) {
      auto& s = self->state;
      if (generation != s.generation)
        return;
      wire::Heartbeat hb;
      hb.set_satellite_id(s.id);
      hb.set_sequence(++s.sequence);
      if (auto host = host_name(); host != s.address_sent) {
        hb.set_address(host);
        s.address_sent = std::move(host);
      }
      *hb.mutable_store() = std::move(store_stats);
      hb.set_load(load_average());
      hb.set_queries_running(static_cast<uint32_t>(stats->queries_running.load()));
      self->request(s.uplink, seconds(10), wire_request_atom::value, std::string{"heartbeat"},
                    hb.SerializeAsString())
        .then([](std::string&) {},
              [=](caf::error& err) {
                auto r = rejection_from(err);
                if (r && r->code == code::not_found && generation == self->state.generation)
                  do_register(self, store, opts, stats);  // the server forgot us (restart)
              });
      next_heartbeat(self, opts, false, generation);
    },
    [=](caf::error&) { next_heartbeat(self, opts, false, generation); });
}

void do_register(agent_self* self, store_actor store, const satellite_options& opts,
                 const std::shared_ptr<satellite_stats>& stats) {
  auto& st = self->state;
  if (st.registering)
    return;
  st.registering = true;
  ++st.generation;  // stops the heartbeats of the previous registration
  stats->registered.store(false);
  self->request(store, seconds(10), caf::get_atom::value)
    .then([=](wire::StoreStats& store_stats) {
      wire::Register reg;
      reg.set_satellite_id(self->state.id);
      reg.set_token(opts.satellite_token);
      for (auto& [k, v] : opts.labels)
        (*reg.mutable_labels())[k] = v;
      *reg.mutable_store() = std::move(store_stats);
      reg.set_address(host_name());
      reg.set_heartbeat_interval_ms(static_cast<uint32_t>(opts.heartbeat_interval_ms));
      self->state.address_sent = reg.address();
      self->request(self->state.uplink, seconds(10), wire_request_atom::value,
                    std::string{"register"}, reg.SerializeAsString())
        .then(
          [=](std::string& answer) {
            auto& s = self->state;
            s.registering = false;
            s.register_backoff = milliseconds{1000};
            wire::RegisterAck ack;
            ack.ParseFromString(answer);
            s.id = ack.satellite_id();
            s.sequence = 0;
            s.interval = milliseconds(std::max<uint32_t>(ack.heartbeat_interval_ms(), 10));
            {
              std::lock_guard<std::mutex> guard{stats->mtx};
              stats->assigned_id = s.id;
              stats->last_error.clear();
            }
            stats->registrations.fetch_add(1);
            stats->registered.store(true);
            LEVEE_INFO("satellite", "registered as '%s', heartbeat every %lld ms",
                       s.id.c_str(), static_cast<long long>(s.interval.count()));
            // The Register counted as a beat; the first heartbeat comes within an interval.
            next_heartbeat(self, opts, true, s.generation);
          },
          [=](caf::error& err) {
            auto& s = self->state;
            s.registering = false;
            auto r = rejection_from(err);
            auto text = r ? r->to_string() : caf::to_string(err);
            if (r && refused_for_good(*r) && opts.on_refused_for_good) {
              {
                std::lock_guard<std::mutex> guard{stats->mtx};
                stats->last_error = text;
              }
              LEVEE_ERROR("satellite",
                          "registration refused for good: %s. This node "
                          "stops (exit 1): set satellite_token in [satellite] to the "
                          "server's server.satellite_token, then start it again",
                          text.c_str());
              opts.on_refused_for_good(text);
              return;  // no retry: the same token is refused the same way
            }
            {
              std::lock_guard<std::mutex> guard{stats->mtx};
              if (stats->last_error != text)
                LEVEE_WARN("satellite", "registration refused: %s", text.c_str());
              stats->last_error = text;
            }
            // Refused (a live id, a wrong token, a full registry, the server admitting a
            // herd) or not connected: try again when the server said, or after a backoff,
            // jittered; a new connection also triggers it.
            self->delayed_send(self, register_wait(s, opts, r ? r->retry_after_ms : 0),
                               connected_atom::value, std::string{});
          });
    },
    [=](caf::error&) {
      // The store did not answer (busy, or refused): try again shortly.
      self->state.registering = false;
      self->delayed_send(self, seconds(1), connected_atom::value, std::string{});
    });
}

agent_actor::behavior_type agent(agent_self* self, store_actor store, satellite_options opts,
                                 std::shared_ptr<satellite_stats> stats) {
  self->state.id = opts.id;
  return {
    [=](uplink_atom, caf::actor& uplink) { self->state.uplink = std::move(uplink); },
    [=](connected_atom, const std::string&) { do_register(self, store, opts, stats); },
    [=](tick_atom, uint64_t generation) { heartbeat(self, store, opts, stats, generation); },
    [=](stop_atom) { self->quit(); },
  };
}

} // namespace

agent_actor spawn_agent(caf::actor_system& sys, runtime& rt, store_actor store,
                        satellite_options opts, std::shared_ptr<satellite_stats> stats) {
  return spawn_limited_fun(sys, rt, "satellite", agent, std::move(store), std::move(opts),
                           std::move(stats));
}

} // namespace levee::satellite
