#pragma once
// One actor per source (events/): polls it every interval and hands what it read to the
// store, one append in flight (README "source.*"). Its interface is source_protocol.hpp.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "events/source.hpp"
#include "limits/clock.hpp"
#include "persistence/source_positions.hpp"
#include "satellite/satellite.hpp"
#include "satellite/source_protocol.hpp"
#include "satellite/store_protocol.hpp"

namespace levee::satellite {

struct source_setup {
  std::shared_ptr<events::source> src;
  store_actor store;
  std::chrono::milliseconds interval;
  uint64_t max_events;  // per poll and per append
  std::string name;     // its configured name
  std::shared_ptr<satellite_stats> stats;
  /// The position the store had for it at the start (a file_tail's), if any.
  std::optional<persistence::file_position> stored_position;
  const clock_source* clock = &steady_clock_source::instance();  // must outlive the actor
};

/// Spawns a source's actor with the limits of kind "source", on a worker (polling reads
/// files and sockets).
source_actor spawn_source(caf::actor_system& sys, runtime& rt, source_setup setup);

} // namespace levee::satellite
