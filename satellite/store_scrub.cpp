#include "satellite/store_scrub.hpp"

#include <algorithm>

#include "limits/defaults.hpp"
#include "limits/printable.hpp"

namespace levee::satellite {

using std::chrono::nanoseconds;

store_scrub::store_scrub(const persistence::segment_log& log, uint64_t bytes_per_sec,
                         uint64_t max_step_bytes, std::chrono::milliseconds interval,
                         const clock_source& clock, line_sink say)
  : scrubber_(log),
    step_bytes_(std::max(persistence::scrub_min_step_bytes,
                         std::min(max_step_bytes, bytes_per_sec))),
    interval_(interval),
    one_step_(nanoseconds(static_cast<int64_t>(
      static_cast<double>(step_bytes_) * 1e9 / static_cast<double>(std::max<uint64_t>(bytes_per_sec, 1))))),
    // A burst of one step: from idle one step runs at once, then the rate paces them.
    rate_(clock, bytes_per_sec, step_bytes_),
    lines_(clock, defaults::rejection_log_lines_per_sec, defaults::rejection_log_burst_lines),
    say_(std::move(say)) {}

nanoseconds store_scrub::step() {
  if (!prepaid_) {
    auto d = rate_.try_acquire(step_bytes_);
    if (!d.allowed)
      return nanoseconds(d.retry_after_ns);
  }
  prepaid_ = false;
  auto r = scrubber_.step(step_bytes_);
  if (r.bytes_read < step_bytes_)
    rate_.refund(step_bytes_ - r.bytes_read);  // the rate counts what was read
  for (auto& damage : r.new_damage)
    say(damage);
  if (r.pass_done)
    return interval_;
  if (r.bytes_read == 0)
    return one_step_;  // nothing read and no pass ended: never spin on it
  auto next = rate_.try_acquire(step_bytes_);
  if (!next.allowed)
    return nanoseconds(next.retry_after_ns);
  prepaid_ = true;
  return nanoseconds(0);
}

void store_scrub::say(const persistence::scrub_damage& damage) {
  if (!lines_.try_acquire(1).allowed) {
    ++unsaid_;
    return;
  }
  auto line = "the store's scrub found damage: " + printable(damage.to_string())
              + "; queries that read it fail with storage_error";
  if (unsaid_ > 0)
    line += " (" + std::to_string(unsaid_) + " more damaged segments not logged)";
  unsaid_ = 0;
  say_(line);
}

void store_scrub::fill(wire::StoreStats& out) const {
  auto s = scrubber_.stats();
  out.set_scrub_bytes_per_sec(rate_.rate());
  out.set_scrub_bytes_verified(s.bytes_verified);
  out.set_scrub_passes(s.passes_completed);
  out.set_scrub_segments_verified(s.segments_verified);
  out.set_scrub_damaged_segments(s.damaged_segments);
  out.set_scrub_last_damage(s.last_damage ? s.last_damage->to_string() : std::string{});
}

} // namespace levee::satellite
