#include "load/ramp.hpp"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "limits/error_code.hpp"

namespace levee::load {

namespace {

constexpr double max_rate = 100000;  // per second, as --rate
constexpr size_t max_steps = 1000;   // a ramp longer than this is a typo

std::string rate_text(double v) { return short_number(v) + "/s"; }

} // namespace

std::vector<double> ramp_spec::rates() const {
  std::vector<double> out;
  // Counted, not summed, so that 0.1 steps do not drift past max.
  for (size_t i = 0;; ++i) {
    double r = start + step * static_cast<double>(i);
    if (r > max * (1 + 1e-9))
      break;
    out.push_back(std::min(r, max));
  }
  return out;
}

result<ramp_spec> parse_ramp(const std::string& text) {
  const std::string what_to_write =
    "; write START:STEP:MAX[:SECONDS] in sends per second, e.g. --ramp 100:100:1000 (5 s a "
    "step) or --ramp 100:100:1000:10";
  std::vector<double> parts;
  size_t at = 0;
  while (at <= text.size()) {
    auto colon = text.find(':', at);
    auto part = text.substr(at, colon == std::string::npos ? std::string::npos : colon - at);
    char* end = nullptr;
    double v = std::strtod(part.c_str(), &end);
    // Whole and finite ("nan" passes every comparison, "100abc" stops strtod early).
    if (part.empty() || *end != '\0' || !std::isfinite(v) || v <= 0)
      return status::error(code::bad_request,
                           "--ramp " + text + ": '" + part + "' is not a number above 0" + what_to_write);
    parts.push_back(v);
    if (colon == std::string::npos)
      break;
    at = colon + 1;
  }
  if (parts.size() < 3 || parts.size() > 4)
    return status::error(code::bad_request, "--ramp " + text + ": give 3 or 4 numbers" + what_to_write);
  ramp_spec s;
  s.start = parts[0];
  s.step = parts[1];
  s.max = parts[2];
  if (parts.size() == 4)
    s.step_seconds = parts[3];
  if (s.max < s.start || s.max > max_rate)
    return status::error(code::bad_request, "--ramp " + text + ": MAX must be at least START and at most "
                                              + fixed_number(max_rate) + what_to_write);
  if (s.step_seconds > 3600)
    return status::error(code::bad_request, "--ramp " + text + ": a step lasts at most 3600 s" + what_to_write);
  if ((s.max - s.start) / s.step + 1 > static_cast<double>(max_steps))
    return status::error(code::bad_request, "--ramp " + text + ": more than "
                                              + std::to_string(max_steps)
                                              + " steps; take a larger STEP" + what_to_write);
  return s;
}

double ramp_step::not_accepted_percent() const noexcept {
  return offered ? 100.0 * static_cast<double>(not_accepted) / static_cast<double>(offered) : 0;
}

bool ramp_result::add(double rate, const run_result& r) {
  ramp_step s;
  auto& c = r.counts;
  s.rate = rate;
  s.seconds = r.settings.measured_seconds;
  s.offered = c.offered();
  s.accepted = c.accepted_count();
  s.not_accepted = s.offered - s.accepted;
  s.goodput = r.goodput_per_second();
  s.p50_ns = c.latency().percentile(50);
  s.p99_ns = c.latency().percentile(99);
  s.max_ns = c.latency().max();
  s.refusals = c.rejected_by_code_and_limit();
  std::string why;
  auto out = [&](const std::string& reason) { why += (why.empty() ? "" : ", ") + reason; };
  char buf[160];
  if (bounds.max_p99_ms > 0 && static_cast<double>(s.p99_ns) > bounds.max_p99_ms * 1e6) {
    std::snprintf(buf, sizeof buf, "p99 %s > %gms", duration_text(s.p99_ns).c_str(), bounds.max_p99_ms);
    out(buf);
  }
  if (bounds.max_not_accepted_percent > 0 && s.not_accepted_percent() > bounds.max_not_accepted_percent) {
    std::snprintf(buf, sizeof buf, "not accepted %.2f%% > %g%%", s.not_accepted_percent(),
                  bounds.max_not_accepted_percent);
    out(buf);
  }
  if (!steps.empty() && bounds.min_goodput_gain > 0) {
    auto& prev = steps.back();
    double added = s.rate - prev.rate;
    if (added > 0 && s.goodput - prev.goodput < bounds.min_goodput_gain * added) {
      std::snprintf(buf, sizeof buf, "goodput rose by %.1f/s of the %g/s added", s.goodput - prev.goodput,
                    added);
      out(buf);
    }
  }
  s.within = why.empty();
  s.why = why;
  steps.push_back(std::move(s));
  return steps.back().within;
}

std::optional<double> ramp_result::knee() const {
  std::optional<double> k;
  for (auto& s : steps) {
    if (!s.within)
      break;
    k = s.rate;
  }
  return k;
}

bool ramp_result::crossed() const {
  for (auto& s : steps)
    if (!s.within)
      return true;
  return false;
}

std::vector<std::pair<std::pair<std::string, std::string>, double>> ramp_result::limits_began() const {
  std::vector<std::pair<std::pair<std::string, std::string>, double>> out;
  for (auto& s : steps)
    for (auto& [key, n] : s.refusals) {
      bool seen = false;
      for (auto& [k, rate] : out)
        seen = seen || k == key;
      if (!seen && n > 0)
        out.push_back({key, s.rate});
    }
  return out;
}

std::string ramp_result::text() const {
  std::string out;
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    out += line;
  };
  add("\nramp: %s to %s by %s, %g s a step; within bounds: p99 <= %gms, not accepted <= %g%%, "
      "goodput rising by at least %g of the rate added\n",
      rate_text(spec.start).c_str(), rate_text(spec.max).c_str(), rate_text(spec.step).c_str(),
      spec.step_seconds, bounds.max_p99_ms, bounds.max_not_accepted_percent,
      bounds.min_goodput_gain);
  add("  %10s %10s %9s %9s %12s  %s\n", "rate/s", "goodput/s", "p50", "p99", "not accepted", "");
  for (auto& s : steps)
    add("  %10.1f %10.1f %9s %9s %11.2f%%  %s\n", s.rate, s.goodput, duration_text(s.p50_ns).c_str(),
        duration_text(s.p99_ns).c_str(), s.not_accepted_percent(),
        s.within ? "within" : ("PAST: " + s.why).c_str());
  auto k = knee();
  if (!k)
    add("knee: none: the first step, %s, was already past the bounds; start lower\n",
        rate_text(spec.start).c_str());
  else if (crossed())
    add("knee: %s (the highest rate served within the bounds)\n", rate_text(*k).c_str());
  else
    add("knee: not reached: every step up to %s stayed within the bounds; ramp higher\n",
        rate_text(*k).c_str());
  for (auto& [key, rate] : limits_began())
    add("  %s %s began to refuse at %s\n", key.first.c_str(),
        key.second.empty() ? "(no limit)" : key.second.c_str(), rate_text(rate).c_str());
  return out;
}

std::string ramp_result::json() const {
  std::string out = "{\"spec\":{\"start\":" + fixed_number(spec.start) + ",\"step\":" + fixed_number(spec.step)
                    + ",\"max\":" + fixed_number(spec.max) + ",\"step_seconds\":" + fixed_number(spec.step_seconds)
                    + "},\"bounds\":{\"max_p99_ms\":" + fixed_number(bounds.max_p99_ms)
                    + ",\"max_not_accepted_percent\":" + fixed_number(bounds.max_not_accepted_percent)
                    + ",\"min_goodput_gain\":" + fixed_number(bounds.min_goodput_gain) + "},\"steps\":[";
  for (size_t i = 0; i < steps.size(); ++i) {
    auto& s = steps[i];
    out += std::string{i ? "," : ""} + "{\"rate_per_second\":" + fixed_number(s.rate)
           + ",\"seconds\":" + fixed_number(s.seconds) + ",\"offered\":" + std::to_string(s.offered)
           + ",\"accepted\":" + std::to_string(s.accepted)
           + ",\"not_accepted\":" + std::to_string(s.not_accepted)
           + ",\"goodput_per_second\":" + fixed_number(s.goodput)
           + ",\"p50_us\":" + fixed_number(static_cast<double>(s.p50_ns) / 1e3)
           + ",\"p99_us\":" + fixed_number(static_cast<double>(s.p99_ns) / 1e3)
           + ",\"max_us\":" + fixed_number(static_cast<double>(s.max_ns) / 1e3)
           + ",\"refused\":[";
    bool first = true;
    for (auto& [key, n] : s.refusals) {
      out += std::string{first ? "" : ","} + "{\"code\":" + json_string(key.first)
             + ",\"limit\":" + json_string(key.second) + ",\"count\":" + std::to_string(n) + "}";
      first = false;
    }
    out += "],\"within\":" + std::string{s.within ? "true" : "false"} + ",\"why\":" + json_string(s.why) + "}";
  }
  auto k = knee();
  out += "],\"knee_per_second\":" + (k ? fixed_number(*k) : std::string{"null"})
         + ",\"crossed\":" + (crossed() ? "true" : "false") + ",\"limits_began\":[";
  bool first = true;
  for (auto& [key, rate] : limits_began()) {
    out += std::string{first ? "" : ","} + "{\"code\":" + json_string(key.first)
           + ",\"limit\":" + json_string(key.second) + ",\"rate_per_second\":" + fixed_number(rate) + "}";
    first = false;
  }
  return out + "]}";
}

} // namespace levee::load
