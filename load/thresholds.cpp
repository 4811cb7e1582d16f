#include "load/thresholds.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "limits/error_code.hpp"

namespace levee::load {

namespace {

const char* const example =
  "; a threshold looks like latency.p99<2ms, goodput>=9000/s or "
  "rejected{code=rate_limited}.rate>0 (load/README.md lists them)";

status bad(const std::string& text, const std::string& what) {
  return status::error(code::bad_request, "threshold '" + text + "': " + what + example);
}

bool is_latency(const std::string& metric) { return metric == "latency" || metric == "service_time"; }

bool is_count(const std::string& metric) {
  return metric == "offered" || metric == "accepted" || metric == "rejected" || metric == "errors"
         || metric == "timeouts" || metric == "held_back";
}

std::string trim(const std::string& s) {
  auto a = s.find_first_not_of(" \t");
  auto b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

/// The percentile a stat names ("p99.9" -> 99.9), or a negative number.
double percentile_of(const std::string& stat) {
  if (stat.size() < 2 || stat[0] != 'p')
    return -1;
  char* end = nullptr;
  double p = std::strtod(stat.c_str() + 1, &end);
  return (*end == '\0' && p > 0 && p < 100) ? p : -1;
}

std::string shown(const threshold& t, double v) {
  char buf[64];
  if (is_latency(t.metric))
    return duration_text(static_cast<uint64_t>(v));
  if (t.metric == "goodput" || t.stat == "rate")
    std::snprintf(buf, sizeof buf, "%.1f/s", v);
  else if (t.stat == "ratio")
    std::snprintf(buf, sizeof buf, "%.3f%%", v * 100);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

} // namespace

result<threshold> parse_threshold(const std::string& text) {
  threshold t;
  t.text = text;
  // The comparison comes after the selector, whose '=' is not one.
  auto close = text.find('}');
  auto at = text.find_first_of("<>=!", close == std::string::npos ? 0 : close);
  if (at == std::string::npos || at == 0)
    return bad(text, "no comparison (< <= > >= == !=) after a metric");
  auto left = trim(text.substr(0, at));
  size_t op_len = (at + 1 < text.size() && text[at + 1] == '=') ? 2 : 1;
  t.op = text.substr(at, op_len);
  if (t.op == "=" || t.op == "!")
    return bad(text, "'" + t.op + "' is not a comparison; use == or !=");
  auto right = trim(text.substr(at + op_len));

  // The left side: metric, an optional {key=value}, an optional .stat.
  auto name_end = left.find_first_of("{.");
  t.metric = left.substr(0, name_end);
  auto rest = name_end == std::string::npos ? std::string{} : left.substr(name_end);
  if (!rest.empty() && rest[0] == '{') {
    auto close = rest.find('}');
    auto eq = rest.find('=');
    if (close == std::string::npos || eq == std::string::npos || eq > close)
      return bad(text, "a selector is {code=NAME} or {limit=KEY}");
    t.selector_key = trim(rest.substr(1, eq - 1));
    t.selector_value = trim(rest.substr(eq + 1, close - eq - 1));
    rest = rest.substr(close + 1);
    if (t.metric != "rejected")
      return bad(text, "only rejected takes a selector");
    if (t.selector_key == "code" && !code_from_string(t.selector_value))
      return bad(text, "'" + t.selector_value + "' is not a code Levee has (limits/error_code.hpp: "
                         "mailbox_full, rate_limited, too_many_inflight, ...)");
    if (t.selector_key != "code" && t.selector_key != "limit")
      return bad(text, "select by code or by limit, not '" + t.selector_key + "'");
  }
  if (!rest.empty()) {
    if (rest[0] != '.' || rest.size() == 1)
      return bad(text, "expected .STAT after the metric");
    t.stat = rest.substr(1);
  }

  if (is_latency(t.metric)) {
    if (t.stat.empty())
      return bad(text, t.metric + " needs a statistic: .p50 .p90 .p99 .p99.9 .p99.99 .max or .mean");
    if (t.stat != "max" && t.stat != "mean" && percentile_of(t.stat) < 0)
      return bad(text, "'" + t.stat + "' is not a statistic of " + t.metric
                         + " (.p50 .p90 .p99 .p99.9 .p99.99 .max .mean)");
  } else if (t.metric == "goodput") {
    if (!t.stat.empty())
      return bad(text, "goodput is a rate of its own; write goodput>=9000/s");
  } else if (is_count(t.metric)) {
    if (t.stat.empty())
      t.stat = "count";
    if (t.stat != "count" && t.stat != "rate" && t.stat != "ratio")
      return bad(text, "'" + t.stat + "' is not a statistic of " + t.metric + " (.count .rate .ratio)");
  } else {
    return bad(text, "unknown metric '" + t.metric
                       + "' (latency, service_time, goodput, offered, accepted, rejected, errors, "
                         "timeouts, held_back)");
  }

  // The value and its unit.
  char* end = nullptr;
  t.value = std::strtod(right.c_str(), &end);
  if (end == right.c_str() || right.empty() || right[0] == '-' || right.find_first_of("xXnNiI") == 0
      || !std::isfinite(t.value))
    return bad(text, "'" + right + "' is not a number");
  std::string unit = trim(end);
  if (is_latency(t.metric)) {
    if (unit == "ns")
      ;
    else if (unit == "us")
      t.value *= 1e3;
    else if (unit == "ms")
      t.value *= 1e6;
    else if (unit == "s")
      t.value *= 1e9;
    else
      return bad(text, "a latency needs a unit: ns, us, ms or s (e.g. 2ms)");
  } else if (t.metric == "goodput" || t.stat == "rate") {
    if (!unit.empty() && unit != "/s")
      return bad(text, "a rate is per second: write " + right.substr(0, right.size() - unit.size()) + "/s");
  } else if (t.stat == "ratio") {
    if (unit == "%")
      t.value /= 100;
    else if (!unit.empty())
      return bad(text, "a ratio is a fraction (0.01) or a percentage (1%)");
  } else if (!unit.empty()) {
    return bad(text, "a count has no unit ('" + unit + "')");
  }
  return t;
}

threshold_outcome evaluate(const threshold& t, const run_result& r) {
  auto& c = r.counts;
  double v = 0;
  if (is_latency(t.metric)) {
    auto& h = t.metric == "latency" ? c.latency() : c.service_time();
    v = t.stat == "max"    ? static_cast<double>(h.max())
        : t.stat == "mean" ? h.mean()
                           : static_cast<double>(h.percentile(percentile_of(t.stat)));
  } else if (t.metric == "goodput") {
    v = r.goodput_per_second();
  } else {
    uint64_t n = 0;
    if (t.metric == "offered")
      n = c.offered();
    else if (t.metric == "accepted")
      n = c.accepted_count();
    else if (t.metric == "errors")
      n = c.error_count();
    else if (t.metric == "timeouts")
      n = c.timeout_count();
    else if (t.metric == "held_back")
      n = c.held_back_count();
    else if (t.selector_key == "code" || t.selector_key == "limit") {
      auto counts = t.selector_key == "code" ? c.rejected_by_code() : c.rejected_by_limit();
      auto it = counts.find(t.selector_value);
      n = it == counts.end() ? 0 : it->second;
    } else {
      n = c.rejected_count();
    }
    v = t.stat == "rate"    ? r.per_second(n)
        : t.stat == "ratio" ? (c.offered() == 0 ? 0 : static_cast<double>(n) / static_cast<double>(c.offered()))
                            : static_cast<double>(n);
  }
  bool held = t.op == "<"    ? v < t.value
              : t.op == "<=" ? v <= t.value
              : t.op == ">"  ? v > t.value
              : t.op == ">=" ? v >= t.value
              : t.op == "==" ? v == t.value
                             : v != t.value;
  return {held, v, std::string{held ? "PASS " : "FAIL "} + t.text + " (observed " + shown(t, v) + ")"};
}

} // namespace levee::load
