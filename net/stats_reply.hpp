#pragma once
// The parts of a StatsReply (net/satellite.proto) every node kind fills the same way: its
// listener's counters, its I/O loop, its node budget and actor kinds. A server adds its
// queries (server/node.hpp), a broker its streams (broker/node.hpp).

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "net/listener.hpp"
#include "net/satellite.pb.h"

namespace levee::net {

/// The codes that counted, by name (StatsReply: a code not listed is 0). `counts` is
/// indexed by code number (an array of counters or atomics).
template <class Counts>
void fill_by_code(google::protobuf::Map<std::string, uint64_t>& out, const Counts& counts) {
  for (uint8_t c = 1; c <= max_code_number; ++c)
    if (uint64_t n = counts[c]; n > 0)
      out[std::string{to_string(static_cast<code>(c))}] = n;
}

/// The listener's counters: connections, frames, requests, rejects and closes by code.
void fill_listener_stats(const net_stats& n, wire::ListenerStats& out);

/// The I/O loop's figures, when `sys` runs Levee's loop (net/multiplexer.hpp).
void fill_io_loop_stats(caf::actor_system& sys, wire::StatsReply& out);

/// The node budget and every actor kind (runtime::snapshot()).
void fill_runtime_stats(const node_stats_snapshot& s, wire::StatsReply& out);

} // namespace levee::net
