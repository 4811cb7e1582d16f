#include "server/proxy.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>

#include <caf/all.hpp>
#include <google/protobuf/io/coded_stream.h>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "actors/earliest_timer.hpp"
#include "actors/limited_actor.hpp"
#include "limits/clock.hpp"
#include "limits/stream_credit.hpp"
#include "server/proxyer_protocol.hpp"
#include "server/query_request.hpp"
#include "server/watchers.hpp"
#include "events/codec.hpp"
#include "net/result_batch.hpp"
#include "net/satellite.pb.h"
#include "query/counter.hpp"
#include "query/parse_cache.hpp"
#include "query/query.hpp"

namespace levee::server {

namespace {

/// Bytes of count groups per result batch (well under the default 1 MiB frame).
constexpr size_t count_batch_bytes = 256 * 1024;

struct satellite_call {
  satellite_ref ref;
  wire_stream_outlet link;  // ref.connection, typed as what the proxyer says to it
  bool done = false;
  bool wanting = false;  // in query_run::wanting
  stream_credit lent;  // credit given to the satellite and not used yet
};

/// One query, from the router's request to the proxyer's answer.
struct query_run {
  wire_stream_sink client;
  uint64_t rid = 0;
  caf::typed_response_promise<stream_tail, std::string> rp;
  prepared_ptr prepared;
  std::vector<satellite_call> satellites;
  size_t done = 0;
  std::optional<query::counter> counts;
  uint64_t rows = 0;
  uint64_t bytes = 0;
  uint64_t scanned = 0;
  bool truncated = false;
  bool partial = false;  // server.max_result_bytes cut the answer: what was sent is a prefix
  uint64_t partial_max = 0;  // that key's value, for the summary
  skipped_satellites skipped;  // matched by the selector, not asked: not healthy
  bool limit_reached = false;  // rows beyond the limit are dropped until the end
  bool ending = false;    // the satellites are done (or cut off); the outbox drains, then the end
  bool finished = false;  // answered
  // A satellite's answer is being taken in (its last batches, then its summary): the
  // outbox waits for the summary, so batches that end the query leave with its end.
  bool taking_answer = false;
  // Flow control (ARCHITECTURE.md "Flow control"): the satellites send into a window of
  // server.query_window_bytes (and _batches) the proxyer lends them, the client's credit
  // decides what leaves it. What the client has not taken waits in the outbox; a client
  // that reads slowly slows its own query's satellites, nothing else.
  stream_credit client_credit;
  std::deque<std::pair<std::string, uint64_t>> outbox;  // batches and their rows
  uint64_t outbox_bytes = 0;
  // What the satellites not done hold of the window (the sum of their lent batches, and
  // of their lent bytes above zero), and those that may need credit, in turn order: kept
  // as they change, so lending costs what it lends, not a look at every satellite (a
  // fan-out to 10,000 satellites relays 10,000 batches).
  uint64_t lent_batches = 0;
  int64_t lent_bytes = 0;
  std::deque<size_t> wanting;
  uint64_t query_id = 0;
  int64_t started_ns = 0;  // on the router's clock

  /// Forgets the query and keeps the containers' memory for the next one (a pooled
  /// proxyer runs query after query; libstdc++ allocates even an empty deque). Every
  /// field is reset here: a field added above is added here too.
  void reset() {
    client = wire_stream_sink{};
    rid = 0;
    rp = {};
    prepared.reset();
    satellites.clear();
    done = 0;
    counts.reset();
    rows = bytes = scanned = 0;
    truncated = partial = limit_reached = ending = finished = taking_answer = false;
    partial_max = 0;
    skipped.listed.clear();
    skipped.total = 0;
    client_credit = {};
    outbox.clear();
    outbox_bytes = 0;
    lent_batches = 0;
    lent_bytes = 0;
    wanting.clear();
    query_id = 0;
    started_ns = 0;
  }
};

// A proxyer serves one query at a time, from the router's request to its answer, then
// tells the router and waits for the next: proxyers are pooled, not spawned per query
// (CAF 0.17 hands every actor that ends to its clock thread, a wake-up of another thread
// per query). What a proxyer hears about an earlier query is recognised by its run
// number: satellite stream tags carry it, response handlers capture it.
struct proxyer_state {
  router_actor router;
  const clock_source* clock = nullptr;
  uint32_t run_number = 0;  // bumped per query
  bool busy = false;
  query_run run;
  const char* name = "levee.proxyer";
};

// Proxyers run where their router runs (the node places it on the I/O thread, next to
// the connections they relay between, so a query crosses the server without waking a
// worker: ARCHITECTURE.md "Processes and threads"); they do not know where that is.
// Their work per message is small (a lookup, a relay, a merge of a satellite's groups);
// the scans run on the satellites.
using proxyer_self = caf::stateful_actor<proxyer_state, placed<proxyer_actor::base>>;

/// A satellite stream's tag: the run number and the satellite's index in the run.
uint64_t stream_tag(uint32_t run_number, size_t index) {
  return (static_cast<uint64_t>(run_number) << 32) | static_cast<uint64_t>(index);
}

/// The satellite index a tag names in the current run, or nullopt for another run's tag.
std::optional<size_t> satellite_of(const proxyer_state& st, uint64_t tag) {
  if (!st.busy || (tag >> 32) != st.run_number)
    return std::nullopt;
  auto i = static_cast<size_t>(tag & 0xffffffffu);
  if (i >= st.run.satellites.size())
    return std::nullopt;
  return i;
}

/// What `sat` holds of the query's window, taken out of or put back into the run's sums.
void uncount(query_run& run, const satellite_call& sat) {
  run.lent_batches -= sat.lent.batches;
  run.lent_bytes -= std::max<int64_t>(sat.lent.bytes, 0);
}

void count(query_run& run, const satellite_call& sat) {
  run.lent_batches += sat.lent.batches;
  run.lent_bytes += std::max<int64_t>(sat.lent.bytes, 0);
}

/// The satellite has answered (or is cut off): its credit no longer counts.
void set_done(query_run& run, satellite_call& sat) {
  if (!sat.done)
    uncount(run, sat);
  sat.done = true;
}

/// Queues satellite `i` for credit when it has none to send a batch with.
void want_credit(query_run& run, size_t i) {
  auto& sat = run.satellites[i];
  if (sat.done || sat.wanting || sat.lent.allows_batch())
    return;
  sat.wanting = true;
  run.wanting.push_back(i);
}

void cancel_satellites(proxyer_self* self) {
  auto& st = self->state;
  for (size_t i = 0; i < st.run.satellites.size(); ++i) {
    auto& s = st.run.satellites[i];
    if (!s.done && s.link)
      self->send(s.link, cancel_atom::value, stream_tag(st.run_number, i));
    set_done(st.run, s);
  }
}

/// The query is answered: the proxyer forgets it and is free for the next.
void release(proxyer_self* self) {
  auto& st = self->state;
  auto id = st.run.query_id;
  st.run.reset();
  st.busy = false;
  self->send(st.router, done_atom::value, id);
}

void fail(proxyer_self* self, const std::shared_ptr<proxy_stats>& stats, caf::error err) {
  auto& st = self->state;
  if (!st.busy || st.run.finished)
    return;
  st.run.finished = true;
  cancel_satellites(self);
  auto r = rejection_from(err);
  if (r && r->code == code::cancelled)
    stats->cancelled.fetch_add(1);
  else
    stats->failed.fetch_add(1);
  st.run.rp.deliver(std::move(err));
  release(self);
}

/// The query is over and every batch has left: the summary ends it, with `tail`, the
/// batches that leave with it.
void complete(proxyer_self* self, const std::shared_ptr<proxy_stats>& stats,
              stream_tail tail) {
  auto& st = self->state.run;
  if (!self->state.busy || st.finished)
    return;
  st.finished = true;
  wire::QueryStats summary;
  summary.set_events_scanned(st.scanned);
  summary.set_rows_returned(st.rows);
  summary.set_bytes_returned(st.bytes);
  summary.set_elapsed_us(static_cast<uint64_t>(
    std::max<int64_t>(0, self->state.clock->now_ns() - st.started_ns) / 1000));
  summary.set_satellites(static_cast<uint32_t>(st.satellites.size()));
  summary.set_query_id(st.query_id);
  summary.set_truncated(st.truncated);
  if (st.partial) {
    summary.set_partial(true);
    summary.set_partial_limit("server.max_result_bytes");
    summary.set_partial_max(st.partial_max);
  }
  for (auto& [id, health] : st.skipped.listed) {
    auto& s = *summary.add_skipped();
    s.set_satellite_id(id);
    // satellite_health counts from 0, SatelliteInfo.State from 1 (0 is "unknown").
    s.set_state(static_cast<wire::SatelliteInfo::State>(static_cast<int>(health) + 1));
  }
  summary.set_skipped_total(static_cast<uint32_t>(st.skipped.total));
  // Before `completed`: whoever sees a query counted as completed sees its partial and
  // skipped counts too (StatsRequest waits for the version, which `completed` moves).
  if (st.partial)
    stats->partial.fetch_add(1);
  if (st.skipped.total > 0) {
    stats->skipping_satellites.fetch_add(1);
    stats->satellites_skipped.fetch_add(st.skipped.total);
  }
  stats->completed.fetch_add(1);
  st.rp.deliver(std::move(tail), summary.SerializeAsString());
  release(self);
}

/// Sends the client what its credit allows from the outbox; ends the query when the last
/// batch has left after the satellites were done, the batches that leave then riding with
/// the end (stream_tail). Waits while a satellite's answer is taken in.
void drain_outbox(proxyer_self* self, const std::shared_ptr<proxy_stats>& stats) {
  auto& st = self->state.run;
  if (st.taking_answer)
    return;
  stream_tail tail;
  while (!st.outbox.empty() && st.client_credit.allows_batch()) {
    auto& [part, rows] = st.outbox.front();
    st.client_credit.take(part.size());
    st.outbox_bytes -= part.size();
    if (st.ending)
      tail.push_back(std::move(part));
    else
      self->send(st.client, wire_batch_atom::value, st.rid, std::move(part));
    st.outbox.pop_front();
  }
  if (st.outbox.empty() && st.ending) {
    complete(self, stats, std::move(tail));
    return;
  }
  // The client's credit ran out before the end: what it allowed leaves now.
  for (auto& part : tail)
    self->send(st.client, wire_batch_atom::value, st.rid, std::move(part));
}

/// Lends the satellites still sending what the query's window has room for, a share each,
/// in turn (a fan-out wider than the window takes turns: query_run::wanting). A count query's groups are
/// merged as they come, not held, so its satellites get the whole window each. Returns
/// nothing; `first` fills `initial` (one per satellite) instead of sending credit, for
/// the requests that start the query.
void lend_satellites(proxyer_self* self, const server_options& opts,
                     const std::shared_ptr<proxy_stats>& stats,
                     std::vector<stream_credit>* initial = nullptr) {
  auto& st = self->state;
  auto& run = st.run;
  auto n = run.satellites.size();
  if (!st.busy || run.ending || run.finished || n == 0)
    return;
  auto window_batches = defaults::server_query_window_batches;
  auto window_bytes = static_cast<int64_t>(opts.query_window_bytes);
  int64_t room_bytes = window_bytes;
  uint64_t room_batches = window_batches;
  if (!run.counts) {
    room_bytes -= static_cast<int64_t>(run.outbox_bytes);
    room_batches = room_batches > run.outbox.size() ? room_batches - run.outbox.size() : 0;
    room_bytes -= run.lent_bytes;
    room_batches = room_batches > run.lent_batches ? room_batches - run.lent_batches : 0;
  }
  auto share_batches = std::max<uint64_t>(1, window_batches / n);
  auto share_bytes = std::max<int64_t>(1, window_bytes / static_cast<int64_t>(n));
  uint64_t looks = 0;
  while (!run.wanting.empty()) {
    ++looks;
    auto i = run.wanting.front();
    auto& sat = run.satellites[i];
    if (sat.done || sat.lent.allows_batch()) {
      sat.wanting = false;
      run.wanting.pop_front();
      continue;
    }
    stream_credit give;
    if (run.counts) {
      give.batches = window_batches;
      give.bytes = window_bytes;
    } else {
      // Each dimension on its own (as credit_relay does): a satellite that holds batches
      // but overdrew its bytes needs bytes only, and the reverse. An overdraft (one batch
      // larger than what was left) is repaid on top of the share, so the satellite can
      // always send again; the window is exceeded by at most that one batch.
      bool needs_batches = sat.lent.batches == 0;
      bool needs_bytes = sat.lent.bytes <= 0;
      if ((needs_batches && room_batches == 0) || (needs_bytes && room_bytes <= 0))
        break;  // the window is full: the next turn starts here
      give.batches = needs_batches ? std::min(share_batches, room_batches) : 0;
      give.bytes = needs_bytes ? share_bytes - sat.lent.bytes : 0;
      room_batches -= give.batches;
      room_bytes -= give.bytes;
    }
    uncount(run, sat);
    sat.lent.add(give.batches, static_cast<uint64_t>(give.bytes));
    count(run, sat);
    sat.wanting = false;
    run.wanting.pop_front();
    if (initial != nullptr)
      (*initial)[i] = give;
    else
      self->send(sat.link, credit_atom::value, stream_tag(st.run_number, i),
                 give.batches, static_cast<uint64_t>(give.bytes));
  }
  stats->credit_looks.fetch_add(looks, std::memory_order_relaxed);
}

/// Cuts serialized ResultBatch `part` to its first rows (or count groups) that fit in
/// `room` bytes; the number kept (0: nothing fits, `part` is left as it was), or nullopt
/// when it does not parse.
std::optional<uint64_t> cut_to_fit(std::string& part, uint64_t room) {
  wire::ResultBatch batch;
  if (!batch.ParseFromString(part))
    return std::nullopt;
  using google::protobuf::io::CodedOutputStream;
  // An entry of a repeated length-delimited field costs its tag (one byte: fields 2 and 3),
  // its length's varint and its bytes.
  auto entry = [](size_t len) {
    return 1 + CodedOutputStream::VarintSize64(len) + len;
  };
  size_t size = batch.ByteSizeLong();
  int events = batch.events_size();
  int counts = batch.counts_size();
  while (size > room && counts > 0)
    size -= entry(batch.counts(--counts).ByteSizeLong());
  while (size > room && events > 0)
    size -= entry(batch.events(--events).size());
  if (events + counts == 0)
    return 0;
  batch.mutable_events()->DeleteSubrange(events, batch.events_size() - events);
  batch.mutable_counts()->DeleteSubrange(counts, batch.counts_size() - counts);
  part = batch.SerializeAsString();
  return static_cast<uint64_t>(events + counts);
}

/// Queues a batch for the client and sends what the client's credit allows. A batch that
/// would take the answer past server.max_result_bytes is cut to the rows that fit and
/// ends the query as partial (QueryStats.partial): the client keeps what it was sent and
/// is told the rest is missing, rather than losing the rows to a refusal at the end.
void send_batch(proxyer_self* self, const std::shared_ptr<proxy_stats>& stats,
                const server_options& opts, std::string part, uint64_t rows) {
  auto& st = self->state.run;
  if (st.bytes + part.size() > opts.max_result_bytes) {
    auto kept = cut_to_fit(part, opts.max_result_bytes - st.bytes);
    if (!kept) {
      fail(self, stats,
           to_error(rejection::of(code::bad_request)
                    .detail("a satellite sent a result batch that does not parse; is it the "
                            "same Levee version as this server?")));
      return;
    }
    st.partial = true;
    st.partial_max = opts.max_result_bytes;
    st.ending = true;  // no more batches are taken: the end follows what is queued
    cancel_satellites(self);
    if (*kept > 0) {
      st.bytes += part.size();
      st.rows += *kept;
      stats->rows.fetch_add(*kept);
      stats->bytes.fetch_add(part.size());
      st.outbox_bytes += part.size();
      st.outbox.emplace_back(std::move(part), *kept);
    }
    drain_outbox(self, stats);
    return;
  }
  st.bytes += part.size();
  st.rows += rows;
  stats->rows.fetch_add(rows);
  stats->bytes.fetch_add(part.size());
  st.outbox_bytes += part.size();
  st.outbox.emplace_back(std::move(part), rows);
  drain_outbox(self, stats);
}

void finish(proxyer_self* self, const std::shared_ptr<proxy_stats>& stats,
            const server_options& opts) {
  auto& st = self->state.run;
  if (!self->state.busy || st.ending || st.finished)
    return;
  if (st.counts) {
    // The merged groups, most counted first, cut to the limit only now.
    auto groups = st.counts->results();
    auto limit = st.prepared->q->limit().value_or(groups.size());
    if (groups.size() > limit) {
      groups.resize(limit);
      st.truncated = true;
    }
    // In batches of at most count_batch_bytes, so no frame outgrows the client's bound.
    wire::ResultBatch out;
    size_t bytes = 0, in_batch = 0;
    for (size_t gi = 0; gi <= groups.size(); ++gi) {
      if (gi == groups.size() || bytes >= count_batch_bytes) {
        if (in_batch > 0 || gi == groups.size())
          send_batch(self, stats, opts, out.SerializeAsString(), in_batch);
        if (!self->state.busy || st.ending)
          return;  // over the result bytes: cut, the end follows what was queued
        out.clear_counts();
        bytes = in_batch = 0;
        if (gi == groups.size())
          break;
      }
      auto& g = groups[gi];
      events::event key;
      for (size_t i = 0; i < g.values.size(); ++i)
        key.fields.push_back(events::field{st.prepared->q->count_by()[i].name, g.values[i]});
      auto& row = *out.add_counts();
      events::encode(key, *row.mutable_key());
      row.set_count(g.count);
      bytes += row.key().size() + 12;
      ++in_batch;
    }
  }
  st.ending = true;
  cancel_satellites(self);  // those still scanning after the limit was reached
  drain_outbox(self, stats);  // the end follows the last batch the client takes
}

/// A satellite's batch: relayed as it is when nothing needs to change; rows cut to the
/// limit across satellites; count groups merged until the end.
void relay_batch(proxyer_self* self, const std::shared_ptr<proxy_stats>& stats,
                 const server_options& opts, size_t index, std::string& part) {
  auto& st = self->state.run;
  auto& from = st.satellites[index].ref.id;
  auto unparsable = [&] {
    fail(self, stats,
         to_error(rejection::of(code::bad_request)
                  .detail("satellite '" + from
                          + "' sent a result batch that does not parse; is it the same Levee "
                            "version as this server?")));
  };
  wire::ResultBatch batch;
  if (st.counts) {
    if (!batch.ParseFromString(part)) {
      unparsable();
      return;
    }
    std::vector<query::group> partial;
    events::event key;
    for (auto& row : batch.counts()) {
      if (auto s = events::decode(row.key(), key); !s) {
        fail(self, stats,
             to_error(rejection::of(code::bad_request)
                      .detail("satellite '" + from + "' sent a count key that does not decode: "
                              + s.message())));
        return;
      }
      query::group g;
      for (auto& by : st.prepared->q->count_by()) {
        auto v = key.find(by.name);
        g.values.push_back(v != nullptr ? *v : events::value{});
      }
      g.count = row.count();
      partial.push_back(std::move(g));
    }
    if (auto s = st.counts->merge(partial); !s) {
      // query/'s fixed bound on count groups, not a config key: the refusal names no
      // limit (as the satellites' own refusal does) but keeps observed and max.
      fail(self, stats, to_error(s.as_rejection()));
    }
    return;
  }
  auto counted = net::count_result_rows(part);
  if (!counted) {
    unparsable();
    return;
  }
  auto rows = *counted;
  if (auto limit = st.prepared->q->limit(); limit && st.rows + rows >= *limit) {
    auto keep = *limit - st.rows;
    if (keep < rows) {
      if (!batch.ParseFromString(part)) {
        unparsable();
        return;
      }
      batch.mutable_events()->DeleteSubrange(static_cast<int>(keep),
                                             static_cast<int>(rows - keep));
      part = batch.SerializeAsString();
      rows = keep;
    }
    if (rows > 0)
      send_batch(self, stats, opts, std::move(part), rows);
    if (!self->state.busy || st.ending)
      return;  // over the result bytes: cut, the end follows what was queued
    st.truncated = true;
    if (st.satellites.size() == 1) {
      // One satellite applies the same limit and ends right after: its summary (what it
      // scanned) is worth the wait. Others in a fan-out are cancelled instead.
      st.limit_reached = true;
      return;
    }
    finish(self, stats, opts);
    return;
  }
  send_batch(self, stats, opts, std::move(part), rows);
}

void on_batch(proxyer_self* self, const std::shared_ptr<proxy_stats>& stats,
              const server_options& opts, uint64_t tag, std::string& part) {
  auto index = satellite_of(self->state, tag);
  auto& st = self->state;
  if (!index || st.run.ending || st.run.finished)
    return;  // another query's, or after the end
  auto run_number = st.run_number;
  auto& sat = st.run.satellites[*index];
  uncount(st.run, sat);
  sat.lent.take(part.size());
  count(st.run, sat);
  want_credit(st.run, *index);
  if (!st.run.limit_reached)  // past the limit a lone satellite's rows are dropped
    relay_batch(self, stats, opts, *index, part);
  // Not failed and released meanwhile; not a batch that came with its satellite's end
  // (which frees that satellite's credit for the others once its summary is taken).
  if (st.busy && st.run_number == run_number && !st.run.taking_answer)
    lend_satellites(self, opts, stats);
}

/// What to tell a client whose satellite went away under its query without a Reject
/// (CAF's error, not a refusal): in words, with what to do, not CAF's error text.
std::string lost_satellite(const caf::error& err) {
  if (err == caf::sec::request_receiver_down)
    return "its connection closed while the query ran (the satellite stopped, restarted "
           "or was disconnected); run the query again, `levee satellites` shows its state";
  return "the query to it failed (" + caf::to_string(err)
         + "); run the query again, `levee satellites` shows its state";
}

/// Starts the query the router handed over: finds its satellites and asks each.
caf::result<stream_tail, std::string> start_run(proxyer_self* self, const satellite_routes& routes,
                                   const server_options& opts,
                                   const std::shared_ptr<proxy_stats>& stats,
                                   prepared_ptr prepared, uint64_t rid, uint64_t query_id,
                                   stream_credit client_credit) {
  auto& st = self->state;
  if (st.busy)  // the router hands a proxyer one query at a time
    return to_error(rejection::of(code::unavailable)
                    .retry_after_ms(100)
                    .detail("internal: the proxyer is busy; retry the query"));
  st.busy = true;
  auto run_number = ++st.run_number;
  auto& run = st.run;
  run.client = caf::actor_cast<wire_stream_sink>(self->current_sender());
  run.rid = rid;
  run.query_id = query_id;
  run.started_ns = st.clock->now_ns();
  run.prepared = std::move(prepared);
  run.client_credit = client_credit;
  if (run.prepared->q->is_count())
    run.counts.emplace(*run.prepared->q);
  auto rp = run.rp = self->make_response_promise<stream_tail, std::string>();
  auto refs = routes.lookup(run.prepared->request, &run.skipped);
  if (!refs) {
    fail(self, stats, std::move(refs.error()));
    return rp;
  }
  // No timers per query (each would wake CAF's clock thread): the router tells the
  // proxyer when its deadline passes.
  auto current = [=] { return self->state.busy && self->state.run_number == run_number; };
  // No monitors on the satellites' connections: a connection that closes answers every
  // request it holds with unavailable, one that is closing refuses new ones, and CAF
  // answers a request to one that has ended (request_receiver_down). A query never waits
  // for its deadline on a lost satellite, without two monitor operations per satellite
  // and query.
  for (auto& ref : *refs) {
    auto link = caf::actor_cast<wire_stream_outlet>(ref.connection);
    run.satellites.push_back(satellite_call{std::move(ref), std::move(link), false, false, {}});
  }
  // Each satellite's first credit goes with its request.
  for (size_t i = 0; i < run.satellites.size(); ++i)
    want_credit(run, i);
  std::vector<stream_credit> first(run.satellites.size());
  lend_satellites(self, opts, stats, &first);
  for (size_t i = 0; i < run.satellites.size(); ++i) {
    auto id = run.satellites[i].ref.id;
    self->request(run.satellites[i].link, caf::infinite, wire_stream_atom::value,
                  std::string{"query"}, run.prepared->forwarded, stream_tag(run_number, i),
                  first[i].batches, static_cast<uint64_t>(std::max<int64_t>(first[i].bytes, 0)))
      .then(
        [=](stream_tail& tail, std::string& summary) {
          if (!current())
            return;
          auto& r = self->state.run;
          if (r.ending || r.finished || r.satellites[i].done)
            return;
          // Its last batches first, as if they had come on their own; what they put in
          // the outbox waits for the summary below, so a query this answer ends sends its
          // last batches with its end.
          r.taking_answer = true;
          for (auto& part : tail) {
            on_batch(self, stats, opts, stream_tag(run_number, i), part);
            if (!current())
              return;  // failed (a batch that does not parse): answered and released
          }
          r.taking_answer = false;
          if (r.ending || r.finished || r.satellites[i].done) {
            drain_outbox(self, stats);  // a batch cut the query short (limit, result bytes)
            return;
          }
          set_done(r, r.satellites[i]);
          wire::QueryStats part;
          if (part.ParseFromString(summary))
            r.scanned += part.events_scanned();
          if (++r.done == r.satellites.size()) {
            finish(self, stats, opts);
          } else {
            drain_outbox(self, stats);  // its last batches, held for the summary
            lend_satellites(self, opts, stats);  // its unused credit goes to the others
          }
        },
        [=](caf::error& err) {
          // A satellite the proxyer cut off itself (the limit, or a partial end while the
          // client still reads the last batches) answers `cancelled`: not a failure.
          if (!current() || self->state.run.finished || self->state.run.satellites[i].done)
            return;
          // The satellite's refusal as it said it (limit, observed, max, retry_after),
          // naming the satellite.
          auto rj = rejection_from(err);
          rejection relayed =
            rj ? *rj : static_cast<rejection>(rejection::of(code::unavailable).detail(lost_satellite(err)));
          if (relayed.code == code::cancelled)
            relayed.code = code::unavailable;  // the satellite stopped, not the client
          relayed.detail = "satellite '" + id + "': " + relayed.detail;
          fail(self, stats, to_error(relayed));
        });
  }
  return rp;
}

proxyer_actor::behavior_type proxyer(proxyer_self* self, router_actor router,
                                     std::shared_ptr<satellite_routes> routes,
                                     server_options opts, std::shared_ptr<proxy_stats> stats,
                                     const clock_source* clock) {
  self->state.clock = clock;
  // A pooled proxyer lives as long as its router: when the router ends (the server
  // stops), so does the proxyer, also one whose query ended after the router did (its
  // done_atom had nobody to hand it back to). Without it the actor system waits for it.
  self->monitor(router);
  self->set_down_handler([=](caf::down_msg& msg) {
    if (msg.source == self->state.router.address())
      self->quit(msg.reason);
  });
  self->state.router = std::move(router);
  // The router's messages name the query they are about; one about a query that already
  // ended (it crossed the proxyer's done) is ignored.
  auto running = [=](uint64_t query_id) {
    return self->state.busy && self->state.run.query_id == query_id;
  };
  return {
    [=](run_query_atom, prepared_ptr& prepared, uint64_t rid, uint64_t query_id,
        uint64_t credit_batches, uint64_t credit_bytes) -> caf::result<stream_tail, std::string> {
      stream_credit credit;
      credit.add(credit_batches, credit_bytes);
      return start_run(self, *routes, opts, stats, std::move(prepared), rid, query_id, credit);
    },
    [=](credit_atom, uint64_t id, uint64_t batches, uint64_t bytes) {
      // The client read: from its connection (id = the request) once the proxyer sent a
      // batch, or through the router before (id = the query id).
      auto& st = self->state;
      if (!st.busy || st.run.finished)
        return;
      auto from_router = self->current_sender() == st.router.address();
      if (from_router ? st.run.query_id != id
                      : (st.run.rid != id || self->current_sender() != st.run.client.address()))
        return;
      st.run.client_credit.add(batches, bytes);
      drain_outbox(self, stats);
      if (st.busy)
        lend_satellites(self, opts, stats);
    },
    [=](wire_batch_atom, uint64_t tag, std::string& part) {
      on_batch(self, stats, opts, tag, part);
    },
    [=](cancel_atom, uint64_t query_id) {
      if (running(query_id))
        fail(self, stats,
             to_error(rejection::of(code::cancelled).detail("the client cancelled the query")));
    },
    [=](stop_atom, uint64_t query_id) {
      if (running(query_id))
        fail(self, stats,
             to_error(rejection::of(code::shutting_down)
                      .retry_after_ms(1000)
                      .detail("the server is shutting down; retry on another server or once "
                              "it is back")));
    },
    [=](timeout_atom, uint64_t query_id) {
      if (!running(query_id))
        return;
      auto deadline = self->state.run.prepared->request.deadline_ms();
      fail(self, stats,
           to_error(rejection::of(code::deadline_exceeded)
                    .limit("server.query_deadline_ms")
                    .observed(deadline)
                    .max(deadline)
                    .detail("the query did not finish before its deadline; narrow it, or "
                            "give it a longer deadline (up to server.query_deadline_ms)")));
    },
  };
}

/// A query the router handed to a proxyer.
struct running_query {
  proxyer_actor proxyer;
  caf::actor_id client = 0;  // the connection that asked
  uint64_t rid = 0;
  uint64_t query_id = 0;
  std::multimap<int64_t, caf::actor_id>::iterator deadline;
  int64_t started_ns = 0;  // on the router's clock, when it took the query
};

struct pair_hash {
  size_t operator()(const std::pair<caf::actor_id, uint64_t>& k) const noexcept {
    return std::hash<uint64_t>{}(k.first * 0x9e3779b97f4a7c15ull ^ k.second);
  }
};

struct router_state {
  uint64_t next_query_id = 1;
  // Keyed by actor ids (never reused within a process): hashing an id is cheaper than
  // comparing actor addresses, and these are touched several times per query.
  std::unordered_map<caf::actor_id, uint64_t> per_client;        // running queries per connection
  std::unordered_map<caf::actor_id, running_query> running;      // by proxyer
  std::unordered_map<std::pair<caf::actor_id, uint64_t>, caf::actor_id, pair_hash>
    by_request;  // (connection, request id) -> proxyer
  /// Deadlines of the running queries (clock ns -> proxyer), one timer for the earliest.
  std::multimap<int64_t, caf::actor_id> deadlines;
  earliest_timer deadline_timer;
  std::vector<proxyer_actor> idle;  // proxyers waiting for a query
  bool stopping = false;  // the server stops: new queries get shutting_down
  // `stats` requests waiting for the query counters to move.
  std::optional<watcher_set> stats_watchers;
  /// Texts parsed lately: a text that runs again is not parsed again.
  query::parse_cache parsed;
  const clock_source* clock = nullptr;
  const char* name = "levee.query_router";
};

using router_self = caf::stateful_actor<router_state, limited<router_actor::base>>;

/// Idle proxyers kept for the next queries; more than this end (a burst of queries spawns
/// what it needs, up to server.max_queries).
constexpr size_t max_idle_proxyers = 64;

/// Forgets the query a proxyer ran (it answered, or died); true if there was one.
bool end_query(router_self* self, caf::actor_id proxyer,
               const std::shared_ptr<proxy_stats>& stats) {
  auto& st = self->state;
  auto i = st.running.find(proxyer);
  if (i == st.running.end())
    return false;
  auto& q = i->second;
  if (auto n = st.per_client.find(q.client); n != st.per_client.end() && --n->second == 0)
    st.per_client.erase(n);
  st.by_request.erase({q.client, q.rid});
  st.deadlines.erase(q.deadline);
  stats->durations.observe(
    static_cast<uint64_t>(std::max<int64_t>(0, st.clock->now_ns() - q.started_ns)) / 1000);
  st.running.erase(i);
  stats->running.fetch_sub(1);
  stats->ended.fetch_add(1);
  return true;
}

/// The query the current sender (a connection) runs as request `rid`, or null.
const running_query* running_for_sender(router_self* self, uint64_t rid) {
  auto& st = self->state;
  auto sender = self->current_sender() ? self->current_sender()->id() : 0;
  auto i = st.by_request.find({sender, rid});
  return i == st.by_request.end() ? nullptr : &st.running.at(i->second);
}

std::string stats_reply(const std::function<void(wire::StatsReply&)>& fill, uint64_t version) {
  wire::StatsReply reply;
  fill(reply);
  reply.set_version(version);
  return reply.SerializeAsString();
}

/// A burst of query starts and ends within this is answered once.
constexpr int64_t stats_coalesce_ns = 5'000'000;

router_actor::behavior_type router(router_self* self, std::shared_ptr<satellite_routes> routes,
                                   server_options opts, std::shared_ptr<proxy_stats> stats,
                                   std::function<void(wire::StatsReply&)> render_stats,
                                   const clock_source* clock) {
  self->state.clock = clock;
  self->state.stats_watchers.emplace(
    watcher_set::bounds{opts.max_list_watchers, opts.max_list_watchers_per_client,
                        opts.max_list_wait_ms, stats_coalesce_ns},
    *clock);
  self->set_down_handler([=](caf::down_msg& msg) {
    // A proxyer that ended (a failure, or the pool was full): its query, if any, is over.
    auto& st = self->state;
    end_query(self, msg.source.id(), stats);
    self->state.stats_watchers->changed(self);
    st.idle.erase(std::remove_if(st.idle.begin(), st.idle.end(),
                                 [&](const proxyer_actor& p) { return p.address() == msg.source; }),
                  st.idle.end());
  });
  // Starts a query, or refuses it (counted either way).
  auto start = [=](const std::string& payload, uint64_t rid, uint64_t credit_batches,
                   uint64_t credit_bytes) -> caf::result<stream_tail, std::string> {
    if (auto refused = check_query_request(payload)) {  // the text's size, before parsing
      stats->refused.fetch_add(1);
      return to_error(*refused);
    }
    auto& st = self->state;
    if (st.stopping) {
      stats->refused.fetch_add(1);
      return to_error(rejection::of(code::shutting_down)
                      .retry_after_ms(1000)
                      .detail("the server is shutting down; retry on another server or once "
                              "it is back"));
    }
    // Parsed once here; the proxyer gets it whole.
    auto prepared = std::make_shared<prepared_query>();
    auto& req = prepared->request;
    if (!req.ParseFromString(payload)) {
      stats->refused.fetch_add(1);
      return to_error(rejection::of(code::bad_request)
                      .detail("a QueryRequest that does not parse; send one built from "
                              "net/satellite.proto"));
    }
    auto parsed = st.parsed.parse(req.text());
    if (!parsed) {
      stats->refused.fetch_add(1);
      return to_error(rejection::of(code::bad_request)
                      .detail("bad query text: " + parsed.error().message()));
    }
    prepared->q = std::move(*parsed);
    auto client = self->current_sender() ? self->current_sender()->id() : 0;
    auto running = st.running.size();
    if (running >= opts.max_queries) {
      stats->refused.fetch_add(1);
      return to_error(rejection::of(code::too_many_inflight)
                      .limit("server.max_queries")
                      .observed(running + 1)
                      .max(opts.max_queries)
                      .retry_after_ms(100)
                      .detail("the server runs as many queries as it may; retry shortly"));
    }
    auto mine = st.per_client[client];
    if (mine >= opts.max_queries_per_client) {
      if (mine == 0)
        st.per_client.erase(client);
      stats->refused.fetch_add(1);
      return to_error(rejection::of(code::too_many_inflight)
                      .limit("server.max_queries_per_client")
                      .observed(mine + 1)
                      .max(opts.max_queries_per_client)
                      .retry_after_ms(100)
                      .detail("this client runs as many queries as it may; wait for one to end"));
    }
    if (st.by_request.count({client, rid}) != 0) {
      stats->refused.fetch_add(1);
      return to_error(rejection::of(code::bad_request)
                      .detail("request id " + std::to_string(rid)
                              + " already runs a query; number each request anew"));
    }
    auto deadline = req.deadline_ms() == 0
                      ? opts.query_deadline_ms
                      : std::min<uint64_t>(req.deadline_ms(), opts.query_deadline_ms);
    req.set_deadline_ms(static_cast<uint32_t>(deadline));
    if (req.now_ms() == 0)
      req.set_now_ms(st.clock->wall_ms());
    prepared->forwarded = req.SerializeAsString();
    auto id = st.next_query_id++;
    proxyer_actor p;
    if (!st.idle.empty()) {
      p = std::move(st.idle.back());
      st.idle.pop_back();
    } else {
      // Where the router runs (its placement, whichever it is): a query's messages
      // between the two cross no thread.
      p = spawn_placed_fun(self->system(), self->where(), proxyer,
                           caf::actor_cast<router_actor>(self), routes, opts, stats, clock);
      self->monitor(p);
    }
    ++st.per_client[client];
    auto now = st.clock->now_ns();
    auto due = now + static_cast<int64_t>(deadline) * 1'000'000;
    st.running[p.id()] =
      running_query{p, client, rid, id, st.deadlines.emplace(due, p.id()), now};
    st.by_request[{client, rid}] = p.id();
    arm_earliest(self, st.deadline_timer, due, now);
    stats->started.fetch_add(1);
    stats->running.fetch_add(1);
    return self->delegate(p, run_query_atom::value, prepared_ptr{std::move(prepared)}, rid, id,
                          credit_batches, credit_bytes);
  };
  return {
    [=](wire_stream_atom, const std::string& payload, uint64_t rid, uint64_t credit_batches,
        uint64_t credit_bytes) -> caf::result<stream_tail, std::string> {
      auto r = start(payload, rid, credit_batches, credit_bytes);
      self->state.stats_watchers->changed(self);  // started or refused
      return r;
    },
    [=](done_atom, uint64_t) {
      // A proxyer answered its query: it serves the next one, or ends if enough wait.
      auto& st = self->state;
      auto sender = caf::actor_cast<proxyer_actor>(self->current_sender());
      if (!sender || !end_query(self, sender.id(), stats))
        return;
      self->state.stats_watchers->changed(self);
      if (st.stopping || st.idle.size() >= max_idle_proxyers)
        self->send_exit(sender, caf::exit_reason::normal);
      else
        st.idle.push_back(std::move(sender));
    },
    [=](watch_atom, uint64_t after_version, uint32_t wait_ms) -> caf::result<std::string> {
      auto& st = self->state;
      auto version = stats->version();
      auto render = [&] { return stats_reply(render_stats, version); };
      if (st.stopping)
        return render();
      return st.stats_watchers->hold(self, version, after_version, wait_ms, render);
    },
    [=](watch_atom, int64_t armed_for) {
      auto version = stats->version();
      self->state.stats_watchers->on_timer(self, armed_for, version,
                                           [&] { return stats_reply(render_stats, version); });
    },
    [=](credit_atom, uint64_t rid, uint64_t batches, uint64_t bytes) {
      // Credit for a query whose proxyer has sent nothing yet (the connection sends the
      // next straight to the proxyer): passed on with the query's id.
      if (auto q = running_for_sender(self, rid))
        self->send(q->proxyer, credit_atom::value, q->query_id, batches, bytes);
    },
    [=](cancel_atom, uint64_t rid) {
      if (auto q = running_for_sender(self, rid))
        self->send(q->proxyer, cancel_atom::value, q->query_id);
    },
    [=](stop_atom) -> bool {
      // The server stops: every query ends with shutting_down before the connections go
      // (a satellite connection closing first would say unavailable).
      auto& st = self->state;
      st.stopping = true;
      st.stats_watchers->answer_all([&] { return stats_reply(render_stats, stats->version()); });
      for (auto& [addr, q] : st.running)
        self->send(q.proxyer, stop_atom::value, q.query_id);
      for (auto& p : st.idle)
        self->send_exit(p, caf::exit_reason::normal);
      st.idle.clear();
      return true;
    },
    [=](timeout_atom, int64_t armed_for) {
      // Overdue proxyers are told once; their entries go when they answer.
      auto& st = self->state;
      if (!st.deadline_timer.fire(armed_for))
        return;
      auto now = st.clock->now_ns();
      for (auto i = st.deadlines.begin(); i != st.deadlines.end() && i->first <= now; ++i) {
        auto& q = st.running.at(i->second);
        self->send(q.proxyer, timeout_atom::value, q.query_id);
      }
      // The told ones stay in the table until they answer: arm for the first one not due.
      if (auto next = st.deadlines.upper_bound(now); next != st.deadlines.end())
        arm_earliest(self, st.deadline_timer, next->first, now);
    },
  };
}

} // namespace

router_actor spawn_query_router(caf::actor_system& sys, runtime& rt, placement where,
                                std::shared_ptr<satellite_routes> routes, server_options opts,
                                std::shared_ptr<proxy_stats> stats,
                                std::function<void(wire::StatsReply&)> render_stats) {
  return spawn_limited_fun(sys, rt, "proxy", where, router, std::move(routes), std::move(opts),
                           std::move(stats), std::move(render_stats), &rt.clock());
}

} // namespace levee::server
