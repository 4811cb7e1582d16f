#pragma once
// The satellite's agent (README "agent.*"): once handed its uplink, registers over it on
// every new connection, heartbeats at the interval the server asks for with the store's
// counters, and registers again when the server no longer knows it. Its interface is
// agent_protocol.hpp.

#include <memory>

#include <caf/actor_system.hpp>

#include "actors/runtime.hpp"
#include "satellite/agent_protocol.hpp"
#include "satellite/satellite.hpp"
#include "satellite/store_protocol.hpp"

namespace levee::satellite {

/// Spawns the agent with the limits of kind "satellite", on a worker.
agent_actor spawn_agent(caf::actor_system& sys, runtime& rt, store_actor store,
                        satellite_options opts, std::shared_ptr<satellite_stats> stats);

} // namespace levee::satellite
