#pragma once
// The CAF actor gate: `limited<Base>` is any CAF event-based actor type (event_based_actor,
// typed_event_based_actor<...>, stateful_actor<S, limited_actor>) whose `enqueue` runs the
// gate before a message enters the mailbox:
//
//   class echo : public levee::limited_actor {
//    public:
//     using limited::limited;
//     caf::behavior make_behavior() override { return {[](const std::string& s) { return s; }}; }
//   };
//   levee::runtime rt{cfg};
//   auto a = levee::spawn_limited<echo>(system, rt, "echo");
//
// Every spawn function takes an optional levee::placement after the kind (placement.hpp):
// where the actor runs, a worker unless told otherwise; the actor's code is the same.
//
// A message counts against the mailbox bound and the node budget from its acceptance until
// the actor has handled it (a skipped message, stashed by CAF, stays counted); a request
// leaves its requester's in-flight count when handling starts, before its response leaves.
// A refused message never enters the mailbox and is never processed. A refused request gets
// an error response carrying the rejection (levee::rejection_from(err)); a refused
// fire-and-forget message from an actor gets a levee::rejection_notice (bounded: one on its
// way per sender, see rejection_notice.hpp); every refusal is counted and logged
// (rate-limited). Responses, CAF system messages (exit, down, timeout) and stream messages
// pass ungated: they are bounded by the requests, links and streams that cause them.

#include <memory>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/mailbox_element.hpp>

#include "actors/caf_error.hpp"
#include "actors/gate.hpp"
#include "actors/message_size.hpp"
#include "actors/placement.hpp"
#include "actors/rejection_notice.hpp"
#include "actors/runtime.hpp"

namespace levee {

/// The non-template part every limited actor shares; `gate_of(handle)` finds it.
class limited_base {
public:
  explicit limited_base(std::unique_ptr<gate> g) : gate_(std::move(g)) {}
  virtual ~limited_base() = default;

  gate& limits_gate() noexcept { return *gate_; }
  const gate& limits_gate() const noexcept { return *gate_; }

protected:
  // Destroyed after CAF's on_destroy() has closed and drained the mailbox, so no element
  // referring to the gate outlives it.
  std::unique_ptr<gate> gate_;
};

namespace detail {

/// Hands a gate from `spawn_limited` to the constructor of `limited<Base>` in the same
/// thread (CAF constructs actors synchronously inside spawn).
void set_pending_gate(std::unique_ptr<gate> g);
std::unique_ptr<gate> take_pending_gate();

/// The in-flight key of a requesting actor: the address of its control block. Unlike the
/// actor id it needs no read of the control block (whose line the requester's reference
/// count keeps busy), and it cannot be reused while counted: every counted request is a
/// message that holds a strong reference to its sender. 0 for no sender.
uint64_t requester_key(const caf::strong_actor_ptr& sender) noexcept;

/// False for messages the gate does not apply to (responses, system and stream messages,
/// rejection notices, what an actor sends itself: work it already accepted, such as
/// the next step of a long task, cancel_atom / stop_atom / done_atom messages, which end
/// work, and credit_atom, which lets a stream go on); otherwise fills `ticket` with what
/// `x` counts against a gate (payload bytes, requester), in one pass over the content. A
/// pure function of `x` and `self`, so enqueue and consume agree.
bool gated_ticket(const caf::mailbox_element& x, const caf::abstract_actor* self,
                  gate_ticket& ticket) noexcept;

/// Runs the gate on `x`: true to enqueue it (accepted, or the gate is closed and CAF
/// bounces it); false after answering the refusal.
bool admit(gate& g, caf::abstract_actor* self, caf::mailbox_element& x, const gate_ticket& ticket,
           caf::execution_unit* eu);

} // namespace detail

// Placed (placement.hpp): where it runs is its spawn's choice.
template <class Base>
class limited : public placed<Base>, public limited_base {
public:
  using placed_base = placed<Base>;

  template <class... Ts>
  explicit limited(caf::actor_config& cfg, Ts&&... xs)
    : placed_base(cfg, std::forward<Ts>(xs)...), limited_base(detail::take_pending_gate()) {
  }

  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override {
    // After termination the gate is closed and CAF bounces the message as usual. A
    // refusal is answered from the sender's unit; an accepted message wakes the actor
    // where it is placed.
    gate_ticket ticket;
    if (!detail::gated_ticket(*ptr, this, ticket) || detail::admit(*gate_, this, *ptr, ticket, eu))
      placed_base::enqueue(std::move(ptr), eu);
  }

  using placed_base::enqueue;

  caf::invoke_message_result consume(caf::mailbox_element& x) override {
    gate_ticket ticket;
    if (!detail::gated_ticket(x, this, ticket))
      return placed_base::consume(x);
    // The request leaves its requester's in-flight count before its response can leave;
    // the message leaves the mailbox bound and the budget once handled, after the
    // response is on its way.
    gate_->on_handling(ticket);
    auto result = placed_base::consume(x);
    if (result == caf::invoke_message_result::skipped)
      gate_->on_skipped(ticket);
    else
      gate_->on_handled(ticket);
    return result;
  }

  bool cleanup(caf::error&& reason, caf::execution_unit* host) override {
    // CAF closes and drains the mailbox; then the gate gives back what was never taken up.
    auto result = placed_base::cleanup(std::move(reason), host);
    gate_->close();
    return result;
  }
};

using limited_actor = limited<caf::event_based_actor>;

/// Spawns an actor of class `T` (derived from `limited<...>`) with the limits of `kind`,
/// where `where` says.
template <class T, caf::spawn_options Os = caf::no_spawn_options, class... Ts>
auto spawn_limited(caf::actor_system& sys, runtime& rt, const std::string& kind, placement where,
                   Ts&&... xs) {
  detail::set_pending_gate(rt.make_gate(kind));
  return spawn_placed<T, Os>(sys, where, std::forward<Ts>(xs)...);
}

/// The same on a worker.
template <class T, caf::spawn_options Os = caf::no_spawn_options, class... Ts>
auto spawn_limited(caf::actor_system& sys, runtime& rt, const std::string& kind, Ts&&... xs) {
  return spawn_limited<T, Os>(sys, rt, kind, placement::worker(), std::forward<Ts>(xs)...);
}

/// Spawns a function-based limited actor where `where` says: `fun` takes
/// `levee::limited_actor*` (or a pointer to another `limited<...>` type, typed ones
/// included) as first argument.
template <caf::spawn_options Os = caf::no_spawn_options, class F, class... Ts>
auto spawn_limited_fun(caf::actor_system& sys, runtime& rt, const std::string& kind,
                       placement where, F fun, Ts&&... xs) {
  detail::set_pending_gate(rt.make_gate(kind));
  return spawn_placed_fun<Os>(sys, where, std::move(fun), std::forward<Ts>(xs)...);
}

/// The same on a worker.
template <caf::spawn_options Os = caf::no_spawn_options, class F, class... Ts>
auto spawn_limited_fun(caf::actor_system& sys, runtime& rt, const std::string& kind, F fun,
                       Ts&&... xs) {
  return spawn_limited_fun<Os>(sys, rt, kind, placement::worker(), std::move(fun),
                               std::forward<Ts>(xs)...);
}

/// Spawns a function-based limited actor of `kind` with limits of its own (`limits`
/// instead of the kind's config, e.g. with a stream's overrides), where `where` says.
template <caf::spawn_options Os = caf::no_spawn_options, class F, class... Ts>
auto spawn_limited_fun_with(caf::actor_system& sys, runtime& rt, const std::string& kind,
                            const actor_limits& limits, placement where, F fun, Ts&&... xs) {
  detail::set_pending_gate(rt.make_gate(kind, limits));
  return spawn_placed_fun<Os>(sys, where, std::move(fun), std::forward<Ts>(xs)...);
}

/// The gate of a limited actor, for live limit changes and observation; nullptr when
/// `handle` is not a limited actor. The caller must keep `handle` alive while using it.
template <class Handle>
gate* gate_of(const Handle& handle) {
  if (!handle)
    return nullptr;
  auto ptr = caf::actor_cast<caf::abstract_actor*>(handle);
  auto lb = dynamic_cast<limited_base*>(ptr);
  return lb != nullptr ? &lb->limits_gate() : nullptr;
}

} // namespace levee
