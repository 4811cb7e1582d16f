#pragma once
// How long queries take, as the router sees them: a count per fixed bucket and a sum, for
// `levee stats` and /metrics (StatsReply.queries.duration_us). Plain C++; one relaxed add
// per query on the router's thread, read by whoever fills the stats.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace levee::server {

class duration_histogram {
public:
  /// Upper bounds of the buckets, us, ascending: from a query answered out of a store's
  /// cache (well under 1 ms) to one near server.query_deadline_ms's ceiling. A last
  /// bucket counts what is above them all.
  static constexpr std::array<uint64_t, 14> bounds_us{
    100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000, 100'000, 250'000,
    1'000'000, 5'000'000, 30'000'000};
  static constexpr size_t buckets = bounds_us.size() + 1;

  void observe(uint64_t us) noexcept {
    size_t i = 0;
    while (i < bounds_us.size() && us > bounds_us[i])
      ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(us, std::memory_order_relaxed);
  }

  /// Values at most bounds_us[i] and above bounds_us[i - 1]; i == bounds_us.size(): above
  /// every bound.
  uint64_t count(size_t i) const noexcept { return counts_[i].load(std::memory_order_relaxed); }
  uint64_t sum_us() const noexcept { return sum_us_.load(std::memory_order_relaxed); }

private:
  std::array<std::atomic<uint64_t>, buckets> counts_{};
  std::atomic<uint64_t> sum_us_{0};
};

} // namespace levee::server
