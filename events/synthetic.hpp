#pragma once
// Generated events for load tests and benchmarks, at a configured rate, deterministic
// given the seed and the poll times (the clock is the `now_ms` the caller passes). Fields:
//   seq (int, 0, 1, 2, ... across polls), level (weighted pick), user ("user-00042", one of
//   `users`), msg (msg_bytes of lowercase words), status (int, drawn by level: INFO 2xx,
//   WARN 4xx, ERROR and others 5xx), latency_ms (double, exponential around
//   latency_mean_ms, 3 decimals).

#include <cstdint>
#include <string>
#include <vector>

#include "events/defaults.hpp"
#include "events/source.hpp"

namespace levee::events {

struct weighted_level {
  std::string name;
  uint32_t weight;  // relative; 0 never picks it
};

/// Keys are `<prefix>.<member>`, prefix "events.synthetic".
struct synthetic_config {
  uint64_t rate_per_sec = defaults::synthetic_rate_per_sec;  // events/s
  /// events owed after a late poll are capped at this, the rest are not made up for;
  /// 0 = one second's worth (rate_per_sec).
  uint64_t burst_events = defaults::synthetic_burst_events;
  uint64_t seed = 1;
  std::vector<weighted_level> levels{{"INFO", 90}, {"WARN", 8}, {"ERROR", 2}};
  uint64_t users = defaults::synthetic_users;
  uint64_t msg_bytes = defaults::synthetic_msg_bytes;  // at most max_line_bytes
  uint64_t latency_mean_ms = defaults::synthetic_latency_mean_ms;
};

status validate(const synthetic_config& config, const std::string& prefix = "events.synthetic");

class synthetic final : public source {
public:
  /// `config` must pass validate().
  explicit synthetic(synthetic_config config);

  /// The first poll starts the clock and makes nothing. Each later one makes the events
  /// due since the previous poll at rate_per_sec (fractions carry over), capped at the
  /// burst, then at max_events (what max_events cuts off stays owed, within the burst).
  /// Timestamps are spread evenly over (previous poll, now_ms]. A clock that goes back
  /// makes nothing until it passes the previous poll time.
  size_t poll(std::vector<event>& out, size_t max_events, int64_t now_ms) override;
  std::string_view kind() const noexcept override { return "synthetic"; }

  /// Events owed and not yet made (at most the burst).
  uint64_t owed() const noexcept { return credit_milli_ / 1000; }

private:
  uint64_t next_random();
  double next_unit();  // [0, 1)
  void make(event& e, int64_t ts);

  synthetic_config config_;
  uint64_t burst_;
  uint64_t state_;              // splitmix64
  uint64_t total_weight_ = 0;
  std::string text_;            // words msg is cut from
  bool started_ = false;
  int64_t last_ms_ = 0;
  uint64_t credit_milli_ = 0;   // thousandths of an event owed
  int64_t seq_ = 0;
};

} // namespace levee::events
