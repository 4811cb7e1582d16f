// The satellite's store: appends, queries scanned in steps within their credit,
// retention, sync and scrub (store.hpp).

#include "satellite/store.hpp"

#include <cstdio>
#include <deque>
#include <limits>
#include <optional>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "actors/message_size.hpp"
#include "base/round_robin.hpp"
#include "limits/log.hpp"
#include "limits/stream_credit.hpp"
#include "persistence/checkpoint.hpp"
#include "query/parse_cache.hpp"
#include "satellite/scan.hpp"
#include "satellite/store_scrub.hpp"

namespace levee::satellite {

namespace {

using namespace std::chrono;

/// A refusal that no limit made (a bad request, a stop, a cancel): it names no limit key.
caf::error refuse(code c, std::string detail) {
  return to_error(rejection::of(c).detail(std::move(detail)));
}

/// The query's deadline passed; the server sets it from server.query_deadline_ms.
caf::error past_deadline(std::string detail) {
  return to_error(rejection::of(code::deadline_exceeded)
                    .limit("server.query_deadline_ms")
                    .detail(std::move(detail)));
}

struct running_query {
  std::unique_ptr<scan_task> task;
  wire_stream_sink connection;
  caf::typed_response_promise<stream_tail, std::string> rp;
  int64_t deadline_ns = 0;  // on the store's clock
  // Flow control (ARCHITECTURE.md "Flow control"): batches go to the connection only within the
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
  query::parse_cache parsed;  // a text that runs again is not parsed again
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
  satellite_options opts;
  std::shared_ptr<satellite_stats> stats;
  const clock_source* clock = nullptr;
};

// The store does not know where it runs (store.hpp): on the I/O thread, with the
// satellite's one connection, a query's request and its batches cross no thread, and a
// scan gives way after every satellite.scan_step_bytes, so the connection waits at most
// one step (~0.2 ms); on a worker where the I/O thread serves more.
using store_self = caf::stateful_actor<store_state, limited<store_actor::base>>;

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

void end_query(store_self* self, std::map<store_state::query_key, running_query>::iterator it,
               caf::error err, const std::shared_ptr<satellite_stats>& stats) {
  it->second.rp.deliver(std::move(err));
  self->state.queries.erase(it);
  stats->queries_running.store(self->state.queries.size());
}

void schedule_scan(store_self* self) {
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
/// nothing left to send ends with its summary, the batches that leave with it riding in
/// the answer (stream_tail). True if the query ended.
bool send_ready(store_self* self, std::map<store_state::query_key, running_query>::iterator it,
                const std::shared_ptr<satellite_stats>& stats) {
  auto& q = it->second;
  auto rid = it->first.second;
  bool over = q.task->done();
  stream_tail tail;
  while (!q.outbox.empty() && q.credit.allows_batch()) {
    q.credit.take(q.outbox.front().size());
    if (over)
      tail.push_back(std::move(q.outbox.front()));
    else
      self->send(q.connection, wire_batch_atom::value, rid, std::move(q.outbox.front()));
    q.outbox.pop_front();
  }
  if (!over || !q.outbox.empty()) {
    // The credit ran out before the end: what it allowed leaves now, the rest later.
    for (auto& part : tail)
      self->send(q.connection, wire_batch_atom::value, rid, std::move(part));
    return false;
  }
  q.rp.deliver(std::move(tail), q.task->stats().SerializeAsString());
  self->state.queries.erase(it);
  stats->queries_running.store(self->state.queries.size());
  return true;
}

/// One step of one query that may run, then the next one's turn (after whatever else is
/// queued).
void scan_step(store_self* self) {
  auto& st = self->state;
  auto& opts = st.opts;
  auto& stats = st.stats;
  st.scan_scheduled = false;
  if (st.queries.empty())
    return;
  auto it = base::next_turn(st.queries, st.last_turn,
                            [](const running_query& q) { return q.runnable(); });
  if (it == st.queries.end())
    return;  // every query waits for credit (or has its outbox to send)
  st.last_turn = it->first;
  auto& q = it->second;
  if (st.clock->now_ns() > q.deadline_ns) {
    end_query(self, it,
              past_deadline("the scan did not finish before the query's deadline; narrow the "
                            "query (a filter, a shorter time range)"),
              stats);
    schedule_scan(self);
    return;
  }
  auto emit = [&](std::string&& part) { q.outbox.push_back(std::move(part)); };
  if (auto s = q.task->step(*st.log, opts.scan_step_bytes, emit); !s) {
    // A count with too many groups (query.max_groups, the query language's own bound)
    // keeps its observed and max; anything else is the store's.
    end_query(self, it, to_error(s.as_rejection()), stats);
  } else {
    send_ready(self, it, stats);
  }
  schedule_scan(self);
}

/// Rewrites the position hint: every source's position as of the log's end. Only after a
/// successful sync, so the hint never covers batches a machine crash could take away.
void write_hint(store_self* self) {
  auto& st = self->state;
  persistence::position_hint hint;
  hint.log_offset = st.log->next_offset();
  hint.positions = st.positions;
  if (auto s = persistence::write_position_hint(st.hint_path, hint); !s) {
    if (s.message() != st.hint_error)
      LEVEE_WARN("satellite", "cannot write the position hint (a restart reads "
                              "more of the store): %s", s.to_string().c_str());
    st.hint_error = s.message();
    return;
  }
  st.hint_error.clear();
  st.positions_moved = false;
}

store_actor::behavior_type store(store_self* self, store_setup setup) {
  // The handlers capture copies of what they read (they outlive this function).
  auto opts = setup.opts;
  auto stats = setup.stats;
  auto satellite_id = setup.satellite_id;
  auto* clock = setup.clock;
  self->state.log = std::move(setup.log);
  self->state.positions = std::move(setup.positions);
  self->state.hint_path = std::move(setup.hint_path);
  self->state.opts = opts;
  self->state.stats = stats;
  self->state.clock = clock;
  self->delayed_send(self, milliseconds(opts.retention_interval_ms), retention_atom::value);
  auto sync_every = milliseconds(opts.fsync_interval_ms);
  self->delayed_send(self, sync_every, tick_atom::value);
  if (opts.scrub_bytes_per_sec > 0) {
    // Here and not in an actor of its own: the log's reads are not thread-safe (they share
    // descriptors, a buffer and the cache), and the store owns the log.
    self->state.scrub = std::make_unique<store_scrub>(
      *self->state.log, opts.scrub_bytes_per_sec, opts.scan_step_bytes,
      milliseconds(opts.scrub_interval_ms), *clock,
      [](const std::string& line) { LEVEE_ERROR("satellite", "%s", line.c_str()); });
    self->send(self, scrub_atom::value);
  }
  return {
    [=](append_atom, append_request& req) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.stopping)
        return refuse(code::shutting_down, "the satellite is stopping");
      auto& values = req.values;
      auto& timestamps = req.timestamps;
      auto& source = req.source;
      auto& ends = req.positions;
      if (values.size() != timestamps.size()
          || (!ends.empty() && ends.size() != std::max<size_t>(values.size(), 1)))
        return refuse(code::bad_request,
                      "an append whose events, timestamps and positions do not match");
      if (values.empty()) {
        if (ends.empty())
          return refuse(code::bad_request, "an append without events");
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
        if (!ends.empty())
          batch.back().headers.emplace_back(
            std::string{persistence::position_header_name},
            persistence::position_header_value(source,
                                               persistence::encode_file_position(ends[end - 1])));
        auto r = st.log->append(batch);
        batch.clear();
        bytes = 0;
        if (!r)
          return r.error();
        taken = end;
        if (!ends.empty()) {
          st.positions[source] = ends[end - 1];
          st.positions_moved = true;
        }
        return {};
      };
      // After a failure the events already written are answered as taken (the source
      // offers the rest again, and hears of the failure then); none: the failure.
      auto failed = [&](const status& s) -> caf::result<uint64_t> {
        if (taken == 0)
          return to_error(s.as_rejection());
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
        uint64_t credit_bytes) -> caf::result<stream_tail, std::string> {
      auto& st = self->state;
      wire::QueryRequest req;
      if (!req.ParseFromString(payload))
        return refuse(code::bad_request, "a QueryRequest that does not parse");
      if (auto too_long = query::check_text_bytes(req.text().size()))
        return to_error(*too_long);  // a too-long text, not a parse error
      auto q = st.parsed.parse(req.text());
      if (!q)
        return refuse(code::bad_request, "bad query text: " + q.error().message());
      if (st.stopping)
        return refuse(code::shutting_down, "the satellite is stopping");
      if (st.queries.size() >= opts.max_concurrent_queries) {
        stats->queries_refused.fetch_add(1);
        return to_error(rejection::of(code::too_many_inflight)
                          .limit("satellite.max_concurrent_queries")
                          .observed(st.queries.size() + 1)
                          .max(opts.max_concurrent_queries)
                          .retry_after_ms(100)
                          .detail("this satellite scans as many queries as it may"));
      }
      auto now = req.now_ms() != 0 ? req.now_ms() : clock->wall_ms();
      auto range = (*q)->resolve_time(now);
      uint64_t start = st.log->start_offset();
      if (range.since_ms != std::numeric_limits<int64_t>::min())
        start = std::max(start, st.log->offset_for_time(range.since_ms));
      scan_limits limits{req.batch_max_rows() != 0
                           ? std::min<uint64_t>(req.batch_max_rows(), opts.batch_max_rows)
                           : opts.batch_max_rows,
                         opts.batch_max_bytes};
      auto key = store_state::query_key{caf::actor_cast<caf::actor_addr>(self->current_sender()), rid};
      if (st.queries.count(key) != 0)
        return refuse(code::bad_request,
                      "request " + std::to_string(rid) + " is already running on this connection");
      // Built in its place in the map: a running_query moved in would allocate its empty
      // outbox twice more (libstdc++ gives a moved-from deque a new map).
      auto& rq = st.queries[key];
      rq.task = std::make_unique<scan_task>(std::move(*q), range, start, st.log->next_offset(),
                                            limits, satellite_id, *clock);
      rq.connection = caf::actor_cast<wire_stream_sink>(self->current_sender());
      rq.credit.add(credit_batches, credit_bytes);
      rq.rp = self->make_response_promise<stream_tail, std::string>();
      rq.deadline_ns = clock->now_ns()
                       + static_cast<int64_t>(req.deadline_ms() != 0
                                                ? req.deadline_ms()
                                                : defaults::server_query_deadline_ms)
                           * 1'000'000;
      auto rp = rq.rp;
      stats->queries.fetch_add(1);
      stats->queries_running.store(st.queries.size());
      // With no scan waiting for its turn (no other query runs), the first step runs now
      // rather than after a message to itself: a point query is answered in this turn.
      if (st.scan_scheduled)
        schedule_scan(self);
      else
        scan_step(self);
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
        end_query(self, it, refuse(code::cancelled, "the query was cancelled"),
                  stats);
    },
    [=](scan_atom) { scan_step(self); },
    [=](caf::get_atom) {
      auto out = store_stats_of(*self->state.log, *stats);
      if (self->state.scrub)
        self->state.scrub->fill(out);
      return out;
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
      auto removed = self->state.log->apply_retention(policy, clock->wall_ms());
      if (!removed)
        LEVEE_ERROR("satellite", "retention failed: %s",
                    removed.error().to_string().c_str());
      self->delayed_send(self, milliseconds(opts.retention_interval_ms), retention_atom::value);
    },
    [=](tick_atom) {
      // Queries that wait for credit are not stepped, so their deadline is looked at here.
      auto& queries = self->state.queries;
      auto now = clock->now_ns();
      for (auto it = queries.begin(); it != queries.end();) {
        auto next = std::next(it);
        if (!it->second.runnable() && now > it->second.deadline_ns)
          end_query(self, it,
                    past_deadline("the query's reader took too few of its results before "
                                  "the deadline; read results as they come"),
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
                  refuse(code::shutting_down, "the satellite is stopping"),
                  stats);
      auto synced = st.log->sync();
      if (!synced)
        LEVEE_ERROR("satellite", "%s", synced.to_string().c_str());
      else if (st.positions_moved)
        write_hint(self);
      self->quit();
      return synced.ok();
    },
  };
}

} // namespace

store_actor spawn_store(caf::actor_system& sys, runtime& rt, placement where, store_setup setup) {
  // The gate counts an append by its events' bytes (append_request::size_bytes).
  register_payload_type<append_request>();
  return spawn_limited_fun(sys, rt, "store", where, store, std::move(setup));
}

} // namespace levee::satellite
