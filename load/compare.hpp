#pragma once
// `levee load compare A.json B.json [--json]`: two runs' JSON results side by side (before
// and after a change). Every number of the two results is a row (headline figures first:
// offered, accepted, goodput, rejections, latency percentiles; then by code, by limit, the
// target's counters and process, the ramp's knee), with B - A and the change in % of A; a
// number only one run has shows "-" for the other. The settings (target, mode, rate,
// connections, sizes) are compared apart: runs made differently are said to differ, so a
// change in the figures is not read as a change in the target. The per-second series and
// the ramp's steps are left out (compare the HTML reports for those).

#include <optional>
#include <string>
#include <vector>

#include "limits/status.hpp"

namespace levee::load {

struct comparison {
  struct row {
    std::string metric;  // "latency.p99_us", "rejected.by_code.rate_limited"
    std::optional<double> a, b;
  };
  struct setting {
    std::string name, a, b;
  };
  std::string a_name, b_name;
  std::vector<setting> settings_differ;
  std::vector<row> rows;

  std::string text() const;
  /// {"a":NAME,"b":NAME,"settings_differ":[{"setting","a","b"}],
  ///  "metrics":[{"metric","a","b","delta","change_percent"}]} (null where a run lacks it).
  std::string json() const;
};

/// Compares two `levee load --json` results (their text); an error names the file that is
/// not one.
result<comparison> compare_results(const std::string& a_text, const std::string& a_name,
                                   const std::string& b_text, const std::string& b_name);

} // namespace levee::load
