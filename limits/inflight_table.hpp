#pragma once
// Requests in flight per requester (an actor id, or a connection id later), bounded by
// max_inflight_per_requester.
//
// Fast path: a small lock-free table — a requester hashes to a window of 8 slots, each
// slot one 64-bit word packing (requester key, count), changed with one compare-and-swap.
// A requester that finds no free slot in its window (many distinct requesters at once)
// goes to a mutex-guarded map instead. A requester's entry exists only while it has
// requests in flight, so memory is bounded by the requests accepted and not yet taken up.
//
// Exactness: the bound is exact under any concurrency. An entry is created only under the
// overflow lock after looking again, so a requester never has two entries; counts change
// by compare-and-swap on the one word that holds them.

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace levee {

class inflight_table {
public:
  /// Counts one more request of `requester` if it has fewer than `max` in flight; on
  /// failure `observed` is the count it would have reached. `max` < 2^24.
  bool try_acquire(uint64_t requester, uint64_t max, uint64_t& observed);

  /// Counts one more request without checking the bound (a skipped request put back).
  void force_acquire(uint64_t requester);

  /// Ends one request counted by `try_acquire` or `force_acquire`.
  void release(uint64_t requester);

  /// Requests of `requester` in flight now.
  uint64_t in_flight(uint64_t requester) const;

private:
  static constexpr size_t slot_count = 64;
  static constexpr size_t window = 8;
  static constexpr uint64_t count_bits = 24;
  static constexpr uint64_t count_mask = (uint64_t{1} << count_bits) - 1;

  static uint64_t key_of(uint64_t requester) noexcept;
  /// The slot holding `key` in its window, or nullptr.
  std::atomic<uint64_t>* find(uint64_t key) noexcept;
  const std::atomic<uint64_t>* find(uint64_t key) const noexcept;
  /// Adds one to the slot of `key` if its count is below `max`. Returns false (with the
  /// count seen in `observed`) at the bound; sets `found` = false if the slot vanished.
  bool bump(std::atomic<uint64_t>& slot, uint64_t key, uint64_t max, uint64_t& observed,
            bool& found) noexcept;

  std::array<std::atomic<uint64_t>, slot_count> slots_{};
  mutable std::mutex overflow_mtx_;
  std::unordered_map<uint64_t, uint64_t> overflow_;  // requester key -> count
};

} // namespace levee
