#pragma once
// Requests in flight per requester (an actor id, or a connection id later), bounded by
// max_inflight_per_requester. Entries exist only while a requester has requests in
// flight, so memory is bounded by the number of requests accepted and not yet answered.
//
// Sharded by requester id; each shard's lock is held for one hash-map operation. Only
// requests pay this (fire-and-forget messages never touch the table).

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace levee {

class inflight_table {
public:
  /// Counts one more request of `requester` if it has fewer than `max` in flight; on
  /// failure `observed` is the count it would have reached.
  bool try_acquire(uint64_t requester, uint64_t max, uint64_t& observed);

  /// Counts one more request without checking the bound (a skipped request put back).
  void force_acquire(uint64_t requester);

  /// Ends one request counted by `try_acquire`.
  void release(uint64_t requester);

  /// Requests of `requester` in flight now.
  uint64_t in_flight(uint64_t requester) const;

private:
  static constexpr size_t shard_count = 16;
  struct shard {
    mutable std::mutex mtx;
    std::unordered_map<uint64_t, uint64_t> counts;
  };
  shard& shard_for(uint64_t requester) { return shards_[requester % shard_count]; }
  const shard& shard_for(uint64_t requester) const { return shards_[requester % shard_count]; }
  std::array<shard, shard_count> shards_;
};

} // namespace levee
