#include "limits/inflight_table.hpp"

namespace levee {

bool inflight_table::try_acquire(uint64_t requester, uint64_t max, uint64_t& observed) {
  auto& s = shard_for(requester);
  std::lock_guard<std::mutex> guard{s.mtx};
  auto& n = s.counts[requester];
  if (n >= max) {
    observed = n + 1;
    if (n == 0)
      s.counts.erase(requester);
    return false;
  }
  ++n;
  return true;
}

void inflight_table::force_acquire(uint64_t requester) {
  auto& s = shard_for(requester);
  std::lock_guard<std::mutex> guard{s.mtx};
  ++s.counts[requester];
}

void inflight_table::release(uint64_t requester) {
  auto& s = shard_for(requester);
  std::lock_guard<std::mutex> guard{s.mtx};
  auto i = s.counts.find(requester);
  if (i != s.counts.end() && --i->second == 0)
    s.counts.erase(i);
}

uint64_t inflight_table::in_flight(uint64_t requester) const {
  auto& s = shard_for(requester);
  std::lock_guard<std::mutex> guard{s.mtx};
  auto i = s.counts.find(requester);
  return i == s.counts.end() ? 0 : i->second;
}

} // namespace levee
