#include "limits/inflight_table.hpp"

namespace levee {

uint64_t inflight_table::key_of(uint64_t requester) noexcept {
  // A 40-bit key, never 0 (0 marks a free slot): a mixed hash of the id, so that nearby
  // ids spread over the table. Distinct requesters sharing a key would share a count; with
  // 40 bits that needs ~10^6 requesters in flight at once on one actor.
  auto x = requester * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  auto key = x >> count_bits;
  return key == 0 ? 1 : key;
}

std::atomic<uint64_t>* inflight_table::find(uint64_t key) noexcept {
  auto start = key % slot_count;
  for (size_t i = 0; i < window; ++i) {
    auto& slot = slots_[(start + i) % slot_count];
    if ((slot.load(std::memory_order_acquire) >> count_bits) == key)
      return &slot;
  }
  return nullptr;
}

const std::atomic<uint64_t>* inflight_table::find(uint64_t key) const noexcept {
  return const_cast<inflight_table*>(this)->find(key);
}

bool inflight_table::bump(std::atomic<uint64_t>& slot, uint64_t key, uint64_t max,
                          uint64_t& observed, bool& found) noexcept {
  auto v = slot.load(std::memory_order_acquire);
  for (;;) {
    if ((v >> count_bits) != key) {
      found = false;
      return false;
    }
    auto count = v & count_mask;
    if (count >= max) {
      observed = count + 1;
      found = true;
      return false;
    }
    if (slot.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) {
      found = true;
      return true;
    }
  }
}

bool inflight_table::try_acquire(uint64_t requester, uint64_t max, uint64_t& observed) {
  auto key = key_of(requester);
  for (;;) {
    if (auto slot = find(key)) {
      bool found = false;
      if (bump(*slot, key, max, observed, found))
        return true;
      if (found)
        return false;  // at the bound
      continue;        // the slot was freed meanwhile: look again
    }
    // Not in the fast table: the overflow map may hold it; else claim a free slot. New
    // entries are made only under the lock, after looking again, so a key never has two.
    std::lock_guard<std::mutex> guard{overflow_mtx_};
    if (auto slot = find(key)) {
      bool found = false;
      if (bump(*slot, key, max, observed, found))
        return true;
      if (found)
        return false;
      continue;
    }
    if (auto i = overflow_.find(key); i != overflow_.end()) {
      if (i->second >= max) {
        observed = i->second + 1;
        return false;
      }
      ++i->second;
      return true;
    }
    if (max == 0) {
      observed = 1;
      return false;
    }
    auto start = key % slot_count;
    for (size_t i = 0; i < window; ++i) {
      auto& slot = slots_[(start + i) % slot_count];
      uint64_t empty = 0;
      if (slot.compare_exchange_strong(empty, (key << count_bits) | 1,
                                       std::memory_order_acq_rel))
        return true;
    }
    overflow_[key] = 1;
    return true;
  }
}

void inflight_table::force_acquire(uint64_t requester) {
  uint64_t observed = 0;
  try_acquire(requester, count_mask, observed);
}

void inflight_table::release(uint64_t requester) {
  auto key = key_of(requester);
  // A key has one entry, and it cannot vanish while this request is counted in it.
  if (auto slot = find(key)) {
    auto v = slot->load(std::memory_order_acquire);
    while ((v >> count_bits) == key) {
      auto next = (v & count_mask) <= 1 ? 0 : v - 1;
      if (slot->compare_exchange_weak(v, next, std::memory_order_acq_rel))
        return;
    }
  }
  std::lock_guard<std::mutex> guard{overflow_mtx_};
  if (auto i = overflow_.find(key); i != overflow_.end() && --i->second == 0)
    overflow_.erase(i);
}

uint64_t inflight_table::in_flight(uint64_t requester) const {
  auto key = key_of(requester);
  if (auto slot = find(key))
    return slot->load(std::memory_order_acquire) & count_mask;
  std::lock_guard<std::mutex> guard{overflow_mtx_};
  auto i = overflow_.find(key);
  return i == overflow_.end() ? 0 : i->second;
}

} // namespace levee
