#pragma once
// Helpers shared by tests: a latch with a bounded wait, and peak-RSS measurement.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <string>

namespace levee::test {

/// A one-shot gate threads can wait on, with a bound so a broken test fails instead of hanging.
class latch {
public:
  void open() {
    std::lock_guard<std::mutex> guard{mtx_};
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, bound, [this] { return open_; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// A counter whose value can be awaited with a bound.
class event_counter {
public:
  void add(uint64_t n = 1) {
    std::lock_guard<std::mutex> guard{mtx_};
    value_ += n;
    cv_.notify_all();
  }
  uint64_t value() {
    std::lock_guard<std::mutex> guard{mtx_};
    return value_;
  }
  /// Waits until value() >= target; false if the bound passed first.
  bool wait_for_at_least(uint64_t target,
                         std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, bound, [&] { return value_ >= target; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  uint64_t value_ = 0;
};

/// Reads a "Vm...: N kB" field of /proc/self/status, in bytes.
inline uint64_t proc_status_bytes(const std::string& field) {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0)
      return std::stoull(line.substr(field.size() + 1)) * 1024;
  return 0;
}

/// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS.
inline void reset_peak_rss() {
  std::ofstream{"/proc/self/clear_refs"} << "5";
}

inline uint64_t peak_rss_bytes() { return proc_status_bytes("VmHWM"); }
inline uint64_t current_rss_bytes() { return proc_status_bytes("VmRSS"); }

} // namespace levee::test
