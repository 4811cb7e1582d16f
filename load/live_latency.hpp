#pragma once
// The progress line's latency: what the sends answered in the last second took, from their
// intended send times. One per sending thread, written by it and emptied once a second by
// the progress thread, with no lock: each bucket is an atomic counter, and take() swaps
// each with 0, so every sample is counted in exactly one second's figures. The buckets are
// latency_series's (8 sub-buckets per power of two of microseconds): a percentile is at
// most 1/8 above the exact one (1 us below 8 us). 960 bytes, however long the run.

#include <array>
#include <atomic>
#include <cstdint>

#include "load/latency_series.hpp"

namespace levee::load {

class live_latency {
public:
  using counts = std::array<uint64_t, latency_series::buckets>;

  /// A latency of `ns` (the sending thread).
  void record(uint64_t ns) noexcept {
    buckets_[latency_series::bucket_of(ns / 1000)].fetch_add(1, std::memory_order_relaxed);
  }

  /// Adds what was recorded since the last take to `into` and starts afresh (any thread).
  void take(counts& into) noexcept;

  /// The `p`th percentile of `c` in ns (a bucket's upper edge), 0 when `c` is empty.
  static uint64_t percentile(const counts& c, double p) noexcept;
  static uint64_t total(const counts& c) noexcept;

private:
  std::array<std::atomic<uint32_t>, latency_series::buckets> buckets_{};
};

} // namespace levee::load
