#pragma once
// The Prometheus text exposition format, version 0.0.4 (METRICS.md): families with their
// `# HELP` and `# TYPE` lines, samples with escaped label values. Hand-written rather
// than prometheus-cpp's registry: the node's figures already live in a StatsReply, read
// once per scrape, so a second set of registered metric objects to keep in step with it
// would only be a copy (README.md "Why in-house").

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace levee::http {

using label = std::pair<std::string_view, std::string_view>;

class exposition {
public:
  /// Starts a family: its HELP and TYPE lines (type: counter, gauge, histogram). A family
  /// is written once, its samples right after it.
  void family(std::string_view name, std::string_view type, std::string_view help);

  /// One sample of the current family: `name` is the family's (or its _bucket, _sum,
  /// _count), labels in the order given.
  void sample(std::string_view name, std::initializer_list<label> labels, double value);
  void sample(std::string_view name, std::initializer_list<label> labels, uint64_t value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  void sample(std::string_view name, uint64_t value) { sample(name, {}, value); }

  /// A family of one unlabelled sample.
  void counter(std::string_view name, std::string_view help, uint64_t value);
  void gauge(std::string_view name, std::string_view help, uint64_t value);
  void gauge(std::string_view name, std::string_view help, double value);

  const std::string& text() const noexcept { return out_; }
  std::string take() { return std::move(out_); }

private:
  void labels(std::initializer_list<label> ls);
  std::string out_;
};

/// `\`, `"` and newline escaped, as a label value must be.
std::string escape_label_value(std::string_view v);

/// A number as the format writes it: integers without a fraction, +Inf, NaN.
std::string format_value(double v);

/// The process's figures from /proc/self (Linux), with the names Prometheus' client
/// libraries use: process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_open_fds, process_max_fds,
/// process_start_time_seconds, process_threads.
void write_process_metrics(exposition& out);

} // namespace levee::http
