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
// This header needs no CAF I/O: the loop is a caf::execution_unit the caller hands in
// (actors/io_loop.hpp finds the middleman's).

#include <caf/execution_unit.hpp>

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

} // namespace levee
