#pragma once
// The query router's interface (server/proxy.hpp): the wire's streamed request (the
// connection exposes it as "query"), the held `stats` requests, its proxyers' word that a
// query ended, the node's stop, and its own timers.

#include <cstdint>
#include <string>

#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/wire_target.hpp"
#include "server/watchers.hpp"

namespace levee::server {

using router_actor = wire_stream_target::extend<
  /// (watch_atom, after_version, wait_ms) -> StatsReply bytes, once the query counters
  /// move past after_version or the wait is over (the `stats` adapter delegates).
  caf::replies_to<watch_atom, uint64_t, uint32_t>::with<std::string>,
  /// Its own: the held stats requests' timer (watchers.hpp).
  caf::reacts_to<watch_atom, int64_t>,
  /// From a proxyer: the query `id` is answered; the proxyer is free again.
  caf::reacts_to<done_atom, uint64_t>,
  /// The server stops: running queries end with shutting_down; true once told.
  caf::replies_to<stop_atom>::with<bool>,
  /// Its own: the earliest query deadline (actors/earliest_timer.hpp).
  caf::reacts_to<timeout_atom, int64_t>>;

} // namespace levee::server
