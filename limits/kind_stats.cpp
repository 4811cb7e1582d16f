#include "limits/kind_stats.hpp"

#include "limits/limits_config.hpp"

namespace levee {

std::string gate_limit_key(std::string_view kind, gate_limit l) {
  switch (l) {
    case gate_limit::max_message_bytes:
      return limit_key(kind, "max_message_bytes");
    case gate_limit::max_inflight_per_requester:
      return limit_key(kind, "max_inflight_per_requester");
    case gate_limit::mailbox_capacity:
      return limit_key(kind, "mailbox_capacity");
    case gate_limit::mailbox_capacity_bytes:
      return limit_key(kind, "mailbox_capacity_bytes");
    case gate_limit::memory_budget_bytes:
      return "limits.memory_budget_bytes";
    case gate_limit::rate_msgs_per_sec:
      return limit_key(kind, "rate_msgs_per_sec");
    case gate_limit::rate_bytes_per_sec:
      return limit_key(kind, "rate_bytes_per_sec");
    case gate_limit::none:
      break;
  }
  return {};
}

uint64_t kind_stats_snapshot::rejected_total() const {
  uint64_t sum = 0;
  for (auto n : rejected)
    sum += n;
  return sum;
}

void kind_stats::attach(const kind_stats_source* src) {
  std::lock_guard<std::mutex> guard{mtx_};
  live_.push_back(src);
}

void kind_stats::detach(const kind_stats_source* src) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto i = live_.begin(); i != live_.end(); ++i)
    if (*i == src) {
      live_.erase(i);
      src->add_to(retired_);
      return;
    }
}

kind_stats_snapshot kind_stats::snapshot() const {
  kind_stats_snapshot s;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    s = retired_;
    for (auto* src : live_)
      src->add_to(s);
    s.actors = live_.size();
  }
  s.kind = kind_;
  for (size_t i = 0; i < rejected_.size(); ++i)
    s.rejected[i] = rejected_[i].load(std::memory_order_relaxed);
  for (size_t i = 0; i < rejected_by_limit_.size(); ++i)
    s.rejected_by_limit[i] = rejected_by_limit_[i].load(std::memory_order_relaxed);
  s.notices_sent = notices_sent_.load(std::memory_order_relaxed);
  s.notices_coalesced = notices_coalesced_.load(std::memory_order_relaxed);
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
