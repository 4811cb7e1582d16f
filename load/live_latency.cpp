#include "load/live_latency.hpp"

#include <algorithm>
#include <cmath>

namespace levee::load {

void live_latency::take(counts& into) noexcept {
  for (size_t b = 0; b < buckets_.size(); ++b)
    into[b] += buckets_[b].exchange(0, std::memory_order_relaxed);
}

uint64_t live_latency::total(const counts& c) noexcept {
  uint64_t n = 0;
  for (auto v : c)
    n += v;
  return n;
}

uint64_t live_latency::percentile(const counts& c, double p) noexcept {
  auto n = total(c);
  if (n == 0)
    return 0;
  // The rank of the exact order statistic, as latency_histogram takes it.
  auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(n))));
  uint64_t seen = 0;
  for (size_t b = 0; b < c.size(); ++b) {
    seen += c[b];
    if (seen >= rank)
      return latency_series::upper_us(b) * 1000;
  }
  return latency_series::upper_us(c.size() - 1) * 1000;
}

} // namespace levee::load
