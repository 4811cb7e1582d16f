#pragma once
// levee::broker: CAF 0.17's caf::io::broker, with its mailbox closed when it ends.
//
// CAF 0.17.6's abstract_broker::cleanup calls local_actor::cleanup directly, skipping
// scheduled_actor::cleanup, which is where an ending actor closes and drains its mailbox.
// A broker's mailbox therefore stays open after the broker is gone: a message that comes
// later (a delayed message it sent itself, a late answer) is queued where nobody reads it,
// and keeps its sender alive. When the sender is the broker itself — every timer tick is
// such a message — the broker holds a strong reference to itself and is never destroyed:
// every connection leaked its broker this way. Every broker Levee spawns derives from
// this class (function-based ones take `levee::broker*`, or `stateful_broker<State>*`).

#include <caf/detail/sync_request_bouncer.hpp>
#include <caf/io/broker.hpp>
#include <caf/stateful_actor.hpp>

namespace levee {

class broker : public caf::io::broker {
public:
  using caf::io::broker::broker;

  bool cleanup(caf::error&& reason, caf::execution_unit* host) override {
    if (!mailbox().closed()) {
      // What scheduled_actor::cleanup does: requests still queued are answered with the
      // exit reason, everything else is dropped (and its sender released).
      mailbox().close();
      get_normal_queue().flush_cache();
      get_urgent_queue().flush_cache();
      caf::detail::sync_request_bouncer bounce{reason};
      while (mailbox().queue().new_round(1000, bounce).consumed_items)
        ;  // until empty
    }
    return caf::io::broker::cleanup(std::move(reason), host);
  }
};

template <class State>
using stateful_broker = caf::stateful_actor<State, broker>;

} // namespace levee
