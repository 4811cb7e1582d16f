#include "server/proxy.hpp"

#include <chrono>
#include <map>
#include <optional>

#include <caf/all.hpp>
#include <caf/io/broker.hpp>
#include <caf/io/middleman.hpp>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "events/codec.hpp"
#include "net/satellite.pb.h"
#include "query/counter.hpp"
#include "query/query.hpp"

namespace levee::server {

namespace {

using namespace std::chrono;

caf::error refuse(code c, const std::string& limit, std::string detail, uint64_t observed = 0,
                  uint64_t max = 0) {
  return to_error(rejection{c, limit, observed, max, 0, std::move(detail)});
}

/// Bytes of count groups per result batch (well under the default 1 MiB frame).
constexpr size_t count_batch_bytes = 256 * 1024;

struct satellite_call {
  satellite_ref ref;
  bool done = false;
};

struct proxyer_state {
  caf::actor client;
  uint64_t rid = 0;
  caf::response_promise rp;
  wire::QueryRequest request;
  query::query q;
  std::vector<satellite_call> satellites;
  size_t done = 0;
  std::optional<query::counter> counts;
  uint64_t rows = 0;
  uint64_t bytes = 0;
  uint64_t scanned = 0;
  bool truncated = false;
  bool limit_reached = false;  // rows beyond the limit are dropped until the end
  bool finished = false;
  uint64_t query_id = 0;
  steady_clock::time_point started;
  const char* name = "levee.proxyer";
};

// Proxyers and the router run on the middleman's multiplexer thread, next to the
// connections they relay between: a query crosses the server without waking a worker
// (DESIGN.md "Performance notes"). Their work per message is small (a lookup, a relay,
// a merge of a satellite's groups); the scans run on the satellites.
using proxyer_actor = caf::io::stateful_broker<proxyer_state>;

void cancel_satellites(proxyer_actor* self) {
  for (size_t i = 0; i < self->state.satellites.size(); ++i) {
    auto& s = self->state.satellites[i];
    if (!s.done && s.ref.connection)
      self->send(s.ref.connection, cancel_atom::value, static_cast<uint64_t>(i));
    s.done = true;
    // A monitor left on a long-lived connection would keep this proxyer's memory until
    // that connection closes.
    if (s.ref.connection)
      self->demonitor(s.ref.connection);
  }
}

void fail(proxyer_actor* self, const std::shared_ptr<proxy_stats>& stats, caf::error err) {
  auto& st = self->state;
  if (st.finished)
    return;
  st.finished = true;
  cancel_satellites(self);
  auto r = rejection_from(err);
  if (r && r->code == code::cancelled)
    stats->cancelled.fetch_add(1);
  else
    stats->failed.fetch_add(1);
  st.rp.deliver(std::move(err));
  self->quit();
}

void send_batch(proxyer_actor* self, const std::shared_ptr<proxy_stats>& stats,
                const server_options& opts, std::string part, uint64_t rows) {
  auto& st = self->state;
  if (st.bytes + part.size() > opts.max_result_bytes) {
    fail(self, stats,
         refuse(code::message_too_large, "server.max_result_bytes",
                "the results are larger than this server returns for one query; narrow the "
                "query or add a limit",
                st.bytes + part.size(), opts.max_result_bytes));
    return;
  }
  st.bytes += part.size();
  st.rows += rows;
  stats->rows.fetch_add(rows);
  stats->bytes.fetch_add(part.size());
  self->send(st.client, wire_batch_atom::value, st.rid, std::move(part));
}

void finish(proxyer_actor* self, const std::shared_ptr<proxy_stats>& stats,
            const server_options& opts) {
  auto& st = self->state;
  if (st.finished)
    return;
  if (st.counts) {
    // The merged groups, most counted first, cut to the limit only now.
    auto groups = st.counts->results();
    auto limit = st.q.limit().value_or(groups.size());
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
        if (st.finished)
          return;  // over the result bytes
        out.clear_counts();
        bytes = in_batch = 0;
        if (gi == groups.size())
          break;
      }
      auto& g = groups[gi];
      events::event key;
      for (size_t i = 0; i < g.values.size(); ++i)
        key.fields.push_back(events::field{st.q.count_by()[i].name, g.values[i]});
      auto& row = *out.add_counts();
      events::encode(key, *row.mutable_key());
      row.set_count(g.count);
      bytes += row.key().size() + 12;
      ++in_batch;
    }
  }
  st.finished = true;
  cancel_satellites(self);  // those still scanning after the limit was reached
  wire::QueryStats summary;
  summary.set_events_scanned(st.scanned);
  summary.set_rows_returned(st.rows);
  summary.set_bytes_returned(st.bytes);
  summary.set_elapsed_us(static_cast<uint64_t>(
    duration_cast<microseconds>(steady_clock::now() - st.started).count()));
  summary.set_satellites(static_cast<uint32_t>(st.satellites.size()));
  summary.set_query_id(st.query_id);
  summary.set_truncated(st.truncated);
  stats->completed.fetch_add(1);
  st.rp.deliver(summary.SerializeAsString());
  self->quit();
}

/// A satellite's batch: relayed as it is when nothing needs to change; rows cut to the
/// limit across satellites; count groups merged until the end.
void on_batch(proxyer_actor* self, const std::shared_ptr<proxy_stats>& stats,
              const server_options& opts, uint64_t tag, std::string& part) {
  auto& st = self->state;
  if (st.finished || st.limit_reached || tag >= st.satellites.size())
    return;
  wire::ResultBatch batch;
  if (!batch.ParseFromString(part)) {
    fail(self, stats, refuse(code::bad_request, "server.query",
                             "satellite '" + st.satellites[tag].ref.id
                               + "' sent a result batch that does not parse"));
    return;
  }
  if (st.counts) {
    std::vector<query::group> partial;
    events::event key;
    for (auto& row : batch.counts()) {
      if (auto s = events::decode(row.key(), key); !s) {
        fail(self, stats, refuse(code::bad_request, "server.query",
                                 "satellite '" + st.satellites[tag].ref.id
                                   + "' sent a count key that does not decode: " + s.message()));
        return;
      }
      query::group g;
      for (auto& by : st.q.count_by()) {
        auto v = key.find(by.name);
        g.values.push_back(v != nullptr ? *v : events::value{});
      }
      g.count = row.count();
      partial.push_back(std::move(g));
    }
    if (auto s = st.counts->merge(partial); !s)
      fail(self, stats, refuse(s.code(), "query.max_groups", s.message()));
    return;
  }
  auto rows = static_cast<uint64_t>(batch.events_size());
  if (auto limit = st.q.limit(); limit && st.rows + rows >= *limit) {
    auto keep = *limit - st.rows;
    if (keep < rows) {
      batch.mutable_events()->DeleteSubrange(static_cast<int>(keep),
                                             static_cast<int>(rows - keep));
      part = batch.SerializeAsString();
      rows = keep;
    }
    if (rows > 0)
      send_batch(self, stats, opts, std::move(part), rows);
    st.truncated = true;
    if (st.satellites.size() == 1 && !st.finished) {
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

caf::behavior proxyer(proxyer_actor* self, caf::actor registry, server_options opts,
                      std::shared_ptr<proxy_stats> stats, uint64_t query_id) {
  // A satellite's connection that ends before it answered: the query fails at once.
  // The connection fails its requests when it closes, but a request that reaches it
  // as it goes (or after) could otherwise wait for the deadline.
  self->set_down_handler([=](caf::down_msg& msg) {
    for (auto& s : self->state.satellites)
      if (!s.done && s.ref.connection.address() == msg.source) {
        fail(self, stats,
             refuse(code::unavailable, "server.satellite",
                    "satellite '" + s.ref.id + "': its connection closed before it answered"));
        return;
      }
  });
  return {
    [=](wire_stream_atom, std::string& payload, uint64_t rid) -> caf::result<std::string> {
      auto& st = self->state;
      st.client = caf::actor_cast<caf::actor>(self->current_sender());
      st.rid = rid;
      st.query_id = query_id;
      st.started = steady_clock::now();
      st.rp = self->make_response_promise<std::string>();
      st.request.ParseFromString(payload);  // the router checked it
      st.q = *query::parse(st.request.text());
      if (st.q.is_count())
        st.counts.emplace(st.q);
      // No timers per query (each would wake CAF's clock thread): the router tells the
      // proxyer when its deadline passes, and the registry, on this thread, always answers.
      self->request(registry, caf::infinite, lookup_atom::value, payload)
        .then(
          [=](std::vector<satellite_ref>& refs) {
            auto& s = self->state;
            if (s.finished)
              return;
            auto forwarded = s.request.SerializeAsString();
            for (auto& r : refs) {
              self->monitor(r.connection);
              s.satellites.push_back(satellite_call{std::move(r), false});
            }
            for (size_t i = 0; i < s.satellites.size(); ++i) {
              auto id = s.satellites[i].ref.id;
              self->request(s.satellites[i].ref.connection, caf::infinite, wire_stream_atom::value,
                            std::string{"query"}, forwarded, static_cast<uint64_t>(i))
                .then(
                  [=](std::string& summary) {
                    auto& s2 = self->state;
                    if (s2.finished || s2.satellites[i].done)
                      return;
                    s2.satellites[i].done = true;
                    wire::QueryStats part;
                    if (part.ParseFromString(summary))
                      s2.scanned += part.events_scanned();
                    if (++s2.done == s2.satellites.size())
                      finish(self, stats, opts);
                  },
                  [=](caf::error& err) {
                    if (self->state.finished)
                      return;
                    // The satellite's refusal as it said it (limit, observed, max,
                    // retry_after), naming the satellite.
                    auto r = rejection_from(err);
                    rejection relayed = r ? *r
                                          : rejection{code::unavailable, "server.satellite", 0, 0, 0,
                                                      caf::to_string(err)};
                    if (relayed.code == code::cancelled)
                      relayed.code = code::unavailable;  // the satellite stopped, not the client
                    relayed.detail = "satellite '" + id + "': " + relayed.detail;
                    fail(self, stats, to_error(relayed));
                  });
            }
          },
          [=](caf::error& err) { fail(self, stats, std::move(err)); });
      return st.rp;
    },
    [=](wire_batch_atom, uint64_t tag, std::string& part) {
      on_batch(self, stats, opts, tag, part);
    },
    [=](cancel_atom, uint64_t) {
      fail(self, stats, refuse(code::cancelled, "server.query", "the client cancelled the query"));
    },
    [=](stop_atom) {
      fail(self, stats, refuse(code::shutting_down, "server.query", "the server is shutting down"));
    },
    [=](timeout_atom) {
      fail(self, stats,
           refuse(code::deadline_exceeded, "server.query_deadline_ms",
                  "the query did not finish before its deadline",
                  self->state.request.deadline_ms(), self->state.request.deadline_ms()));
    },
  };
}

struct router_state {
  uint64_t next_query_id = 1;
  std::map<caf::actor_addr, uint64_t> per_client;          // running queries per connection
  std::map<caf::actor_addr, caf::actor_addr> client_of;    // proxyer -> its connection
  std::map<std::pair<caf::actor_addr, uint64_t>, caf::actor> by_request;  // (conn, rid)
  /// Deadlines of the running queries, checked by one periodic tick while any run.
  std::multimap<steady_clock::time_point, caf::actor> deadlines;
  std::map<caf::actor_addr, std::multimap<steady_clock::time_point, caf::actor>::iterator>
    deadline_of;  // a proxyer's entry, dropped when it ends
  bool ticking = false;
  bool stopping = false;  // the server stops: new queries get shutting_down
  const char* name = "levee.query_router";
};

using router_actor = caf::stateful_actor<router_state, limited<caf::io::broker>>;

/// How often the router checks the deadlines of running queries: their precision.
constexpr milliseconds deadline_tick{10};

caf::behavior router(router_actor* self, caf::actor registry, server_options opts,
                     std::shared_ptr<proxy_stats> stats) {
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    auto c = st.client_of.find(msg.source);
    if (c == st.client_of.end())
      return;
    if (auto n = st.per_client.find(c->second); n != st.per_client.end() && --n->second == 0)
      st.per_client.erase(n);
    for (auto i = st.by_request.begin(); i != st.by_request.end(); ++i)
      if (i->second.address() == msg.source) {
        st.by_request.erase(i);
        break;
      }
    st.client_of.erase(c);
    if (auto d = st.deadline_of.find(msg.source); d != st.deadline_of.end()) {
      st.deadlines.erase(d->second);
      st.deadline_of.erase(d);
    }
    stats->running.fetch_sub(1);
  });
  return {
    [=](wire_stream_atom, std::string& payload, uint64_t rid) -> caf::result<std::string> {
      auto& st = self->state;
      if (st.stopping) {
        stats->refused.fetch_add(1);
        return refuse(code::shutting_down, "server.query", "the server is shutting down");
      }
      wire::QueryRequest req;
      if (!req.ParseFromString(payload)) {
        stats->refused.fetch_add(1);
        return refuse(code::bad_request, "server.query", "a QueryRequest that does not parse");
      }
      auto parsed = query::parse(req.text());
      if (!parsed) {
        stats->refused.fetch_add(1);
        return refuse(code::bad_request, "server.query",
                      "bad query text: " + parsed.error().message());
      }
      auto client = caf::actor_cast<caf::actor_addr>(self->current_sender());
      auto running = st.client_of.size();
      if (running >= opts.max_queries) {
        stats->refused.fetch_add(1);
        return to_error(rejection{code::too_many_inflight, "server.max_queries", running + 1,
                                  opts.max_queries, 100, "the server runs as many queries as it may"});
      }
      auto mine = st.per_client[client];
      if (mine >= opts.max_queries_per_client) {
        if (mine == 0)
          st.per_client.erase(client);
        stats->refused.fetch_add(1);
        return to_error(rejection{code::too_many_inflight, "server.max_queries_per_client",
                                  mine + 1, opts.max_queries_per_client, 100,
                                  "this client runs as many queries as it may; wait for one to end"});
      }
      auto deadline = req.deadline_ms() == 0
                        ? opts.query_deadline_ms
                        : std::min<uint64_t>(req.deadline_ms(), opts.query_deadline_ms);
      req.set_deadline_ms(static_cast<uint32_t>(deadline));
      if (req.now_ms() == 0)
        req.set_now_ms(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
      auto id = st.next_query_id++;
      auto p = self->system().middleman().spawn_broker(proxyer, registry, opts, stats, id);
      self->monitor(p);
      ++st.per_client[client];
      st.client_of.emplace(p.address(), client);
      st.by_request[{client, rid}] = p;
      st.deadline_of[p.address()] = st.deadlines.emplace(steady_clock::now() + milliseconds(deadline), p);
      if (!st.ticking) {
        st.ticking = true;
        self->delayed_send(self, deadline_tick, tick_atom::value);
      }
      stats->started.fetch_add(1);
      stats->running.fetch_add(1);
      self->delegate(p, wire_stream_atom::value, req.SerializeAsString(), rid);
      return caf::delegated<std::string>{};
    },
    [=](cancel_atom, uint64_t rid) {
      auto& st = self->state;
      auto i = st.by_request.find({caf::actor_cast<caf::actor_addr>(self->current_sender()), rid});
      if (i != st.by_request.end())
        self->send(i->second, cancel_atom::value, rid);
    },
    [=](stop_atom) -> bool {
      // The server stops: every query ends with shutting_down before the connections go
      // (a satellite connection closing first would say unavailable).
      self->state.stopping = true;
      for (auto& [key, p] : self->state.by_request)
        self->send(p, stop_atom::value);
      return true;
    },
    [=](tick_atom) {
      // Overdue proxyers are told once; ended ones are dropped when their deadline comes.
      auto& st = self->state;
      auto now = steady_clock::now();
      while (!st.deadlines.empty() && st.deadlines.begin()->first <= now) {
        auto p = st.deadlines.begin()->second;
        self->send(p, timeout_atom::value);
        st.deadline_of.erase(p.address());
        st.deadlines.erase(st.deadlines.begin());
      }
      st.ticking = !st.deadlines.empty();
      if (st.ticking)
        self->delayed_send(self, deadline_tick, tick_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_query_router(caf::actor_system& sys, runtime& rt, caf::actor registry,
                              server_options opts, std::shared_ptr<proxy_stats> stats) {
  return spawn_limited_on_multiplexer(sys.middleman(), rt, "proxy", router, std::move(registry),
                                      std::move(opts), std::move(stats));
}

} // namespace levee::server
