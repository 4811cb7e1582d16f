#pragma once
// `levee load --target inprocess [KIND]`: the target is a limited actor spawned in the
// tool's own process (a busy_service of KIND, `--service-us` of CPU a request, as `levee
// demo` floods), with the limits of KIND from `--config FILE` ([limits], [limits.KIND],
// [limits.default]) and `--set` overrides, or the defaults. Each connection of the tool is
// a relay actor that forwards its sends as requests, so the actor's
// max_inflight_per_requester bounds each connection as a node's does each client; a
// refusal comes back as the levee::rejection the actor's gate made (code and limit), and
// the actor's own counters stand in for a node's stats target in the accounting check.
//
// No network, no other process: what is measured is the limits and the actor alone.
// CAF stays behind this header, so apps/load_cli.cpp does not include it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "limits/limits_config.hpp"
#include "limits/rejection.hpp"
#include "limits/status.hpp"
#include "load/target_side.hpp"

namespace levee::apps {

/// The limits an in-process target gets: `config_path`'s (none: the defaults) with
/// `overrides` (KEY=VALUE) on top; an error names the key and what is allowed.
result<limits_config> inprocess_limits(const std::string& config_path,
                                       const std::vector<std::string>& overrides);

/// An answer to one send: accepted (no `refused`) or refused with the actor's rejection.
struct inprocess_answer {
  uint64_t id = 0;
  std::optional<rejection> refused;
};

class inprocess_target {
public:
  /// One sending thread's way in: a relay actor of its own.
  class connection {
  public:
    virtual ~connection() = default;
    /// Sends `payload` as a request; its id. Never waits.
    virtual uint64_t send(const std::string& payload) = 0;
    /// Waits up to `wait` for answers and appends them.
    virtual void poll(std::vector<inprocess_answer>& out, std::chrono::milliseconds wait) = 0;
  };

  /// Spawns the actor of `kind` with `limits` (from inprocess_limits), each request costing
  /// `service_time` of CPU; a request not answered within `timeout` is given up by the
  /// relay (the tool has counted it a timeout by then).
  inprocess_target(std::string kind, limits_config limits, std::chrono::microseconds service_time,
                   std::chrono::milliseconds timeout);
  ~inprocess_target();
  inprocess_target(const inprocess_target&) = delete;
  inprocess_target& operator=(const inprocess_target&) = delete;

  std::unique_ptr<connection> connect();
  /// The actor's counters now, named as a node's StatsReply flattens them
  /// (`kinds.KIND.accepted`, `kinds.KIND.processed`, `kinds.KIND.rejected.CODE`, ...,
  /// `node_budget.refusals`).
  load::target_counters counters() const;
  /// The names the accounting check reads in those counters: answered is `processed`
  /// (an answer is sent once a request is processed), refused by code under `rejected.`.
  load::accounting_names accounting_names() const;
  /// Waits (up to `bound`) until every request the actor accepted is processed: its
  /// answer may reach the tool an instant before the actor counts it processed.
  void wait_idle(std::chrono::milliseconds bound) const;
  const std::string& kind() const noexcept;
  /// The kind's limits.
  const actor_limits& limits() const;
  /// The node budget of the process, bytes.
  uint64_t memory_budget_bytes() const noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace levee::apps
