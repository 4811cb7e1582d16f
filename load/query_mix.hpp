// A file of weighted queries for `levee load --target query --query-file PATH`: one query
// a line, `WEIGHT QUERY TEXT` (a tab or spaces between), blank lines and `#` comments
// skipped. Each send picks one by weight: query i with probability weight_i / sum. The
// query language lives above load/ (query/), so the caller passes its parser in as
// `check`, and every query is checked before a run starts.

#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "limits/status.hpp"

namespace levee::load {

struct weighted_query {
  uint64_t weight = 0;
  std::string text;
  size_t line = 0;  // in the file, from 1
};

/// What is wrong with a query text (nullopt: it parses).
using query_check = std::function<std::optional<std::string>(const std::string& text)>;

/// The queries of `content` (read from `origin`, named in errors). An error names the
/// line, what is wrong and what to write. At most max_queries lines of queries; weights
/// from 1 to max_weight.
result<std::vector<weighted_query>> parse_query_mix(const std::string& content,
                                                    const std::string& origin,
                                                    const query_check& check);

constexpr size_t max_queries = 10'000;
constexpr uint64_t max_weight = 1'000'000;

/// Picks queries by weight through a table of cumulative weights; deterministic for a
/// given seed (each connection its own).
class query_chooser {
public:
  query_chooser(const std::vector<weighted_query>& queries, uint64_t seed);
  size_t next_index();
  size_t size() const noexcept { return cumulative_.size(); }

private:
  std::vector<uint64_t> cumulative_;
  std::mt19937_64 rng_;
};

} // namespace levee::load
