#include "load/query_mix.hpp"

#include <algorithm>
#include <cctype>

namespace levee::load {

namespace {

const char* const example = "e.g. 3 count by level (a weight of 1 to 1000000, then a tab "
                            "or spaces, then the query)";

} // namespace

result<std::vector<weighted_query>> parse_query_mix(const std::string& content,
                                                    const std::string& origin,
                                                    const query_check& check) {
  std::vector<weighted_query> out;
  size_t line_no = 0;
  size_t at = 0;
  while (at < content.size()) {
    auto end = content.find('\n', at);
    if (end == std::string::npos)
      end = content.size();
    std::string line = content.substr(at, end - at);
    at = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#')
      continue;
    auto where = origin + ":" + std::to_string(line_no) + ": ";
    auto digits_end = line.find_first_not_of("0123456789", first);
    if (digits_end == first)
      return status::error(code::bad_request,
                           where + "a line starts with its weight, a whole number; " + example);
    if (digits_end == std::string::npos || (line[digits_end] != ' ' && line[digits_end] != '\t'))
      return status::error(code::bad_request, where + "the weight " + line.substr(first, digits_end - first)
                                                + " is not followed by a tab or a space and the query; " + example);
    auto weight_text = line.substr(first, digits_end - first);
    uint64_t weight = weight_text.size() > 7 ? max_weight + 1 : std::stoull(weight_text);
    if (weight == 0 || weight > max_weight)
      return status::error(code::bad_request, where + "weight " + weight_text
                                                + " is out of range; " + example);
    auto text_start = line.find_first_not_of(" \t", digits_end);
    if (text_start == std::string::npos)
      return status::error(code::bad_request, where + "weight " + weight_text
                                                + " has no query after it; " + example);
    auto text_end = line.find_last_not_of(" \t");
    auto text = line.substr(text_start, text_end + 1 - text_start);
    if (auto why = check(text))
      return status::error(code::bad_request, where + "query '" + text + "': " + *why
                                                + "; write a query levee query accepts, " + example);
    if (out.size() == max_queries)
      return status::error(code::bad_request, where + "more than " + std::to_string(max_queries)
                                                + " queries; give at most that many lines");
    out.push_back({weight, std::move(text), line_no});
  }
  if (out.empty())
    return status::error(code::bad_request, origin + ": no queries; give one a line, " + example);
  return out;
}

query_chooser::query_chooser(const std::vector<weighted_query>& queries, uint64_t seed) : rng_(seed) {
  uint64_t sum = 0;
  for (auto& q : queries) {
    sum += q.weight;
    cumulative_.push_back(sum);
  }
}

size_t query_chooser::next_index() {
  if (cumulative_.size() <= 1)
    return 0;
  auto u = std::uniform_int_distribution<uint64_t>{0, cumulative_.back() - 1}(rng_);
  // The first query whose cumulative weight is above u: query i takes weight_i values of u.
  auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
  return static_cast<size_t>(it - cumulative_.begin());
}

} // namespace levee::load
