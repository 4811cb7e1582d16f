#include "actors/runtime.hpp"

#include <cstdio>

namespace levee {

runtime::runtime(limits_config cfg, const clock_source& clock)
  : cfg_(std::move(cfg)),
    clock_(clock),
    budget_(std::make_shared<node_budget>(cfg_.memory_budget_bytes)) {
}

std::shared_ptr<kind_context> runtime::context_for(const std::string& kind) {
  std::lock_guard<std::mutex> guard{kinds_mtx_};
  auto& ctx = kinds_[kind];
  if (!ctx)
    ctx = std::make_shared<kind_context>(stats_.for_kind(kind), clock_,
                                         cfg_.rejection_log_lines_per_sec,
                                         cfg_.rejection_log_burst_lines);
  return ctx;
}

std::unique_ptr<gate> runtime::make_gate(const std::string& kind) {
  return std::make_unique<gate>(kind, cfg_.for_kind(kind), context_for(kind), budget_, clock_);
}

std::unique_ptr<gate> runtime::make_gate(const std::string& kind, const actor_limits& limits) {
  return std::make_unique<gate>(kind, limits, context_for(kind), budget_, clock_);
}

node_stats_snapshot runtime::snapshot() const {
  node_stats_snapshot s;
  s.budget_in_use = budget_->in_use();
  s.budget_max = budget_->max();
  s.budget_high_water = budget_->high_water();
  s.budget_rejections = budget_->rejections();
  s.kinds = stats_.snapshot();
  return s;
}

std::string runtime::render_stats() const {
  return levee::render_stats(snapshot());
}

std::string render_stats(const node_stats_snapshot& s) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line,
                "node budget: %llu / %llu bytes in use (high water %llu, %llu refusals)\n",
                static_cast<unsigned long long>(s.budget_in_use),
                static_cast<unsigned long long>(s.budget_max),
                static_cast<unsigned long long>(s.budget_high_water),
                static_cast<unsigned long long>(s.budget_rejections));
  out += line;
  for (auto& k : s.kinds) {
    std::snprintf(line, sizeof line,
                  "kind %s: %llu actors, accepted %llu, processed %llu, dropped on exit %llu, "
                  "rejected %llu, queued %llu msgs / %llu bytes, max depth %llu msgs / %llu "
                  "bytes, notices %llu sent / %llu coalesced\n",
                  k.kind.c_str(), static_cast<unsigned long long>(k.actors),
                  static_cast<unsigned long long>(k.accepted),
                  static_cast<unsigned long long>(k.processed),
                  static_cast<unsigned long long>(k.dropped_on_exit),
                  static_cast<unsigned long long>(k.rejected_total()),
                  static_cast<unsigned long long>(k.queued_messages),
                  static_cast<unsigned long long>(k.queued_bytes),
                  static_cast<unsigned long long>(k.max_actor_depth),
                  static_cast<unsigned long long>(k.max_actor_bytes),
                  static_cast<unsigned long long>(k.notices_sent),
                  static_cast<unsigned long long>(k.notices_coalesced));
    out += line;
    for (size_t c = 1; c < k.rejected.size(); ++c)
      if (k.rejected[c] > 0) {
        std::snprintf(line, sizeof line, "  rejected %s: %llu\n",
                      std::string{to_string(static_cast<code>(c))}.c_str(),
                      static_cast<unsigned long long>(k.rejected[c]));
        out += line;
      }
    for (size_t l = 1; l < k.rejected_by_limit.size(); ++l)
      if (k.rejected_by_limit[l] > 0) {
        std::snprintf(line, sizeof line, "  rejected by %s: %llu\n",
                      gate_limit_key(k.kind, static_cast<gate_limit>(l)).c_str(),
                      static_cast<unsigned long long>(k.rejected_by_limit[l]));
        out += line;
      }
  }
  return out;
}

} // namespace levee
