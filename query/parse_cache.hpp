#pragma once
// The queries a node parsed lately, by their text (ARCHITECTURE.md "Satellites and the
// server"): a dashboard, an alert or a load test sends the same text again and again, and
// the router and every satellite would otherwise parse it anew for each run. A query is
// immutable once parsed (query.hpp), so one parse serves every run of its text at once.
//
//   query::parse_cache cache;
//   auto q = cache.parse("where level == \"ERROR\" limit 10");  // result<shared_ptr<const query>>
//
// Bounded: at most `max_entries` texts, the least recently used goes first; a text is at
// most query.max_text_bytes, so the texts held are at most max_entries x that. Text that
// does not parse is not kept (its error is made again each time, with its position).
// Not thread-safe: one per actor.

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "query/query.hpp"

namespace levee::query {

/// Entries a cache holds by default. 256 distinct texts cover the panels of many
/// dashboards; at the 4 KiB text bound that is at most 1 MiB of text per cache.
constexpr size_t default_parse_cache_entries = 256;

class parse_cache {
public:
  explicit parse_cache(size_t max_entries = default_parse_cache_entries,
                       query_limits limits = {});

  parse_cache(const parse_cache&) = delete;
  parse_cache& operator=(const parse_cache&) = delete;

  /// The parsed query for `text`: the one kept, or parse(text, limits) now (kept when it
  /// parses). The same errors as parse().
  result<std::shared_ptr<const query>> parse(std::string_view text);

  size_t size() const noexcept { return by_text_.size(); }
  size_t max_entries() const noexcept { return max_entries_; }
  uint64_t hits() const noexcept { return hits_; }
  uint64_t misses() const noexcept { return misses_; }

private:
  struct entry {
    std::string text;
    std::shared_ptr<const query> parsed;
  };
  size_t max_entries_;
  query_limits limits_;
  std::list<entry> recent_;  // most recently used first
  std::unordered_map<std::string_view, std::list<entry>::iterator> by_text_;  // views into recent_
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

} // namespace levee::query
