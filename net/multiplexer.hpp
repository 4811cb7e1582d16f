#pragma once
// The I/O thread's loop. CAF's epoll multiplexer sleeps in epoll_wait as soon as nothing
// is ready; the next frame then has to wake the thread. On a virtual machine a wake-up
// that crosses CPUs costs the sender's send() ~15-20 us (an IPI, the idle vCPU's exit
// from halt) and the woken thread another ~20 us before it runs: on a 2-vCPU VM that was
// ~80 us of a ~180 us query round trip (bench/RESULTS.md). polling_multiplexer keeps
// looking (non-blocking epoll_wait, yielding the CPU to anything else runnable) for a
// window after its last event before it sleeps, so a frame that arrives within the
// window needs no wake-up at all. An idle node sleeps after one window: the cost is at
// most a window of CPU per burst of work, and it is counted (io_loop_stats).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/io/network/default_multiplexer.hpp>

namespace levee::net {

/// The CAF config key of the window in microseconds ([node] busy_poll_us in a node's
/// file); 0 sleeps at once, as CAF's own loop does. An array, not a pointer: built with
/// clang, CAF 0.17.6's string_view takes a string literal but not a `const char*`.
inline constexpr char busy_poll_key[] = "levee.busy-poll-us";

/// The CAF config key of how many actors of the I/O thread may wait to be woken at once
/// (see wakeup_slots in io_loop_stats). A node sets it from net.max_connections.
inline constexpr char wakeup_slots_key[] = "levee.io-wakeup-slots";

/// /proc/sys/fs/pipe-max-size: the largest pipe an unprivileged process may ask for (0
/// when unknown).
uint64_t pipe_max_size();

/// What a node's I/O thread must be able to have waiting at once: every connection (a
/// broker each), every query's proxyer (server.max_queries), and the node's own actors
/// on the loop (acceptor, timer relay, registry, router, adapters, store, uplink...).
inline uint64_t wakeup_slots_needed(uint64_t max_connections, uint64_t max_queries) {
  return max_connections + max_queries + 1024;
}

/// Declares busy_poll_key and wakeup_slots_key among a config's options (a config's
/// custom_options_, so only a derived config can pass them) and sets the I/O defaults the
/// loop relies on; net::system_config and levee::system_config (include/levee/serve.hpp)
/// both do.
void add_loop_options(caf::config_option_set& custom, caf::actor_system_config& cfg);

/// A CAF config that knows busy_poll_key. Load the middleman with the polling backend:
/// `cfg.load<caf::io::middleman, net::polling_multiplexer>()`.
class system_config : public caf::actor_system_config {
public:
  system_config();
};

/// What the I/O loop did since it started; see polling_multiplexer.
struct io_loop_stats {
  uint64_t window_us = 0;
  uint64_t sleeps = 0;       // times it slept in epoll_wait (nothing came within the window)
  uint64_t empty_polls = 0;  // non-blocking looks that found nothing
  uint64_t looked_ns = 0;    // time spent looking without work, whether or not work came
  uint64_t asleep_ns = 0;    // how long the current sleep has lasted; 0 while awake
  /// How many actors of this loop can wait for a wake-up from another thread at once
  /// without the waker blocking: the wake-up pipe's size over a pointer's.
  uint64_t wakeup_slots = 0;
  /// Rounds of actors that actors of this loop sent messages to (run_posted), and the
  /// most rounds run back to back without a look at the sockets.
  uint64_t posted_rounds = 0;
  uint64_t longest_posted_run = 0;
};

/// The loop of a node's I/O thread: CAF's epoll loop, looking for a window before it sleeps,
/// with a wake-up pipe that cannot fill.
///
/// Another thread wakes an actor of this loop (a connection, a placed actor) by writing a
/// pointer to the loop's pipe, and CAF's write blocks while the pipe is full. The loop
/// itself may be the one that has to drain it while it waits on that writer (it pushes to
/// CAF's clock, whose thread is blocked in the write holding its 64-slot queue: issue 14
/// saw exactly that at 10,000 satellites, with Linux's default 64 KiB pipe = 8,192
/// pointers). An actor is written to the pipe only when its mailbox goes from empty (and
/// waiting) to not empty, so at most once until the loop runs it: the pipe never holds more
/// pointers than the loop has actors. The pipe is sized for `wakeup_slots_key` actors
/// (F_SETPIPE_SZ; up to fs.pipe-max-size, 1 MiB by default, unless privileged), and the
/// node refuses to start when that is fewer than its bounds allow (apps/node.cpp).
class polling_multiplexer : public caf::io::network::default_multiplexer {
public:
  explicit polling_multiplexer(caf::actor_system* sys);

  void run() override;

  io_loop_stats stats() const noexcept;

  /// How many rounds of posted actors run_posted runs before the loop looks at its sockets.
  static constexpr uint64_t max_posted_rounds = 16;

private:
  /// Runs the actors of this loop that other actors of this loop sent messages to, round
  /// after round (up to max_posted_rounds) until none is left. CAF's poll_once runs one
  /// round and then asks epoll for socket events (a system call) before the next: a
  /// query's hops from actor to actor on a node (connection -> router -> proxyer ->
  /// connection) each paid one. False when nothing was posted.
  bool run_posted();

  std::vector<caf::intrusive_ptr<caf::resumable>> resuming_;
  std::chrono::nanoseconds window_;
  uint64_t wakeup_slots_ = 0;
  // Written by the I/O thread only; read by anyone.
  std::atomic<uint64_t> sleeps_{0};
  std::atomic<uint64_t> empty_polls_{0};
  std::atomic<uint64_t> looked_ns_{0};
  std::atomic<int64_t> asleep_since_ns_{0};  // steady_clock, 0 while awake
  std::atomic<uint64_t> posted_rounds_{0};
  std::atomic<uint64_t> longest_posted_run_{0};
};

/// The I/O loop's figures when `sys` runs a polling_multiplexer; nullopt otherwise.
std::optional<io_loop_stats> io_loop_stats_of(caf::actor_system& sys);

} // namespace levee::net
