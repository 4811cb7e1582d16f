#pragma once
// Pass/fail conditions on a run's results, as k6 has them, so a CI pipeline can gate on a
// load run. One expression each:
//
//   METRIC[{code=NAME}|{limit=KEY}][.STAT] OP VALUE[UNIT]
//
//   latency.p99<2ms          latency.p50, .p90, .p99, .p99.9, .p99.99, .max, .mean, with a
//   service_time.max<=50ms   unit: ns, us, ms or s
//   goodput>=9000/s          accepted per second ("/s" optional)
//   rejected{code=rate_limited}.rate>0     offered, accepted, rejected, errors, timeouts,
//   rejected{limit=net.max_msgs_per_sec}.count==0   held_back: .count (default), .rate
//   rejected.ratio<1%                      (per second), .ratio (of offered; 0.01 or 1%)
//
// OP is one of < <= > >= == !=. A selector is only for rejected; its code is checked
// against the codes Levee has (limits/error_code.hpp).

#include <string>
#include <vector>

#include "limits/status.hpp"
#include "load/results.hpp"

namespace levee::load {

struct threshold {
  std::string text;     // as given
  std::string metric;   // latency, service_time, goodput, offered, ...
  std::string selector_key;    // "code", "limit" or empty
  std::string selector_value;
  std::string stat;     // p99, max, count, rate, ratio, ...
  std::string op;
  double value = 0;     // in the metric's unit: ns for latencies, /s for rates, a fraction
};

/// The expression parsed, or a bad_request whose message says what is wrong and what a
/// valid one looks like.
result<threshold> parse_threshold(const std::string& text);

struct threshold_outcome {
  bool held = false;
  double observed = 0;
  /// "PASS latency.p99<2ms (observed 812us)", "FAIL goodput>=9000/s (observed 4410.2/s)".
  std::string line;
};

threshold_outcome evaluate(const threshold& t, const run_result& r);

} // namespace levee::load
