#include "actors/gate.hpp"

#include "limits/defaults.hpp"

#include <algorithm>
#include <thread>

namespace levee {

levee::code verdict::code() const noexcept {
  switch (which) {
    case limit::max_message_bytes:
      return code::message_too_large;
    case limit::max_inflight_per_requester:
      return code::too_many_inflight;
    case limit::mailbox_capacity:
    case limit::mailbox_capacity_bytes:
      return code::mailbox_full;
    case limit::memory_budget_bytes:
      return code::memory_budget_exhausted;
    case limit::rate_msgs_per_sec:
    case limit::rate_bytes_per_sec:
      return code::rate_limited;
    case limit::none:
      break;
  }
  return code::bad_request;
}

gate::gate(std::string kind, const actor_limits& limits,
           std::shared_ptr<kind_context> kind_ctx, std::shared_ptr<node_budget> budget,
           const clock_source& clock)
  : kind_(std::move(kind)),
    kind_ctx_(std::move(kind_ctx)),
    budget_(std::move(budget)),
    limits_(limits),
    max_message_bytes_(limits.max_message_bytes),
    max_inflight_(limits.max_inflight_per_requester),
    retry_after_ms_(limits.overload_retry_after_ms),
    mailbox_(limits.mailbox_capacity, limits.mailbox_capacity_bytes),
    msg_rate_(clock, limits.rate_msgs_per_sec, limits.rate_burst_msgs),
    byte_rate_(clock, limits.rate_bytes_per_sec, limits.rate_burst_bytes) {
  kind_ctx_->stats->attach(this);
}

gate::~gate() {
  close();
  kind_ctx_->stats->detach(this);
}


namespace {

void add_relaxed(std::atomic<uint64_t>& x, int64_t n) noexcept {
  // Single writer: a load and a store, no locked read-modify-write.
  x.store(x.load(std::memory_order_relaxed) + static_cast<uint64_t>(n), std::memory_order_relaxed);
}

} // namespace

void gate::close() noexcept {
  uint64_t messages = 0, bytes = 0;
  mailbox_.close(messages, bytes);
  budget_->release(bytes);
  add_relaxed(dropped_, static_cast<int64_t>(messages));
}

void gate::add_to(kind_stats_snapshot& s) const noexcept {
  auto processed = processed_.load(std::memory_order_relaxed);
  auto dropped = dropped_.load(std::memory_order_relaxed);
  auto queued = mailbox_.messages();
  s.accepted += processed + dropped + queued;
  s.processed += processed;
  s.dropped_on_exit += dropped;
  s.queued_messages += queued;
  s.queued_bytes += mailbox_.bytes();
  s.max_actor_depth = std::max(s.max_actor_depth, mailbox_.messages_high_water());
  s.max_actor_bytes = std::max(s.max_actor_bytes, mailbox_.bytes_high_water());
}

verdict gate::admit(const gate_ticket& ticket) noexcept {
  using L = verdict::limit;
  using R = mailbox_bound::result;
  auto bytes = ticket.bytes;
  auto requester = ticket.requester;
  verdict v;
  auto refuse = [&](L which, uint64_t observed, uint64_t max, uint64_t retry_ms) {
    v.which = which;
    v.observed = observed;
    v.max = max;
    v.retry_after_ms = retry_ms;
    return v;
  };
  auto mailbox_refusal = [&](R r, uint64_t observed) {
    if (r == R::closed) {
      v.closed = true;
      return v;
    }
    if (r == R::too_many_messages)
      return refuse(L::mailbox_capacity, observed, mailbox_.max_messages(), retry_after_ms_);
    return refuse(L::mailbox_capacity_bytes, observed, mailbox_.max_bytes(), retry_after_ms_);
  };
  auto cap = max_message_bytes_.load(std::memory_order_relaxed);
  if (bytes > cap)
    return refuse(L::max_message_bytes, bytes, cap, 0);
  uint64_t observed = 0;
  if (requester != 0 && !inflight_.try_acquire(requester, max_inflight_, observed))
    return refuse(L::max_inflight_per_requester, observed, max_inflight_, retry_after_ms_);
  auto undo_inflight = [&] {
    if (requester != 0)
      inflight_.release(requester);
  };
  // A full mailbox is the common refusal under overload: find it with one read, before
  // touching rates or the node-wide budget.
  if (auto r = mailbox_.would_fit(bytes, observed); r != R::added) {
    undo_inflight();
    return mailbox_refusal(r, observed);
  }
  if (auto d = msg_rate_.try_acquire(1); !d.allowed) {
    undo_inflight();
    return refuse(L::rate_msgs_per_sec, d.observed_units, msg_rate_.burst(),
                  token_bucket::to_retry_ms(d.retry_after_ns));
  }
  if (auto d = byte_rate_.try_acquire(bytes); !d.allowed) {
    msg_rate_.refund(1);
    undo_inflight();
    // A message larger than the byte burst can never pass at this setting: don't retry.
    return refuse(L::rate_bytes_per_sec, d.observed_units, byte_rate_.burst(),
                  d.never ? 0 : token_bucket::to_retry_ms(d.retry_after_ns));
  }
  auto undo_rates = [&] {
    byte_rate_.refund(bytes);
    msg_rate_.refund(1);
  };
  if (!budget_->try_acquire(bytes, observed)) {
    undo_rates();
    undo_inflight();
    return refuse(L::memory_budget_bytes, observed, budget_->max(), retry_after_ms_);
  }
  // Last, and the only step that cannot be undone by a later one.
  if (auto r = mailbox_.try_add(bytes, observed); r != R::added) {
    budget_->release(bytes);
    undo_rates();
    undo_inflight();
    return mailbox_refusal(r, observed);
  }
  return v;
}

void gate::on_handling(const gate_ticket& ticket) noexcept {
  if (ticket.requester != 0)
    inflight_.release(ticket.requester);
}

void gate::on_handled(const gate_ticket& ticket) noexcept {
  mailbox_.remove(ticket.bytes);
  budget_->release(ticket.bytes);
  add_relaxed(processed_, 1);
}

void gate::on_skipped(const gate_ticket& ticket) noexcept {
  if (ticket.requester != 0)
    inflight_.force_acquire(ticket.requester);
}

rejection gate::explain(const verdict& v) const {
  using L = verdict::limit;
  rejection r;
  r.code = v.code();
  r.observed = v.observed;
  r.max = v.max;
  r.retry_after_ms = v.retry_after_ms;
  r.limit = gate_limit_key(kind_, v.which);
  switch (v.which) {
    case L::max_message_bytes:
      r.detail = "the message has " + std::to_string(v.observed) + " payload bytes, more than "
                 + kind_ + " accepts; split it or ask for a permit";
      break;
    case L::max_inflight_per_requester:
      r.detail = "this requester already has " + std::to_string(v.max)
                 + " requests in flight to this " + kind_ + "; wait for answers first";
      break;
    case L::mailbox_capacity:
      r.detail = "the " + kind_ + " mailbox holds " + std::to_string(v.max)
                 + " messages already; send slower or retry later";
      break;
    case L::mailbox_capacity_bytes:
      r.detail = "the " + kind_ + " mailbox holds its maximum of " + std::to_string(v.max)
                 + " payload bytes; send slower or retry later";
      break;
    case L::memory_budget_bytes:
      r.detail = "the node's budget of " + std::to_string(v.max)
                 + " queued bytes is used up; retry later";
      break;
    case L::rate_msgs_per_sec:
      r.detail = kind_ + " accepts " + std::to_string(limits().rate_msgs_per_sec)
                 + " messages per second with bursts of " + std::to_string(v.max)
                 + " (observed and max are burst levels)";
      break;
    case L::rate_bytes_per_sec:
      r.detail = v.retry_after_ms == 0
                   ? "the message is larger than the byte-rate burst of " + kind_
                   : kind_ + " accepts " + std::to_string(limits().rate_bytes_per_sec)
                       + " bytes per second with bursts of " + std::to_string(v.max)
                       + " bytes (observed and max are burst levels)";
      break;
    case L::none:
      r.detail = "accepted";
      break;
  }
  return r;
}

void gate::record_rejection(const verdict& v) {
  kind_ctx_->stats->on_reject(v.code(), v.which);
  if (kind_ctx_->log.admit())  // strings are built only for lines that are written
    kind_ctx_->log.write(kind_, explain(v));
}

std::shared_ptr<notice_tally> gate::fold_into_notice(uint64_t sender_id) {
  std::shared_ptr<notice_tally> tally;
  {
    std::lock_guard<std::mutex> guard{notices_mtx_};
    auto& slot = tallies_[sender_id];
    if (!slot)
      slot = std::make_shared<notice_tally>();
    tally = slot;
    // Tallies of senders with no notice on its way carry no state worth keeping.
    if (tallies_.size() > defaults::notice_table_slots) {
      for (auto i = tallies_.begin(); i != tallies_.end();) {
        if (i->second != tally && !i->second->outstanding.load())
          i = tallies_.erase(i);
        else
          ++i;
      }
    }
  }
  tally->count.fetch_add(1, std::memory_order_seq_cst);
  if (!tally->outstanding.exchange(true, std::memory_order_seq_cst)) {
    kind_ctx_->stats->on_notice_sent();
    return tally;
  }
  kind_ctx_->stats->on_notice_coalesced();
  return nullptr;
}

status gate::set_max_message_bytes(uint64_t bytes) {
  std::lock_guard<std::mutex> guard{limits_mtx_};
  auto next = limits_;
  next.max_message_bytes = bytes;
  if (auto st = validate(next, "limits." + kind_); !st)
    return st;
  limits_ = next;
  max_message_bytes_.store(bytes, std::memory_order_relaxed);
  return {};
}

status gate::set_rates(uint64_t msgs_per_sec, uint64_t burst_msgs, uint64_t bytes_per_sec,
                       uint64_t burst_bytes) {
  std::lock_guard<std::mutex> guard{limits_mtx_};
  auto next = limits_;
  next.rate_msgs_per_sec = msgs_per_sec;
  next.rate_burst_msgs = burst_msgs;
  next.rate_bytes_per_sec = bytes_per_sec;
  next.rate_burst_bytes = burst_bytes;
  if (auto st = validate(next, "limits." + kind_); !st)
    return st;
  limits_ = next;
  msg_rate_.reconfigure(msgs_per_sec, burst_msgs);
  byte_rate_.reconfigure(bytes_per_sec, burst_bytes);
  return {};
}

actor_limits gate::limits() const {
  std::lock_guard<std::mutex> guard{limits_mtx_};
  return limits_;
}

} // namespace levee
