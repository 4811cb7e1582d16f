#pragma once
// Latency over the run's time, for the report's plot: at most 256 slots of equal length
// (1 s at first; when the run outgrows them, neighbours merge and each slot doubles), each
// a coarse log histogram of the accepted sends' latencies whose intended time fell in it.
// Coarse on purpose: 8 sub-buckets per power of two of microseconds, so a slot's
// percentile is at most 1/8 (12.5 %) above the exact one (1 us below 8 us), and a slot is
// 960 bytes; the
// summary's percentiles come from latency_histogram (0.8 %). Memory is bounded: 240 KiB
// per recorder at most, however long the run.

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace levee::load {

class latency_series {
public:
  static constexpr size_t max_slots = 256;
  /// 0 .. 7 us one bucket each, then 8 sub-buckets for each power of two up to 2^32 us.
  static constexpr size_t buckets = 240;

  /// A latency of `ns` for a send meant `second` seconds into the measured window.
  void record(uint64_t second, uint64_t ns);
  /// Adds another recorder's series (the coarser slot length of the two wins).
  void merge(const latency_series& other);

  uint64_t slot_seconds() const noexcept { return width_; }
  size_t slots() const noexcept { return slots_.size(); }
  uint64_t count(size_t slot) const noexcept;
  /// The `p`th percentile of a slot in ns (a bucket's upper edge; 0 for an empty slot).
  uint64_t percentile(size_t slot, double p) const noexcept;

  static size_t bucket_of(uint64_t us) noexcept;
  /// The smallest whole microsecond above every value of bucket `b`.
  static uint64_t upper_us(size_t b) noexcept;

private:
  /// Doubles the slot length until it is `width` seconds, merging neighbours.
  void widen_to(uint64_t width);

  uint64_t width_ = 1;
  std::vector<std::array<uint32_t, buckets>> slots_;
};

} // namespace levee::load
