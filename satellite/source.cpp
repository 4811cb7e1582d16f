// One actor per source: polls it and hands what it read to the store (source.hpp).

#include "satellite/source.hpp"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <optional>
#include <vector>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "events/codec.hpp"
#include "limits/log.hpp"

namespace levee::satellite {

namespace {

using namespace std::chrono;

struct source_state {
  std::shared_ptr<events::source> src;
  std::vector<events::event> polled;
  std::deque<std::string> values;     // waiting for the store (held until it takes them)
  std::deque<int64_t> timestamps;
  // With values: where each event's line ended (a file_tail's; none for other sources).
  std::deque<std::optional<persistence::file_position>> positions;
  std::optional<persistence::file_position> stored_position;  // the newest the store took
  size_t chunk = 0;                   // events per append; halved when the store says too large
  bool waiting = false;
  uint64_t bad_seen = 0;
  uint64_t bad_logged = 0;
  int64_t last_bad_log_ms = 0;
  std::string last_error;
  bool stopped = false;
  const char* name = "levee.source";
};

using source_self = caf::stateful_actor<source_state, limited<source_actor::base>>;

/// Polls the source every `interval` and hands what it read to the store, one append in
/// flight: a source that produces faster than the store takes waits (a file is simply
/// read later). A refused append is kept and offered again; one too large for the store's
/// message bound is split; a single event too large even alone is dropped, counted and
/// reported (it can never be stored). A source with positions (file_tail) sends, with
/// each event, where its line ended, and when it has consumed lines that made no event,
/// that position alone; `stored_position` is the one the store had at the start.
source_actor::behavior_type source_loop(source_self* self, std::shared_ptr<events::source> src,
                                        store_actor store, milliseconds interval,
                                        uint64_t max_events, std::string name,
                                        std::shared_ptr<satellite_stats> stats,
                                        std::optional<persistence::file_position> stored_position,
                                        const clock_source* clock) {
  self->state.src = std::move(src);
  self->state.chunk = max_events;
  self->state.stored_position = std::move(stored_position);
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      auto& st = self->state;
      if (st.stopped || st.waiting)
        return;
      if (st.values.empty()) {
        st.polled.clear();
        st.src->poll(st.polled, max_events, clock->wall_ms());
        auto& src_stats = st.src->stats();
        auto bad = src_stats.bad_lines;
        if (bad > st.bad_seen) {
          stats->bad_lines.fetch_add(bad - st.bad_seen);
          st.bad_seen = bad;
        }
        // Bad lines are counted (heartbeats carry the total) and said, with the last
        // reason, at most once a second per source, so a flood of garbage cannot flood
        // the log.
        auto now = clock->wall_ms();
        if (bad > st.bad_logged && now - st.last_bad_log_ms >= 1000) {
          LEVEE_WARN("satellite", "source %s: %llu bad lines skipped (%llu in all); last: %s",
                     name.c_str(), static_cast<unsigned long long>(bad - st.bad_logged),
                     static_cast<unsigned long long>(bad), src_stats.last_bad_reason.c_str());
          st.bad_logged = bad;
          st.last_bad_log_ms = now;
        }
        if (!st.src->last_status().ok() && st.src->last_error() != st.last_error) {
          st.last_error = st.src->last_error();
          LEVEE_WARN("satellite", "source %s: %s", name.c_str(), st.last_error.c_str());
        }
        auto* ends = st.src->event_positions();
        if (ends != nullptr && ends->size() != st.polled.size()) {
          LEVEE_WARN("satellite", "source %s: %zu positions for %zu events; "
                                  "these are stored without them",
                     name.c_str(), ends->size(), st.polled.size());
          ends = nullptr;
        }
        for (size_t i = 0; i < st.polled.size(); ++i) {
          st.values.emplace_back();
          events::encode(st.polled[i], st.values.back());
          st.timestamps.push_back(st.polled[i].timestamp_ms);
          st.positions.push_back(ends != nullptr ? std::optional{(*ends)[i]} : std::nullopt);
        }
        if (st.values.empty()) {
          // Nothing to store, but the source may have moved past lines that made no
          // event, or settled where it starts: the store keeps that position too.
          auto at = st.src->position();
          if (!at || at == st.stored_position) {
            self->delayed_send(self, interval, tick_atom::value);
            return;
          }
          st.waiting = true;
          self->request(store, seconds(30), append_atom::value,
                        append_request{{}, {}, name, {*at}})
            .then(
              [=](uint64_t) {
                self->state.waiting = false;
                self->state.stored_position = at;
                self->delayed_send(self, interval, tick_atom::value);
              },
              [=](caf::error&) {
                self->state.waiting = false;
                stats->store_refusals.fetch_add(1);
                self->delayed_send(self, interval, tick_atom::value);
              });
          return;
        }
      }
      auto n = std::min(st.values.size(), st.chunk);
      std::vector<std::string> values(st.values.begin(), st.values.begin() + static_cast<std::ptrdiff_t>(n));
      std::vector<int64_t> ts(st.timestamps.begin(), st.timestamps.begin() + static_cast<std::ptrdiff_t>(n));
      // Every event of the chunk has its position (in order), or none is sent.
      std::vector<persistence::file_position> ends;
      for (size_t i = 0; i < n && st.positions[i]; ++i)
        ends.push_back(*st.positions[i]);
      if (ends.size() != n)
        ends.clear();
      auto full = st.polled.size() >= max_events;
      st.waiting = true;
      self->request(store, seconds(30), append_atom::value,
                    append_request{std::move(values), std::move(ts), name, std::move(ends)})
        .then(
          [=](uint64_t taken) {
            auto& s = self->state;
            s.waiting = false;
            // All n, or (after a failed write) the first `taken` of them.
            auto k = static_cast<std::ptrdiff_t>(std::min<uint64_t>(taken, n));
            if (k > 0 && s.positions[static_cast<size_t>(k) - 1])
              s.stored_position = s.positions[static_cast<size_t>(k) - 1];
            s.values.erase(s.values.begin(), s.values.begin() + k);
            s.timestamps.erase(s.timestamps.begin(), s.timestamps.begin() + k);
            s.positions.erase(s.positions.begin(), s.positions.begin() + k);
            if (!s.values.empty() || full)
              self->send(self, tick_atom::value);  // more is waiting right now
            else
              self->delayed_send(self, interval, tick_atom::value);
          },
          [=](caf::error& err) {
            auto& s = self->state;
            s.waiting = false;
            stats->store_refusals.fetch_add(1);
            auto r = rejection_from(err);
            if (r && r->code == code::message_too_large) {
              if (s.chunk > 1) {
                s.chunk = std::max<size_t>(1, n / 2);
                self->send(self, tick_atom::value);
                return;
              }
              LEVEE_ERROR("satellite", "source %s: an event the store can never take "
                                       "was dropped: %s",
                          name.c_str(), r->to_string().c_str());
              stats->events_dropped.fetch_add(1);
              s.values.pop_front();
              s.timestamps.pop_front();
              s.positions.pop_front();
              self->send(self, tick_atom::value);
              return;
            }
            auto wait = r && r->retry_after_ms > 0 ? milliseconds(r->retry_after_ms) : interval;
            self->delayed_send(self, wait, tick_atom::value);
          });
    },
    [=](stop_atom) {
      self->state.stopped = true;
      self->quit();
    },
  };
}

} // namespace

source_actor spawn_source(caf::actor_system& sys, runtime& rt, source_setup setup) {
  return spawn_limited_fun(sys, rt, "source", source_loop, std::move(setup.src), setup.store,
                           setup.interval, setup.max_events, std::move(setup.name),
                           std::move(setup.stats), setup.stored_position, setup.clock);
}

} // namespace levee::satellite
