#include "load/html_report.hpp"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace levee::load {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML allows no control characters but tab and newline, and a byte above ASCII
        // may not be UTF-8: shown as '?' (the names Levee writes are ASCII).
        if ((c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f)
          out += '?';
        else
          out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {

constexpr double width = 760, height = 260;
constexpr double left = 70, right = 20, top = 20, bottom = 44;

std::string joined(const std::vector<double>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i)
    out += (i ? "," : "") + fixed_number(values[i]);
  return out;
}

/// A round number at or above `v` (1, 2 or 5 times a power of ten), for the y axis.
double nice_ceiling(double v) {
  if (v <= 0)
    return 1;
  double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= v)
      return m * p;
  return 10 * p;
}

struct series {
  std::string name;   // data-series, and the legend
  std::string color;
  std::vector<double> values;
};

std::string svg_open(const std::string& plot, const std::string& extra) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" data-plot=\"" + plot
         + "\" width=\"" + fixed_number(width) + "\" height=\"" + fixed_number(height) + "\" viewBox=\"0 0 "
         + fixed_number(width) + " " + fixed_number(height) + "\"" + extra + ">\n";
}

/// Axes with 5 ticks on y (0 .. y_max) and the x ticks given (position in 0..1, label).
std::string axes(double y_max, const std::string& y_label, const std::string& x_label,
                 const std::vector<std::pair<double, std::string>>& x_ticks) {
  double w = width - left - right, h = height - top - bottom;
  std::string out = "<g class=\"axes\">\n";
  for (int i = 0; i <= 5; ++i) {
    double y = top + h - h * i / 5.0;
    out += "<line x1=\"" + fixed_number(left) + "\" y1=\"" + fixed_number(y) + "\" x2=\"" + fixed_number(left + w)
           + "\" y2=\"" + fixed_number(y) + "\" class=\"grid\"/>\n<text x=\"" + fixed_number(left - 6) + "\" y=\""
           + fixed_number(y + 4) + "\" text-anchor=\"end\">" + short_number(y_max * i / 5.0) + "</text>\n";
  }
  for (auto& [at, label] : x_ticks)
    out += "<text x=\"" + fixed_number(left + w * at) + "\" y=\"" + fixed_number(top + h + 16)
           + "\" text-anchor=\"middle\">" + html_escape(label) + "</text>\n";
  out += "<text x=\"" + fixed_number(left + w / 2) + "\" y=\"" + fixed_number(height - 6)
         + "\" text-anchor=\"middle\">" + html_escape(x_label) + "</text>\n<text x=\"14\" y=\""
         + fixed_number(top + h / 2) + "\" transform=\"rotate(-90 14 " + fixed_number(top + h / 2)
         + ")\" text-anchor=\"middle\">" + html_escape(y_label) + "</text>\n</g>\n";
  return out;
}

/// Lines over x = 0 .. n-1 (seconds or slots), y from 0.
std::string line_plot(const std::string& plot, const std::string& extra, const std::string& x_label,
                      double x_step, const std::string& y_label, const std::vector<series>& all) {
  size_t n = 0;
  double y_max = 0;
  for (auto& s : all) {
    n = std::max(n, s.values.size());
    for (auto v : s.values)
      y_max = std::max(y_max, v);
  }
  y_max = nice_ceiling(y_max * 1.05);
  double w = width - left - right, h = height - top - bottom;
  std::vector<std::pair<double, std::string>> ticks;
  for (int i = 0; i <= 5 && n > 1; ++i) {
    auto at = static_cast<size_t>(std::lround(static_cast<double>(n - 1) * i / 5.0));
    ticks.push_back({static_cast<double>(at) / static_cast<double>(n - 1),
                     short_number(static_cast<double>(at) * x_step)});
  }
  std::string out = svg_open(plot, extra) + axes(y_max, y_label, x_label, ticks);
  double legend_x = left + 8;
  for (auto& s : all) {
    std::string points;
    for (size_t i = 0; i < s.values.size(); ++i) {
      double x = left + (n > 1 ? w * static_cast<double>(i) / static_cast<double>(n - 1) : w / 2);
      double y = top + h - h * s.values[i] / y_max;
      points += (i ? " " : "") + fixed_number(x) + "," + fixed_number(y);
    }
    out += "<polyline data-series=\"" + html_escape(s.name) + "\" data-values=\""
           + joined(s.values) + "\" points=\"" + points + "\" fill=\"none\" stroke=\"" + s.color
           + "\" stroke-width=\"1.5\"/>\n<text x=\"" + fixed_number(legend_x) + "\" y=\"" + fixed_number(top + 12)
           + "\" fill=\"" + s.color + "\">" + html_escape(s.name) + "</text>\n";
    legend_x += 12 + 8 * static_cast<double>(s.name.size());
  }
  if (n == 0)
    out += "<text x=\"" + fixed_number(width / 2) + "\" y=\"" + fixed_number(height / 2)
           + "\" text-anchor=\"middle\">no samples</text>\n";
  return out + "</svg>\n";
}

std::string throughput_plot(const recorder& c) {
  series offered{"offered", "#555555", {}}, accepted{"accepted", "#2a7d2a", {}},
    rejected{"rejected", "#c03030", {}}, failed{"errors+timeouts", "#d08000", {}};
  for (auto& s : c.seconds()) {
    offered.values.push_back(static_cast<double>(s.offered));
    accepted.values.push_back(static_cast<double>(s.accepted));
    rejected.values.push_back(static_cast<double>(s.rejected));
    failed.values.push_back(static_cast<double>(s.errors + s.timeouts));
  }
  return line_plot("throughput", " data-seconds=\"" + std::to_string(c.seconds().size()) + "\"",
                   "seconds (by intended send time)", 1, "sends per second",
                   {offered, accepted, rejected, failed});
}

std::string latency_over_time_plot(const recorder& c) {
  auto& t = c.latency_over_time();
  std::vector<series> all{{"p50", "#2a7d2a", {}}, {"p90", "#2060b0", {}}, {"p99", "#c03030", {}},
                          {"max", "#777777", {}}};
  for (size_t slot = 0; slot < t.slots(); ++slot) {
    all[0].values.push_back(static_cast<double>(t.percentile(slot, 50)) / 1e3);
    all[1].values.push_back(static_cast<double>(t.percentile(slot, 90)) / 1e3);
    all[2].values.push_back(static_cast<double>(t.percentile(slot, 99)) / 1e3);
    all[3].values.push_back(static_cast<double>(t.percentile(slot, 100)) / 1e3);
  }
  return line_plot("latency-over-time",
                   " data-slot-seconds=\"" + std::to_string(t.slot_seconds()) + "\"",
                   "seconds (by intended send time)", static_cast<double>(t.slot_seconds()),
                   "latency, us (within +12.5%)", all);
}

std::string percentile_plot(const recorder& c) {
  auto& h = c.latency();
  std::vector<std::pair<std::string, double>> points;
  for (auto& [name, p] : reported_percentiles())
    points.push_back({name, static_cast<double>(h.percentile(p)) / 1e3});
  points.push_back({"max", static_cast<double>(h.max()) / 1e3});
  double y_max = 0;
  for (auto& [name, v] : points)
    y_max = std::max(y_max, v);
  y_max = nice_ceiling(y_max * 1.05);
  double w = width - left - right, h_ = height - top - bottom;
  std::vector<std::pair<double, std::string>> ticks;
  for (size_t i = 0; i < points.size(); ++i)
    ticks.push_back({static_cast<double>(i) / static_cast<double>(points.size() - 1), points[i].first});
  std::string out = svg_open("percentiles", " data-count=\"" + std::to_string(h.count()) + "\"")
                    + axes(y_max, "latency, us", "percentile (of accepted requests)", ticks);
  std::string line;
  for (size_t i = 0; i < points.size(); ++i) {
    double x = left + w * static_cast<double>(i) / static_cast<double>(points.size() - 1);
    double y = top + h_ - h_ * points[i].second / y_max;
    line += (i ? " " : "") + fixed_number(x) + "," + fixed_number(y);
    auto p = points[i].first == "max" ? std::string{"100"} : points[i].first.substr(1);
    out += "<circle data-percentile=\"" + p + "\" data-us=\"" + fixed_number(points[i].second) + "\" cx=\""
           + fixed_number(x) + "\" cy=\"" + fixed_number(y) + "\" r=\"3.5\" fill=\"#c03030\"/>\n";
  }
  return out + "<polyline points=\"" + line + "\" fill=\"none\" stroke=\"#c03030\"/>\n</svg>\n";
}

std::string refusal_plot(const recorder& c) {
  auto& all = c.rejected_by_code_and_limit();
  uint64_t most = 0;
  for (auto& [key, n] : all)
    most = std::max(most, n);
  double bar_h = 22;
  double h = std::max(60.0, top + bar_h * static_cast<double>(all.size()) + 20);
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" data-plot=\"refusals\" "
                    "data-total=\"" + std::to_string(c.rejected_count()) + "\" width=\"" + fixed_number(width)
                    + "\" height=\"" + fixed_number(h) + "\" viewBox=\"0 0 " + fixed_number(width) + " " + fixed_number(h) + "\">\n";
  if (all.empty())
    out += "<text x=\"" + fixed_number(left) + "\" y=\"" + fixed_number(top + 16) + "\">no refusals</text>\n";
  double y = top;
  double label_w = 330, w = width - label_w - 90;
  for (auto& [key, n] : all) {
    double bw = most ? w * static_cast<double>(n) / static_cast<double>(most) : 0;
    auto label = key.first + " " + (key.second.empty() ? "(no limit)" : key.second);
    out += "<text x=\"" + fixed_number(label_w - 8) + "\" y=\"" + fixed_number(y + 15) + "\" text-anchor=\"end\">"
           + html_escape(label) + "</text>\n<rect data-code=\"" + html_escape(key.first)
           + "\" data-limit=\"" + html_escape(key.second) + "\" data-count=\"" + std::to_string(n)
           + "\" x=\"" + fixed_number(label_w) + "\" y=\"" + fixed_number(y + 3) + "\" width=\"" + fixed_number(bw)
           + "\" height=\"" + fixed_number(bar_h - 6) + "\" fill=\"#c03030\"/>\n<text x=\""
           + fixed_number(label_w + bw + 6) + "\" y=\"" + fixed_number(y + 15) + "\">" + std::to_string(n) + "</text>\n";
    y += bar_h;
  }
  return out + "</svg>\n";
}

std::string ramp_plot(const ramp_result& r) {
  auto knee = r.knee();
  double x_max = nice_ceiling(r.spec.max), y_max = 0;
  for (auto& s : r.steps)
    y_max = std::max({y_max, s.rate, s.goodput});
  y_max = nice_ceiling(y_max * 1.05);
  double w = width - left - right, h = height - top - bottom;
  std::vector<std::pair<double, std::string>> ticks;
  for (int i = 0; i <= 5; ++i)
    ticks.push_back({i / 5.0, short_number(x_max * i / 5.0)});
  std::string out = svg_open("ramp", " data-knee=\"" + (knee ? fixed_number(*knee) : std::string{}) + "\""
                                       + " data-crossed=\"" + (r.crossed() ? "true" : "false") + "\"")
                    + axes(y_max, "per second", "offered rate, per second", ticks);
  auto x_of = [&](double rate) { return left + w * rate / x_max; };
  auto y_of = [&](double v) { return top + h - h * v / y_max; };
  // The ideal: every send served.
  out += "<line x1=\"" + fixed_number(x_of(0)) + "\" y1=\"" + fixed_number(y_of(0)) + "\" x2=\"" + fixed_number(x_of(std::min(x_max, y_max)))
         + "\" y2=\"" + fixed_number(y_of(std::min(x_max, y_max))) + "\" stroke=\"#bbbbbb\" stroke-dasharray=\"4 4\"/>\n";
  std::string line;
  for (size_t i = 0; i < r.steps.size(); ++i) {
    auto& s = r.steps[i];
    line += (i ? " " : "") + fixed_number(x_of(s.rate)) + "," + fixed_number(y_of(s.goodput));
    out += "<circle data-rate=\"" + fixed_number(s.rate) + "\" data-goodput=\"" + fixed_number(s.goodput)
           + "\" data-p99-us=\"" + fixed_number(static_cast<double>(s.p99_ns) / 1e3) + "\" data-within=\""
           + (s.within ? "true" : "false") + "\" cx=\"" + fixed_number(x_of(s.rate)) + "\" cy=\""
           + fixed_number(y_of(s.goodput)) + "\" r=\"4\" fill=\"" + (s.within ? "#2a7d2a" : "#c03030")
           + "\"><title>" + html_escape(short_number(s.rate) + "/s: goodput " + fixed_number(s.goodput) + "/s"
                                        + (s.within ? "" : "; past: " + s.why))
           + "</title></circle>\n";
  }
  out += "<polyline points=\"" + line + "\" fill=\"none\" stroke=\"#2a7d2a\"/>\n";
  if (knee)
    out += "<line class=\"knee\" x1=\"" + fixed_number(x_of(*knee)) + "\" y1=\"" + fixed_number(top) + "\" x2=\""
           + fixed_number(x_of(*knee)) + "\" y2=\"" + fixed_number(top + h) + "\" stroke=\"#2060b0\"/>\n<text x=\""
           + fixed_number(x_of(*knee) + 4) + "\" y=\"" + fixed_number(top + 12) + "\" fill=\"#2060b0\">knee "
           + short_number(*knee) + "/s</text>\n";
  return out + "</svg>\n";
}

} // namespace

std::string html_report(const report_parts& parts) {
  auto& r = *parts.result;
  auto& s = r.settings;
  auto& c = r.counts;
  std::string accounting = !parts.side || !parts.side->accounting.made ? "not checked"
                           : parts.side->accounting.held               ? "held"
                                                                       : "mismatch";
  std::string title = "levee load: " + s.target_kind + " " + s.target + " at " + s.server;
  std::string out =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>"
    + html_escape(title)
    + "</title>\n<style>\nbody { font-family: sans-serif; margin: 2em; color: #222; }\n"
      "svg.plot { border: 1px solid #ddd; margin: 0.5em 0; }\nsvg text { font-size: 11px; }\n"
      ".grid { stroke: #eeeeee; }\ntable { border-collapse: collapse; }\n"
      "td, th { padding: 2px 10px; text-align: right; }\ntd:first-child { text-align: left; }\n"
      "pre { background: #f6f6f6; padding: 0.5em; }\n.invalid { color: #c03030; }\n</style>\n"
      "</head>\n<body data-offered=\"" + std::to_string(c.offered()) + "\" data-accepted=\""
    + std::to_string(c.accepted_count()) + "\" data-rejected=\"" + std::to_string(c.rejected_count())
    + "\" data-errors=\"" + std::to_string(c.error_count()) + "\" data-timeouts=\""
    + std::to_string(c.timeout_count()) + "\" data-goodput=\"" + fixed_number(r.goodput_per_second())
    + "\" data-valid=\"" + (r.valid() ? "true" : "false") + "\" data-accounting=\"" + accounting
    + "\">\n<h1>" + html_escape(title) + "</h1>\n";
  if (!r.valid())
    out += "<p class=\"invalid\">INVALID RUN: the tool fell behind its own schedule, so the "
           "target was not offered the rate asked for.</p>\n";
  out += "<h2>Summary</h2>\n<pre>" + html_escape(r.text()) + "</pre>\n";
  out += "<h2>Throughput over time</h2>\n" + throughput_plot(c);
  out += "<h2>Latency over time</h2>\n" + latency_over_time_plot(c);
  out += "<h2>Latency percentiles</h2>\n" + percentile_plot(c);
  out += "<h2>Refusals by code and limit</h2>\n" + refusal_plot(c);
  if (parts.ramp)
    out += "<h2>Ramp and knee</h2>\n" + ramp_plot(*parts.ramp) + "<pre>"
           + html_escape(parts.ramp->text()) + "</pre>\n";
  if (parts.side)
    out += "<h2>Target</h2>\n<pre>" + html_escape(parts.side->text()) + "</pre>\n";
  if (parts.consumers) {
    auto& k = *parts.consumers;
    out += "<h2>Consumers</h2>\n<div data-section=\"consumers\" data-consumers=\""
           + std::to_string(k.each.size()) + "\" data-read-min=\"" + std::to_string(k.read_min())
           + "\" data-unread-max=\"" + std::to_string(k.unread_max())
           + "\" data-accepted-publishes=\"" + std::to_string(k.accepted)
           + "\" data-end-to-end-p99-us=\""
           + fixed_number(static_cast<double>(k.all().end_to_end.percentile(99)) / 1e3) + "\"><pre>"
           + html_escape(k.text()) + "</pre></div>\n";
  }
  if (!parts.threshold_lines.empty()) {
    out += "<h2>Thresholds</h2>\n<ul>\n";
    for (auto& line : parts.threshold_lines)
      out += "<li data-held=\"" + std::string{line.rfind("PASS", 0) == 0 ? "true" : "false"}
             + "\">" + html_escape(line) + "</li>\n";
    out += "</ul>\n";
  }
  return out + "<p>Made by levee load; latency is measured from each intended send time "
               "(open loop) and is of accepted requests.</p>\n</body>\n</html>\n";
}

} // namespace levee::load
