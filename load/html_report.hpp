#pragma once
// `levee load --html FILE`: the run as one self-contained HTML page (no script, no network:
// the plots are inline SVG, the style inline CSS), to open in a browser or attach to a CI
// run. It is well-formed XML too (every element closed, every attribute quoted, text
// escaped), so a test reads it back with an XML parser.
//
// Plots, each an <svg data-plot="NAME">, with its numbers in data-* attributes:
//   throughput          offered, accepted, rejected per second of the measured window:
//                       <polyline data-series="offered" data-values="100,100,...">
//   latency-over-time   p50, p90, p99, max (us) per slot of data-slot-seconds
//   percentiles         the latency percentile spectrum: <circle data-percentile="99"
//                       data-us="812.000"> for p50 ... p99.99 and max
//   refusals            <rect data-code="rate_limited" data-limit="net.max_msgs_per_sec"
//                       data-count="200"> per (code, limit)
//   ramp                (a --ramp run) goodput against the offered rate: <circle
//                       data-rate= data-goodput= data-p99-us= data-within=>, data-knee
// A run with consumers beside its publishers has a section <div data-section="consumers"
// data-consumers= data-read-min= data-unread-max= data-accepted-publishes=
// data-end-to-end-p99-us=> with their summary.
// The <body> carries the totals: data-offered, data-accepted, data-rejected, data-errors,
// data-timeouts, data-goodput, data-valid, data-accounting ("held", "mismatch" or
// "not checked").

#include <string>
#include <vector>

#include "load/consumers.hpp"
#include "load/ramp.hpp"
#include "load/results.hpp"
#include "load/target_side.hpp"

namespace levee::load {

struct report_parts {
  const run_result* result = nullptr;          // required
  const target_side* side = nullptr;           // optional
  const ramp_result* ramp = nullptr;           // optional
  const consumers_report* consumers = nullptr; // optional: --consumers beside publishers
  std::vector<std::string> threshold_lines;    // "PASS latency.p99<2ms (observed 812us)"
};

std::string html_report(const report_parts& parts);

/// `text` with & < > " escaped, for HTML/XML text and attribute values.
std::string html_escape(const std::string& text);

} // namespace levee::load
