#pragma once
// Time source for every limit that depends on time (token buckets, log limiting) and for
// the actors that keep deadlines or stamp events (satellite/, server/), so tests can drive
// time by hand instead of sleeping.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace levee {

class clock_source {
public:
  virtual ~clock_source() = default;
  /// Monotonic nanoseconds since an arbitrary epoch. Thread-safe.
  virtual int64_t now_ns() const noexcept = 0;
  /// Wall-clock milliseconds since the Unix epoch (event timestamps, retention by age,
  /// a query's "now"); may jump. Thread-safe.
  virtual int64_t wall_ms() const noexcept = 0;
};

/// std::chrono::steady_clock, and system_clock for wall time. Stateless; `instance()`
/// lives forever.
class steady_clock_source final : public clock_source {
public:
  int64_t now_ns() const noexcept override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
  }
  int64_t wall_ms() const noexcept override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
  }
  static const steady_clock_source& instance() noexcept {
    static const steady_clock_source clock;
    return clock;
  }
};

/// A clock that moves only when told to; its wall time moves with it, from
/// `wall_start_ms` (2023-11-14 by default). Thread-safe.
class manual_clock final : public clock_source {
public:
  explicit manual_clock(int64_t start_ns = 1'000'000'000,
                        int64_t wall_start_ms = 1'700'000'000'000)
    : start_ns_(start_ns), wall_start_ms_(wall_start_ms), now_(start_ns) {}
  int64_t now_ns() const noexcept override { return now_.load(std::memory_order_acquire); }
  int64_t wall_ms() const noexcept override {
    return wall_start_ms_ + (now_ns() - start_ns_) / 1'000'000;
  }
  void advance_ns(int64_t ns) noexcept { now_.fetch_add(ns, std::memory_order_acq_rel); }
  void advance_ms(int64_t ms) noexcept { advance_ns(ms * 1'000'000); }

private:
  int64_t start_ns_;
  int64_t wall_start_ms_;
  std::atomic<int64_t> now_;
};

} // namespace levee
