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
#include <string_view>
#include <vector>

#include "limits/error_code.hpp"

namespace levee {

/// Which of an actor gate's limits refused a message (actors/gate.hpp checks them, and
/// names the verdict with it). Here rather than in actors/ because a kind's counters keep
/// rejections by limit too: a fixed set, so one relaxed atomic per limit, no map and no
/// lock on the refusal path.
enum class gate_limit : uint8_t {
  none,
  max_message_bytes,
  max_inflight_per_requester,
  mailbox_capacity,
  mailbox_capacity_bytes,
  memory_budget_bytes,
  rate_msgs_per_sec,
  rate_bytes_per_sec,
};
constexpr size_t gate_limit_count = static_cast<size_t>(gate_limit::rate_bytes_per_sec) + 1;

/// The config key an operator changes to move limit `l` of actors of `kind` (a
/// rejection's `limit`): "limits.<kind>.mailbox_capacity", ..., but the node-wide
/// "limits.memory_budget_bytes" for the node budget; "" for `none`.
std::string gate_limit_key(std::string_view kind, gate_limit l);

struct kind_stats_snapshot {
  std::string kind;
  uint64_t accepted = 0;
  uint64_t processed = 0;
  /// Accepted but destroyed unprocessed because the actor terminated first.
  uint64_t dropped_on_exit = 0;
  std::array<uint64_t, max_code_number + 1> rejected{};  // indexed by code number
  /// The same refusals by the limit that refused, indexed by gate_limit (none stays 0).
  std::array<uint64_t, gate_limit_count> rejected_by_limit{};
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

  void on_reject(code c, gate_limit l) noexcept {
    rejected_[static_cast<size_t>(c)].fetch_add(1, std::memory_order_relaxed);
    rejected_by_limit_[static_cast<size_t>(l)].fetch_add(1, std::memory_order_relaxed);
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
  std::array<std::atomic<uint64_t>, gate_limit_count> rejected_by_limit_{};
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
