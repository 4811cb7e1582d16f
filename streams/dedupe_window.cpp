#include "streams/dedupe_window.hpp"

namespace levee::streams {

std::optional<uint64_t> dedupe_window::find(std::string_view id) const {
  auto at = by_id_.find(id);
  if (at == by_id_.end())
    return std::nullopt;
  return at->second;
}

void dedupe_window::insert(std::string_view id, uint64_t offset, int64_t time_ms) {
  if (!enabled() || id.empty())
    return;
  order_.push_back(entry{std::string{id}, offset, time_ms});
  std::string_view key{order_.back().id};
  by_id_.erase(id);  // an older entry of the same id keeps its place in order_ only
  by_id_.emplace(key, offset);
  while (by_id_.size() > max_entries_ || order_.size() > 2 * max_entries_) {
    bool counted = by_id_.size() > max_entries_;
    auto before = by_id_.size();
    pop_front();
    if (counted && by_id_.size() < before)
      ++forgotten_by_count_;
  }
}

void dedupe_window::pop_front() {
  auto& e = order_.front();
  // Only if the map's entry is this one (not a newer entry of the same id).
  if (auto at = by_id_.find(e.id); at != by_id_.end() && at->second == e.offset
                                    && at->first.data() == e.id.data())
    by_id_.erase(at);
  order_.pop_front();
}

void dedupe_window::expire(int64_t now_ms) {
  auto from = horizon(now_ms);
  while (!order_.empty() && order_.front().time_ms <= from) {
    auto before = by_id_.size();
    pop_front();
    if (by_id_.size() < before)
      ++forgotten_by_age_;
  }
}

} // namespace levee::streams
