#pragma once
// The satellite's store (README "store.*", ARCHITECTURE.md "Satellites"): its segment log,
// the appends of its sources, the queries it scans in steps within the credit of their
// connection, retention, periodic sync and the background scrub. Its interface is
// store_protocol.hpp; where it runs is the caller's choice (placement.hpp): on the I/O
// thread next to the satellite's one connection in a satellite-only node, on a worker
// next to a server. Time comes from `clock` (deadlines, retention, a query's now) and
// from CAF's clock (its periodic ticks), so a test drives both by hand.

#include <map>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/placement.hpp"
#include "actors/runtime.hpp"
#include "limits/clock.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/source_positions.hpp"
#include "satellite/satellite.hpp"
#include "satellite/store_protocol.hpp"

namespace levee::satellite {

/// What a store starts with.
struct store_setup {
  std::shared_ptr<persistence::segment_log> log;  // opened and recovered
  satellite_options opts;
  std::string satellite_id;  // in the summaries of its queries
  std::shared_ptr<satellite_stats> stats;
  /// Each file source's position as recovered; the hint at `hint_path` is rewritten from
  /// them after a sync when they moved.
  std::map<std::string, persistence::file_position> positions;
  std::string hint_path;
  const clock_source* clock = &steady_clock_source::instance();  // must outlive the store
};

/// Spawns the store with the limits of kind "store", where `where` says.
store_actor spawn_store(caf::actor_system& sys, runtime& rt, placement where, store_setup setup);

} // namespace levee::satellite
