#pragma once
// Timers that hold no reference to their actor.
//
// CAF 0.17's clock holds a strong reference to the receiver of every delayed message
// until it fires: an actor that ends stays in memory until its last timer is gone. For
// short-lived actors with long timers (a connection that closes with a 30 s request
// deadline armed and a tick every second) that is memory proportional to the connection
// rate times the longest timer. A weak reference (actor_addr) is no better: CAF allocates
// an actor and its control block as one block, so a weak reference keeps the whole actor's
// memory. A timer here names its actor by id and goes to a relay, which looks the id up
// in a directory the actors leave when they end (e.g. a listener's open connections) and
// forwards the message if the actor is still there.
//
//   delayed_send_by_id(self, relay, 1s, timeout_atom::value);  // instead of delayed_send
//
// The relay is any actor that takes (uint64_t id, caf::message) and forwards the message
// to the actor with that id if it is still there; a listener's connections use the one of
// net/listener.hpp (server_context::timer_relay), which is also their shared clock.

#include <caf/actor.hpp>
#include <caf/send.hpp>

namespace levee {

/// Sends `self` the message `xs...` after `delay`, through `relay` (see above),
/// which finds `self` by its id: the clock holds no reference to `self`. The message
/// arrives with no sender.
template <class Self, class Duration, class... Ts>
void delayed_send_by_id(Self* self, const caf::actor& relay, Duration delay, Ts&&... xs) {
  caf::delayed_anon_send(relay, delay, static_cast<uint64_t>(self->id()),
                         caf::make_message(std::forward<Ts>(xs)...));
}

} // namespace levee
