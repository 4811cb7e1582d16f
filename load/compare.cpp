#include "load/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "limits/error_code.hpp"
#include "load/results.hpp"

namespace levee::load {

namespace {

using json = nlohmann::json;

/// How the run was made, not what it measured: compared as settings.
const std::set<std::string>& setting_keys() {
  static const std::set<std::string> keys{
    "target.kind", "target.name", "target.server", "mode", "rate_per_second", "steps",
    "in_flight", "connections", "payload_bytes", "ack", "retry_after", "measured_seconds",
    "warmup_seconds", "schedule.max_lag_ms", "schedule.max_late_percent", "coordinated_omission",
    "target_side.other_traffic", "ramp.spec.start", "ramp.spec.step", "ramp.spec.max",
    "ramp.spec.step_seconds", "ramp.bounds.max_p99_ms", "ramp.bounds.max_not_accepted_percent",
    "ramp.bounds.min_goodput_gain"};
  return keys;
}

/// Left out: series, lists, and what identifies one process (its pid).
bool skipped(const std::string& path) {
  return path == "target_side.process.pid" || path == "warmup_sends";
}

/// The figures people look at first, in this order; the rest follow sorted.
const std::vector<std::string>& headline() {
  static const std::vector<std::string> keys{
    "offered", "accepted", "goodput_per_second", "rejected.total", "held_back", "errors",
    "timeouts", "latency.p50_us", "latency.p90_us", "latency.p99_us", "latency.p99.9_us",
    "latency.p99.99_us", "latency.max_us", "latency.mean_us", "service_time.p50_us",
    "service_time.p99_us", "service_time.max_us", "ramp.knee_per_second"};
  return keys;
}

void flatten(const json& j, const std::string& path, std::map<std::string, double>& numbers,
             std::map<std::string, std::string>& texts) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items())
      flatten(v, path.empty() ? k : path + "." + k, numbers, texts);
  } else if (j.is_number()) {
    if (!skipped(path))
      numbers[path] = j.get<double>();
  } else if (j.is_string()) {
    texts[path] = j.get<std::string>();
  } else if (j.is_boolean()) {
    texts[path] = j.get<bool>() ? "true" : "false";
  }
  // Arrays (the per-second series, the ramp's steps, thresholds) and nulls: left out.
}

struct flat {
  std::map<std::string, double> numbers;
  std::map<std::string, std::string> texts;
};

result<flat> read(const std::string& text, const std::string& name) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("offered") || !j.contains("latency"))
    return status::error(code::bad_request,
                         name + " is not the JSON result of a load run; write one with "
                                "levee load ... --json > " + name);
  flat out;
  flatten(j, "", out.numbers, out.texts);
  return out;
}

std::string shown(const std::optional<double>& v) {
  if (!v)
    return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f", *v);
  return buf;
}

} // namespace

result<comparison> compare_results(const std::string& a_text, const std::string& a_name,
                                   const std::string& b_text, const std::string& b_name) {
  auto a = read(a_text, a_name);
  if (!a)
    return a.error();
  auto b = read(b_text, b_name);
  if (!b)
    return b.error();
  comparison out;
  out.a_name = a_name;
  out.b_name = b_name;
  auto setting_text = [](const flat& f, const std::string& key) -> std::string {
    if (auto it = f.texts.find(key); it != f.texts.end())
      return it->second;
    if (auto it = f.numbers.find(key); it != f.numbers.end())
      return short_number(it->second);
    return "-";
  };
  for (auto& key : setting_keys()) {
    auto x = setting_text(*a, key), y = setting_text(*b, key);
    if (x != y)
      out.settings_differ.push_back({key, x, y});
  }
  std::set<std::string> metrics;
  for (auto* f : {&*a, &*b})
    for (auto& [k, v] : f->numbers)
      if (!setting_keys().count(k))
        metrics.insert(k);
  auto row_of = [&](const std::string& k) {
    comparison::row r{k, std::nullopt, std::nullopt};
    if (auto it = a->numbers.find(k); it != a->numbers.end())
      r.a = it->second;
    if (auto it = b->numbers.find(k); it != b->numbers.end())
      r.b = it->second;
    return r;
  };
  for (auto& k : headline())
    if (metrics.erase(k))
      out.rows.push_back(row_of(k));
  for (auto& k : metrics)
    out.rows.push_back(row_of(k));
  return out;
}

std::string comparison::text() const {
  std::string out = "levee load compare: a = " + a_name + ", b = " + b_name + "\n";
  if (settings_differ.empty())
    out += "settings: the same\n";
  else
    out += "settings differ (a change below may be the settings', not the target's):\n";
  char line[512];
  for (auto& s : settings_differ) {
    std::snprintf(line, sizeof line, "  %-36s %s -> %s\n", s.name.c_str(), s.a.c_str(), s.b.c_str());
    out += line;
  }
  std::snprintf(line, sizeof line, "\n  %-52s %14s %14s %14s %9s\n", "", "a", "b", "b - a", "change");
  out += line;
  for (auto& r : rows) {
    std::string delta = "-", change = "-";
    if (r.a && r.b) {
      delta = (*r.b >= *r.a ? "+" : "") + shown(*r.b - *r.a);
      if (*r.a != 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%+.1f%%", 100.0 * (*r.b - *r.a) / std::fabs(*r.a));
        change = buf;
      }
    }
    std::snprintf(line, sizeof line, "  %-52s %14s %14s %14s %9s\n", r.metric.c_str(),
                  shown(r.a).c_str(), shown(r.b).c_str(), delta.c_str(), change.c_str());
    out += line;
  }
  return out;
}

std::string comparison::json() const {
  auto opt = [](const std::optional<double>& v) { return v ? fixed_number(*v) : std::string{"null"}; };
  std::string out = "{\"a\":" + json_string(a_name) + ",\"b\":" + json_string(b_name)
                    + ",\"settings_differ\":[";
  for (size_t i = 0; i < settings_differ.size(); ++i)
    out += std::string{i ? "," : ""} + "{\"setting\":" + json_string(settings_differ[i].name)
           + ",\"a\":" + json_string(settings_differ[i].a) + ",\"b\":" + json_string(settings_differ[i].b) + "}";
  out += "],\"metrics\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    auto& r = rows[i];
    std::optional<double> delta, change;
    if (r.a && r.b) {
      delta = *r.b - *r.a;
      if (*r.a != 0)
        change = 100.0 * (*r.b - *r.a) / std::fabs(*r.a);
    }
    out += std::string{i ? "," : ""} + "{\"metric\":" + json_string(r.metric) + ",\"a\":" + opt(r.a)
           + ",\"b\":" + opt(r.b) + ",\"delta\":" + opt(delta) + ",\"change_percent\":" + opt(change) + "}";
  }
  return out + "]}";
}

} // namespace levee::load
