#include "persistence/batch_cache.hpp"

namespace levee::persistence {

const batch_cache::entry* batch_cache::find(uint64_t segment, uint64_t position) {
  if (max_bytes_ == 0)
    return nullptr;
  auto it = index_.find(key{segment, position});
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

void batch_cache::offer(uint64_t segment, uint64_t position, const batch_header& h,
                        const uint8_t* data) {
  if (max_bytes_ == 0 || h.length > max_bytes_ / 4)
    return;
  key k{segment, position};
  if (seen_.erase(k) == 0) {
    if (seen_.size() >= max_seen)
      seen_.clear();
    seen_.insert(k);
    return;
  }
  if (index_.count(k) != 0)
    return;
  while (!lru_.empty() && bytes_ + h.length > max_bytes_) {
    auto& last = lru_.back();
    bytes_ -= last.bytes.size();
    index_.erase(key{last.segment, last.position});
    lru_.pop_back();
  }
  lru_.push_front(entry{segment, position, h,
                        std::string(reinterpret_cast<const char*>(data), h.length)});
  index_.emplace(k, lru_.begin());
  bytes_ += h.length;
}

void batch_cache::clear() {
  lru_.clear();
  index_.clear();
  seen_.clear();
  bytes_ = 0;
}

} // namespace levee::persistence
