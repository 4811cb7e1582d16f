#pragma once
// Per-connection publish rates (README.md "Limits"): a token bucket in messages/s and one
// in bytes/s for each publishing connection, keyed by the connection's actor id. The
// table is bounded (broker.max_publishers): idle publishers are forgotten (a full bucket
// is the same as none), and when every entry is busy the least recently seen goes. Plain
// C++; the broker actor owns it.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>

#include "limits/clock.hpp"
#include "limits/rejection.hpp"
#include "limits/token_bucket.hpp"

namespace levee::broker {

struct publisher_limits {
  uint64_t msgs_per_sec = 0;   // 0 = off
  uint64_t bytes_per_sec = 0;  // 0 = off
  uint64_t max_publishers = 0;
  uint64_t idle_ms = 0;
};

class publisher_rates {
public:
  /// `clock` must outlive the table.
  publisher_rates(const clock_source& clock, publisher_limits limits)
    : clock_(clock), limits_(limits) {}

  bool enabled() const noexcept { return limits_.msgs_per_sec != 0 || limits_.bytes_per_sec != 0; }

  /// Takes `msgs` and `bytes` from `publisher`'s buckets, or the rate_limited refusal
  /// (naming broker.publish_msgs_per_sec or broker.publish_bytes_per_sec, with when to
  /// retry). Nothing is taken when refused.
  std::optional<rejection> admit(uint64_t publisher, uint64_t msgs, uint64_t bytes);

  /// Forgets the publishers idle for limits.idle_ms.
  void forget_idle();
  size_t size() const noexcept { return table_.size(); }
  uint64_t forgotten() const noexcept { return forgotten_; }

private:
  struct entry {
    entry(const clock_source& clock, const publisher_limits& l)
      : msgs(clock, l.msgs_per_sec, 0), bytes(clock, l.bytes_per_sec, 0) {}
    token_bucket msgs;
    token_bucket bytes;
    int64_t last_ns = 0;
  };
  entry& find_or_add(uint64_t publisher);

  const clock_source& clock_;
  publisher_limits limits_;
  std::map<uint64_t, std::unique_ptr<entry>> table_;
  uint64_t forgotten_ = 0;
};

} // namespace levee::broker
