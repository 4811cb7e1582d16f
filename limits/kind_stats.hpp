#pragma once
// Counters per actor kind (accepted, processed, rejected by code, depth and bytes with
// their high-water marks), read as a snapshot by `levee stats` and /metrics. The
// per-message counters live in each actor's gate (a `kind_stats_source`) and are summed
// at snapshot time; rejections and notices are kind-wide relaxed atomics. Nothing on the
// hot path takes a lock; locks are taken to add or remove an actor and to snapshot.

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

/// A live contributor to a kind's figures (one per actor: its gate keeps the per-message
/// counters on its own cache lines, so the hot path never touches kind-wide atomics).
class kind_stats_source {
public:
  virtual ~kind_stats_source() = default;
  /// Adds accepted, processed, dropped_on_exit, queued_* and raises max_actor_*.
  virtual void add_to(kind_stats_snapshot& s) const noexcept = 0;
};

class kind_stats {
public:
  explicit kind_stats(std::string kind) : kind_(std::move(kind)) {}

  const std::string& kind() const noexcept { return kind_; }

  /// A new actor of the kind; `src` must stay valid until `detach(src)`.
  void attach(const kind_stats_source* src);
  /// The actor is gone: its final figures are kept in the kind's totals.
  void detach(const kind_stats_source* src);

  void on_reject(code c) noexcept {
    rejected_[static_cast<size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  }
  void on_notice_sent() noexcept { notices_sent_.fetch_add(1, std::memory_order_relaxed); }
  void on_notice_coalesced() noexcept {
    notices_coalesced_.fetch_add(1, std::memory_order_relaxed);
  }

  uint64_t rejected(code c) const noexcept {
    return rejected_[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  }

  /// Sums the live actors and the retired ones. Takes the kind's lock briefly; the
  /// figures of different actors are read one after the other, not atomically together.
  kind_stats_snapshot snapshot() const;

private:
  std::string kind_;
  std::array<std::atomic<uint64_t>, max_code_number + 1> rejected_{};
  std::atomic<uint64_t> notices_sent_{0};
  std::atomic<uint64_t> notices_coalesced_{0};
  mutable std::mutex mtx_;
  std::vector<const kind_stats_source*> live_;  // guarded by mtx_
  kind_stats_snapshot retired_;                 // guarded by mtx_
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
