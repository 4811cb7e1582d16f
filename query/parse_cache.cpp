#include "query/parse_cache.hpp"

namespace levee::query {

parse_cache::parse_cache(size_t max_entries, query_limits limits)
  : max_entries_(max_entries), limits_(limits) {}

result<std::shared_ptr<const query>> parse_cache::parse(std::string_view text) {
  if (auto i = by_text_.find(text); i != by_text_.end()) {
    ++hits_;
    recent_.splice(recent_.begin(), recent_, i->second);  // iterators stay valid
    return i->second->parsed;
  }
  ++misses_;
  auto parsed = ::levee::query::parse(text, limits_);
  if (!parsed)
    return parsed.error();
  auto q = std::make_shared<const query>(std::move(*parsed));
  if (max_entries_ == 0)
    return q;
  if (by_text_.size() >= max_entries_) {
    by_text_.erase(std::string_view{recent_.back().text});
    recent_.pop_back();
  }
  recent_.push_front(entry{std::string{text}, q});
  by_text_.emplace(std::string_view{recent_.front().text}, recent_.begin());
  return q;
}

} // namespace levee::query
