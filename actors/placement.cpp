#include "actors/placement.hpp"

#include <cstdio>
#include <cstdlib>

#include "limits/log.hpp"

namespace levee::detail {

namespace {

thread_local placement pending = placement::worker();

} // namespace

void set_pending_placement(placement where) noexcept {
  pending = where;
}

placement take_pending_placement() noexcept {
  auto where = pending;
  pending = placement::worker();
  return where;
}

void placed_and_detached() {
  LEVEE_ERROR("actors", "an actor placed on the I/O thread was spawned detached (or is "
                        "blocking); spawn it without caf::detached, or on a worker");
  std::abort();
}

} // namespace levee::detail
