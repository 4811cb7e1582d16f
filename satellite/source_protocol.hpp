#pragma once
// A source actor's interface (satellite/source.hpp): it paces itself with tick_atom and
// ends on stop_atom; what it reads goes to the store (store_protocol.hpp).

#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"

namespace levee::satellite {

using source_actor = caf::typed_actor<caf::reacts_to<tick_atom>, caf::reacts_to<stop_atom>>;

} // namespace levee::satellite
