#pragma once
// The query language over events (QUERY.md; ARCHITECTURE.md "Satellites and the server"):
//
//   where level == "ERROR" and user != "bot" since 15m limit 100 fields ts,user,msg
//   count by user since 1h
//
// `parse` turns text into a `query`, an immutable value: the filter (`matches`), the time
// range (resolved against a caller's clock, so parsing never reads one), the limit, the
// projected fields and the count-by fields. Plain C++, no CAF. Parsing never throws, never
// reads past the text, and recurses at most `max_depth` levels. Matching does not allocate.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/event.hpp"
#include "limits/defaults.hpp"
#include "limits/rejection.hpp"
#include "limits/status.hpp"

namespace levee::query {

/// Every limit of the query language with its default and why. A test pins them.
namespace defaults {
/// bytes of query text: limits/defaults.hpp (query_max_text_bytes) says why, since the CLI
/// and the server check it too (check_text_bytes).
constexpr uint64_t max_text_bytes = ::levee::defaults::query_max_text_bytes;
/// levels of '(' and 'not' nesting. 32 is far above what people write; the parser
/// recurses once per level, so this bound is what protects its stack.
constexpr uint64_t max_depth = 32;
/// Ceiling for max_depth whatever the caller asks: a few hundred frames of recursion is
/// still far from any thread's stack size.
constexpr uint64_t max_depth_ceiling = 256;
/// comparisons in one `where`. 64 keeps the per-event cost of a query bounded: matching
/// touches every comparison at worst, once per scanned event.
constexpr uint64_t max_terms = 64;
/// names in one `fields` or `count by` list. 32 is more columns than a result can show.
constexpr uint64_t max_fields = 32;
/// the largest `limit`. A million rows is already far more than a person reads; bigger
/// exports belong in a stream consumer, not a query.
constexpr uint64_t max_limit = 1'000'000;
/// distinct groups of a count query. 10k groups of a few fields stay within a few MiB in
/// the counter on every satellite and in the proxy's merge.
constexpr uint64_t max_groups = 10'000;
} // namespace defaults

struct query_limits {
  uint64_t max_text_bytes = defaults::max_text_bytes;  // query.max_text_bytes
  uint64_t max_depth = defaults::max_depth;            // query.max_depth (capped at the ceiling)
  uint64_t max_terms = defaults::max_terms;            // query.max_terms
  uint64_t max_fields = defaults::max_fields;          // query.max_fields, per list
  uint64_t max_limit = defaults::max_limit;            // query.max_limit
  uint64_t max_groups = defaults::max_groups;          // query.max_groups, used by `counter`
};

/// A field as a query names it: a field of the event, or the event's timestamp (`ts`).
struct field_name {
  std::string name;           // "ts" when is_timestamp
  bool is_timestamp = false;  // bare `ts`; a field literally named "ts" is written `ts` in backquotes
};
bool operator==(const field_name& a, const field_name& b);

enum class compare_op : uint8_t { eq, ne, lt, le, gt, ge, contains };

/// One end of the time range as written: absent, a duration back from now, or an instant.
struct time_bound {
  enum class kind : uint8_t { open, ago, at };
  kind k = kind::open;
  int64_t ms = 0;  // ago: the duration in ms (>= 0); at: epoch ms
};
bool operator==(const time_bound& a, const time_bound& b);

/// The resolved range [since_ms, until_ms): since is inclusive, until exclusive. An open
/// end is INT64_MIN or INT64_MAX, and an open until also admits the timestamp INT64_MAX.
struct time_range {
  int64_t since_ms = std::numeric_limits<int64_t>::min();
  int64_t until_ms = std::numeric_limits<int64_t>::max();

  bool contains(int64_t ts_ms) const noexcept {
    return ts_ms >= since_ms
           && (ts_ms < until_ms || until_ms == std::numeric_limits<int64_t>::max());
  }
};

/// A comparison `<field> <op> <literal>`. The literal's kind is fixed at parse time; a
/// time written as RFC 3339 text against `ts` is stored as epoch ms.
struct comparison {
  field_name field;
  compare_op op = compare_op::eq;
  events::value literal;
};
bool operator==(const comparison& a, const comparison& b);

/// A node of the filter. The tree is stored flat; and/or are n-ary (`a and (b and c)` is
/// one node with three children), so evaluation recurses only through parentheses and
/// `not`, which `max_depth` bounds.
struct filter_node {
  enum class kind : uint8_t { compare, all_of, any_of, negate };
  kind k = kind::compare;
  uint32_t index = 0;  // compare: into comparisons(); others: first slot in children()
  uint32_t count = 0;  // all_of/any_of: children; negate: 1
};
bool operator==(const filter_node& a, const filter_node& b);

/// Immutable once parsed: one query can be matched from many threads at once.
class query {
public:
  /// The query that selects everything (the empty text).
  query() = default;

  /// Whether the event passes the `where` filter; true when there is none. The time
  /// range is separate (it needs a clock): see `selects`. Never allocates.
  bool matches(const events::event& e) const noexcept;

  /// matches() and the event's timestamp inside `range`.
  bool selects(const events::event& e, const time_range& range) const noexcept {
    return range.contains(e.timestamp_ms) && matches(e);
  }

  /// The time range with relative ends taken back from `now_ms`; saturates instead of
  /// overflowing. The range can be empty (since >= until).
  time_range resolve_time(int64_t now_ms) const noexcept;

  const time_bound& since() const noexcept { return since_; }
  const time_bound& until() const noexcept { return until_; }
  /// The most rows (or, for a count, groups after the merge) to return; nullopt = no limit.
  std::optional<uint64_t> limit() const noexcept { return limit_; }
  /// The projection; empty = every field.
  const std::vector<field_name>& fields() const noexcept { return fields_; }
  /// Whether this is a count query; count_by() is empty for one total count.
  bool is_count() const noexcept { return is_count_; }
  const std::vector<field_name>& count_by() const noexcept { return count_by_; }

  bool has_filter() const noexcept { return !nodes_.empty(); }
  /// The filter tree: nodes()[root] is the root when has_filter().
  const std::vector<filter_node>& nodes() const noexcept { return nodes_; }
  const std::vector<uint32_t>& children() const noexcept { return children_; }
  const std::vector<comparison>& comparisons() const noexcept { return comparisons_; }
  uint32_t root() const noexcept { return root_; }

  /// Canonical text: keywords lower case, single spaces, only needed parentheses, clauses
  /// in the order where, since, until, limit, fields/count. It parses back to an equal
  /// query (with the same limits, except that it may be longer than the original text).
  std::string to_string() const;

  friend bool operator==(const query& a, const query& b);
  friend bool operator!=(const query& a, const query& b) { return !(a == b); }

private:
  friend class parser;
  bool eval(uint32_t node, const events::event& e) const noexcept;
  void print(uint32_t node, std::string& out) const;

  std::vector<filter_node> nodes_;
  std::vector<uint32_t> children_;
  std::vector<comparison> comparisons_;
  uint32_t root_ = 0;
  time_bound since_;
  time_bound until_;
  std::optional<uint64_t> limit_;
  std::vector<field_name> fields_;
  bool is_count_ = false;
  std::vector<field_name> count_by_;
};

/// The size of a query's text against query.max_text_bytes, before anything parses it:
/// the CLI checks it before it sends, the server before it parses the request, parse()
/// first of all. nullopt when it fits, else `message_too_large` (not bad_request: the text
/// may be a valid query, only longer than a query may be) with the limit, observed and max
/// bytes, no retry, and what to do: shorten the query.
std::optional<rejection> check_text_bytes(uint64_t text_bytes, const query_limits& limits = {});

/// Parses query text. An error is `bad_request` with a message that starts with the
/// 0-based byte position and names what was expected and the token found there:
/// `at position 17: expected a value after '==', found 'and'`. A limit that is exceeded
/// is named with observed and max: `at position 40: query.max_depth observed 33 > max 32: ...`.
/// A text over max_text_bytes is refused first, as `message_too_large` with the words of
/// check_text_bytes.
result<query> parse(std::string_view text, const query_limits& limits = {});

/// The event with only the query's projected fields, in the order the query lists them;
/// fields the event lacks are left out. The timestamp is always kept. Every field when
/// the query has no `fields` clause.
events::event project(const query& q, const events::event& e);

/// The canonical text of a field name: bare when it is an identifier and not a keyword,
/// else in backquotes. `ts` for the timestamp.
std::string to_string(const field_name& f);

/// A literal as canonical query text (strings quoted and escaped, doubles with a '.').
std::string literal_to_string(const events::value& v);

std::string_view to_string(compare_op op) noexcept;

} // namespace levee::query
