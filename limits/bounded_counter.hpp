#pragma once
// A counter that never exceeds its bound: the building block of mailbox bounds (messages,
// bytes) and the node budget. `try_add` is one compare-and-swap loop, so the bound is exact
// under any number of concurrent adders: the value is never above `max`, not even briefly.

#include <atomic>
#include <cstdint>

namespace levee {

class bounded_counter {
public:
  explicit bounded_counter(uint64_t max) : max_(max) {}

  /// Adds `n` if the result stays <= max. On failure `observed` is what the value would
  /// have become. O(1), lock-free.
  bool try_add(uint64_t n, uint64_t& observed) noexcept {
    auto max = max_.load(std::memory_order_relaxed);
    auto cur = value_.load(std::memory_order_relaxed);
    do {
      if (cur + n > max) {
        observed = cur + n;
        return false;
      }
    } while (!value_.compare_exchange_weak(cur, cur + n, std::memory_order_acq_rel,
                                           std::memory_order_relaxed));
    note_high_water(cur + n);
    return true;
  }

  void sub(uint64_t n) noexcept { value_.fetch_sub(n, std::memory_order_acq_rel); }

  uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }
  uint64_t max() const noexcept { return max_.load(std::memory_order_relaxed); }
  uint64_t high_water() const noexcept { return high_water_.load(std::memory_order_relaxed); }

  /// Changes the bound of a live counter. Lowering it below the current value refuses new
  /// adds until enough is subtracted; nothing already counted is taken back.
  void set_max(uint64_t max) noexcept { max_.store(max, std::memory_order_relaxed); }

private:
  void note_high_water(uint64_t v) noexcept {
    auto hw = high_water_.load(std::memory_order_relaxed);
    while (v > hw && !high_water_.compare_exchange_weak(hw, v, std::memory_order_relaxed))
      ;
  }

  std::atomic<uint64_t> value_{0};
  std::atomic<uint64_t> max_;
  std::atomic<uint64_t> high_water_{0};
};

} // namespace levee
