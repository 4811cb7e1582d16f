#pragma once
// The I/O loop of an actor system (CAF 0.17.6's middleman multiplexer), as the execution
// unit placement::io_thread takes. Header-only and apart from placement.hpp, so that only
// code that places actors on the loop includes CAF I/O.

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>

#include "actors/placement.hpp"

namespace levee {

/// The middleman's multiplexer; `sys` must have loaded caf::io::middleman.
inline caf::execution_unit* io_loop_of(caf::actor_system& sys) {
  return &sys.middleman().backend();
}

/// placement::io_thread on `sys`'s I/O loop.
inline placement io_thread_of(caf::actor_system& sys) {
  return placement::io_thread(io_loop_of(sys));
}

} // namespace levee
