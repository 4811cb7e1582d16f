#pragma once
// Rate-limited logging of rejections: at most N lines per second (token bucket); lines
// over the rate are counted and the next line that passes says how many were suppressed.
// A flood of rejections therefore costs one atomic per rejection, not one write. The lines
// are written through limits/log.hpp at level warn (role "limits"): with `[log] level =
// error` none is written and none counts as suppressed.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "limits/clock.hpp"
#include "limits/rejection.hpp"
#include "limits/token_bucket.hpp"

namespace levee {

/// Where log lines go, each formatted whole (limits/log.hpp) and without its newline.
/// Default: stderr, one write(2) per line with the newline. Set once at start-up (not
/// thread-safe against concurrent logging); tests install a capturing sink.
using log_sink = std::function<void(std::string_view line)>;
void set_log_sink(log_sink sink);
void write_log_line(std::string_view line);

class log_limiter {
public:
  log_limiter(const clock_source& clock, uint64_t lines_per_sec, uint64_t burst_lines)
    : bucket_(clock, lines_per_sec, burst_lines) {}

  /// Logs "<who>: <rejection line>" at warn if the rate allows, else counts it.
  void report(std::string_view who, const rejection& r);

  /// The same in two steps, so a caller builds the rejection only when it will be logged:
  /// `if (log.admit()) log.write(who, make_rejection());`. `admit()` counts a refusal.
  bool admit() noexcept;
  void write(std::string_view who, const rejection& r);

  uint64_t suppressed_total() const noexcept {
    return suppressed_total_.load(std::memory_order_relaxed);
  }

private:
  token_bucket bucket_;
  std::atomic<uint64_t> suppressed_since_last_{0};
  std::atomic<uint64_t> suppressed_total_{0};
};

} // namespace levee
