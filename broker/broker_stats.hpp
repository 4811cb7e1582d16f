#pragma once
// The broker's counters (README.md "Stats"): written by the broker and its leaders, read
// by StatsReply and the tests from any thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "limits/error_code.hpp"
#include "limits/rejection.hpp"

namespace levee::broker {

struct broker_stats {
  std::atomic<uint64_t> streams{0};          // gauge: streams in the table (not __cursors)
  std::atomic<uint64_t> partitions{0};       // gauge: their partitions
  std::atomic<uint64_t> publishes{0};        // Publish requests taken
  std::atomic<uint64_t> messages_stored{0};  // copies stored (not duplicates)
  std::atomic<uint64_t> acks{0};             // MessageAcks answered
  std::atomic<uint64_t> duplicates{0};       // acks marked duplicate
  std::atomic<uint64_t> subscriptions{0};    // Subscribe requests started
  std::atomic<uint64_t> batches_sent{0};     // MessageBatch parts sent to subscribers
  // Times a subscription was held back by [limits.consumer]'s rates after a batch.
  std::atomic<uint64_t> subscriptions_paced{0};
  std::atomic<uint64_t> unacked_refusals{0};  // refusals of ack = none publishes (logged)
  // Replication (README.md "Replicas"); its refusals (insufficient_replicas, not_leader)
  // are counted by code and limit below.
  std::atomic<uint64_t> fetches_served{0};       // Fetch answers a leader gave followers
  std::atomic<uint64_t> fetch_bytes_served{0};   // batch bytes in them
  std::atomic<uint64_t> fetches_made{0};         // Fetch answers a follower applied
  std::atomic<uint64_t> bytes_copied{0};         // batch bytes it appended from them
  std::atomic<uint64_t> truncations{0};          // follower logs cut by leader epoch
  std::atomic<uint64_t> isr_shrinks{0};          // ISR shrinks asked of the controller
  std::atomic<uint64_t> isr_expands{0};          // ISR grows asked of the controller
  std::atomic<uint64_t> acks_waited{0};          // ack = all publishes held for the mark
  std::array<std::atomic<uint64_t>, max_code_number + 1> rejections{};  // by code

  /// Counts a refusal by its code and, when a limit made it, by the limit's key.
  void count(const rejection& r) {
    rejections[static_cast<size_t>(r.code)].fetch_add(1);
    if (r.limit.empty())
      return;
    std::lock_guard<std::mutex> lock{mtx_};
    ++by_limit_[r.limit];
  }
  uint64_t rejected(code c) const { return rejections[static_cast<size_t>(c)].load(); }
  std::map<std::string, uint64_t> rejected_by_limit() const {
    std::lock_guard<std::mutex> lock{mtx_};
    return by_limit_;
  }

private:
  mutable std::mutex mtx_;
  std::map<std::string, uint64_t> by_limit_;
};

} // namespace levee::broker
