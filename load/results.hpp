#pragma once
// What a load run measured, and how it is shown: a recorder per sending thread (merged
// when the run ends), the run's settings, and the renderings (a text summary table, one
// line of JSON).
//
// Every send the schedule asked for in the measured window (after the warm-up) is offered
// and ends as exactly one of: held back (not sent: the client honoured a retry_after_ms),
// accepted, rejected (by code and by limit name, as the target's Reject said), an error
// (the connection failed, or a local failure) or a timeout (no answer within the bound).
// So offered = held_back + accepted + rejected + errors + timeouts, always.
//
// Times are nanoseconds from the run's start (the schedule's origin). Latency is from the
// intended send time (open loop: coordinated omission corrected), service time from the
// actual send; both only of accepted requests, so a flood of quick refusals does not make
// the latency look good. Memory is bounded: two fixed histograms, counters, and one row of
// counters per second of the run, up to max_series_seconds (a day, 4 MiB; later seconds
// count in the last row).

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "load/latency_histogram.hpp"
#include "load/latency_series.hpp"

namespace levee::load {

/// One second of the run (by intended send time, from the end of the warm-up).
struct second_counts {
  // Sends whose intended time fell in that second, by how they ended (held back ones are
  // in offered only).
  uint64_t offered = 0, accepted = 0, rejected = 0, errors = 0, timeouts = 0;
  uint64_t max_latency_ns = 0;  // of the accepted sends of that second
};

/// Rejections of one code, second by second (index as `recorder::seconds()`): kept apart
/// from `second_counts` so that a row stays 48 bytes, and only for codes that occurred
/// (a handful: the codes of levee::code), so the series costs 8 bytes a second a code.
struct code_series {
  std::string code;
  std::vector<uint64_t> per_second;
};

/// The per-second series' bound: a day of rows (48 bytes each) per recorder, and 8 bytes a
/// second for each refusal code seen.
constexpr size_t max_series_seconds = 86'400;

class recorder {
public:
  /// Sends meant before `warmup` are not counted (only in warmup_sends()); a send made
  /// more than `max_lag` after its intended time counts as late.
  recorder(std::chrono::nanoseconds warmup, std::chrono::nanoseconds max_lag);

  using ns = std::chrono::nanoseconds;
  void held_back(ns intended);
  void accepted(ns intended, ns sent, ns done);
  void rejected(ns intended, ns sent, ns done, std::string_view code, std::string_view limit);
  void failed(ns intended, ns sent, std::string_view what);
  void timed_out(ns intended, ns sent);
  /// Adds another thread's counts.
  void merge(const recorder& other);

  uint64_t offered() const noexcept { return offered_; }
  uint64_t sent() const noexcept { return offered_ - held_back_; }
  uint64_t held_back_count() const noexcept { return held_back_; }
  uint64_t accepted_count() const noexcept { return accepted_; }
  uint64_t rejected_count() const noexcept { return rejected_; }
  uint64_t error_count() const noexcept { return errors_; }
  uint64_t timeout_count() const noexcept { return timeouts_; }
  uint64_t late_count() const noexcept { return late_; }
  uint64_t warmup_sends() const noexcept { return warmup_; }
  /// The largest lag of a send behind its intended time.
  uint64_t max_lag_ns() const noexcept { return max_lag_seen_; }
  /// (code, limit): a refusal that named no limit has limit "" (shown as "(none)").
  /// Compared as views, so that counting a refusal of a pair seen before allocates nothing.
  struct code_limit_less {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return std::pair<std::string_view, std::string_view>{a.first, a.second}
             < std::pair<std::string_view, std::string_view>{b.first, b.second};
    }
  };
  using code_limit_counts =
    std::map<std::pair<std::string, std::string>, uint64_t, code_limit_less>;
  /// By code and limit together ("rate_limited broker.publish_msgs_per_sec").
  const code_limit_counts& rejected_by_code_and_limit() const noexcept { return by_code_limit_; }
  /// The same summed by code, and by limit name (computed: for reports, not per send).
  std::map<std::string, uint64_t> rejected_by_code() const;
  std::map<std::string, uint64_t> rejected_by_limit() const;
  /// The name rejected_by_limit() files refusals under when their Reject named no limit.
  static constexpr const char* no_limit_name = "(no limit)";
  const std::map<std::string, uint64_t>& errors_by_kind() const noexcept { return error_kinds_; }
  const latency_histogram& latency() const noexcept { return latency_; }
  const latency_histogram& service_time() const noexcept { return service_; }
  const std::vector<second_counts>& seconds() const noexcept { return seconds_; }
  /// Rejections by code in each second (a code's vector may be shorter than seconds():
  /// the seconds after its last rejection are 0).
  const std::vector<code_series>& rejected_by_code_per_second() const noexcept { return code_seconds_; }
  /// Second `second`'s rejections by code, codes with none left out.
  std::map<std::string, uint64_t> rejected_by_code_in(size_t second) const;
  /// Latency (from intended times) of accepted sends over the run, coarse, for plots.
  const latency_series& latency_over_time() const noexcept { return over_time_; }

private:
  /// Counts one send (offered, lag, `total` and the row's `in_second`, if any) and returns
  /// the row of `intended`'s second, or nullptr during the warm-up (counted there only).
  second_counts* measured(ns intended, ns sent, uint64_t recorder::*total,
                          uint64_t second_counts::*in_second);

  ns warmup_start_;
  ns max_lag_;
  uint64_t offered_ = 0, held_back_ = 0, accepted_ = 0, rejected_ = 0, errors_ = 0, timeouts_ = 0;
  uint64_t late_ = 0, warmup_ = 0, max_lag_seen_ = 0;
  std::map<std::string, uint64_t> error_kinds_;
  code_limit_counts by_code_limit_;
  latency_histogram latency_, service_;
  latency_series over_time_;
  std::vector<second_counts> seconds_;
  std::vector<code_series> code_seconds_;
};

/// How the run was made (what the report repeats, and what rates are per).
struct run_settings {
  std::string target_kind;  // "actor" or "publish"
  std::string target;       // the actor's name or the subject
  std::string server;       // host:port
  bool closed_loop = false;
  double rate_per_second = 0;   // open loop: the offered rate (the first step's)
  std::string steps;            // open loop, stepped: "100/s for 5 s, 200/s for 5 s"
  uint64_t in_flight = 0;       // closed loop: requests kept in flight
  uint32_t connections = 1;
  uint64_t payload_bytes = 0;
  std::string ack;              // publish: none or leader
  std::string retry_after;      // honour or ignore
  double measured_seconds = 0;  // the measured window (warm-up excluded)
  double warmup_seconds = 0;
  double max_lag_ms = 0;
  double max_late_percent = 0;
};

/// The merged counts with the run's settings: the verdict and the renderings.
struct run_result {
  run_settings settings;
  recorder counts;

  /// Open loop: false when more than max_late_percent of the sends were late (the tool
  /// fell behind its own schedule, so the target was not offered the rate asked for).
  bool valid() const noexcept;
  /// Per second of the measured window.
  double goodput_per_second() const noexcept;
  double per_second(uint64_t n) const noexcept;

  /// The summary people read: settings, counts, rejections by code and limit, latency
  /// percentiles (and, in closed loop, the warning that they hide coordinated omission).
  std::string text() const;
  /// One JSON object on one line (load/README.md lists its keys).
  std::string json() const;
};

/// The percentiles shown and written: p50, p90, p99, p99.9, p99.99.
const std::vector<std::pair<std::string, double>>& reported_percentiles();

/// `text` as a JSON string, quotes included. The names written (codes, limit keys,
/// subjects, actor names, thresholds) are printable ASCII in practice; any other byte is
/// escaped as \u00XX, so the JSON stays valid.
std::string json_string(std::string_view text);

/// `v` with 3 decimals: every JSON number and data-* attribute of the reports.
std::string fixed_number(double v);
/// `v` as short as it reads ("200", "0.5"): rates and bounds in text.
std::string short_number(double v);

/// Counts by name as a JSON object: {"name":n,...}.
std::string counts_json(const std::map<std::string, uint64_t>& m);
/// A histogram as JSON: {"count", "p50_us" ... "p99.99_us", "max_us", "mean_us"}.
std::string histogram_json(const latency_histogram& h);

/// A duration in ns as people read it: "812us", "2.41ms", "1.50s".
std::string duration_text(uint64_t ns);

} // namespace levee::load
