#pragma once
// The agent's interface (satellite/agent.hpp): registration and heartbeats over the
// uplink.

#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"

namespace levee::satellite {

/// (uplink_atom, caf::actor): the connection to the server the agent speaks through.
using uplink_atom = caf::atom_constant<caf::atom("uplink")>;

using agent_actor = caf::typed_actor<
  caf::reacts_to<uplink_atom, caf::actor>,
  /// From the uplink (net::uplink_options::notify): a connection is up, register.
  caf::reacts_to<connected_atom, std::string>,
  /// The agent's own: the heartbeat of registration `generation` is due.
  caf::reacts_to<tick_atom, uint64_t>, caf::reacts_to<stop_atom>>;

} // namespace levee::satellite
