// Per-connection publish rates (publishers.hpp).

#include "broker/publishers.hpp"

namespace levee::broker {

publisher_rates::entry& publisher_rates::find_or_add(uint64_t publisher) {
  if (auto it = table_.find(publisher); it != table_.end())
    return *it->second;
  if (table_.size() >= limits_.max_publishers) {
    forget_idle();
    if (table_.size() >= limits_.max_publishers) {
      // Every one is busy: the least recently seen goes (it starts again with a full
      // burst, once: the table's bound matters more than that publisher's burst).
      auto oldest = table_.begin();
      for (auto it = table_.begin(); it != table_.end(); ++it)
        if (it->second->last_ns < oldest->second->last_ns)
          oldest = it;
      table_.erase(oldest);
      ++forgotten_;
    }
  }
  return *table_.emplace(publisher, std::make_unique<entry>(clock_, limits_)).first->second;
}

std::optional<rejection> publisher_rates::admit(uint64_t publisher, uint64_t msgs,
                                                uint64_t bytes) {
  if (!enabled())
    return std::nullopt;
  auto& e = find_or_add(publisher);
  e.last_ns = clock_.now_ns();
  auto refused = [](const char* key, const token_bucket& b, const token_bucket::decision& d,
                    const char* unit) -> rejection {
    return rejection::of(code::rate_limited)
      .limit(key)
      .observed(d.observed_units)
      .max(b.burst())
      .retry_after_ms(d.never ? 0 : token_bucket::to_retry_ms(d.retry_after_ns))
      .detail(d.never ? std::string{"one publish larger than this connection's burst of "}
                          + std::to_string(b.burst()) + " " + unit + "; split it"
                      : std::string{"this connection publishes faster than the broker allows; "
                                    "retry after retry_after_ms, or spread publishes"});
  };
  auto m = e.msgs.try_acquire(msgs);
  if (!m.allowed)
    return refused("broker.publish_msgs_per_sec", e.msgs, m, "messages");
  auto b = e.bytes.try_acquire(bytes);
  if (!b.allowed) {
    e.msgs.refund(msgs);
    return refused("broker.publish_bytes_per_sec", e.bytes, b, "bytes");
  }
  return std::nullopt;
}

void publisher_rates::forget_idle() {
  auto cutoff = clock_.now_ns() - static_cast<int64_t>(limits_.idle_ms) * 1'000'000;
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second->last_ns < cutoff) {
      it = table_.erase(it);
      ++forgotten_;
    } else {
      ++it;
    }
  }
}

} // namespace levee::broker
