#pragma once
// Counters per actor kind (accepted, processed, rejected by code, depth and bytes with
// their high-water marks): relaxed atomics written on the hot path, read as a snapshot by
// `levee stats` and /metrics. Lock-free to update; the registry's lock is taken only to
// create a kind or to list kinds.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "limits/error_code.hpp"

namespace levee {

struct kind_stats_snapshot {
  std::string kind;
  uint64_t accepted = 0;
  uint64_t processed = 0;
  /// Accepted but destroyed unprocessed because the actor terminated first.
  uint64_t dropped_on_exit = 0;
  std::array<uint64_t, max_code_number + 1> rejected{};  // indexed by code number
  uint64_t notices_sent = 0;       // rejection notices enqueued to senders
  uint64_t notices_coalesced = 0;  // rejections folded into a notice already on its way
  uint64_t queued_messages = 0;    // now, summed over the kind's actors
  uint64_t queued_bytes = 0;
  uint64_t max_actor_depth = 0;    // high water of one actor's mailbox, messages
  uint64_t max_actor_bytes = 0;    // high water of one actor's mailbox, bytes
  uint64_t actors = 0;             // live actors of the kind

  uint64_t rejected_total() const;
};

class kind_stats {
public:
  explicit kind_stats(std::string kind) : kind_(std::move(kind)) {}

  const std::string& kind() const noexcept { return kind_; }

  void on_accept(uint64_t bytes, uint64_t actor_depth, uint64_t actor_bytes) noexcept;
  void on_release(uint64_t bytes, bool processed) noexcept;
  /// A processed message was put back (skipped by the actor): it is queued again.
  void on_requeue(uint64_t bytes) noexcept;
  void on_reject(code c) noexcept {
    rejected_[static_cast<size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  }
  void on_notice_sent() noexcept { notices_sent_.fetch_add(1, std::memory_order_relaxed); }
  void on_notice_coalesced() noexcept {
    notices_coalesced_.fetch_add(1, std::memory_order_relaxed);
  }
  void on_actor_started() noexcept { actors_.fetch_add(1, std::memory_order_relaxed); }
  void on_actor_stopped() noexcept { actors_.fetch_sub(1, std::memory_order_relaxed); }

  uint64_t rejected(code c) const noexcept {
    return rejected_[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  }

  kind_stats_snapshot snapshot() const;

private:
  static void raise(std::atomic<uint64_t>& hw, uint64_t v) noexcept {
    auto cur = hw.load(std::memory_order_relaxed);
    while (v > cur && !hw.compare_exchange_weak(cur, v, std::memory_order_relaxed))
      ;
  }

  std::string kind_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> processed_{0};
  std::atomic<uint64_t> dropped_on_exit_{0};
  std::array<std::atomic<uint64_t>, max_code_number + 1> rejected_{};
  std::atomic<uint64_t> notices_sent_{0};
  std::atomic<uint64_t> notices_coalesced_{0};
  std::atomic<uint64_t> queued_messages_{0};
  std::atomic<uint64_t> queued_bytes_{0};
  std::atomic<uint64_t> max_actor_depth_{0};
  std::atomic<uint64_t> max_actor_bytes_{0};
  std::atomic<uint64_t> actors_{0};
};

/// All kinds of one node. Entries live as long as the registry (stable references).
class stats_registry {
public:
  /// The stats of `kind`, created on first use. Thread-safe.
  std::shared_ptr<kind_stats> for_kind(const std::string& kind);

  /// Snapshots of every kind, sorted by name.
  std::vector<kind_stats_snapshot> snapshot() const;

private:
  mutable std::mutex mtx_;
  std::map<std::string, std::shared_ptr<kind_stats>> kinds_;
};

} // namespace levee
