#include "net/multiplexer.hpp"

#include <fcntl.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>

#include <caf/actor_system.hpp>
#include <caf/config_option_adder.hpp>
#include <caf/io/middleman.hpp>
#include <caf/settings.hpp>

namespace levee::net {

namespace {

// CAF keeps the wake-up pipe's descriptors private and offers no way to size it. An
// explicit instantiation may name a private member (C++17 [temp.spec]/6), which gives a
// pointer to it without changing CAF; used once, in the constructor below.
using pipe_fds = std::pair<caf::io::network::native_socket, caf::io::network::native_socket>;
struct pipe_member {
  using type = pipe_fds caf::io::network::default_multiplexer::*;
  friend type member_of(pipe_member);
};
template <class Tag, typename Tag::type Member>
struct expose_member {
  friend typename Tag::type member_of(Tag) { return Member; }
};
template struct expose_member<pipe_member, &caf::io::network::default_multiplexer::pipe_>;

// The same for the queue of the actors this thread posted to itself (polling_multiplexer::
// run_posted).
using posted_queue = std::vector<caf::intrusive_ptr<caf::resumable>>;
struct posted_member {
  using type = posted_queue caf::io::network::default_multiplexer::*;
  friend type member_of(posted_member);
};
template struct expose_member<posted_member,
                              &caf::io::network::default_multiplexer::internally_posted_>;

/// Grows the pipe to hold `slots` pointers (never shrinks it); the slots it holds now.
uint64_t size_wakeup_pipe(int fd, uint64_t slots) {
  auto want = std::min<uint64_t>(slots * sizeof(void*), INT32_MAX);
  auto have = ::fcntl(fd, F_GETPIPE_SZ);
  if (have >= 0 && static_cast<uint64_t>(have) < want
      && ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(want)) < 0) {
    // Refused (beyond fs.pipe-max-size without CAP_SYS_RESOURCE): as much as allowed.
    auto max = pipe_max_size();
    if (max > static_cast<uint64_t>(have) && max < want)
      ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(max));
  }
  have = ::fcntl(fd, F_GETPIPE_SZ);
  return have > 0 ? static_cast<uint64_t>(have) / sizeof(void*) : 0;
}

} // namespace

uint64_t pipe_max_size() {
  unsigned long long v = 0;
  if (std::FILE* f = std::fopen("/proc/sys/fs/pipe-max-size", "r")) {
    if (std::fscanf(f, "%llu", &v) != 1)
      v = 0;
    std::fclose(f);
  }
  return v;
}

system_config::system_config() {
  add_loop_options(custom_options_, *this);
}

void add_loop_options(caf::config_option_set& custom, caf::actor_system_config& cfg) {
  caf::config_option_adder{custom, "levee"}.add<int64_t>(
    "busy-poll-us", "how long (us) the I/O thread looks for its next event before it sleeps")
    .add<int64_t>("io-wakeup-slots",
                  "how many actors of the I/O thread may wait for a wake-up at once");
  // Reads of one socket per event (CAF: 50): a connection paused by a rate or a slow
  // reader may still read this many times before the pause takes effect, so it bounds what
  // a paused connection holds (8 x 64 KiB, net/connection.hpp max_held_inbox). Eight reads of
  // up to 64 KiB still take a busy sender's burst in one event.
  cfg.set("middleman.max-consecutive-reads", 8);
}

polling_multiplexer::polling_multiplexer(caf::actor_system* sys)
  : default_multiplexer(sys),
    window_(std::chrono::microseconds{
      std::max<int64_t>(0, caf::get_or(sys->config(), busy_poll_key, int64_t{0}))}) {
  auto slots = std::max<int64_t>(0, caf::get_or(sys->config(), wakeup_slots_key, int64_t{0}));
  wakeup_slots_ = size_wakeup_pipe((this->*member_of(pipe_member{})).second,
                                   static_cast<uint64_t>(slots));
}

bool polling_multiplexer::run_posted() {
  auto& posted = this->*member_of(posted_member{});
  if (posted.empty())
    return false;
  uint64_t rounds = 0;
  for (; rounds < max_posted_rounds && !posted.empty(); ++rounds) {
    // Resuming an actor may post more (its messages to other actors of this loop): they
    // wait for the next round, as in CAF's own poll_once.
    posted.swap(resuming_);
    for (auto& ptr : resuming_)
      resume(std::move(ptr));
    resuming_.clear();
    handle_internal_events();
  }
  posted_rounds_.store(posted_rounds_.load(std::memory_order_relaxed) + rounds,
                       std::memory_order_relaxed);
  if (rounds > longest_posted_run_.load(std::memory_order_relaxed))
    longest_posted_run_.store(rounds, std::memory_order_relaxed);
  return true;
}

void polling_multiplexer::run() {
  using clock = std::chrono::steady_clock;
  if (window_.count() == 0) {
    // CAF's loop (sleeps whenever nothing is ready), with the posted actors' rounds run
    // back to back.
    while (num_socket_handlers() > 0) {
      run_posted();
      poll_once(true);
    }
    return;
  }
  auto bump = [](std::atomic<uint64_t>& x, uint64_t by) {
    x.store(x.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  };
  auto last_event = clock::now();
  // Since when the loop has looked without finding work (a flag and a time, not an
  // optional: g++ 12 takes the optional's time for uninitialized and warns).
  bool looking = false;
  clock::time_point looking_since{};
  auto stop_looking = [&](clock::time_point t) {
    if (looking) {
      bump(looked_ns_, static_cast<uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(t - looking_since)
                           .count()));
      looking = false;
    }
  };
  // num_socket_handlers() falls to 0 once CAF has closed the loop's own pipe (shutdown).
  while (num_socket_handlers() > 0) {
    auto now = clock::now();
    bool ran = run_posted();
    if (poll_once(false) || ran) {
      stop_looking(now);
      last_event = clock::now();
      continue;
    }
    bump(empty_polls_, 1);
    if (!looking) {
      looking = true;
      looking_since = now;
    }
    if (now - last_event < window_) {
      // Whatever else wants this CPU (the peer that will send the next frame, on a
      // machine with few CPUs) runs first; alone, this returns at once.
      ::sched_yield();
      continue;
    }
    stop_looking(now);
    bump(sleeps_, 1);
    asleep_since_ns_.store(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count(),
      std::memory_order_relaxed);
    poll_once(true);
    asleep_since_ns_.store(0, std::memory_order_relaxed);
    last_event = clock::now();
  }
}

io_loop_stats polling_multiplexer::stats() const noexcept {
  io_loop_stats s;
  s.window_us = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(window_).count());
  s.sleeps = sleeps_.load(std::memory_order_relaxed);
  s.empty_polls = empty_polls_.load(std::memory_order_relaxed);
  s.looked_ns = looked_ns_.load(std::memory_order_relaxed);
  s.wakeup_slots = wakeup_slots_;
  s.posted_rounds = posted_rounds_.load(std::memory_order_relaxed);
  s.longest_posted_run = longest_posted_run_.load(std::memory_order_relaxed);
  if (auto since = asleep_since_ns_.load(std::memory_order_relaxed); since != 0) {
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
    s.asleep_ns = now > since ? static_cast<uint64_t>(now - since) : 0;
  }
  return s;
}

std::optional<io_loop_stats> io_loop_stats_of(caf::actor_system& sys) {
  if (!sys.has_middleman())
    return std::nullopt;
  if (auto* m = dynamic_cast<polling_multiplexer*>(&sys.middleman().backend()))
    return m->stats();
  return std::nullopt;
}

} // namespace levee::net
