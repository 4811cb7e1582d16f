#pragma once
// The aggregator of count queries (`count`, `count by user,host`): counts events per
// distinct tuple of by-field values, on a satellite over its scan and on the server over
// the satellites' partial results (merge). Plain C++, no CAF.
//
// The number of groups is bounded by query.max_groups. A new group past the bound is
// refused with `message_too_large`: the count's answer would be larger than its cap, and
// asking again over the same data gives the same answer, which is exactly the contract of
// that code ("exceeds its size cap; do not retry the same message"). `bad_request` would
// blame the text, which is valid, and `memory_budget_exhausted` is the node-wide queue
// budget, which retrying can pass. The query as a whole should then fail: a count with
// groups left out would be wrong, not partial.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "events/event.hpp"
#include "limits/status.hpp"
#include "query/query.hpp"

namespace levee::query {

struct group {
  std::vector<events::value> values;  // one per by-field, in the query's order; missing = null
  uint64_t count = 0;
};
bool operator==(const group& a, const group& b);

/// Not thread-safe: one counter per scan; the proxy merges the scans' results.
class counter {
public:
  /// Counts by `q.count_by()` (one total when empty), at most `limits.max_groups` groups.
  explicit counter(const query& q, const query_limits& limits = {});
  counter(std::vector<field_name> by, uint64_t max_groups);

  /// Counts the event in its group. Numerically equal int and double values (5, 5.0)
  /// fall in one group, which keeps the value seen first. Fails, counting nothing, only
  /// when the event would open a group past max_groups. Allocates only for a new group.
  status add(const events::event& e);

  /// Adds another counter's groups (same by-fields) to this one. All or nothing: if the
  /// merged groups would exceed max_groups, this counter is unchanged.
  status merge(const counter& other);
  /// The same for groups received from elsewhere (a satellite's results); each group
  /// must have one value per by-field, else bad_request. A key that repeats is summed.
  status merge(const std::vector<group>& partial);

  /// The groups, most counted first, ties in ascending order of values (null < bool <
  /// number < string). A total count (no by-fields) always has exactly one group, also
  /// with no events. A query's `limit` is applied by whoever has the merged results:
  /// cutting partial results before the merge would drop counts.
  std::vector<group> results() const;

  size_t group_count() const noexcept { return groups_.size(); }
  const std::vector<field_name>& by() const noexcept { return by_; }
  uint64_t max_groups() const noexcept { return max_groups_; }

private:
  void event_key(const events::event& e, std::string& key) const;
  status too_many_groups(uint64_t observed) const;

  std::vector<field_name> by_;
  uint64_t max_groups_;
  std::vector<group> groups_;
  std::unordered_map<std::string, size_t> index_;  // group key -> position in groups_
  std::string key_;  // reused by add() so a known group costs no allocation
};

} // namespace levee::query
