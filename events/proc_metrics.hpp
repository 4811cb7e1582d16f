#pragma once
// Host metrics from /proc, one event per poll:
//   source="proc", host, cpu_percent (busy share of all CPUs since the previous poll; since
//   boot on the first), mem_total_bytes, mem_available_bytes, mem_used_percent,
//   load1, load5, load15.
// A file that cannot be read leaves its fields out of that event and is recorded as the
// last error; the event is still made.

#include <cstdint>
#include <string>

#include "events/defaults.hpp"
#include "events/source.hpp"

namespace levee::events {

/// Keys are `<prefix>.<member>`, prefix "events.proc".
struct proc_metrics_config {
  uint64_t interval_ms = defaults::proc_interval_ms;  // for the driver: ms between polls
  std::string proc_dir = "/proc";  // tests point this at a directory of fake files
  std::string host;                // the `host` field; empty: gethostname()
};

status validate(const proc_metrics_config& config, const std::string& prefix = "events.proc");

class proc_metrics final : public source {
public:
  /// `config` must pass validate().
  explicit proc_metrics(proc_metrics_config config);

  /// One event stamped `now_ms` (none if max_events is 0).
  size_t poll(std::vector<event>& out, size_t max_events, int64_t now_ms) override;
  std::string_view kind() const noexcept override { return "proc"; }

private:
  /// The contents of proc_dir/name (small files: at most 64 KiB are read), or an error.
  bool read_file(const char* name, std::string& text);

  proc_metrics_config config_;
  std::string host_;
  bool have_cpu_ = false;  // previous /proc/stat sample is valid
  uint64_t prev_total_ = 0;
  uint64_t prev_idle_ = 0;
  double last_cpu_percent_ = 0;
  std::string text_;  // reused read buffer
};

} // namespace levee::events
