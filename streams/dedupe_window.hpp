#pragma once
// The message ids a partition remembers, so that a publish carrying an id already stored
// is acknowledged with the original offset instead of being stored twice (as JetStream's
// Nats-Msg-Id). Bounded in time (an id is forgotten window_ms after it was stored) and in
// entries (past max_entries the oldest is forgotten first); both are counted. Ids are
// kept in the order they were stored, which is timestamp order (a partition's timestamps
// never go backwards), so forgetting is always from the front.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace levee::streams {

class dedupe_window {
public:
  dedupe_window(uint64_t window_ms, uint64_t max_entries)
    : window_ms_(window_ms), max_entries_(max_entries) {}
  dedupe_window(const dedupe_window&) = delete;
  dedupe_window& operator=(const dedupe_window&) = delete;

  /// The offset `id` was stored at, if it is remembered.
  std::optional<uint64_t> find(std::string_view id) const;
  /// Remembers `id` stored at `offset` at `time_ms` (not before the last one's time); an
  /// id remembered already now points at the newer offset. Forgets the oldest past
  /// max_entries. An empty id (a message without one) is not remembered.
  void insert(std::string_view id, uint64_t offset, int64_t time_ms);
  /// Forgets the ids stored window_ms or longer before `now_ms`.
  void expire(int64_t now_ms);
  /// The time from which an id is still remembered at `now_ms`.
  int64_t horizon(int64_t now_ms) const noexcept {
    return now_ms - static_cast<int64_t>(window_ms_);
  }

  /// Forgets every id (a replica whose log was cut rebuilds the window from what is left).
  void clear() noexcept {
    by_id_.clear();
    order_.clear();
  }

  bool enabled() const noexcept { return window_ms_ > 0; }
  size_t size() const noexcept { return by_id_.size(); }
  uint64_t forgotten_by_age() const noexcept { return forgotten_by_age_; }
  uint64_t forgotten_by_count() const noexcept { return forgotten_by_count_; }

private:
  struct entry {
    std::string id;
    uint64_t offset;
    int64_t time_ms;
  };
  void pop_front();

  uint64_t window_ms_;
  uint64_t max_entries_;
  // Elements of a deque stay where they are on push_back and pop_front, so the map's keys
  // may view the ids inside them.
  std::deque<entry> order_;
  std::unordered_map<std::string_view, uint64_t> by_id_;  // id -> offset
  uint64_t forgotten_by_age_ = 0;
  uint64_t forgotten_by_count_ = 0;
};

} // namespace levee::streams
