#pragma once
// One self-timer for the earliest of many deadlines.
//
// CAF 0.17 hands every timer an actor sets (delayed_send, a request timeout), every one
// that later fires and every actor that ends to its clock thread: each is a wake-up of
// another thread, which on a busy node preempts the thread doing the work. An actor that
// tracks many deadlines (a connection's requests, the router's queries) keeps them itself
// and arms one timer, for the earliest; deadlines that come later ride on it.
//
//   arm_earliest(self, timer, deadline_ns, now_ns);   // sends (timeout_atom, deadline_ns)
//   ...on (timeout_atom, ns): if (timer.fire(ns)) { expire what is due; arm the next }

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "actors/atoms.hpp"

namespace levee {

class earliest_timer {
public:
  /// Whether a timer for `deadline` must be sent now: none is armed, or the armed one is
  /// for a later time (it stays in flight and is ignored when it fires: see fire()).
  bool arm(int64_t deadline) noexcept {
    if (armed_ != 0 && armed_ <= deadline)
      return false;
    armed_ = deadline;
    return true;
  }

  /// Whether the timer that fired for `deadline` is the armed one; disarms it. False for
  /// a timer superseded by an earlier one.
  bool fire(int64_t deadline) noexcept {
    if (deadline != armed_)
      return false;
    armed_ = 0;
    return true;
  }

  bool armed() const noexcept { return armed_ != 0; }

private:
  int64_t armed_ = 0;  // the deadline the timer in flight is for; 0 = none
};

/// Sends `self` (Atom, deadline) when `deadline` comes (ns, on the clock `now` was read
/// from), unless `timer` is armed for an earlier deadline already.
template <class Atom = timeout_atom, class Self>
void arm_earliest(Self* self, earliest_timer& timer, int64_t deadline, int64_t now) {
  if (timer.arm(deadline))
    self->delayed_send(self, std::chrono::nanoseconds(std::max<int64_t>(deadline - now, 0)),
                       Atom::value, deadline);
}

} // namespace levee
