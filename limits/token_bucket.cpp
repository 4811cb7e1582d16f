#include "limits/token_bucket.hpp"

#include <algorithm>

namespace levee {

token_bucket::token_bucket(const clock_source& clock, uint64_t rate_per_sec, uint64_t burst)
  : clock_(clock), rate_(rate_per_sec), burst_(burst == 0 ? rate_per_sec : burst),
    tat_(clock.now_ns()) {
}

uint64_t token_bucket::cost_ns(uint64_t units, uint64_t rate) noexcept {
  // 128-bit so that a byte rate of several GB/s keeps sub-ns precision per message.
  auto ns = static_cast<unsigned __int128>(units) * 1'000'000'000u / rate;
  return ns > INT64_MAX / 4 ? INT64_MAX / 4 : static_cast<uint64_t>(ns);
}

token_bucket::decision token_bucket::try_acquire(uint64_t units) noexcept {
  auto rate = rate_.load(std::memory_order_relaxed);
  if (rate == 0)
    return {true, 0, false, 0};
  auto burst = burst_.load(std::memory_order_relaxed);
  if (units > burst)
    return {false, 0, true, units};
  auto cost = static_cast<int64_t>(cost_ns(units, rate));
  // The bucket may run at most `tolerance` ns ahead of now: that is the burst.
  auto tolerance = static_cast<int64_t>(cost_ns(burst, rate));
  auto now = clock_.now_ns();
  auto tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    auto next = std::max(tat, now) + cost;
    auto ahead = next - now;
    if (ahead > tolerance) {
      auto level = static_cast<unsigned __int128>(ahead) * rate / 1'000'000'000u;
      auto observed = std::max<uint64_t>(static_cast<uint64_t>(level), burst + 1);
      return {false, static_cast<uint64_t>(ahead - tolerance), false, observed};
    }
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_acq_rel,
                                   std::memory_order_relaxed))
      return {true, 0, false, 0};
  }
}

void token_bucket::refund(uint64_t units) noexcept {
  auto rate = rate_.load(std::memory_order_relaxed);
  if (rate == 0)
    return;
  // Moving TAT back restores exactly the capacity taken; if the bucket has been idle since,
  // max(TAT, now) in try_acquire keeps the refund from creating extra burst.
  tat_.fetch_sub(static_cast<int64_t>(cost_ns(units, rate)), std::memory_order_acq_rel);
}

void token_bucket::charge(uint64_t units) noexcept {
  auto rate = rate_.load(std::memory_order_relaxed);
  if (rate == 0)
    return;
  auto cost = static_cast<int64_t>(cost_ns(units, rate));
  auto now = clock_.now_ns();
  auto tat = tat_.load(std::memory_order_relaxed);
  while (!tat_.compare_exchange_weak(tat, std::max(tat, now) + cost, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
  }
}

uint64_t token_bucket::wait_ns() const noexcept {
  auto rate = rate_.load(std::memory_order_relaxed);
  if (rate == 0)
    return 0;
  auto burst = burst_.load(std::memory_order_relaxed);
  // One unit passes when TAT + its cost is within the burst's tolerance of now.
  auto ahead = tat_.load(std::memory_order_relaxed) + static_cast<int64_t>(cost_ns(1, rate))
               - clock_.now_ns();
  auto tolerance = static_cast<int64_t>(cost_ns(burst, rate));
  return ahead > tolerance ? static_cast<uint64_t>(ahead - tolerance) : 0;
}

uint64_t token_bucket::available() const noexcept {
  auto rate = rate_.load(std::memory_order_relaxed);
  if (rate == 0)
    return UINT64_MAX;
  auto burst = burst_.load(std::memory_order_relaxed);
  auto now = clock_.now_ns();
  auto ahead = std::max<int64_t>(tat_.load(std::memory_order_relaxed) - now, 0);
  auto room = static_cast<int64_t>(cost_ns(burst, rate)) - ahead;
  if (room <= 0)
    return 0;
  auto units = static_cast<unsigned __int128>(room) * rate / 1'000'000'000u;
  return std::min<uint64_t>(static_cast<uint64_t>(units), burst);
}

void token_bucket::reconfigure(uint64_t rate_per_sec, uint64_t burst) noexcept {
  auto old_rate = rate_.load(std::memory_order_relaxed);
  burst_.store(burst == 0 ? rate_per_sec : burst, std::memory_order_relaxed);
  rate_.store(rate_per_sec, std::memory_order_relaxed);
  // Carry the debt over in tokens, not in time: tokens owed at the old rate are owed at
  // the new one too. An idle bucket (or one that was disabled) starts full.
  auto now = clock_.now_ns();
  auto tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    int64_t next = now;
    if (old_rate != 0 && rate_per_sec != 0 && tat > now) {
      auto owed = static_cast<unsigned __int128>(tat - now) * old_rate / 1'000'000'000u;
      next = now + static_cast<int64_t>(cost_ns(static_cast<uint64_t>(owed), rate_per_sec));
    }
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_acq_rel))
      return;
  }
}

} // namespace levee
