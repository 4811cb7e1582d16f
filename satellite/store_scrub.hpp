#pragma once
// A satellite store's background scrub (persistence/FORMAT.md "Scrub"): the scrubber's steps
// paced by a token bucket at satellite.scrub_bytes_per_sec, a pause of
// satellite.scrub_interval_ms between passes, each damaged segment said once on stderr (at
// a bounded rate: a disk with a thousand damaged segments writes a few lines a second),
// and its counters for the heartbeat's StoreStats. Plain C++: the store actor, which owns
// the log, calls step() from its own handler when the wait the previous call returned is
// over, between queries and appends.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "limits/clock.hpp"
#include "limits/token_bucket.hpp"
#include "net/satellite.pb.h"
#include "persistence/scrubber.hpp"

namespace levee::satellite {

class store_scrub {
public:
  /// Where the lines about damage go (stderr in a satellite).
  using line_sink = std::function<void(const std::string& line)>;

  /// `log` and `clock` must outlive this. A step reads at most `max_step_bytes` (the
  /// store's scan_step_bytes: how long the store may give to one piece of work) and at
  /// most one second's rate, and at least persistence::scrub_min_step_bytes.
  /// `bytes_per_sec` > 0 (0 means no scrub: construct none).
  store_scrub(const persistence::segment_log& log, uint64_t bytes_per_sec,
              uint64_t max_step_bytes, std::chrono::milliseconds interval,
              const clock_source& clock, line_sink say);

  /// Runs one step if the rate allows it now. Returns how long to wait before calling
  /// again: 0 when the next step's bytes are already paid for (from the burst), the time
  /// until they are, or the pause after a pass. Never 0 twice without reading a byte.
  [[nodiscard]] std::chrono::nanoseconds step();

  uint64_t step_bytes() const noexcept { return step_bytes_; }
  persistence::scrub_stats stats() const { return scrubber_.stats(); }

  /// Sets StoreStats' scrub_* fields.
  void fill(wire::StoreStats& out) const;

private:
  void say(const persistence::scrub_damage& damage);

  persistence::scrubber scrubber_;
  uint64_t step_bytes_;
  std::chrono::nanoseconds interval_;
  std::chrono::nanoseconds one_step_;  // step_bytes_ at the rate
  token_bucket rate_;                  // bytes
  token_bucket lines_;                 // lines about damage
  line_sink say_;
  uint64_t unsaid_ = 0;   // lines the rate held back since the last one said
  bool prepaid_ = false;  // the next step's bytes were taken already
};

} // namespace levee::satellite
