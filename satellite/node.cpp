// The satellite's actors: store (log + queries), sources, and the agent that registers
// and heartbeats over the uplink.

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <optional>

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "base/host_port.hpp"
#include "events/codec.hpp"
#include "limits/stream_credit.hpp"
#include "net/satellite.pb.h"
#include "net/uplink.hpp"
#include "persistence/checkpoint.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/source_positions.hpp"
#include "satellite/satellite.hpp"
#include "satellite/scan.hpp"
#include "satellite/store_scrub.hpp"

namespace levee::satellite {

namespace {

using namespace std::chrono;

int64_t wall_ms() {
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

caf::error refuse(code c, const std::string& limit, std::string detail, uint64_t observed = 0,
                  uint64_t max = 0, uint64_t retry_after_ms = 0) {
  return to_error(rejection{c, limit, observed, max, retry_after_ms, std::move(detail)});
}

// -- the store ---------------------------------------------------------------------------

struct running_query {
  std::unique_ptr<scan_task> task;
  caf::actor connection;
  caf::response_promise rp;
  steady_clock::time_point deadline;
  // Flow control (DESIGN.md "Flow control"): batches go to the connection only within the
  // credit it lent; what a scan step made beyond it waits here, and the scan does not go
  // on until it has left. A query whose reader is slow pauses; the others go on.
  stream_credit credit;
  std::deque<std::string> outbox;

  /// Whether a scan step may run: the scan is not over, nothing waits, credit is left.
  bool runnable() const { return !task->done() && outbox.empty() && credit.allows_batch(); }
};

struct store_state {
  std::shared_ptr<persistence::segment_log> log;
  // By (connection, request id): two connections (one closing, one new after a
  // reconnection) number their requests independently.
  using query_key = std::pair<caf::actor_addr, uint64_t>;
  std::map<query_key, running_query> queries;
  std::optional<query_key> last_turn;         // round robin over queries
  bool scan_scheduled = false;
  bool stopping = false;
  int64_t last_sync_ms = 0;
  // The newest position stored for each file-reading source (persistence/
  // source_positions.hpp); the hint file is rewritten when they moved since.
  std::map<std::string, persistence::file_position> positions;
  bool positions_moved = false;
  std::string hint_path;
  std::string hint_error;  // the last failure said on stderr, so it is said once
  const char* name = "levee.store";
  // The background scrub of the closed segments (none when satellite.scrub_bytes_per_sec
  // is 0): one bounded step per scrub_atom, like a scan step.
  std::unique_ptr<store_scrub> scrub;
};

// The store is written once for both places it can run (satellite_config::
// store_on_multiplexer): on the middleman's multiplexer thread, with the satellite's one
// connection, a query's request and its batches cross no thread (DESIGN.md "Performance
// notes"), and a scan gives way after every satellite.scan_step_bytes, so the connection
// waits at most one step (~0.2 ms); on a worker where the multiplexer serves more.
template <class Base>
using store_actor_t = caf::stateful_actor<store_state, limited<Base>>;

wire::StoreStats store_stats_of(const persistence::segment_log& log,
                                const satellite_stats& stats) {
  wire::StoreStats s;
  s.set_events(log.next_offset() - log.start_offset());
  s.set_bytes(log.size_bytes());
  s.set_first_offset(log.start_offset());
  s.set_next_offset(log.next_offset());
  s.set_bad_lines(stats.bad_lines.load());
  auto& cache = log.read_cache();
  s.set_read_cache_bytes(cache.bytes());
  s.set_read_cache_hits(cache.hits());
  s.set_read_cache_misses(cache.misses());
  return s;
}

template <class Self>
void end_query(Self* self, std::map<store_state::query_key, running_query>::iterator it,
               caf::error err, const std::shared_ptr<satellite_stats>& stats) {
  it->second.rp.deliver(std::move(err));
  self->state.queries.erase(it);
  stats->queries_running.store(self->state.queries.size());
}

template <class Self>
void schedule_scan(Self* self) {
  auto& st = self->state;
  if (st.scan_scheduled)
    return;
  for (auto& [key, q] : st.queries) {
    if (q.runnable()) {
      st.scan_scheduled = true;
      self->send(self, scan_atom::value);
      return;
    }
  }
}

/// Sends what the query's credit allows from its outbox; a scan that is over and has
/// nothing left to send ends with its summary. True if the query ended.
template <class Self>
bool send_ready(Self* self, std::map<store_state::query_key, running_query>::iterator it,
                const std::shared_ptr<satellite_stats>& stats) {
  auto& q = it->second;
  auto rid = it->first.second;
  while (!q.outbox.empty() && q.credit.allows_batch()) {
    q.credit.take(q.outbox.front().size());
    self->send(q.connection, wire_batch_atom::value, rid, std::move(q.outbox.front()));
    q.outbox.pop_front();
  }
  if (!q.task->done() || !q.outbox.empty())
    return false;
  q.rp.deliver(q.task->stats().SerializeAsString());
  self->state.queries.erase(it);
  stats->queries_running.store(self->state.queries.size());
  return true;
}

/// One step of one query that may run, then the next one's turn (after whatever else is
/// queued).
template <class Self>
void scan_step(Self* self, const satellite_options& opts,
               const std::shared_ptr<satellite_stats>& stats) {
  auto& st = self->state;
  st.scan_scheduled = false;
  if (st.queries.empty())
    return;
  auto it = st.last_turn ? st.queries.upper_bound(*st.last_turn) : st.queries.begin();
  bool found = false;
  for (size_t seen = 0; seen < st.queries.size() && !found; ++seen) {
    if (it == st.queries.end())
      it = st.queries.begin();
    found = it->second.runnable();
    if (!found)
      ++it;
  }
  if (!found)
    return;  // every query waits for credit (or has its outbox to send)
  st.last_turn = it->first;
  auto& q = it->second;
  if (steady_clock::now() > q.deadline) {
    end_query(self, it,
              refuse(code::deadline_exceeded, "satellite.query",
                     "the scan did not finish before the query's deadline"),
              stats);
    schedule_scan(self);
    return;
  }
  auto emit = [&](std::string&& part) { q.outbox.push_back(std::move(part)); };
  if (auto s = q.task->step(*st.log, opts.scan_step_bytes, emit); !s) {
    // A count with too many groups names its limit; anything else is the store's.
    end_query(self, it,
              refuse(s.code(),
                     s.code() == code::message_too_large ? "query.max_groups" : "satellite.query",
                     s.message()),
              stats);
  } else {
    send_ready(self, it, stats);
  }
  schedule_scan(self);
}

/// Rewrites the position hint: every source's position as of the log's end. Only after a
/// successful sync, so the hint never covers batches a machine crash could take away.
template <class Self>
void write_hint(Self* self) {
  auto& st = self->state;
  persistence::position_hint hint;
  hint.log_offset = st.log->next_offset();
  hint.positions = st.positions;
  if (auto s = persistence::write_position_hint(st.hint_path, hint); !s) {
    if (s.message() != st.hint_error)
      std::fprintf(stderr, "levee satellite: cannot write the position hint (a restart reads "
                           "more of the store): %s\n", s.to_string().c_str());
    st.hint_error = s.message();
    return;
  }
  st.hint_error.clear();
  st.positions_moved = false;
}

template <class Self>
caf::behavior store(Self* self, std::shared_ptr<persistence::segment_log> log,
                    satellite_options opts, std::string satellite_id,
                    std::shared_ptr<satellite_stats> stats,
                    std::map<std::string, persistence::file_position> positions,
                    std::string hint_path) {
  self->state.log = std::move(log);
  self->state.positions = std::move(positions);
  self->state.hint_path = std::move(hint_path);
  self->delayed_send(self, milliseconds(opts.retention_interval_ms), retention_atom::value);
  auto sync_every = milliseconds(opts.fsync_interval_ms);
  self->delayed_send(self, sync_every, tick_atom::value);
  if (opts.scrub_bytes_per_sec > 0) {
    // Here and not in an actor of its own: the log's reads are not thread-safe (they share
    // descriptors, a buffer and the cache), and the store owns the log.
    self->state.scrub = std::make_unique<store_scrub>(
      *self->state.log, opts.scrub_bytes_per_sec, opts.scan_step_bytes,
      milliseconds(opts.scrub_interval_ms), steady_clock_source::instance(),
      [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
    self->send(self, scrub_atom::value);
  }
  return {
    [=](append_atom, std::vector<std::string>& values, std::vector<int64_t>& timestamps,
        const std::string& source, const std::string& positions) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.stopping)
        return refuse(code::shutting_down, "satellite.store", "the satellite is stopping");
      constexpr auto width = persistence::file_position_bytes;
      if (values.size() != timestamps.size()
          || (!positions.empty() && positions.size() != std::max<size_t>(values.size(), 1) * width))
        return refuse(code::bad_request, "satellite.store",
                      "an append whose events, timestamps and positions do not match");
      auto encoded = [&](size_t i) { return std::string_view{positions}.substr(i * width, width); };
      std::vector<persistence::file_position> ends(positions.size() / width);
      for (size_t i = 0; i < ends.size(); ++i)
        if (!persistence::decode_file_position(encoded(i), ends[i]))
          return refuse(code::bad_request, "satellite.store", "a source position that does not decode");
      if (values.empty()) {
        if (positions.empty())
          return refuse(code::bad_request, "satellite.store", "an append without events");
        // Lines that made no event (bad, blank), or where a source starts: no batch to
        // ride on, so the hint carries the position; at once for a source's first one,
        // so a restart does not apply start_at_end again.
        bool first = st.positions.count(source) == 0;
        st.positions[source] = ends.front();
        st.positions_moved = true;
        if (first && st.log->sync())
          write_hint(self);
        return uint64_t{0};
      }
      // Batches of at most a quarter of the log's batch bound. Each batch carries the
      // position after its own last event, as a header of that record: a batch and its
      // position are written, or torn, together.
      std::vector<persistence::record> batch;
      uint64_t bytes = 0;
      size_t taken = 0;  // events written
      auto flush = [&](size_t end) -> status {
        if (batch.empty())
          return {};
        if (!positions.empty())
          batch.back().headers.emplace_back(
            std::string{persistence::position_header_name},
            persistence::position_header_value(source, encoded(end - 1)));
        auto r = st.log->append(batch);
        batch.clear();
        bytes = 0;
        if (!r)
          return r.error();
        taken = end;
        if (!positions.empty()) {
          st.positions[source] = ends[end - 1];
          st.positions_moved = true;
        }
        return {};
      };
      // After a failure the events already written are answered as taken (the source
      // offers the rest again, and hears of the failure then); none: the failure.
      auto failed = [&](const status& s) -> caf::result<uint64_t> {
        if (taken == 0)
          return refuse(s.code(), "satellite.store", s.message());
        stats->events_stored.fetch_add(taken);
        return uint64_t{taken};
      };
      for (size_t i = 0; i < values.size(); ++i) {
        if (bytes + values[i].size() > defaults::log_max_batch_bytes / 4)
          if (auto s = flush(i); !s)
            return failed(s);
        bytes += values[i].size();
        batch.push_back(persistence::record{{}, std::move(values[i]), timestamps[i], {}});
      }
      if (auto s = flush(values.size()); !s)
        return failed(s);
      stats->events_stored.fetch_add(values.size());
      return uint64_t{values.size()};
    },
    [=](wire_stream_atom, const std::string& payload, uint64_t rid, uint64_t credit_batches,
        uint64_t credit_bytes) -> caf::result<std::string> {
      auto& st = self->state;
      wire::QueryRequest req;
      if (!req.ParseFromString(payload))
        return refuse(code::bad_request, "satellite.query", "a QueryRequest that does not parse");
      if (auto too_long = query::check_text_bytes(req.text().size()))
        return to_error(*too_long);  // names query.max_text_bytes, not a parse error
      auto q = query::parse(req.text());
      if (!q)
        return refuse(code::bad_request, "satellite.query", "bad query text: " + q.error().message());
      if (st.stopping)
        return refuse(code::shutting_down, "satellite.query", "the satellite is stopping");
      if (st.queries.size() >= opts.max_concurrent_queries) {
        stats->queries_refused.fetch_add(1);
        return refuse(code::too_many_inflight, "satellite.max_concurrent_queries",
                      "this satellite scans as many queries as it may", st.queries.size() + 1,
                      opts.max_concurrent_queries, 100);
      }
      auto now = req.now_ms() != 0 ? req.now_ms() : wall_ms();
      auto range = q->resolve_time(now);
      uint64_t start = st.log->start_offset();
      if (range.since_ms != std::numeric_limits<int64_t>::min())
        start = std::max(start, st.log->offset_for_time(range.since_ms));
      scan_limits limits{req.batch_max_rows() != 0
                           ? std::min<uint64_t>(req.batch_max_rows(), opts.batch_max_rows)
                           : opts.batch_max_rows,
                         opts.batch_max_bytes};
      auto key = store_state::query_key{caf::actor_cast<caf::actor_addr>(self->current_sender()), rid};
      if (st.queries.count(key) != 0)
        return refuse(code::bad_request, "satellite.query",
                      "request " + std::to_string(rid) + " is already running on this connection");
      running_query rq;
      rq.task = std::make_unique<scan_task>(std::move(*q), range, start, st.log->next_offset(),
                                            limits, satellite_id);
      rq.connection = caf::actor_cast<caf::actor>(self->current_sender());
      rq.credit.add(credit_batches, credit_bytes);
      rq.rp = self->template make_response_promise<std::string>();
      rq.deadline = steady_clock::now()
                    + milliseconds(req.deadline_ms() != 0 ? req.deadline_ms()
                                                          : defaults::server_query_deadline_ms);
      auto rp = rq.rp;
      st.queries.emplace(key, std::move(rq));
      stats->queries.fetch_add(1);
      stats->queries_running.store(st.queries.size());
      // With no scan waiting for its turn (no other query runs), the first step runs now
      // rather than after a message to itself: a point query is answered in this turn.
      if (st.scan_scheduled)
        schedule_scan(self);
      else
        scan_step(self, opts, stats);
      return rp;
    },
    [=](credit_atom, uint64_t rid, uint64_t batches, uint64_t bytes) {
      auto& st = self->state;
      auto it = st.queries.find({caf::actor_cast<caf::actor_addr>(self->current_sender()), rid});
      if (it == st.queries.end())
        return;  // ended meanwhile
      it->second.credit.add(batches, bytes);
      send_ready(self, it, stats);
      schedule_scan(self);
    },
    [=](cancel_atom, uint64_t rid) {
      auto it = self->state.queries.find(
        {caf::actor_cast<caf::actor_addr>(self->current_sender()), rid});
      if (it != self->state.queries.end())
        end_query(self, it, refuse(code::cancelled, "satellite.query", "the query was cancelled"),
                  stats);
    },
    [=](scan_atom) { scan_step(self, opts, stats); },
    [=](caf::get_atom) -> std::string {
      auto out = store_stats_of(*self->state.log, *stats);
      if (self->state.scrub)
        self->state.scrub->fill(out);
      return out.SerializeAsString();
    },
    [=](scrub_atom) {
      // One step of at most scan_step_bytes, then the next when the scrub's rate allows.
      auto& st = self->state;
      if (st.stopping || !st.scrub)
        return;
      auto wait = st.scrub->step();
      if (wait.count() == 0)
        self->send(self, scrub_atom::value);
      else
        self->delayed_send(self, wait, scrub_atom::value);
    },
    [=](retention_atom) {
      persistence::segment_log::retention policy;
      policy.max_bytes = opts.retention_max_bytes;
      policy.max_messages = opts.retention_max_events;
      policy.max_age_ms = static_cast<int64_t>(opts.retention_max_age_ms);
      auto removed = self->state.log->apply_retention(policy, wall_ms());
      if (!removed)
        std::fprintf(stderr, "levee satellite: retention failed: %s\n",
                     removed.error().to_string().c_str());
      self->delayed_send(self, milliseconds(opts.retention_interval_ms), retention_atom::value);
    },
    [=](tick_atom) {
      // Queries that wait for credit are not stepped, so their deadline is looked at here.
      auto& queries = self->state.queries;
      auto now = steady_clock::now();
      for (auto it = queries.begin(); it != queries.end();) {
        auto next = std::next(it);
        if (!it->second.runnable() && now > it->second.deadline)
          end_query(self, it,
                    refuse(code::deadline_exceeded, "satellite.query",
                           "the query's reader took too few of its results before the "
                           "deadline"),
                    stats);
        it = next;
      }
      // The interval promise: a machine crash loses at most this. The hint follows only
      // a good sync.
      if (self->state.log->sync() && self->state.positions_moved)
        write_hint(self);
      self->delayed_send(self, sync_every, tick_atom::value);
    },
    [=](stop_atom) -> bool {
      // Running queries end with shutting_down; what was stored is synced.
      auto& st = self->state;
      st.stopping = true;
      while (!st.queries.empty())
        end_query(self, st.queries.begin(),
                  refuse(code::shutting_down, "satellite.query", "the satellite is stopping"),
                  stats);
      auto synced = st.log->sync();
      if (!synced)
        std::fprintf(stderr, "levee satellite: %s\n", synced.to_string().c_str());
      else if (st.positions_moved)
        write_hint(self);
      self->quit();
      return synced.ok();
    },
  };
}

// -- sources -----------------------------------------------------------------------------

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

using source_actor = caf::stateful_actor<source_state, limited_actor>;

/// Polls the source every `interval` and hands what it read to the store, one append in
/// flight: a source that produces faster than the store takes waits (a file is simply
/// read later). A refused append is kept and offered again; one too large for the store's
/// message bound is split; a single event too large even alone is dropped, counted and
/// reported (it can never be stored). A source with positions (file_tail) sends, with
/// each event, where its line ended, and when it has consumed lines that made no event,
/// that position alone; `stored_position` is the one the store had at the start.
caf::behavior source_loop(source_actor* self, std::shared_ptr<events::source> src,
                          caf::actor store, milliseconds interval, uint64_t max_events,
                          std::string name, std::shared_ptr<satellite_stats> stats,
                          std::optional<persistence::file_position> stored_position) {
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
        st.src->poll(st.polled, max_events, wall_ms());
        auto& src_stats = st.src->stats();
        auto bad = src_stats.bad_lines;
        if (bad > st.bad_seen) {
          stats->bad_lines.fetch_add(bad - st.bad_seen);
          st.bad_seen = bad;
        }
        // Bad lines are counted (heartbeats carry the total) and said, with the last
        // reason, at most once a second per source, so a flood of garbage cannot flood
        // the log.
        auto now = wall_ms();
        if (bad > st.bad_logged && now - st.last_bad_log_ms >= 1000) {
          std::fprintf(stderr, "levee satellite: source %s: %llu bad lines skipped (%llu in all); last: %s\n",
                       name.c_str(), static_cast<unsigned long long>(bad - st.bad_logged),
                       static_cast<unsigned long long>(bad), src_stats.last_bad_reason.c_str());
          st.bad_logged = bad;
          st.last_bad_log_ms = now;
        }
        if (!st.src->last_status().ok() && st.src->last_error() != st.last_error) {
          st.last_error = st.src->last_error();
          std::fprintf(stderr, "levee satellite: source %s: %s\n", name.c_str(), st.last_error.c_str());
        }
        auto* ends = st.src->event_positions();
        if (ends != nullptr && ends->size() != st.polled.size()) {
          std::fprintf(stderr, "levee satellite: source %s: %zu positions for %zu events; "
                               "these are stored without them\n",
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
          self->request(store, seconds(30), append_atom::value, std::vector<std::string>{},
                        std::vector<int64_t>{}, name, persistence::encode_file_position(*at))
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
      // Every event of the chunk has its position (33 bytes each, in order), or none is sent.
      std::string ends;
      for (size_t i = 0; i < n && st.positions[i]; ++i)
        ends += persistence::encode_file_position(*st.positions[i]);
      if (ends.size() != n * persistence::file_position_bytes)
        ends.clear();
      auto full = st.polled.size() >= max_events;
      st.waiting = true;
      self->request(store, seconds(30), append_atom::value, std::move(values), std::move(ts),
                    name, ends)
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
              std::fprintf(stderr, "levee satellite: source %s: an event the store can never take "
                                   "was dropped: %s\n",
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

// -- the agent: registration and heartbeats ------------------------------------------------

struct agent_state {
  caf::actor uplink;
  std::string id;           // assigned or configured
  uint64_t sequence = 0;
  uint64_t generation = 0;  // a heartbeat loop per registration
  milliseconds interval{1000};
  bool registering = false;
  const char* name = "levee.satellite_agent";
};

using agent_actor = caf::stateful_actor<agent_state, limited_actor>;

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

void do_register(agent_actor* self, caf::actor store, const satellite_options& opts,
                 const std::shared_ptr<satellite_stats>& stats);

void heartbeat(agent_actor* self, caf::actor store, satellite_options opts,
               std::shared_ptr<satellite_stats> stats, uint64_t generation) {
  auto& st = self->state;
  if (generation != st.generation)
    return;  // a loop of an earlier registration
  self->request(store, seconds(10), caf::get_atom::value)
    .then([=](std::string& store_bytes) {
      auto& s = self->state;
      if (generation != s.generation)
        return;
      wire::Heartbeat hb;
      hb.set_satellite_id(s.id);
      hb.set_sequence(++s.sequence);
      hb.set_address(host_name());
      hb.mutable_store()->ParseFromString(store_bytes);
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
      self->delayed_send(self, s.interval, tick_atom::value, generation);
    },
    [=](caf::error&) { self->delayed_send(self, self->state.interval, tick_atom::value, generation); });
}

void do_register(agent_actor* self, caf::actor store, const satellite_options& opts,
                 const std::shared_ptr<satellite_stats>& stats) {
  auto& st = self->state;
  if (st.registering)
    return;
  st.registering = true;
  ++st.generation;  // stops the heartbeats of the previous registration
  stats->registered.store(false);
  self->request(store, seconds(10), caf::get_atom::value)
    .then([=](std::string& store_bytes) {
      wire::Register reg;
      reg.set_satellite_id(self->state.id);
      reg.set_token(opts.satellite_token);
      for (auto& [k, v] : opts.labels)
        (*reg.mutable_labels())[k] = v;
      reg.mutable_store()->ParseFromString(store_bytes);
      reg.set_address(host_name());
      self->request(self->state.uplink, seconds(10), wire_request_atom::value,
                    std::string{"register"}, reg.SerializeAsString())
        .then(
          [=](std::string& answer) {
            auto& s = self->state;
            s.registering = false;
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
            std::fprintf(stderr, "levee satellite: registered as '%s'\n", s.id.c_str());
            heartbeat(self, store, opts, stats, s.generation);
          },
          [=](caf::error& err) {
            auto& s = self->state;
            s.registering = false;
            auto r = rejection_from(err);
            auto text = r ? r->to_string() : caf::to_string(err);
            {
              std::lock_guard<std::mutex> guard{stats->mtx};
              if (stats->last_error != text)
                std::fprintf(stderr, "levee satellite: registration refused: %s\n", text.c_str());
              stats->last_error = text;
            }
            // Refused (a live id, a wrong token) or not connected: try again later; a new
            // connection also triggers it.
            self->delayed_send(self, seconds(1), connected_atom::value, std::string{});
          });
    },
    [=](caf::error&) {
      // The store did not answer (busy, or refused): try again shortly.
      self->state.registering = false;
      self->delayed_send(self, seconds(1), connected_atom::value, std::string{});
    });
}

caf::behavior agent(agent_actor* self, caf::actor store, satellite_options opts,
                    std::shared_ptr<satellite_stats> stats) {
  self->state.id = opts.id;
  return {
    [=](caf::actor uplink) { self->state.uplink = std::move(uplink); },
    [=](connected_atom, const std::string&) { do_register(self, store, opts, stats); },
    [=](tick_atom, uint64_t generation) { heartbeat(self, store, opts, stats, generation); },
    [=](stop_atom) { self->quit(); },
  };
}

} // namespace

result<satellite_node> start_satellite(caf::actor_system& sys, runtime& rt,
                                       const satellite_config& cfg,
                                       const net::listener_config& net_cfg) {
  auto& opts = cfg.satellite;
  base::host_port server;
  std::string bad_server;
  if (!base::parse_host_port("satellite.server", opts.server, server, bad_server))
    return status::error(code::bad_request, bad_server);
  auto& [host, port] = server;
  persistence::log_options lo;
  lo.dir = opts.data_dir;
  lo.max_segment_bytes = opts.max_segment_bytes;
  lo.max_segment_age_ms = opts.max_segment_age_ms;
  lo.fsync = persistence::fsync_policy::none;  // the store syncs every fsync_interval_ms
  lo.limits.compress = false;
  lo.read_cache_bytes = opts.read_cache_bytes;
  uint64_t shown = 0;
  lo.on_progress = [&](uint64_t done, uint64_t total) {
    if (total >= (256ull << 20) && (done - shown >= (256ull << 20) || done == total)) {
      std::fprintf(stderr, "levee satellite: recovering the store: %llu / %llu MiB\n",
                   static_cast<unsigned long long>(done >> 20),
                   static_cast<unsigned long long>(total >> 20));
      shown = done;
    }
  };
  persistence::recovery_report report;
  auto log = persistence::segment_log::open(lo, &report);
  if (!log)
    return status::error(log.error().code(), "cannot open the store in " + opts.data_dir + ": "
                                               + log.error().message());
  if (report.truncated_bytes > 0)
    std::fprintf(stderr, "levee satellite: store recovery cut %llu bytes of a torn write in %s (%s)\n",
                 static_cast<unsigned long long>(report.truncated_bytes),
                 report.truncated_file.c_str(), report.truncated_reason.c_str());
  // Where each file_tail stood when the satellite stopped: the positions stored with the
  // events they cover, read from the hint file and the log after it (FORMAT.md "Source
  // positions").
  auto hint_path = (std::filesystem::path(opts.data_dir) / "source-positions").string();
  auto recovered = persistence::recover_positions(**log, hint_path);
  if (!recovered)
    return status::error(recovered.error().code(), "cannot open the store in " + opts.data_dir
                                                     + ": " + recovered.error().message());
  if (!recovered->whole_log_because.empty())
    std::fprintf(stderr, "levee satellite: source positions: %s; read them from the whole "
                         "store instead (%llu found)\n",
                 recovered->whole_log_because.c_str(),
                 static_cast<unsigned long long>(recovered->headers_found));
  if (recovered->hint_behind_log_start)
    std::fprintf(stderr, "levee satellite: source positions: the hint %s is older than the "
                         "store's first event; positions stored after it and removed by "
                         "retention are lost\n", hint_path.c_str());
  std::map<std::string, persistence::file_position> positions;  // of the sources configured
  satellite_node node;
  node.stats = std::make_shared<satellite_stats>();
  // Sources are made before anything starts, so a bad one (a socket path that is a file)
  // fails the start with its reason.
  std::vector<std::pair<std::unique_ptr<events::source>, const source_spec*>> made;
  for (auto& spec : cfg.sources) {
    std::unique_ptr<events::source> src;
    if (spec.type == "file_tail") {
      auto tail = std::make_unique<events::file_tail>(spec.file_tail, cfg.json);
      // With a stored position it carries on from there; start_at_end is for a first start.
      if (auto at = recovered->positions.find(spec.name); at != recovered->positions.end()) {
        std::fprintf(stderr, "levee satellite: source %s: %s\n", spec.name.c_str(),
                     tail->resume(at->second).c_str());
        positions.insert(*at);
      }
      src = std::move(tail);
    } else if (spec.type == "unix_socket") {
      auto s = events::unix_socket_source::listen(spec.unix_socket, cfg.json,
                                                  "source." + spec.name);
      if (!s)
        return s.error();
      src = std::move(*s);
    } else if (spec.type == "proc") {
      src = std::make_unique<events::proc_metrics>(spec.proc);
    } else {
      src = std::make_unique<events::synthetic>(spec.synthetic);
    }
    made.emplace_back(std::move(src), &spec);
  }
  // A hint that was not used (damaged, or ahead of the log) is replaced at once, over a
  // synced log, so that a later start cannot take its stale positions for good ones.
  if (!recovered->whole_log_because.empty()) {
    persistence::position_hint hint{(*log)->next_offset(), positions};
    auto synced = (*log)->sync();
    auto written = synced ? persistence::write_position_hint(hint_path, hint) : synced;
    if (!written)
      std::fprintf(stderr, "levee satellite: cannot replace the position hint: %s\n",
                   written.to_string().c_str());
  }
  // Shared pointers: a function-based actor runs its function later, on a worker.
  std::shared_ptr<persistence::segment_log> shared_log{std::move(*log)};
  auto store_id = opts.id.empty() ? std::string{"unassigned"} : opts.id;
  if (cfg.store_on_multiplexer)
    node.store = spawn_limited_on_multiplexer(sys.middleman(), rt, "store",
                                              store<store_actor_t<levee::broker>>, shared_log,
                                              opts, store_id, node.stats, positions, hint_path);
  else
    node.store = spawn_limited_fun(sys, rt, "store", store<store_actor_t<caf::event_based_actor>>,
                                   shared_log, opts, store_id, node.stats, positions, hint_path);
  for (auto& [src, spec] : made) {
    auto interval = milliseconds(spec->poll_interval_ms != 0 ? spec->poll_interval_ms
                                                             : opts.poll_interval_ms);
    std::shared_ptr<events::source> shared_src{std::move(src)};
    auto at = positions.find(spec->name);
    auto stored = at != positions.end() ? std::optional{at->second} : std::nullopt;
    node.sources.push_back(spawn_limited_fun(sys, rt, "source", source_loop, shared_src,
                                             node.store, interval, opts.poll_max_events,
                                             spec->name, node.stats, stored));
  }
  node.agent = spawn_limited_fun(sys, rt, "satellite", agent, node.store, opts, node.stats);
  auto ctx = std::make_shared<net::server_context>(net_cfg);
  ctx->expose("query", node.store);
  net::uplink_options uo;
  uo.host = host;
  uo.port = port;
  uo.token = net_cfg.token;
  uo.connect_timeout = milliseconds(opts.connect_timeout_ms);
  uo.notify = node.agent;
  node.uplink = net::start_uplink(sys, ctx, uo);
  caf::anon_send(node.agent, node.uplink);
  return node;
}

void stop_satellite(caf::actor_system& sys, satellite_node& node) {
  for (auto& s : node.sources)
    caf::anon_send(s, stop_atom::value);
  if (node.agent)
    caf::anon_send(node.agent, stop_atom::value);
  if (node.store) {
    caf::scoped_actor self{sys};
    self->request(node.store, seconds(30), stop_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
  }
  if (node.uplink)
    caf::anon_send(node.uplink, stop_atom::value);
}

} // namespace levee::satellite
