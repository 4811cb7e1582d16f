#pragma once
// An actor system for in-process actor tests without threads or real time: CAF's test
// coordinator runs the workers' jobs when told, CAF's test multiplexer stands for the I/O
// loop (its jobs run when told too), CAF's test clock fires timers when told, and a manual
// clock (limits/clock.hpp) is the time the actors read through the runtime.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/network/test_multiplexer.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/caf_error.hpp"
#include "actors/io_loop.hpp"
#include "actors/runtime.hpp"
#include "limits/clock.hpp"
#include "limits/log_limiter.hpp"

namespace levee::test {

struct deterministic_system {
  manual_clock clock;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  caf::io::network::test_multiplexer* loop = nullptr;
  uint64_t loop_jobs = 0;  // jobs the I/O loop ran since start()
  std::unique_ptr<runtime> rt;

  /// Starts the system; `kinds` are the runtime's limits.
  void start(limits_config limits = {}) {
    set_log_sink([](std::string_view) {});
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.load<caf::io::middleman>();
    cfg.set("middleman.network-backend", caf::atom("testing"));
    add_error_category(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    loop = &dynamic_cast<caf::io::network::test_multiplexer&>(sys->middleman().backend());
    rt = std::make_unique<runtime>(std::move(limits), clock);
    run();  // the middleman's own start-up jobs
    loop_jobs = 0;
  }

  /// The I/O loop when `io_thread`, else a worker.
  placement where(bool io_thread) { return io_thread ? io_thread_of(*sys) : placement::worker(); }

  /// Runs every job, the coordinator's and the I/O loop's, until none is left.
  void run() {
    for (;;) {
      auto ran = sched->run();
      while (loop->try_exec_runnable()) {
        ++ran;
        ++loop_jobs;
      }
      if (ran == 0)
        return;
    }
  }

  /// Whether the actors under test ran where they were placed: jobs on the loop when on
  /// the I/O thread, none otherwise. Returns a failure message, empty when they did.
  std::string placement_mismatch(bool io_thread) const {
    if (io_thread && loop_jobs == 0)
      return "placed on the I/O loop, but the loop ran no job";
    if (!io_thread && loop_jobs != 0)
      return "on a worker, but the I/O loop ran " + std::to_string(loop_jobs) + " jobs";
    return {};
  }

  /// Moves both clocks by `ms`: the one the actors read and CAF's, which fires due timers.
  void advance(int64_t ms) {
    clock.advance_ms(ms);
    sched->advance_time(std::chrono::milliseconds(ms));
    run();
  }

  void stop() {
    run();
    sys.reset();
  }
};

/// Whether an actor with interface `Handle` accepts a message of types `Ts...`: what CAF
/// checks at compile time on every send to a typed actor.
template <class Handle, class... Ts>
constexpr bool accepts = caf::response_type<typename Handle::signatures, Ts...>::valid;

} // namespace levee::test
