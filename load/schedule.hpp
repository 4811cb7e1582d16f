#pragma once
// The open-loop schedule: when each send is meant to happen, fixed in advance at the
// offered rate (or a list of steps of rate and duration), whatever the target does.
// Latency is measured from these intended times, so a target that stalls cannot hide its
// stall by slowing the sender down (coordinated omission, corrected as wrk2 does). The
// tool never lowers the rate: a send it makes later than its intended time is still made,
// measured from its intended time, and counted late when it is more than a bound behind
// (results.hpp); too many late sends make the run invalid.

#include <chrono>
#include <cstdint>
#include <vector>

namespace levee::load {

/// A rate held for a duration. rate_per_second > 0.
struct rate_step {
  double rate_per_second = 0;
  std::chrono::nanoseconds duration{0};
};

class open_loop_schedule {
public:
  /// The steps in order; each gives round(rate * duration) sends evenly spaced at 1/rate,
  /// the first at the step's start.
  explicit open_loop_schedule(std::vector<rate_step> steps);
  /// `count` sends at `rate_per_second` (the --count bound).
  static open_loop_schedule of_count(double rate_per_second, uint64_t count);

  /// How many sends in all.
  uint64_t total() const noexcept { return first_of_step_.empty() ? 0 : first_of_step_.back(); }
  /// When send `n` (0 .. total()-1) is meant to happen, from the schedule's start.
  std::chrono::nanoseconds intended(uint64_t n) const noexcept;
  /// From the start to the end of the last step.
  std::chrono::nanoseconds span() const noexcept { return span_; }
  const std::vector<rate_step>& steps() const noexcept { return steps_; }

private:
  std::vector<rate_step> steps_;
  std::vector<uint64_t> first_of_step_;  // prefix sums: [i] = sends before step i; last = total
  std::vector<std::chrono::nanoseconds> start_of_step_;
  std::chrono::nanoseconds span_{0};
};

} // namespace levee::load
