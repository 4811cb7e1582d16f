#pragma once
// Time source for every limit that depends on time (token buckets, log limiting), so
// tests can drive time by hand instead of sleeping.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace levee {

class clock_source {
public:
  virtual ~clock_source() = default;
  /// Monotonic nanoseconds since an arbitrary epoch. Thread-safe.
  virtual int64_t now_ns() const noexcept = 0;
};

/// std::chrono::steady_clock. Stateless; `instance()` lives forever.
class steady_clock_source final : public clock_source {
public:
  int64_t now_ns() const noexcept override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
  }
  static const steady_clock_source& instance() noexcept {
    static const steady_clock_source clock;
    return clock;
  }
};

/// A clock that moves only when told to. Thread-safe.
class manual_clock final : public clock_source {
public:
  explicit manual_clock(int64_t start_ns = 1'000'000'000) : now_(start_ns) {}
  int64_t now_ns() const noexcept override { return now_.load(std::memory_order_acquire); }
  void advance_ns(int64_t ns) noexcept { now_.fetch_add(ns, std::memory_order_acq_rel); }
  void advance_ms(int64_t ms) noexcept { advance_ns(ms * 1'000'000); }

private:
  std::atomic<int64_t> now_;
};

} // namespace levee
