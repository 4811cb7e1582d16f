#pragma once
// The actor gate (ARCHITECTURE.md "The three gates", gate 2): the admission decision for one limited actor, made at
// enqueue time in the sender's thread, in O(1): message size cap, per-requester in-flight
// bound, mailbox bound (messages and bytes), message rate, byte rate, node budget — in
// that order; what the earlier checks reserved is given back when a later one refuses, so
// a refused message costs no capacity. (The mailbox bound is checked first with a plain
// read and taken last with one compare-and-swap, so nothing can refuse after it.)
//
// Guarantee of the mailbox bound: exact. The number of messages accepted and not yet
// handled (queued, stashed by a skip, or being handled right now) never exceeds
// mailbox_capacity, and their payload bytes never exceed mailbox_capacity_bytes, whatever
// the number of concurrent senders: both live in one atomic word changed by
// compare-and-swap. The same holds for the node budget. A request stops counting against
// its requester's in-flight bound when the actor starts handling it, so the requester's
// slot is free before the response leaves.
//
// The gate has no CAF dependency beyond names; actors/limited_actor.hpp wires it into CAF.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "actors/rejection_notice.hpp"
#include "limits/mailbox_bound.hpp"
#include "limits/clock.hpp"
#include "limits/inflight_table.hpp"
#include "limits/kind_stats.hpp"
#include "limits/limits_config.hpp"
#include "limits/log_limiter.hpp"
#include "limits/node_budget.hpp"
#include "limits/rejection.hpp"
#include "limits/status.hpp"
#include "limits/token_bucket.hpp"

namespace levee {

/// Shared by every actor of one kind on a node.
struct kind_context {
  kind_context(std::shared_ptr<kind_stats> stats, const clock_source& clock,
               uint64_t log_lines_per_sec, uint64_t log_burst)
    : stats(std::move(stats)), log(clock, log_lines_per_sec, log_burst) {}
  std::shared_ptr<kind_stats> stats;
  log_limiter log;
};

/// What an accepted message counts against the gate: computed from the message itself
/// (payload bytes, requesting actor), so it can be computed again when the actor takes the
/// message up instead of being stored with it.
struct gate_ticket {
  uint64_t bytes = 0;
  uint64_t requester = 0;  // non-zero: a request counted in the in-flight table
};

/// Which limit refused, without building strings (that happens only when someone reads it).
struct verdict {
  using limit = gate_limit;  // limits/kind_stats.hpp: the kind counts refusals by it
  limit which = limit::none;
  /// The gate is closed (the actor terminated): neither accepted nor refused by a limit;
  /// the caller lets CAF bounce the message as for any terminated actor.
  bool closed = false;
  uint64_t observed = 0;
  uint64_t max = 0;
  uint64_t retry_after_ms = 0;

  bool accepted() const noexcept { return which == limit::none && !closed; }
  levee::code code() const noexcept;
};

class gate final : public kind_stats_source {
public:
  /// `budget` and `kind` are shared with the node; `clock` must outlive the gate.
  gate(std::string kind, const actor_limits& limits, std::shared_ptr<kind_context> kind_ctx,
       std::shared_ptr<node_budget> budget, const clock_source& clock);
  ~gate() override;

  gate(const gate&) = delete;
  gate& operator=(const gate&) = delete;

  // -- the enqueue protocol ------------------------------------------------------------
  //
  //   v = g.admit(ticket): accepted -> enqueue; refused -> answer the sender;
  //                        closed   -> the actor terminated: let CAF bounce the message
  //
  // when the actor starts handling a message: g.on_handling(ticket); when it is done:
  // g.on_handled(ticket), or g.on_skipped(ticket) if it put the message back. When the
  // actor terminates, after CAF closed and drained its mailbox:
  // g.close() gives back everything still counted, so the node budget stays exact across
  // termination: an admission racing with close() either counted before the close (and is
  // given back by it) or finds the gate closed (and gives back its own reservations).

  /// Decides on one message; `ticket.requester` is the requesting actor's key for a
  /// request, 0 for fire-and-forget. O(1); thread-safe.
  verdict admit(const gate_ticket& ticket) noexcept;

  /// The actor starts handling an accepted message: a request leaves its requester's
  /// in-flight count. Only from the actor's own thread.
  void on_handling(const gate_ticket& ticket) noexcept;

  /// The actor handled the message: it no longer counts against the mailbox bound and the
  /// node budget. Only from the actor's own thread.
  void on_handled(const gate_ticket& ticket) noexcept;

  /// The actor skipped the message (CAF stashes it; it stays counted): a request counts
  /// in flight again, without a bound check — it was accepted once.
  void on_skipped(const gate_ticket& ticket) noexcept;

  /// Stops admitting and gives back what accepted messages that were never handled still
  /// hold (counted as dropped on exit). Idempotent. Only from the actor's own thread (or
  /// when no one else uses the gate any more).
  void close() noexcept;

  /// The full rejection for a verdict (code, config key, observed, max, retry, sentence).
  rejection explain(const verdict& v) const;

  /// Counts and logs (rate-limited) a refusal.
  void record_rejection(const verdict& v);

  /// Folds a refused fire-and-forget message from `sender_id` into that sender's notice
  /// tally. Returns the tally when a new notice must be sent (none is on its way), or
  /// nullptr when the rejection joined a notice already on its way.
  std::shared_ptr<notice_tally> fold_into_notice(uint64_t sender_id);

  // -- live changes (thread-safe; take effect for the next message) -------------------

  /// Changes the message size cap; refuses values that break validate().
  status set_max_message_bytes(uint64_t bytes);
  /// Changes the rates (0 = unlimited) and bursts (0 = one second's worth).
  status set_rates(uint64_t msgs_per_sec, uint64_t burst_msgs, uint64_t bytes_per_sec,
                   uint64_t burst_bytes);

  // -- observers ----------------------------------------------------------------------

  const std::string& kind() const noexcept { return kind_; }
  actor_limits limits() const;
  uint64_t depth() const noexcept { return mailbox_.messages(); }
  uint64_t queued_bytes() const noexcept { return mailbox_.bytes(); }
  uint64_t depth_high_water() const noexcept { return mailbox_.messages_high_water(); }
  uint64_t bytes_high_water() const noexcept { return mailbox_.bytes_high_water(); }
  uint64_t in_flight(uint64_t requester) const { return inflight_.in_flight(requester); }
  kind_stats& stats() noexcept { return *kind_ctx_->stats; }

  void add_to(kind_stats_snapshot& s) const noexcept override;

private:
  const std::string kind_;
  std::shared_ptr<kind_context> kind_ctx_;
  std::shared_ptr<node_budget> budget_;

  mutable std::mutex limits_mtx_;  // serializes live changes; never taken by admit()
  actor_limits limits_;    // guarded by limits_mtx_ (the live values are the atomics below)
  std::atomic<uint64_t> max_message_bytes_;
  const uint64_t max_inflight_;
  const uint64_t retry_after_ms_;

  // Written by senders and by the actor on every message.
  alignas(64) mailbox_bound mailbox_;
  // Written only by the actor's thread (plain stores), read by snapshots.
  std::atomic<uint64_t> processed_{0};
  std::atomic<uint64_t> dropped_{0};
  token_bucket msg_rate_;
  token_bucket byte_rate_;
  inflight_table inflight_;

  std::mutex notices_mtx_;
  std::unordered_map<uint64_t, std::shared_ptr<notice_tally>> tallies_;
};

} // namespace levee
