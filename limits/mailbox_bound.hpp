#pragma once
// The bound of one mailbox in messages and bytes, as ONE atomic word, so admitting a
// message is one compare-and-swap and taking it up one fetch_sub, whatever the number of
// concurrent senders; the bound is exact: neither count is ever above its maximum, not
// even briefly. The word also carries a "closed" bit: once an actor terminated, `close()`
// takes every count out in one exchange and no add succeeds any more.
//
//   bit 63      closed
//   bits 38-62  messages (25 bits)
//   bits 0-37   bytes    (38 bits: 256 GiB)

#include <atomic>
#include <cstdint>

namespace levee {

class mailbox_bound {
public:
  static constexpr uint64_t max_messages_representable = (uint64_t{1} << 25) - 1;
  static constexpr uint64_t max_bytes_representable = (uint64_t{1} << 38) - 1;

  enum class result : uint8_t { added, too_many_messages, too_many_bytes, closed };

  mailbox_bound(uint64_t max_messages, uint64_t max_bytes)
    : max_messages_(max_messages), max_bytes_(max_bytes) {}

  /// Checks without changing anything whether one message of `bytes` would fit now (a
  /// cheap pre-check before work that would have to be undone). Fills `observed`.
  result would_fit(uint64_t bytes, uint64_t& observed) const noexcept {
    return check(word_.load(std::memory_order_acquire), bytes, observed);
  }

  /// Adds one message of `bytes` if both counts stay within their maximum.
  result try_add(uint64_t bytes, uint64_t& observed) noexcept {
    auto w = word_.load(std::memory_order_acquire);
    for (;;) {
      auto r = check(w, bytes, observed);
      if (r != result::added)
        return r;
      auto next = w + one_message + bytes;
      if (word_.compare_exchange_weak(w, next, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        note_high_water(messages_of(next), bytes_of(next));
        return result::added;
      }
    }
  }

  /// Takes one message of `bytes` out (the actor took it up). Not after close().
  void remove(uint64_t bytes) noexcept {
    word_.fetch_sub(one_message + bytes, std::memory_order_acq_rel);
  }

  /// Closes the bound and returns what it still counted; idempotent (later calls get 0s).
  void close(uint64_t& messages, uint64_t& bytes) noexcept {
    auto w = word_.exchange(closed_bit, std::memory_order_acq_rel);
    if (w & closed_bit) {
      messages = bytes = 0;
      return;
    }
    messages = messages_of(w);
    bytes = bytes_of(w);
  }

  bool closed() const noexcept { return word_.load(std::memory_order_acquire) & closed_bit; }
  uint64_t messages() const noexcept { return messages_of(word_.load(std::memory_order_relaxed)); }
  uint64_t bytes() const noexcept { return bytes_of(word_.load(std::memory_order_relaxed)); }
  uint64_t max_messages() const noexcept { return max_messages_; }
  uint64_t max_bytes() const noexcept { return max_bytes_; }
  uint64_t messages_high_water() const noexcept { return hw_messages_.load(std::memory_order_relaxed); }
  uint64_t bytes_high_water() const noexcept { return hw_bytes_.load(std::memory_order_relaxed); }

private:
  static constexpr uint64_t closed_bit = uint64_t{1} << 63;
  static constexpr unsigned message_shift = 38;
  static constexpr uint64_t one_message = uint64_t{1} << message_shift;

  static uint64_t messages_of(uint64_t w) noexcept {
    return (w & ~closed_bit) >> message_shift;
  }
  static uint64_t bytes_of(uint64_t w) noexcept { return w & max_bytes_representable; }

  result check(uint64_t w, uint64_t bytes, uint64_t& observed) const noexcept {
    if (w & closed_bit)
      return result::closed;
    if (messages_of(w) + 1 > max_messages_) {
      observed = messages_of(w) + 1;
      return result::too_many_messages;
    }
    if (bytes_of(w) + bytes > max_bytes_) {
      observed = bytes_of(w) + bytes;
      return result::too_many_bytes;
    }
    return result::added;
  }

  void note_high_water(uint64_t messages, uint64_t bytes) noexcept {
    raise(hw_messages_, messages);
    raise(hw_bytes_, bytes);
  }
  static void raise(std::atomic<uint64_t>& hw, uint64_t v) noexcept {
    auto cur = hw.load(std::memory_order_relaxed);
    while (v > cur && !hw.compare_exchange_weak(cur, v, std::memory_order_relaxed))
      ;
  }

  std::atomic<uint64_t> word_{0};
  const uint64_t max_messages_;
  const uint64_t max_bytes_;
  std::atomic<uint64_t> hw_messages_{0};
  std::atomic<uint64_t> hw_bytes_{0};
};

} // namespace levee
