#pragma once
// The registry's interface (server/registry.hpp): what the node's wire adapters and its
// own timers say to it. Registrations and heartbeats arrive parsed (the adapters parse the
// wire payload once, at the seam); the answers are the wire's bytes, because the adapters
// delegate and the answer goes straight back to the satellite's connection.

#include <cstdint>
#include <string>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "net/satellite.pb.h"
#include "server/watchers.hpp"

namespace levee::server {

/// (register_atom, wire::Register) -> RegisterAck bytes; the sender is the satellite's
/// connection (the adapter delegates), which the registry keeps as its route.
using register_atom = caf::atom_constant<caf::atom("register")>;
/// (heartbeat_atom, wire::Heartbeat) -> HeartbeatAck bytes, from the same connection.
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
/// (list_atom, wire::SatellitesRequest) -> SatelliteList bytes: one page of the
/// registry's table (the request's filters, after its after_id), held until the table
/// moves past after_version when wait_ms > 0 (watchers.hpp).
using list_atom = caf::atom_constant<caf::atom("list")>;

using registry_actor = caf::typed_actor<
  caf::replies_to<register_atom, wire::Register>::with<std::string>,
  caf::replies_to<heartbeat_atom, wire::Heartbeat>::with<std::string>,
  caf::replies_to<list_atom, wire::SatellitesRequest>::with<std::string>,
  /// Its own: the held list requests' timer (watchers.hpp).
  caf::reacts_to<watch_atom, int64_t>,
  /// Its own: look at the heartbeats (every heartbeat_interval / 4).
  caf::reacts_to<tick_atom>>;

} // namespace levee::server

// Parsed at the wire seam and handed on within the process: CAF never serializes them.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::wire::Register)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::wire::Heartbeat)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::wire::SatellitesRequest)
