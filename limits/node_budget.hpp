#pragma once
// The node-wide budget of bytes queued in limited mailboxes (ARCHITECTURE.md "The three gates", gate 3), so that
// thousands of actors each within their own bound cannot exhaust memory together.

#include <atomic>
#include <cstdint>

#include "limits/bounded_counter.hpp"

namespace levee {

class node_budget {
public:
  /// `max_bytes` is the configured `node.memory_budget_bytes`.
  explicit node_budget(uint64_t max_bytes) : bytes_(max_bytes) {}

  node_budget(const node_budget&) = delete;
  node_budget& operator=(const node_budget&) = delete;

  /// Reserves `bytes`; false (and counted) when that would exceed the budget. On failure,
  /// `observed` is the total the reservation would have made. O(1), thread-safe, exact.
  bool try_acquire(uint64_t bytes, uint64_t& observed) noexcept {
    if (bytes_.try_add(bytes, observed))
      return true;
    rejections_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  /// Returns bytes reserved by a successful `try_acquire`.
  void release(uint64_t bytes) noexcept { bytes_.sub(bytes); }

  uint64_t in_use() const noexcept { return bytes_.value(); }
  uint64_t max() const noexcept { return bytes_.max(); }
  uint64_t high_water() const noexcept { return bytes_.high_water(); }
  uint64_t rejections() const noexcept { return rejections_.load(std::memory_order_relaxed); }
  void set_max(uint64_t max_bytes) noexcept { bytes_.set_max(max_bytes); }

private:
  bounded_counter bytes_;
  std::atomic<uint64_t> rejections_{0};
};

} // namespace levee
