#include "limits/log_limiter.hpp"

#include <cerrno>
#include <mutex>
#include <string>

#include <unistd.h>

#include "limits/log.hpp"

namespace levee {

namespace {

/// The line and its newline in one write(2): a line up to PIPE_BUF (4 KiB) reaches a pipe
/// or file whole even beside other processes' writes; the mutex keeps this process's longer
/// lines whole too. Not stdio: nothing waits in a buffer when the process ends.
void write_to_stderr(std::string_view line) {
  static std::mutex mtx;
  std::string buf;
  buf.reserve(line.size() + 1);
  buf.append(line);
  buf += '\n';
  std::lock_guard<std::mutex> guard{mtx};
  const char* p = buf.data();
  size_t left = buf.size();
  while (left > 0) {
    auto n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;  // stderr is gone: nothing else can be told
    p += n;
    left -= static_cast<size_t>(n);
  }
}

log_sink& current_sink() {
  static log_sink sink = write_to_stderr;
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
  if (!log_enabled(log_level::warn))
    return false;  // not written at this [log] level: not a suppressed line either
  if (bucket_.try_acquire(1).allowed)
    return true;
  suppressed_since_last_.fetch_add(1, std::memory_order_relaxed);
  suppressed_total_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void log_limiter::write(std::string_view who, const rejection& r) {
  std::string line{who};
  line += ": ";
  line += r.to_string();
  if (auto n = suppressed_since_last_.exchange(0, std::memory_order_relaxed); n > 0) {
    line += " (";
    line += std::to_string(n);
    line += " more rejections not logged)";
  }
  log_line(log_level::warn, "limits", line);
}

} // namespace levee
