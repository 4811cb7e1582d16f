#include "query/counter.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "query/value_order.hpp"

namespace levee::query {
namespace {

void append_u64(uint64_t v, std::string& out) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out += static_cast<char>((v >> shift) & 0xff);
}

// A byte key per value, equal exactly when the values are equal as the query language
// compares them: every number that is a whole int64 is keyed as that integer.
void append_key(const events::value& v, std::string& out) {
  switch (v.index()) {
    case 0: out += 'n'; return;
    case 1: out += std::get<bool>(v) ? 't' : 'f'; return;
    case 2:
      out += 'i';
      append_u64(static_cast<uint64_t>(std::get<int64_t>(v)), out);
      return;
    case 3: {
      double d = std::get<double>(v);
      if (std::isnan(d)) {
        out += 'N';
        return;
      }
      constexpr double two_63 = 9223372036854775808.0;
      if (d >= -two_63 && d < two_63 && std::trunc(d) == d) {
        out += 'i';
        append_u64(static_cast<uint64_t>(static_cast<int64_t>(d)), out);
        return;
      }
      uint64_t bits = 0;
      std::memcpy(&bits, &d, sizeof bits);
      out += 'd';
      append_u64(bits, out);
      return;
    }
    default: {
      const auto& s = std::get<std::string>(v);
      out += 's';
      append_u64(s.size(), out);  // the length keeps ("ab","c") apart from ("a","bc")
      out += s;
      return;
    }
  }
}

std::string group_key(const std::vector<events::value>& values) {
  std::string key;
  for (const auto& v : values)
    append_key(v, key);
  return key;
}

const events::value null_value{};

} // namespace

bool operator==(const group& a, const group& b) {
  return a.count == b.count && a.values == b.values;
}

counter::counter(const query& q, const query_limits& limits)
    : counter(q.count_by(), limits.max_groups) {}

counter::counter(std::vector<field_name> by, uint64_t max_groups)
    : by_(std::move(by)), max_groups_(max_groups) {}

void counter::event_key(const events::event& e, std::string& key) const {
  key.clear();
  for (const field_name& f : by_) {
    if (f.is_timestamp) {
      append_key(events::value{e.timestamp_ms}, key);
      continue;
    }
    const events::value* v = e.find(f.name);
    append_key(v != nullptr ? *v : null_value, key);
  }
}

status counter::too_many_groups(uint64_t observed) const {
  std::string by;
  for (const field_name& f : by_)
    by += (by.empty() ? "" : ",") + to_string(f);
  auto detail = "a count by " + (by.empty() ? std::string{"nothing"} : by)
                + " has more groups than allowed (query.max_groups); narrow the query (a "
                  "filter, a shorter time range, fewer by-fields)";
  // No limit key: the bound is the query language's own (QUERY.md), not a config
  // setting. The numbers travel as fields, so a relayed refusal keeps them.
  return status::refused(rejection::of(code::message_too_large)
                           .observed(observed)
                           .max(max_groups_)
                           .detail(std::move(detail)),
                         "query.max_groups observed " + std::to_string(observed) + " > max "
                           + std::to_string(max_groups_) + ", do not retry: a count by "
                           + (by.empty() ? std::string{"nothing"} : by)
                           + " has more groups than allowed; narrow the query (a filter, a "
                             "shorter time range, fewer by-fields)");
}

status counter::add(const events::event& e) {
  event_key(e, key_);
  auto found = index_.find(key_);
  if (found != index_.end()) {
    ++groups_[found->second].count;
    return {};
  }
  if (groups_.size() >= max_groups_)
    return too_many_groups(groups_.size() + 1);
  group g;
  g.values.reserve(by_.size());
  for (const field_name& f : by_) {
    const events::value* v = f.is_timestamp ? nullptr : e.find(f.name);
    g.values.push_back(f.is_timestamp ? events::value{e.timestamp_ms}
                                      : (v != nullptr ? *v : null_value));
  }
  g.count = 1;
  index_.emplace(key_, groups_.size());
  groups_.push_back(std::move(g));
  return {};
}

status counter::merge(const counter& other) {
  if (other.by_ != by_)
    return status::error(code::bad_request, "cannot merge counts by different fields");
  return merge(other.groups_);
}

status counter::merge(const std::vector<group>& partial) {
  std::vector<std::string> keys;
  keys.reserve(partial.size());
  std::unordered_set<std::string> fresh;
  for (const group& g : partial) {
    if (g.values.size() != by_.size())
      return status::error(code::bad_request,
                           "a partial count has " + std::to_string(g.values.size())
                               + " values per group, expected " + std::to_string(by_.size()));
    keys.push_back(group_key(g.values));
    if (index_.count(keys.back()) == 0)
      fresh.insert(keys.back());
  }
  if (groups_.size() + fresh.size() > max_groups_)
    return too_many_groups(groups_.size() + fresh.size());
  for (size_t i = 0; i < partial.size(); ++i) {
    auto [it, inserted] = index_.emplace(keys[i], groups_.size());
    if (inserted)
      groups_.push_back(group{partial[i].values, 0});
    groups_[it->second].count += partial[i].count;
  }
  return {};
}

std::vector<group> counter::results() const {
  std::vector<group> out = groups_;
  if (out.empty() && by_.empty())
    out.push_back(group{{}, 0});
  std::sort(out.begin(), out.end(), [](const group& a, const group& b) {
    if (a.count != b.count)
      return a.count > b.count;
    return std::lexicographical_compare(a.values.begin(), a.values.end(), b.values.begin(),
                                        b.values.end(), total_less);
  });
  return out;
}

} // namespace levee::query
