#include "limits/log_limiter.hpp"

#include <cstdio>

namespace levee {

namespace {

log_sink& current_sink() {
  static log_sink sink = [](std::string_view line) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  };
  return sink;
}

} // namespace

void set_log_sink(log_sink sink) {
  current_sink() = std::move(sink);
}

void write_log_line(std::string_view line) {
  current_sink()(line);
}

void log_limiter::report(std::string_view who, const rejection& r) {
  if (admit())
    write(who, r);
}

bool log_limiter::admit() noexcept {
  if (bucket_.try_acquire(1).allowed)
    return true;
  suppressed_since_last_.fetch_add(1, std::memory_order_relaxed);
  suppressed_total_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void log_limiter::write(std::string_view who, const rejection& r) {
  std::string line{"[levee] "};
  line += who;
  line += ": ";
  line += r.to_string();
  if (auto n = suppressed_since_last_.exchange(0, std::memory_order_relaxed); n > 0) {
    line += " (";
    line += std::to_string(n);
    line += " more rejections not logged)";
  }
  write_log_line(line);
}

} // namespace levee
