#pragma once
// A token bucket (rate with burst) as GCRA, the generic cell rate algorithm: the whole
// state is one atomic "theoretical arrival time" (TAT), so concurrent senders decide with
// one compare-and-swap and no lock. Units are whatever the caller counts (messages or
// bytes); the rate is units per second and `burst` units may pass at once from idle.
//
// Live reconfiguration is supported; a decision that races with `reconfigure` may pair the
// old rate with the new burst (or the reverse) once, never anything outside both settings.

#include <atomic>
#include <cstdint>

#include "limits/clock.hpp"

namespace levee {

class token_bucket {
public:
  struct decision {
    bool allowed;
    /// When the same request could pass, in ns from now; 0 when allowed.
    uint64_t retry_after_ns;
    /// True when the request exceeds the burst and can never pass at this setting.
    bool never;
    /// On refusal: the bucket level (units) the request would have made, which is above
    /// the burst — the "observed" of a rate rejection; the burst is its "max".
    uint64_t observed_units = 0;
  };

  /// `rate_per_sec == 0` disables the bucket (everything passes). `burst == 0` means one
  /// second's worth of rate. `clock` must outlive the bucket.
  token_bucket(const clock_source& clock, uint64_t rate_per_sec, uint64_t burst);

  /// Takes `units` tokens if the bucket holds them. O(1), lock-free, thread-safe.
  decision try_acquire(uint64_t units) noexcept;

  /// Gives back tokens taken by a successful `try_acquire` whose request was then refused
  /// by another limit, so a refused request does not eat rate.
  void refund(uint64_t units) noexcept;

  /// Takes `units` whatever the bucket holds, going into debt past the burst: for work
  /// that is paid after it was done (a batch read, then sent), where the payer then waits
  /// out wait_ns() before the next. A disabled bucket ignores it.
  void charge(uint64_t units) noexcept;
  /// How long until one unit would pass, in ns; 0 when it would now.
  uint64_t wait_ns() const noexcept;
  /// How many units would pass now (at most the burst); UINT64_MAX when disabled.
  uint64_t available() const noexcept;
  /// Changes rate and burst of a live bucket. Tokens already taken stay owed (converted
  /// to the new rate); a bucket that was idle or disabled starts full.
  void reconfigure(uint64_t rate_per_sec, uint64_t burst) noexcept;

  bool enabled() const noexcept { return rate_.load(std::memory_order_relaxed) != 0; }
  uint64_t rate() const noexcept { return rate_.load(std::memory_order_relaxed); }
  uint64_t burst() const noexcept { return burst_.load(std::memory_order_relaxed); }

  /// Converts a retry time in ns to whole milliseconds, rounding up so that a retry after
  /// the returned time succeeds (absent competition); at least 1.
  static uint64_t to_retry_ms(uint64_t ns) noexcept { return ns == 0 ? 1 : (ns + 999'999) / 1'000'000; }

private:
  static uint64_t cost_ns(uint64_t units, uint64_t rate) noexcept;

  const clock_source& clock_;
  std::atomic<uint64_t> rate_;
  std::atomic<uint64_t> burst_;
  /// Theoretical arrival time in clock ns: when the bucket is full again.
  std::atomic<int64_t> tat_;
};

} // namespace levee
