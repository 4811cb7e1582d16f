#include "limits/kind_stats.hpp"

namespace levee {

uint64_t kind_stats_snapshot::rejected_total() const {
  uint64_t sum = 0;
  for (auto n : rejected)
    sum += n;
  return sum;
}

void kind_stats::on_accept(uint64_t bytes, uint64_t actor_depth, uint64_t actor_bytes) noexcept {
  accepted_.fetch_add(1, std::memory_order_relaxed);
  queued_messages_.fetch_add(1, std::memory_order_relaxed);
  queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  raise(max_actor_depth_, actor_depth);
  raise(max_actor_bytes_, actor_bytes);
}

void kind_stats::on_release(uint64_t bytes, bool processed) noexcept {
  (processed ? processed_ : dropped_on_exit_).fetch_add(1, std::memory_order_relaxed);
  queued_messages_.fetch_sub(1, std::memory_order_relaxed);
  queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

void kind_stats::on_requeue(uint64_t bytes) noexcept {
  processed_.fetch_sub(1, std::memory_order_relaxed);
  queued_messages_.fetch_add(1, std::memory_order_relaxed);
  queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
}

kind_stats_snapshot kind_stats::snapshot() const {
  kind_stats_snapshot s;
  s.kind = kind_;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.processed = processed_.load(std::memory_order_relaxed);
  s.dropped_on_exit = dropped_on_exit_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < rejected_.size(); ++i)
    s.rejected[i] = rejected_[i].load(std::memory_order_relaxed);
  s.notices_sent = notices_sent_.load(std::memory_order_relaxed);
  s.notices_coalesced = notices_coalesced_.load(std::memory_order_relaxed);
  s.queued_messages = queued_messages_.load(std::memory_order_relaxed);
  s.queued_bytes = queued_bytes_.load(std::memory_order_relaxed);
  s.max_actor_depth = max_actor_depth_.load(std::memory_order_relaxed);
  s.max_actor_bytes = max_actor_bytes_.load(std::memory_order_relaxed);
  s.actors = actors_.load(std::memory_order_relaxed);
  return s;
}

std::shared_ptr<kind_stats> stats_registry::for_kind(const std::string& kind) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& slot = kinds_[kind];
  if (!slot)
    slot = std::make_shared<kind_stats>(kind);
  return slot;
}

std::vector<kind_stats_snapshot> stats_registry::snapshot() const {
  std::vector<kind_stats_snapshot> out;
  std::lock_guard<std::mutex> guard{mtx_};
  out.reserve(kinds_.size());
  for (auto& [name, stats] : kinds_)
    out.push_back(stats->snapshot());
  return out;
}

} // namespace levee
