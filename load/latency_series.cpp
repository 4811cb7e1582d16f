#include "load/latency_series.hpp"

#include <algorithm>
#include <cmath>

namespace levee::load {

size_t latency_series::bucket_of(uint64_t us) noexcept {
  if (us < 8)
    return static_cast<size_t>(us);
  us = std::min<uint64_t>(us, (uint64_t{1} << 32) - 1);  // the top bucket holds the rest
  auto msb = static_cast<size_t>(63 - __builtin_clzll(us));  // 3 .. 31
  auto sub = static_cast<size_t>((us >> (msb - 3)) & 7);
  return (msb - 2) * 8 + sub;
}

uint64_t latency_series::upper_us(size_t b) noexcept {
  if (b < 8)
    return b + 1;
  auto msb = b / 8 + 2;
  auto sub = b % 8;
  return (9 + uint64_t{sub}) << (msb - 3);
}

void latency_series::widen_to(uint64_t width) {
  while (width_ < width) {
    std::vector<std::array<uint32_t, buckets>> merged((slots_.size() + 1) / 2);
    for (size_t i = 0; i < slots_.size(); ++i)
      for (size_t b = 0; b < buckets; ++b)
        merged[i / 2][b] += slots_[i][b];
    slots_ = std::move(merged);
    width_ *= 2;
  }
}

void latency_series::record(uint64_t second, uint64_t ns) {
  while (second / width_ >= max_slots)
    widen_to(width_ * 2);
  auto slot = static_cast<size_t>(second / width_);
  if (slots_.size() <= slot)
    slots_.resize(slot + 1, std::array<uint32_t, buckets>{});
  auto& count = slots_[slot][bucket_of(ns / 1000)];
  if (count < UINT32_MAX)  // a slot of more than 4e9 sends keeps its top count
    ++count;
}

void latency_series::merge(const latency_series& other) {
  auto copy = other;
  auto width = std::max(width_, other.width_);
  widen_to(width);
  copy.widen_to(width);
  if (slots_.size() < copy.slots_.size())
    slots_.resize(copy.slots_.size(), std::array<uint32_t, buckets>{});
  for (size_t i = 0; i < copy.slots_.size(); ++i)
    for (size_t b = 0; b < buckets; ++b)
      slots_[i][b] = static_cast<uint32_t>(
        std::min<uint64_t>(UINT32_MAX, uint64_t{slots_[i][b]} + copy.slots_[i][b]));
}

uint64_t latency_series::count(size_t slot) const noexcept {
  uint64_t n = 0;
  for (auto c : slots_[slot])
    n += c;
  return n;
}

uint64_t latency_series::percentile(size_t slot, double p) const noexcept {
  auto n = count(slot);
  if (n == 0)
    return 0;
  // The rank of the exact order statistic, as latency_histogram takes it.
  auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(n))));
  uint64_t seen = 0;
  for (size_t b = 0; b < buckets; ++b) {
    seen += slots_[slot][b];
    if (seen >= rank)
      return upper_us(b) * 1000;
  }
  return upper_us(buckets - 1) * 1000;
}

} // namespace levee::load
