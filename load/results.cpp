#include "load/results.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace levee::load {

using std::chrono::nanoseconds;

namespace {

constexpr int64_t ns_per_second = 1'000'000'000;

/// The series of `code`, added when it is new. Few codes: a linear search by view
/// allocates nothing for a code seen before.
code_series& series_of(std::vector<code_series>& all, std::string_view code) {
  auto it = std::find_if(all.begin(), all.end(), [&](const code_series& c) { return c.code == code; });
  if (it == all.end())
    it = all.insert(all.end(), code_series{std::string{code}, {}});
  return *it;
}

} // namespace

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string counts_json(const std::map<std::string, uint64_t>& m) {
  std::string out = "{";
  for (auto& [k, v] : m)
    out += (out.size() > 1 ? "," : "") + json_string(k) + ":" + std::to_string(v);
  return out + "}";
}

std::string histogram_json(const latency_histogram& h) {
  std::string out = "{\"count\":" + std::to_string(h.count());
  for (auto& [name, p] : reported_percentiles())
    out += ",\"" + name + "_us\":" + fixed_number(static_cast<double>(h.percentile(p)) / 1e3);
  out += ",\"max_us\":" + fixed_number(static_cast<double>(h.max()) / 1e3)
         + ",\"mean_us\":" + fixed_number(h.mean() / 1e3) + "}";
  return out;
}

std::string fixed_number(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string short_number(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

const std::vector<std::pair<std::string, double>>& reported_percentiles() {
  static const std::vector<std::pair<std::string, double>> all{
    {"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}, {"p99.99", 99.99}};
  return all;
}

std::string duration_text(uint64_t ns) {
  char buf[32];
  if (ns < 10'000)
    std::snprintf(buf, sizeof buf, "%.2fus", static_cast<double>(ns) / 1e3);
  else if (ns < 1'000'000)
    std::snprintf(buf, sizeof buf, "%.0fus", static_cast<double>(ns) / 1e3);
  else if (ns < 1'000'000'000)
    std::snprintf(buf, sizeof buf, "%.2fms", static_cast<double>(ns) / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.2fs", static_cast<double>(ns) / 1e9);
  return buf;
}

recorder::recorder(nanoseconds warmup, nanoseconds max_lag)
    : warmup_start_(warmup), max_lag_(max_lag) {}

second_counts* recorder::measured(ns intended, ns sent, uint64_t recorder::*total,
                                  uint64_t second_counts::*in_second) {
  if (intended < warmup_start_) {
    ++warmup_;
    return nullptr;
  }
  ++offered_;
  ++(this->*total);
  auto lag = std::max<int64_t>(0, (sent - intended).count());
  max_lag_seen_ = std::max<uint64_t>(max_lag_seen_, static_cast<uint64_t>(lag));
  if (nanoseconds(lag) > max_lag_)
    ++late_;
  // Seconds past the series' bound are counted in its last row (a closed-loop run with
  // --count has no set length).
  auto second = std::min<size_t>(
    static_cast<size_t>((intended - warmup_start_).count() / ns_per_second), max_series_seconds - 1);
  if (seconds_.size() <= second)
    seconds_.resize(second + 1);
  auto& row = seconds_[second];
  row.offered++;
  if (in_second)
    ++(row.*in_second);
  return &row;
}

void recorder::held_back(ns intended) {
  // Not sent, so never late: the lag is the intended time's own.
  (void)measured(intended, intended, &recorder::held_back_, nullptr);
}

void recorder::accepted(ns intended, ns sent, ns done) {
  auto* s = measured(intended, sent, &recorder::accepted_, &second_counts::accepted);
  if (!s)
    return;
  auto latency = static_cast<uint64_t>(std::max<int64_t>(0, (done - intended).count()));
  latency_.record(latency);
  service_.record(static_cast<uint64_t>(std::max<int64_t>(0, (done - sent).count())));
  over_time_.record(static_cast<uint64_t>((intended - warmup_start_).count() / ns_per_second), latency);
  s->max_latency_ns = std::max(s->max_latency_ns, latency);
}

void recorder::rejected(ns intended, ns sent, ns done, std::string_view code,
                        std::string_view limit) {
  auto* row = measured(intended, sent, &recorder::rejected_, &second_counts::rejected);
  if (!row)
    return;
  auto& series = series_of(code_seconds_, code);
  auto second = static_cast<size_t>(row - seconds_.data());
  if (series.per_second.size() <= second)
    series.per_second.resize(second + 1);
  ++series.per_second[second];
  auto key = std::pair<std::string_view, std::string_view>{code, limit};
  auto it = by_code_limit_.find(key);
  if (it == by_code_limit_.end())
    it = by_code_limit_.emplace(std::pair<std::string, std::string>{code, limit}, 0).first;
  ++it->second;
}

std::map<std::string, uint64_t> recorder::rejected_by_code() const {
  std::map<std::string, uint64_t> out;
  for (auto& [key, n] : by_code_limit_)
    out[key.first] += n;
  return out;
}

std::map<std::string, uint64_t> recorder::rejected_by_code_in(size_t second) const {
  std::map<std::string, uint64_t> out;
  for (auto& c : code_seconds_)
    if (second < c.per_second.size() && c.per_second[second] > 0)
      out[c.code] = c.per_second[second];
  return out;
}

std::map<std::string, uint64_t> recorder::rejected_by_limit() const {
  std::map<std::string, uint64_t> out;
  // A refusal that names no limit (a handler's bad_request, a not_found) is still listed,
  // under a name a reader (and a JSON key) can see.
  for (auto& [key, n] : by_code_limit_)
    out[key.second.empty() ? std::string{no_limit_name} : key.second] += n;
  return out;
}

void recorder::failed(ns intended, ns sent, std::string_view what) {
  if (!measured(intended, sent, &recorder::errors_, &second_counts::errors))
    return;
  // An error's text may carry details that vary: past 32 kinds, new ones count as one.
  constexpr size_t max_error_kinds = 32;
  auto it = error_kinds_.find(std::string{what});
  if (it == error_kinds_.end())
    it = error_kinds_
           .emplace(error_kinds_.size() < max_error_kinds ? std::string{what}
                                                          : std::string{"(other errors)"},
                    0)
           .first;
  ++it->second;
}

void recorder::timed_out(ns intended, ns sent) {
  (void)measured(intended, sent, &recorder::timeouts_, &second_counts::timeouts);
}

void recorder::merge(const recorder& o) {
  offered_ += o.offered_;
  held_back_ += o.held_back_;
  accepted_ += o.accepted_;
  rejected_ += o.rejected_;
  errors_ += o.errors_;
  timeouts_ += o.timeouts_;
  late_ += o.late_;
  warmup_ += o.warmup_;
  max_lag_seen_ = std::max(max_lag_seen_, o.max_lag_seen_);
  for (auto& [k, v] : o.by_code_limit_)
    by_code_limit_[k] += v;
  for (auto& [k, v] : o.error_kinds_)
    error_kinds_[k] += v;
  latency_.merge(o.latency_);
  service_.merge(o.service_);
  over_time_.merge(o.over_time_);
  if (seconds_.size() < o.seconds_.size())
    seconds_.resize(o.seconds_.size());
  for (size_t i = 0; i < o.seconds_.size(); ++i) {
    auto& a = seconds_[i];
    auto& b = o.seconds_[i];
    a.offered += b.offered;
    a.accepted += b.accepted;
    a.rejected += b.rejected;
    a.errors += b.errors;
    a.timeouts += b.timeouts;
    a.max_latency_ns = std::max(a.max_latency_ns, b.max_latency_ns);
  }
  for (auto& b : o.code_seconds_) {
    auto& a = series_of(code_seconds_, b.code);
    if (a.per_second.size() < b.per_second.size())
      a.per_second.resize(b.per_second.size());
    for (size_t i = 0; i < b.per_second.size(); ++i)
      a.per_second[i] += b.per_second[i];
  }
}

bool run_result::valid() const noexcept {
  if (settings.closed_loop || counts.sent() == 0)
    return true;
  return static_cast<double>(counts.late_count()) * 100.0
         <= settings.max_late_percent * static_cast<double>(counts.sent());
}

double run_result::per_second(uint64_t n) const noexcept {
  return settings.measured_seconds > 0 ? static_cast<double>(n) / settings.measured_seconds : 0;
}

double run_result::goodput_per_second() const noexcept { return per_second(counts.accepted_count()); }

std::string run_result::text() const {
  auto& s = settings;
  auto& c = counts;
  std::string out;
  char line[512];
  auto add = [&](const char* fmt, auto... args) {
    if constexpr (sizeof...(args) == 0) {
      out += fmt;  // no conversions: the text as it is
    } else {
      std::snprintf(line, sizeof line, fmt, args...);
      out += line;
    }
  };
  add("levee load: %s %s at %s, %u connection%s, %.1f s measured (%.1f s warm-up excluded)\n",
      s.target_kind.c_str(), s.target.c_str(), s.server.c_str(), s.connections,
      s.connections == 1 ? "" : "s", s.measured_seconds, s.warmup_seconds);
  if (s.closed_loop)
    add("mode: closed loop, %" PRIu64 " in flight\n", s.in_flight);
  else if (!s.steps.empty())
    add("mode: open loop, stepped: %s; latency measured from each intended send time\n",
        s.steps.c_str());
  else
    add("mode: open loop at %.1f/s; latency measured from each intended send time\n",
        s.rate_per_second);
  add("\n  %-12s %12s %12s\n", "", "count", "per second");
  auto row = [&](const char* name, uint64_t n) {
    add("  %-12s %12" PRIu64 " %12.1f\n", name, n, per_second(n));
  };
  row("offered", c.offered());
  if (c.held_back_count() > 0)
    row("held back", c.held_back_count());
  row("accepted", c.accepted_count());
  row("rejected", c.rejected_count());
  row("errors", c.error_count());
  row("timeouts", c.timeout_count());
  add("  goodput      %12.1f/s\n", goodput_per_second());
  if (!c.rejected_by_code_and_limit().empty()) {
    add("\n  rejected by code and limit:\n");
    for (auto& [key, n] : c.rejected_by_code_and_limit())
      add("    %-22s %-40s %10" PRIu64 "\n", key.first.c_str(),
          key.second.empty() ? "(no limit)" : key.second.c_str(), n);
  }
  if (!c.errors_by_kind().empty()) {
    add("\n  errors:\n");
    for (auto& [what, n] : c.errors_by_kind())
      add("    %-62s %10" PRIu64 "\n", what.c_str(), n);
  }
  add("\n  %-14s", "latency");
  for (auto& [name, p] : reported_percentiles())
    add(" %9s", name.c_str());
  add(" %9s\n", "max");
  auto percentiles = [&](const char* name, const latency_histogram& h) {
    add("  %-14s", name);
    for (auto& [label, p] : reported_percentiles())
      add(" %9s", duration_text(h.percentile(p)).c_str());
    add(" %9s\n", duration_text(h.max()).c_str());
  };
  percentiles(s.closed_loop ? "from send" : "from intended", c.latency());
  percentiles("service time", c.service_time());
  add("  (of accepted requests; percentiles within +0.8% of exact)\n");
  if (s.closed_loop)
    add("\nnote: closed loop: a slow answer delays the next send, so these latencies hide "
        "coordinated omission; use --rate (open loop) to measure latency\n");
  else
    add("\nschedule: %" PRIu64 " of %" PRIu64 " sends more than %.0f ms late (largest lag %s); "
        "the bound is %.2f%%\n",
        c.late_count(), c.sent(), s.max_lag_ms, duration_text(c.max_lag_ns()).c_str(),
        s.max_late_percent);
  if (!valid())
    add("INVALID RUN: the tool fell behind its own schedule, so the target was not offered "
        "%.1f/s; lower --rate, add --connections, or run the tool on a less busy machine\n",
        s.rate_per_second);
  return out;
}

std::string run_result::json() const {
  auto& s = settings;
  auto& c = counts;
  std::string out = "{\"target\":{\"kind\":" + json_string(s.target_kind)
                    + ",\"name\":" + json_string(s.target) + ",\"server\":" + json_string(s.server)
                    + "},\"mode\":" + (s.closed_loop ? "\"closed\"" : "\"open\"")
                    + ",\"rate_per_second\":" + fixed_number(s.rate_per_second)
                    + ",\"steps\":" + json_string(s.steps)
                    + ",\"in_flight\":" + std::to_string(s.in_flight)
                    + ",\"connections\":" + std::to_string(s.connections)
                    + ",\"payload_bytes\":" + std::to_string(s.payload_bytes)
                    + ",\"ack\":" + json_string(s.ack) + ",\"retry_after\":" + json_string(s.retry_after)
                    + ",\"measured_seconds\":" + fixed_number(s.measured_seconds)
                    + ",\"warmup_seconds\":" + fixed_number(s.warmup_seconds)
                    + ",\"warmup_sends\":" + std::to_string(c.warmup_sends())
                    + ",\"offered\":" + std::to_string(c.offered())
                    + ",\"held_back\":" + std::to_string(c.held_back_count())
                    + ",\"accepted\":" + std::to_string(c.accepted_count())
                    + ",\"errors\":" + std::to_string(c.error_count())
                    + ",\"timeouts\":" + std::to_string(c.timeout_count())
                    + ",\"goodput_per_second\":" + fixed_number(goodput_per_second())
                    + ",\"rejected\":{\"total\":" + std::to_string(c.rejected_count())
                    + ",\"by_code\":" + counts_json(c.rejected_by_code())
                    + ",\"by_limit\":" + counts_json(c.rejected_by_limit()) + "}"
                    + ",\"errors_by_kind\":" + counts_json(c.errors_by_kind())
                    + ",\"latency\":" + histogram_json(c.latency())
                    + ",\"service_time\":" + histogram_json(c.service_time())
                    + ",\"coordinated_omission\":"
                    + (s.closed_loop ? "\"not corrected (closed loop)\"" : "\"corrected\"")
                    + ",\"schedule\":{\"late\":" + std::to_string(c.late_count())
                    + ",\"max_lag_ms\":" + fixed_number(s.max_lag_ms)
                    + ",\"largest_lag_us\":" + fixed_number(static_cast<double>(c.max_lag_ns()) / 1e3)
                    + ",\"max_late_percent\":" + fixed_number(s.max_late_percent) + "}"
                    + ",\"valid\":" + (valid() ? "true" : "false") + ",\"seconds\":[";
  for (size_t i = 0; i < c.seconds().size(); ++i) {
    auto& sec = c.seconds()[i];
    out += std::string{i == 0 ? "" : ","} + "{\"offered\":" + std::to_string(sec.offered)
           + ",\"accepted\":" + std::to_string(sec.accepted)
           + ",\"rejected\":" + std::to_string(sec.rejected)
           + ",\"rejected_by_code\":" + counts_json(c.rejected_by_code_in(i))
           + ",\"errors\":" + std::to_string(sec.errors)
           + ",\"timeouts\":" + std::to_string(sec.timeouts)
           + ",\"max_latency_us\":" + fixed_number(static_cast<double>(sec.max_latency_ns) / 1e3) + "}";
  }
  return out + "]}";
}

} // namespace levee::load
