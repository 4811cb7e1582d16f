#pragma once
// Where a limited actor runs, chosen at spawn and invisible to its code (ARCHITECTURE.md
// "Processes and threads"):
//
//   auto a = levee::spawn_limited_fun(sys, rt, "store", levee::placement::worker(), fun);
//   auto b = levee::spawn_limited_fun(sys, rt, "store",
//                                     levee::placement::io_thread(levee::io_loop_of(sys)), fun);
//
// On a worker (the default) an actor is CAF's ordinary scheduled actor. On the I/O thread
// it is resumed by the loop that also runs the connections (CAF 0.17.6's multiplexer), so
// a request from a connection and its answer cross no thread. The actor stays an
// ordinary event-based (or typed) actor: limited<Base> keeps it on its loop by
//  - launching it on the loop (scheduled_actor::launch hands it to that unit's exec_later),
//  - enqueueing every message with the loop as execution unit, whoever sends it
//    (scheduled_actor::enqueue would otherwise schedule it wherever the sender runs: a
//    worker's own queue, or the scheduler when the sender is a timer or a thread),
//  - reporting resumable::io_actor, which is how the multiplexer's exec_later tells the
//    jobs it runs itself from those it hands to the scheduler.
// Give the I/O thread only cheap handlers, or steps bounded in time: everything there
// waits for them, every connection included.
//
// Ending: a placed actor closes and drains its mailbox when it ends, as every scheduled
// actor does (a broker does not: actors/broker.hpp), so its own delayed messages cannot
// keep it alive. The actor system waits for it to end before it stops the loop, as for
// any actor; a wake-up still on its way through the loop's pipe when the loop stops is
// cleaned up by the multiplexer's destructor (CAF's cleanup_and_release).
//
// Limited actors (limited_actor.hpp) are placed through their spawn functions; any other
// actor becomes placeable as `placed<Base>` and is spawned with spawn_placed(_fun).
//
// This header needs no CAF I/O: the loop is a caf::execution_unit the caller hands in
// (actors/io_loop.hpp finds the middleman's).

#include <utility>

#include <caf/actor_config.hpp>
#include <caf/actor_system.hpp>
#include <caf/execution_unit.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/resumable.hpp>

namespace levee {

class placement {
public:
  /// CAF's worker threads: for real work (parsing, disk).
  static constexpr placement worker() noexcept { return placement{nullptr}; }

  /// The I/O loop `loop` (the middleman's multiplexer, actors/io_loop.hpp), which must
  /// outlive the actor. nullptr means a worker.
  static constexpr placement io_thread(caf::execution_unit* loop) noexcept {
    return placement{loop};
  }

  /// The loop that runs the actor, nullptr on a worker.
  constexpr caf::execution_unit* loop() const noexcept { return loop_; }
  constexpr bool on_io_thread() const noexcept { return loop_ != nullptr; }

private:
  constexpr explicit placement(caf::execution_unit* loop) noexcept : loop_(loop) {}
  caf::execution_unit* loop_;
};

namespace detail {

/// Hands a placement from a spawn function to the constructor of `placed<Base>` in the
/// same thread (CAF constructs actors synchronously inside spawn). Taking it resets it
/// to a worker, so an actor spawned without one runs on a worker.
void set_pending_placement(placement where) noexcept;
placement take_pending_placement() noexcept;

/// Aborts with the reason: an actor placed on an I/O loop cannot also run on a thread
/// of its own (spawned `detached`, or blocking).
[[noreturn]] void placed_and_detached();

} // namespace detail

/// Any CAF scheduled actor type (event_based_actor, typed_event_based_actor<...>, a
/// stateful_actor over one of these), run where its spawn placed it.
template <class Base>
class placed : public Base {
public:
  template <class... Ts>
  explicit placed(caf::actor_config& cfg, Ts&&... xs)
    : Base(cfg, std::forward<Ts>(xs)...), where_(detail::take_pending_placement()) {}

  /// Where the actor runs, as chosen at spawn.
  placement where() const noexcept { return where_; }

  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override {
    // The sender's unit would schedule the actor wherever the sender runs.
    Base::enqueue(std::move(ptr), where_.on_io_thread() ? where_.loop() : eu);
  }

  using Base::enqueue;

  void launch(caf::execution_unit* eu, bool lazy, bool hide) override {
    if (!where_.on_io_thread())
      return Base::launch(eu, lazy, hide);
    if (this->getf(caf::abstract_actor::is_detached_flag))
      detail::placed_and_detached();
    Base::launch(where_.loop(), lazy, hide);
  }

  caf::resumable::subtype_t subtype() const override {
    // The multiplexer's exec_later keeps io_actor jobs on its own thread.
    return where_.on_io_thread() ? caf::resumable::io_actor : Base::subtype();
  }

private:
  placement where_;
};

/// Spawns an actor of class `T` (derived from `placed<...>`) where `where` says.
template <class T, caf::spawn_options Os = caf::no_spawn_options, class... Ts>
auto spawn_placed(caf::actor_system& sys, placement where, Ts&&... xs) {
  detail::set_pending_placement(where);
  return sys.spawn<T, Os>(std::forward<Ts>(xs)...);
}

/// Spawns a function-based actor where `where` says: `fun` takes a pointer to a
/// `placed<...>` type (`placed<caf::event_based_actor>*`, a stateful or typed one) first.
template <caf::spawn_options Os = caf::no_spawn_options, class F, class... Ts>
auto spawn_placed_fun(caf::actor_system& sys, placement where, F fun, Ts&&... xs) {
  detail::set_pending_placement(where);
  return sys.spawn<Os>(std::move(fun), std::forward<Ts>(xs)...);
}

} // namespace levee
