#pragma once
// Helpers shared by tests: a latch with a bounded wait, and peak-RSS measurement.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "limits/process_memory.hpp"

namespace levee::test {

/// A one-shot gate threads can wait on, with a bound so a broken test fails instead of hanging.
class latch {
public:
  void open() {
    std::lock_guard<std::mutex> guard{mtx_};
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, bound, [this] { return open_; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// A counter whose value can be awaited with a bound.
class event_counter {
public:
  void add(uint64_t n = 1) {
    std::lock_guard<std::mutex> guard{mtx_};
    value_ += n;
    cv_.notify_all();
  }
  uint64_t value() {
    std::lock_guard<std::mutex> guard{mtx_};
    return value_;
  }
  /// Waits until value() >= target; false if the bound passed first.
  bool wait_for_at_least(uint64_t target,
                         std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, bound, [&] { return value_ >= target; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  uint64_t value_ = 0;
};

/// The pause between two looks of wait_until: short enough that a test notices a change
/// within a couple of milliseconds, long enough that the waiting thread leaves the CPU to
/// the threads that make the change (and a predicate that sends a request sends at most
/// ~1000 a second, whatever the machine's speed).
constexpr std::chrono::milliseconds poll_pause{1};

/// Waits until `pred()` holds, looking again after a short pause (poll_pause); false if the
/// bound passed first. For state that changes without an event to wait on (counters an
/// actor updates right after it answered). Never a fixed sleep standing in for the event:
/// the bound only matters when something is broken.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(poll_pause);
  }
  return true;
}

inline void reset_peak_rss() { levee::reset_peak_rss(); }
inline uint64_t peak_rss_bytes() { return levee::peak_rss_bytes(); }
inline uint64_t current_rss_bytes() { return levee::current_rss_bytes(); }

} // namespace levee::test
