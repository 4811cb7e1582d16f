#pragma once
// The query path on the server (ARCHITECTURE.md "Satellites and the server"): a router, exposed
// as the wire target "query", that checks a query and the limits on queries, then one
// proxyer actor per query that forwards it to one satellite (by id) or fans it out to the
// healthy satellites a label selector matches, relays their batches to the client in
// order, merges count queries, applies the limit across satellites, and ends with
// EndOfStream (QueryStats). Refusals: bad_request (query text, with its position),
// too_many_inflight (server.max_queries, server.max_queries_per_client), not_found /
// unavailable (no such or no healthy satellite; a satellite lost mid-query),
// deadline_exceeded (server.query_deadline_ms), cancelled. An answer that reaches
// server.max_result_bytes is not refused: it ends with the rows that fit and
// QueryStats.partial; a fan-out names the matching satellites it skipped for not being
// healthy in QueryStats.skipped. Interfaces: router_protocol.hpp,
// proxyer_protocol.hpp.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/placement.hpp"
#include "actors/runtime.hpp"
#include "server/duration_histogram.hpp"
#include "server/registry.hpp"
#include "server/router_protocol.hpp"

namespace levee::wire {
class StatsReply;
} // namespace levee::wire

namespace levee::server {

struct proxy_stats {
  /// Moves whenever the router starts, refuses or ends a query (StatsReply.version); all
  /// three happen on the router, after the counters the query line shows.
  uint64_t version() const noexcept { return started.load() + refused.load() + ended.load(); }

  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> failed{0};     // ended with a Reject other than cancelled
  std::atomic<uint64_t> cancelled{0};
  std::atomic<uint64_t> refused{0};    // refused before any satellite was asked
  std::atomic<uint64_t> running{0};
  std::atomic<uint64_t> rows{0};
  std::atomic<uint64_t> bytes{0};
  // Of the completed: answers cut at server.max_result_bytes, fan-outs that skipped
  // satellites that were not healthy, and those satellites (QueryCounters 10-12).
  std::atomic<uint64_t> partial{0};
  std::atomic<uint64_t> skipping_satellites{0};
  std::atomic<uint64_t> satellites_skipped{0};
  std::atomic<uint64_t> ended{0};     // queries the router has seen end (running went down)
  duration_histogram durations;       // of the ended ones, from their start on the router
  /// Satellites the proxyers looked at when lending credit: a cost figure, about one per
  /// batch relayed and per satellite asked, whatever the fan-out's width.
  std::atomic<uint64_t> credit_looks{0};
};

/// The router: a limited actor of kind "proxy", spawned where `where` says; its proxyers
/// run where it runs, and both read their time (deadlines, durations, a query's "now")
/// from `rt.clock()`. It answers
///   (wire_stream_atom, QueryRequest bytes, request id, credit batches, credit bytes)
///   -> (stream_tail, QueryStats bytes), with (wire_batch_atom, request id, ResultBatch
///   bytes) sent to the connection before it (the last batches may ride in the tail),
///   within the credit and what (credit_atom, request id, batches, bytes) adds
///   (limits/stream_credit.hpp); (cancel_atom, request id) from the connection cancels
///   that query. Each query's proxyer lends its satellites a window of
///   server.query_window_bytes; what the client has not taken yet waits in it.
/// Proxyers find a query's satellites in `routes`, which the registry publishes.
///   (watch_atom, after_version, wait_ms) -> StatsReply bytes (what render_stats fills,
///   and the version) once the query counters move past after_version or the wait is over.
router_actor spawn_query_router(caf::actor_system& sys, runtime& rt, placement where,
                                std::shared_ptr<satellite_routes> routes,
                                server_options opts, std::shared_ptr<proxy_stats> stats,
                                std::function<void(wire::StatsReply&)> render_stats);

} // namespace levee::server
