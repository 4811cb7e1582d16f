#include "load/latency_histogram.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace levee::load {

namespace {

constexpr int half_bits = latency_histogram::sub_bucket_bits - 1;
constexpr uint64_t sub_bucket_count = uint64_t{1} << latency_histogram::sub_bucket_bits;
constexpr uint64_t half_count = sub_bucket_count / 2;

int leading_zeros(uint64_t v) noexcept { return __builtin_clzll(v); }

} // namespace

latency_histogram::latency_histogram(uint64_t highest_trackable)
    : highest_(std::max<uint64_t>(highest_trackable, sub_bucket_count)) {
  // Bucket b holds [half_count << b, sub_bucket_count << b) at a resolution of 2^b (bucket
  // 0 also holds [0, half_count) at 1): enough buckets that the top one reaches highest_.
  bucket_count_ = 1;
  while ((sub_bucket_count << (bucket_count_ - 1)) <= highest_ && bucket_count_ < 64 - sub_bucket_bits)
    ++bucket_count_;
  counts_.assign(static_cast<size_t>(bucket_count_ + 1) * half_count, 0);
}

size_t latency_histogram::index_of(uint64_t value) const noexcept {
  // The bucket is the power of two above the sub-bucket range (HdrHistogram's
  // countsArrayIndex with unit magnitude 0).
  int bucket = (64 - sub_bucket_bits) - leading_zeros(value | (sub_bucket_count - 1));
  uint64_t sub = value >> bucket;
  return (static_cast<size_t>(bucket + 1) << half_bits) + static_cast<size_t>(sub - half_count);
}

uint64_t latency_histogram::value_at(size_t index) const noexcept {
  int bucket = static_cast<int>(index >> half_bits) - 1;
  uint64_t sub = (index & (half_count - 1)) + half_count;
  if (bucket < 0) {
    sub -= half_count;
    bucket = 0;
  }
  return sub << bucket;
}

uint64_t latency_histogram::highest_equivalent(uint64_t value) const noexcept {
  auto index = index_of(value);
  int bucket = std::max(0, static_cast<int>(index >> half_bits) - 1);
  return value_at(index) + (uint64_t{1} << bucket) - 1;
}

void latency_histogram::record(uint64_t value) noexcept {
  if (value > highest_) {
    value = highest_;
    ++saturated_;
  }
  ++counts_[index_of(value)];
  ++total_;
  max_ = std::max(max_, value);
  min_ = std::min(min_, value);
  sum_ += value;
}

void latency_histogram::merge(const latency_histogram& other) {
  if (other.counts_.size() != counts_.size())
    throw std::invalid_argument("latency_histogram::merge: the histograms have different ranges");
  for (size_t i = 0; i < counts_.size(); ++i)
    counts_[i] += other.counts_[i];
  total_ += other.total_;
  saturated_ += other.saturated_;
  max_ = std::max(max_, other.max_);
  min_ = std::min(min_, other.min_);
  sum_ += other.sum_;
}

void latency_histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = saturated_ = max_ = 0;
  min_ = UINT64_MAX;
  sum_ = 0;
}

double latency_histogram::mean() const noexcept {
  return total_ == 0 ? 0.0 : static_cast<double>(sum_ / total_);
}

uint64_t latency_histogram::rank_of(double percentile, uint64_t count) noexcept {
  if (count == 0)
    return 0;
  // The small epsilon keeps 99.9 % of 1000 at rank 999 although 0.999 * 1000 is
  // 999.0000000000001 in binary floating point.
  auto rank = static_cast<uint64_t>(std::ceil(percentile / 100.0 * static_cast<double>(count) - 1e-9));
  return std::clamp<uint64_t>(rank, 1, count);
}

uint64_t latency_histogram::percentile(double p) const noexcept {
  if (total_ == 0)
    return 0;
  if (p >= 100.0)
    return max_;
  uint64_t rank = rank_of(p, total_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank)
      // The top of the sub-bucket, but never above the exact max (the top sub-bucket
      // may reach past it).
      return std::min(highest_equivalent(value_at(i)), max_);
  }
  return max_;
}

} // namespace levee::load
