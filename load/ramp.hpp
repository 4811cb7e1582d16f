#pragma once
// Ramp / knee finding (`levee load --ramp START:STEP:MAX[:SECS]`): the offered rate goes up
// by STEP from START to MAX, SECS seconds each (default 5), open loop; after each step its
// figures are held against two bounds (p99 latency from intended send times, and the share
// of the step's sends not accepted: refused, errors, timeouts, held back) and against the
// goodput still rising with the rate. The knee is the highest rate whose step, and every
// step before it, stayed within them; the ramp stops at the first step past them. Each
// (code, limit) that refused is reported with the rate at which it began to answer.

#include <optional>
#include <string>
#include <vector>

#include "limits/status.hpp"
#include "load/results.hpp"

namespace levee::load {

struct ramp_spec {
  double start = 0, step = 0, max = 0;  // per second
  double step_seconds = 5;
  /// start, start + step, ... up to max (max itself when the steps land on it).
  std::vector<double> rates() const;
};

/// "100:100:1000" or "100:100:1000:10"; a bad_request saying what to write otherwise.
result<ramp_spec> parse_ramp(const std::string& text);

/// Where a step stops counting as served. A bound of 0 is not checked.
struct knee_bounds {
  double max_p99_ms = 100;
  double max_not_accepted_percent = 1;
  /// The goodput must rise by at least this share of the rate added since the step
  /// before (0.5: half the added load is served); below, the target is saturated.
  double min_goodput_gain = 0.5;
};

struct ramp_step {
  double rate = 0;            // offered, per second
  double seconds = 0;         // measured
  uint64_t offered = 0, accepted = 0, not_accepted = 0;
  double goodput = 0;         // accepted per second
  uint64_t p50_ns = 0, p99_ns = 0, max_ns = 0;  // latency from intended send times
  recorder::code_limit_counts refusals;
  bool within = true;
  std::string why;            // why not within: "p99 12.3ms > 10ms", ...
  double not_accepted_percent() const noexcept;
};

struct ramp_result {
  ramp_spec spec;
  knee_bounds bounds;
  std::vector<ramp_step> steps;

  /// Files a step's figures (its run_result: the step's sends only) against the bounds
  /// and the step before; returns whether the ramp goes on.
  bool add(double rate, const run_result& step);
  /// The highest rate served within the bounds; nullopt when the first step was past them.
  std::optional<double> knee() const;
  /// Whether some step crossed the bounds (otherwise the knee is MAX or beyond it).
  bool crossed() const;
  /// (code, limit) -> the first rate at which it refused.
  std::vector<std::pair<std::pair<std::string, std::string>, double>> limits_began() const;

  std::string text() const;
  /// {"spec":..., "bounds":..., "steps":[...], "knee_per_second":..., "crossed":...,
  ///  "limits_began":[...]} (load/README.md).
  std::string json() const;
};

} // namespace levee::load
