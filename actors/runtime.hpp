#pragma once
// The limits of one node at run time: its config, the node budget, the stats of every
// actor kind and the clock. Create one per node (per actor system) and pass it to
// `spawn_limited`; it must outlive every limited actor spawned with it.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/gate.hpp"
#include "limits/clock.hpp"
#include "limits/kind_stats.hpp"
#include "limits/limits_config.hpp"
#include "limits/node_budget.hpp"

namespace levee {

struct node_stats_snapshot {
  uint64_t budget_in_use = 0;
  uint64_t budget_max = 0;
  uint64_t budget_high_water = 0;
  uint64_t budget_rejections = 0;
  std::vector<kind_stats_snapshot> kinds;
};

/// The node budget and every kind, as `levee stats` prints them: a line each, and a line
/// per code a kind refused. `levee stats` renders a server's StatsReply through this too.
std::string render_stats(const node_stats_snapshot& s);

class runtime {
public:
  /// `cfg` must have passed validate(); `clock` must outlive the runtime.
  explicit runtime(limits_config cfg,
                   const clock_source& clock = steady_clock_source::instance());

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  const limits_config& config() const noexcept { return cfg_; }
  node_budget& budget() noexcept { return *budget_; }
  const clock_source& clock() const noexcept { return clock_; }

  /// A new gate for one actor of `kind`, with the kind's limits from config.
  std::unique_ptr<gate> make_gate(const std::string& kind);
  /// A gate for one actor of `kind` with limits of its own (a stream leader's: its kind's
  /// with the stream's overrides); counted with the kind.
  std::unique_ptr<gate> make_gate(const std::string& kind, const actor_limits& limits);

  /// The counters of `kind` (created on first use).
  std::shared_ptr<kind_stats> stats_for(const std::string& kind) { return stats_.for_kind(kind); }

  node_stats_snapshot snapshot() const;

  /// `render_stats(snapshot())`.
  std::string render_stats() const;

private:
  std::shared_ptr<kind_context> context_for(const std::string& kind);

  limits_config cfg_;
  const clock_source& clock_;
  std::shared_ptr<node_budget> budget_;
  stats_registry stats_;
  std::mutex kinds_mtx_;
  std::map<std::string, std::shared_ptr<kind_context>> kinds_;
};

} // namespace levee
