#include "load/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace levee::load {

using std::chrono::nanoseconds;

open_loop_schedule::open_loop_schedule(std::vector<rate_step> steps) : steps_(std::move(steps)) {
  uint64_t first = 0;
  nanoseconds start{0};
  for (auto& s : steps_) {
    first_of_step_.push_back(first);
    start_of_step_.push_back(start);
    double seconds = std::chrono::duration<double>(s.duration).count();
    if (s.rate_per_second > 0)
      first += static_cast<uint64_t>(std::llround(s.rate_per_second * seconds));
    start += s.duration;
  }
  first_of_step_.push_back(first);
  span_ = start;
}

open_loop_schedule open_loop_schedule::of_count(double rate_per_second, uint64_t count) {
  auto ns = static_cast<int64_t>(std::ceil(static_cast<double>(count) * 1e9 / rate_per_second));
  open_loop_schedule s{{rate_step{rate_per_second, nanoseconds(ns)}}};
  // round(rate * duration) could be one off: the count is what was asked for.
  s.first_of_step_.back() = count;
  return s;
}

nanoseconds open_loop_schedule::intended(uint64_t n) const noexcept {
  // The step holding n: the last whose first send is at or before n.
  auto it = std::upper_bound(first_of_step_.begin(), first_of_step_.end() - 1, n);
  size_t step = static_cast<size_t>(it - first_of_step_.begin()) - 1;
  double offset_ns = static_cast<double>(n - first_of_step_[step]) * 1e9 / steps_[step].rate_per_second;
  return start_of_step_[step] + nanoseconds(static_cast<int64_t>(offset_ns));
}

} // namespace levee::load
