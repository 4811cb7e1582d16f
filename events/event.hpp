#pragma once
// A structured event: what satellites collect, store and query. A JSON object becomes an
// event with a timestamp and flat, typed fields (nested objects are flattened with dots:
// {"http":{"status":200}} -> field "http.status"). Plain C++, no CAF.
//
// The timestamp is not a field: queries name it `ts` (query/QUERY.md).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace levee::events {

/// A field's value. Integers and doubles compare numerically with each other.
using value = std::variant<std::monostate, bool, int64_t, double, std::string>;

struct field {
  std::string name;
  value val;
};

struct event {
  int64_t timestamp_ms = 0;
  std::vector<field> fields;  // in the order they appeared; names are unique

  /// The field named `name`, or nullptr. Linear: events have a handful of fields.
  const value* find(std::string_view name) const noexcept {
    for (auto& f : fields)
      if (f.name == name)
        return &f.val;
    return nullptr;
  }
};

inline bool operator==(const field& a, const field& b) {
  return a.name == b.name && a.val == b.val;
}
inline bool operator==(const event& a, const event& b) {
  return a.timestamp_ms == b.timestamp_ms && a.fields == b.fields;
}

} // namespace levee::events
