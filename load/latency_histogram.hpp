#pragma once
// A log-linear latency histogram (the layout of HdrHistogram): values from 1 to
// highest_trackable ns, each power of two split into 256 sub-buckets, so every value is
// kept with 2 significant decimal digits. Memory is fixed at construction (38 KiB for the
// default range, 1 ns .. ~2.4 h), however many values are recorded.
//
// Error, stated and tested (tests/load_histogram_test.cpp): a percentile or max reported
// here is never below the exact one of the same samples and at most 1/128 (0.79 %) above
// it. Values above highest_trackable are counted at highest_trackable (saturated()).
//
// Not thread-safe: one per thread, merged (merge()) when the run ends. Debian packages
// HdrHistogram only for Java and Go (no C or C++ library), hence this one file.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace levee::load {

class latency_histogram {
public:
  /// The default range: 1 ns to 2^43 ns (about 2.4 hours).
  static constexpr uint64_t default_highest_ns = uint64_t{1} << 43;
  /// Sub-buckets per power of two: 256 gives 2 significant digits (1/128 relative).
  static constexpr int sub_bucket_bits = 8;

  explicit latency_histogram(uint64_t highest_trackable = default_highest_ns);

  /// Records one value (ns). 0 is recorded as 0; above the range, as the range's top.
  void record(uint64_t value) noexcept;
  /// Adds every count of `other` (same range, or a std::invalid_argument).
  void merge(const latency_histogram& other);
  void reset() noexcept;

  uint64_t count() const noexcept { return total_; }
  uint64_t saturated() const noexcept { return saturated_; }
  /// The exact largest and smallest values recorded (0 when empty).
  uint64_t max() const noexcept { return max_; }
  uint64_t min() const noexcept { return total_ == 0 ? 0 : min_; }
  double mean() const noexcept;

  /// The value at `percentile` (0 < p <= 100): the rank-th smallest value, rank =
  /// ceil(p / 100 * count), reported as the top of its sub-bucket (never below the exact
  /// value, at most 1/128 above it); 100 gives max(). 0 when empty.
  uint64_t percentile(double percentile) const noexcept;
  /// The rank percentile() uses, for tests that compare against an exact sort.
  static uint64_t rank_of(double percentile, uint64_t count) noexcept;

  /// The largest value that shares `value`'s sub-bucket (what percentile() reports).
  uint64_t highest_equivalent(uint64_t value) const noexcept;
  uint64_t highest_trackable() const noexcept { return highest_; }
  size_t memory_bytes() const noexcept { return counts_.size() * sizeof(uint64_t); }

private:
  size_t index_of(uint64_t value) const noexcept;
  uint64_t value_at(size_t index) const noexcept;

  uint64_t highest_;
  int bucket_count_ = 0;
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t saturated_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
  long double sum_ = 0;
};

} // namespace levee::load
