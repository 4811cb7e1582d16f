// The query language (query/QUERY.md): parsing and its errors, matching semantics, times,
// canonical text, projection and the count aggregator.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "query/counter.hpp"
#include "query/parse_cache.hpp"
#include "query/query.hpp"
#include "query/time_text.hpp"

// Counts heap allocations so tests can show that matching allocates nothing. g++ sees
// malloc paired with a `delete` and warns, not knowing that both sides are replaced here.
namespace {
std::atomic<uint64_t> allocations{0};
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size))
    return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace levee::query {
namespace {

using events::event;
using events::field;
using events::value;

constexpr int64_t int64_min = std::numeric_limits<int64_t>::min();
constexpr int64_t int64_max = std::numeric_limits<int64_t>::max();

query must_parse(std::string_view text, const query_limits& limits = {}) {
  auto r = parse(text, limits);
  EXPECT_TRUE(r.ok()) << "'" << text << "': " << r.error().to_string();
  return r.ok() ? std::move(r).value() : query{};
}

/// The error message of a text that must not parse.
std::string parse_error(std::string_view text, const query_limits& limits = {}) {
  auto r = parse(text, limits);
  if (r.ok())
    return "(parsed as: " + r->to_string() + ")";
  EXPECT_EQ(r.error().code(), code::bad_request);
  return r.error().message();
}

event sample_event() {
  event e;
  e.timestamp_ms = 1000;
  e.fields = {
      {"s", std::string{"Hello World"}},
      {"i", int64_t{5}},
      {"d", 2.5},
      {"b", true},
      {"n", std::monostate{}},
      {"big", int64_t{9007199254740993}},  // 2^53 + 1: not a double
      {"neg", int64_t{-3}},
      {"e", std::string{}},
      {"http.status", int64_t{503}},
      {"Case", int64_t{1}},
      {"count", int64_t{7}},
      {"ts", std::string{"a field named ts"}},
      {"user name", std::string{"ann"}},
  };
  return e;
}

// -- limits -----------------------------------------------------------------------------

// The text's size has its own typed refusal, the same from every place that checks it (the
// CLI before it sends, the server before it parses the request, parse() on a satellite).
TEST(QueryLimits, ATextOverMaxTextBytesIsMessageTooLargeNamingTheLimit) {
  EXPECT_EQ(defaults::max_text_bytes, levee::defaults::query_max_text_bytes);
  EXPECT_FALSE(check_text_bytes(4096));
  auto r = check_text_bytes(2 * 1024 * 1024);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::message_too_large);
  EXPECT_EQ(r->limit, "");  // the query language's own bound, not a config key
  EXPECT_EQ(r->observed, 2u * 1024 * 1024);
  EXPECT_EQ(r->max, 4096u);
  EXPECT_EQ(r->retry_after_ms, 0u);
  EXPECT_EQ(r->to_string(),
            "message_too_large (2): observed 2097152 > max 4096, do not "
            "retry: the query text is longer than a query may be; shorten the query (fewer or "
            "shorter terms)");
  query_limits small;
  small.max_text_bytes = 10;
  EXPECT_FALSE(check_text_bytes(10, small));
  EXPECT_TRUE(check_text_bytes(11, small));
  // parse() refuses with the same code and words, at the position where the text stops.
  auto p = parse("where a == \"" + std::string(4090, 'x') + "\"");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), code::message_too_large);
  EXPECT_EQ(p.error().message(),
            "at position 4096: query.max_text_bytes observed 4103 > max 4096: the query text is "
            "longer than a query may be; shorten the query (fewer or shorter terms)");
}

TEST(QueryLimits, DefaultsArePinned) {
  query_limits l;
  EXPECT_EQ(l.max_text_bytes, 4096u);
  EXPECT_EQ(l.max_depth, 32u);
  EXPECT_EQ(l.max_terms, 64u);
  EXPECT_EQ(l.max_fields, 32u);
  EXPECT_EQ(l.max_limit, 1'000'000u);
  EXPECT_EQ(l.max_groups, 10'000u);
  EXPECT_EQ(defaults::max_depth_ceiling, 256u);
}

// -- matching: every operator on every kind of value ------------------------------------

struct match_case {
  const char* where;
  bool expected;
};

void PrintTo(const match_case& c, std::ostream* out) {
  *out << "where " << c.where << " -> " << (c.expected ? "true" : "false");
}

class MatchSemantics : public ::testing::TestWithParam<match_case> {};

TEST_P(MatchSemantics, MatchesAsDocumented) {
  auto q = must_parse(std::string{"where "} + GetParam().where);
  EXPECT_EQ(q.matches(sample_event()), GetParam().expected) << GetParam().where;
}

INSTANTIATE_TEST_SUITE_P(Strings, MatchSemantics, ::testing::Values(
    match_case{"s == \"Hello World\"", true},
    match_case{"s == \"hello world\"", false},  // case-sensitive
    match_case{"s != \"x\"", true},
    match_case{"s != \"Hello World\"", false},
    match_case{"s < \"I\"", true},               // bytewise order
    match_case{"s < \"Hello World\"", false},
    match_case{"s <= \"Hello World\"", true},
    match_case{"s > \"Hello\"", true},
    match_case{"s >= \"Hello Worle\"", false},
    match_case{"s contains \"lo W\"", true},
    match_case{"s contains \"lo w\"", false},
    match_case{"s contains \"\"", true},
    match_case{"e == \"\"", true},
    match_case{"e contains \"\"", true},
    match_case{"e contains \"a\"", false}));

INSTANTIATE_TEST_SUITE_P(StringAgainstNumber, MatchSemantics, ::testing::Values(
    match_case{"s == 5", false},
    match_case{"s != 5", true},
    match_case{"s < 5", false},
    match_case{"s <= 5", false},
    match_case{"s > 5", false},
    match_case{"s >= 5", false},
    match_case{"i == \"5\"", false},
    match_case{"i != \"5\"", true},
    match_case{"i < \"6\"", false},
    match_case{"i >= \"5\"", false},
    match_case{"i contains \"5\"", false}));

INSTANTIATE_TEST_SUITE_P(Numbers, MatchSemantics, ::testing::Values(
    match_case{"i == 5", true},
    match_case{"i == 5.0", true},              // int and double numerically
    match_case{"i != 5.0", false},
    match_case{"i < 5.5", true},
    match_case{"i > 4.9", true},
    match_case{"i >= 5", true},
    match_case{"i <= 4", false},
    match_case{"i > 5", false},
    match_case{"neg < -1", true},
    match_case{"neg == -3.0", true},
    match_case{"neg >= -2.5", false},
    match_case{"d == 2.5", true},
    match_case{"d == 2", false},
    match_case{"d != 2", true},
    match_case{"d > 2", true},
    match_case{"d < 3", true},
    match_case{"d >= 2.5", true},
    match_case{"d <= 2.4", false},
    match_case{"d == 25e-1", true},
    match_case{"big == 9007199254740993", true},
    match_case{"big == 9007199254740992.0", false},  // no rounding through double
    match_case{"big > 9007199254740992.0", true},
    match_case{"big < 1e300", true},
    match_case{"http.status >= 500", true}));

INSTANTIATE_TEST_SUITE_P(BoolsAndNull, MatchSemantics, ::testing::Values(
    match_case{"b == true", true},
    match_case{"b == false", false},
    match_case{"b != false", true},
    match_case{"b == 1", false},
    match_case{"b != 1", true},
    match_case{"b > 0", false},
    match_case{"b == \"true\"", false},
    match_case{"n == null", true},
    match_case{"n != null", false},
    match_case{"n == 0", false},
    match_case{"n != 0", true},
    match_case{"n < 1", false},
    match_case{"n contains \"\"", false},
    match_case{"s == null", false},
    match_case{"s != null", true},
    match_case{"i == null", false},
    match_case{"b != null", true}));

INSTANTIATE_TEST_SUITE_P(MissingFieldReadsAsNull, MatchSemantics, ::testing::Values(
    match_case{"missing == null", true},
    match_case{"missing != null", false},
    match_case{"missing == 1", false},
    match_case{"missing != 1", true},
    match_case{"missing == \"x\"", false},
    match_case{"missing != \"x\"", true},
    match_case{"missing == true", false},
    match_case{"missing != false", true},
    match_case{"missing < 1", false},
    match_case{"missing <= 1", false},
    match_case{"missing > 1", false},
    match_case{"missing >= \"\"", false},
    match_case{"missing contains \"\"", false}));

INSTANTIATE_TEST_SUITE_P(Timestamp, MatchSemantics, ::testing::Values(
    match_case{"ts == 1000", true},
    match_case{"ts != 1000", false},
    match_case{"ts >= 1000.0", true},
    match_case{"ts > 999.5", true},
    match_case{"ts < 1000", false},
    match_case{"ts <= 1000", true},
    match_case{"ts < \"1970-01-01T00:00:01.001Z\"", true},
    match_case{"ts == \"1970-01-01T00:00:01Z\"", true},
    match_case{"TS == 1000", true},                    // a keyword: any case
    match_case{"`ts` == \"a field named ts\"", true},  // the field, not the timestamp
    match_case{"`ts` == 1000", false}));

INSTANTIATE_TEST_SUITE_P(Names, MatchSemantics, ::testing::Values(
    match_case{"Case == 1", true},
    match_case{"case == 1", false},  // field names are case-sensitive
    match_case{"`count` == 7", true},
    match_case{"`user name` == \"ann\"", true},
    match_case{"`http.status` == 503", true}));

// -- logic ------------------------------------------------------------------------------

event abc(int64_t a, int64_t b, int64_t c) {
  event e;
  e.fields = {{"a", a}, {"b", b}, {"c", c}};
  return e;
}

TEST(QueryLogic, AndBindsTighterThanOr) {
  // or(a == 1, and(b == 0, c == 0)) is true; and(or(a == 1, b == 0), c == 0) would be false.
  EXPECT_TRUE(must_parse("where a == 1 or b == 0 and c == 0").matches(abc(1, 2, 3)));
  EXPECT_FALSE(must_parse("where (a == 1 or b == 0) and c == 0").matches(abc(1, 2, 3)));
  EXPECT_TRUE(must_parse("where b == 0 and c == 0 or a == 1").matches(abc(1, 2, 3)));
}

TEST(QueryLogic, NotBindsTighterThanAnd) {
  // (not a == 0) and b == 0 is false; not (a == 0 and b == 0) would be true.
  EXPECT_FALSE(must_parse("where not a == 0 and b == 0").matches(abc(1, 2, 3)));
  EXPECT_TRUE(must_parse("where not (a == 0 and b == 0)").matches(abc(1, 2, 3)));
  EXPECT_TRUE(must_parse("where not not a == 1").matches(abc(1, 2, 3)));
  EXPECT_FALSE(must_parse("where not not not a == 1").matches(abc(1, 2, 3)));
  EXPECT_TRUE(must_parse("where a == 0 or not b == 0 and c == 3").matches(abc(1, 2, 3)));
}

TEST(QueryLogic, ParenthesesAndEveryCombination) {
  auto q = must_parse("where (a == 1 and b == 1) or (not c == 1 and (a == 0 or b == 0))");
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 2; ++c) {
        bool expected = (a == 1 && b == 1) || (!(c == 1) && (a == 0 || b == 0));
        EXPECT_EQ(q.matches(abc(a, b, c)), expected) << a << b << c;
      }
}

TEST(QueryLogic, DesignExample) {
  auto q = must_parse(R"(where status >= 500 or (path contains "/api" and not method == "GET"))");
  auto make = [](int64_t status, std::string path, std::string method) {
    event e;
    e.fields = {{"status", status}, {"path", std::move(path)}, {"method", std::move(method)}};
    return e;
  };
  EXPECT_TRUE(q.matches(make(503, "/", "GET")));
  EXPECT_TRUE(q.matches(make(200, "/api/v1", "POST")));
  EXPECT_FALSE(q.matches(make(200, "/api/v1", "GET")));
  EXPECT_FALSE(q.matches(make(404, "/home", "POST")));
}

TEST(QueryLogic, EmptyTextSelectsEverything) {
  for (const char* text : {"", "   ", "\n\t "}) {
    auto q = must_parse(text);
    EXPECT_FALSE(q.has_filter());
    EXPECT_TRUE(q.matches(sample_event()));
    EXPECT_TRUE(q.matches(event{}));
    EXPECT_FALSE(q.limit());
    EXPECT_TRUE(q.fields().empty());
    EXPECT_FALSE(q.is_count());
    auto r = q.resolve_time(12345);
    EXPECT_EQ(r.since_ms, int64_min);
    EXPECT_EQ(r.until_ms, int64_max);
    EXPECT_EQ(q.to_string(), "");
  }
}

TEST(QueryLogic, NestedAndOrAreFlattened) {
  auto q = must_parse("where a == 1 and (b == 2 and (c == 3))");
  ASSERT_TRUE(q.has_filter());
  const auto& root = q.nodes()[q.root()];
  EXPECT_EQ(root.k, filter_node::kind::all_of);
  EXPECT_EQ(root.count, 3u);
  EXPECT_EQ(q.nodes().size(), 4u);
  EXPECT_EQ(q.to_string(), "where a == 1 and b == 2 and c == 3");
}

// -- clauses ----------------------------------------------------------------------------

TEST(QueryClauses, DesignExampleHasEveryPart) {
  auto q = must_parse(
      R"(where level == "ERROR" and user != "bot" since 15m limit 100 fields ts,user,msg)");
  EXPECT_TRUE(q.has_filter());
  EXPECT_EQ(q.since().k, time_bound::kind::ago);
  EXPECT_EQ(q.since().ms, 15 * 60'000);
  EXPECT_EQ(q.until().k, time_bound::kind::open);
  EXPECT_EQ(q.limit(), std::optional<uint64_t>{100});
  ASSERT_EQ(q.fields().size(), 3u);
  EXPECT_TRUE(q.fields()[0].is_timestamp);
  EXPECT_EQ(q.fields()[1].name, "user");
  EXPECT_EQ(q.fields()[2].name, "msg");
  EXPECT_FALSE(q.is_count());

  event e;
  e.fields = {{"level", std::string{"ERROR"}}, {"user", std::string{"ann"}}};
  EXPECT_TRUE(q.matches(e));
  e.fields[1].val = std::string{"bot"};
  EXPECT_FALSE(q.matches(e));
  e.fields.pop_back();  // no user at all: != "bot" holds
  EXPECT_TRUE(q.matches(e));
}

TEST(QueryClauses, ClausesInAnyOrderAfterWhere) {
  auto a = must_parse("where x == 1 limit 5 count by u since 1h until 5m");
  auto b = must_parse("where x == 1 until 5m since 1h count by u limit 5");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.to_string(), "where x == 1 since 1h until 5m limit 5 count by u");
}

TEST(QueryClauses, CountAloneIsOneTotal) {
  auto q = must_parse("count");
  EXPECT_TRUE(q.is_count());
  EXPECT_TRUE(q.count_by().empty());
  auto by = must_parse("count by user, host since 1h");
  EXPECT_TRUE(by.is_count());
  ASSERT_EQ(by.count_by().size(), 2u);
  EXPECT_EQ(by.count_by()[0].name, "user");
  EXPECT_EQ(by.count_by()[1].name, "host");
  EXPECT_EQ(by.to_string(), "since 1h count by user,host");
}

TEST(QueryClauses, KeywordsAnyCaseFieldNamesExact) {
  auto q = must_parse("WHERE A == 1 And NOT b == 2 Or c == TRUE SINCE 15M Limit 3 FIELDS a");
  EXPECT_EQ(q.to_string(), "where A == 1 and not b == 2 or c == true since 15m limit 3 fields a");
  EXPECT_EQ(must_parse("where a Contains \"x\"").to_string(), "where a contains \"x\"");
  EXPECT_EQ(must_parse("COUNT BY Host").to_string(), "count by Host");
}

TEST(QueryClauses, LimitBounds) {
  EXPECT_EQ(must_parse("limit 1").limit(), std::optional<uint64_t>{1});
  EXPECT_EQ(must_parse("limit 1000000").limit(), std::optional<uint64_t>{1'000'000});
  query_limits small;
  small.max_limit = 10;
  EXPECT_EQ(must_parse("limit 10", small).limit(), std::optional<uint64_t>{10});
  EXPECT_EQ(parse_error("limit 11", small),
            "at position 6: query.max_limit observed 11 > max 10: limit is too large");
}

// -- times ------------------------------------------------------------------------------

TEST(QueryTime, DurationsInEveryUnit) {
  struct duration_case { const char* text; int64_t ms; const char* canonical; };
  for (auto c : {duration_case{"500ms", 500, "500ms"}, duration_case{"30s", 30'000, "30s"},
                 duration_case{"15m", 900'000, "15m"}, duration_case{"2h", 7'200'000, "2h"},
                 duration_case{"7d", 604'800'000, "7d"}, duration_case{"60000ms", 60'000, "1m"},
                 duration_case{"90s", 90'000, "90s"}, duration_case{"0ms", 0, "0s"},
                 duration_case{"24H", 86'400'000, "1d"}, duration_case{"1500MS", 1500, "1500ms"}}) {
    auto q = must_parse(std::string{"since "} + c.text);
    EXPECT_EQ(q.since().k, time_bound::kind::ago) << c.text;
    EXPECT_EQ(q.since().ms, c.ms) << c.text;
    EXPECT_EQ(q.to_string(), std::string{"since "} + c.canonical);
  }
}

TEST(QueryTime, RelativeEndsResolveAgainstNow) {
  auto q = must_parse("since 1h until 5m");
  auto r = q.resolve_time(10'000'000);
  EXPECT_EQ(r.since_ms, 10'000'000 - 3'600'000);
  EXPECT_EQ(r.until_ms, 10'000'000 - 300'000);
  EXPECT_TRUE(r.contains(10'000'000 - 3'600'000));  // since is inclusive
  EXPECT_FALSE(r.contains(10'000'000 - 3'600'001));
  EXPECT_FALSE(r.contains(10'000'000 - 300'000));   // until is exclusive
  EXPECT_TRUE(r.contains(10'000'000 - 300'001));
}

TEST(QueryTime, OpenEndsAdmitEverything) {
  auto r = must_parse("since 15m").resolve_time(1'000'000);
  EXPECT_EQ(r.since_ms, 100'000);
  EXPECT_EQ(r.until_ms, int64_max);
  EXPECT_TRUE(r.contains(int64_max));
  EXPECT_FALSE(r.contains(99'999));
  auto u = must_parse("until 0").resolve_time(5);
  EXPECT_EQ(u.since_ms, int64_min);
  EXPECT_TRUE(u.contains(int64_min));
  EXPECT_FALSE(u.contains(0));
}

TEST(QueryTime, ResolveSaturatesInsteadOfOverflowing) {
  auto q = must_parse("since 9223372036854775807ms");
  EXPECT_EQ(q.resolve_time(-10).since_ms, int64_min);
  EXPECT_EQ(q.resolve_time(0).since_ms, -int64_max);
}

TEST(QueryTime, AbsoluteTimes) {
  auto q = must_parse(R"(since 1700000000000 until "2026-11-22T05:00:00Z")");
  EXPECT_EQ(q.since(), (time_bound{time_bound::kind::at, 1'700'000'000'000}));
  EXPECT_EQ(q.until(), (time_bound{time_bound::kind::at, 1'795'323'600'000}));
  auto r = q.resolve_time(42);  // the clock does not matter
  EXPECT_EQ(r.since_ms, 1'700'000'000'000);
  EXPECT_EQ(r.until_ms, 1'795'323'600'000);
  EXPECT_EQ(q.to_string(), "since 1700000000000 until 1795323600000");
}

TEST(QueryTime, TimesBefore1970) {
  auto q = must_parse(R"(since "1969-12-31T23:59:59Z" until -500)");
  EXPECT_EQ(q.since(), (time_bound{time_bound::kind::at, -1000}));
  EXPECT_EQ(q.until(), (time_bound{time_bound::kind::at, -500}));
  EXPECT_EQ(q.to_string(), "since -1000 until -500");
  EXPECT_EQ(must_parse(q.to_string()), q);
}

// -- parse errors: exact position and message -------------------------------------------

struct error_case {
  std::string text;
  std::string message;
};

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

std::vector<error_case> error_cases() {
  const std::string clauses = "(since, until, limit, fields, count)";
  return {
      {R"(where msg == "abc)", R"(at position 13: unterminated string (no closing '"'))"},
      {"where a ==", "at position 10: expected a value after '==', found the end of the query"},
      {"where level == and", "at position 15: expected a value after '==', found 'and'"},
      {"where level == )", "at position 15: expected a value after '==', found ')'"},
      {"where a = 1", "at position 8: unknown operator '=' (did you mean '=='?)"},
      {"where a ! 1", "at position 8: unknown operator '!' (use 'not' or '!=')"},
      {"where a like \"x\"",
       "at position 8: expected an operator (==, !=, <, <=, >, >=, contains) after 'a', found 'like'"},
      {"where a", "at position 7: expected an operator (==, !=, <, <=, >, >=, contains) after 'a', "
                  "found the end of the query"},
      {"where a ~ 1", "at position 8: unexpected character '~'"},
      {"where a == 1 \x01", "at position 13: unexpected byte 0x01"},
      {"where a == 1 limit 10 garbage",
       "at position 22: expected a clause " + clauses + " or the end after '10', found 'garbage'"},
      {"where a == 1 b == 2",
       "at position 13: expected 'and', 'or', a clause " + clauses + " or the end after '1', found 'b'"},
      {"level == \"x\"",
       "at position 0: expected 'where' or a clause " + clauses + ", found 'level'"},
      {"limit 5 limit 6", "at position 8: duplicate 'limit' clause (the first is at position 0)"},
      {"since 1h until 5m since 2h",
       "at position 18: duplicate 'since' clause (the first is at position 0)"},
      {"count count", "at position 6: duplicate 'count' clause (the first is at position 0)"},
      {"where a == 1 where b == 2",
       "at position 13: duplicate 'where' clause (the first is at position 0)"},
      {"limit 5 where a == 1", "at position 8: 'where' must come before the other clauses"},
      {"fields a count",
       "at position 9: 'fields' and 'count' cannot be used together: a count returns groups, not events"},
      {"count by a fields b",
       "at position 11: 'fields' and 'count' cannot be used together: a count returns groups, not events"},
      {"limit 0", "at position 6: limit must be at least 1, found '0'"},
      {"limit -3", "at position 6: limit must be at least 1, found '-3'"},
      {"limit 1000001",
       "at position 6: query.max_limit observed 1000001 > max 1000000: limit is too large"},
      {"limit 1.5", "at position 6: expected a whole number after 'limit', found '1.5'"},
      {"limit", "at position 5: expected a whole number after 'limit', found the end of the query"},
      {"where " + repeat("(", 33) + "a == 1" + repeat(")", 33),
       "at position 38: query.max_depth observed 33 > max 32: parentheses and 'not' nest too deeply"},
      {"where " + repeat("not ", 33) + "a == 1",
       "at position 134: query.max_depth observed 33 > max 32: parentheses and 'not' nest too deeply"},
      {"where " + repeat("a == 1 or ", 64) + "a == 1",
       "at position 646: query.max_terms observed 65 > max 64: too many comparisons"},
      {"since 15min", "at position 8: unknown duration unit 'min' (use ms, s, m, h or d)"},
      {"since 1.5h", "at position 6: a duration needs a whole number of units"},
      {"since -15m", "at position 6: a duration cannot be negative"},
      {"since 99999999999999d", "at position 6: duration out of range"},
      {"since", "at position 5: expected a time (a duration like 15m, epoch ms, or an RFC 3339 "
                "time in quotes) after 'since', found the end of the query"},
      {"until true", "at position 6: expected a time (a duration like 15m, epoch ms, or an RFC 3339 "
                     "time in quotes) after 'until', found 'true'"},
      {R"(since "2026-02-30T00:00:00Z")",
       R"(at position 6: '"2026-02-30T00:00:00Z"' is not an RFC 3339 time: day 30 out of range 1-28)"},
      {"since 1h until 2h", "at position 9: the time range is empty: 'since' must be before 'until'"},
      {"until 100 since 100", "at position 10: the time range is empty: 'since' must be before 'until'"},
      {"fields", "at position 6: expected a field name after 'fields', found the end of the query"},
      {"fields a,", "at position 9: expected a field name after ',', found the end of the query"},
      {"fields a,,b", "at position 9: expected a field name after ',', found ','"},
      {"count by", "at position 8: expected a field name after 'by', found the end of the query"},
      {"count by a,a", "at position 11: field 'a' is listed twice in 'count by'"},
      {"fields `x y`,`x y`", "at position 13: field '`x y`' is listed twice in 'fields'"},
      {"where (a == 1",
       "at position 13: expected 'and', 'or' or ')' to close the '(' at position 6, found the end of the query"},
      {"where (a == 1 b", "at position 14: expected 'and', 'or' or ')' to close the '(' at position 6, found 'b'"},
      {"where a == 1)", "at position 12: ')' without a matching '('"},
      {"where", "at position 5: expected a field name, '(' or 'not' after 'where', found the end of the query"},
      {"where a == 1 and", "at position 16: expected a field name, '(' or 'not' after 'and', found the end of the query"},
      {"where not", "at position 9: expected a field name, '(' or 'not' after 'not', found the end of the query"},
      {"where ()", "at position 7: expected a field name, '(' or 'not' after '(', found ')'"},
      {R"(where a == "x\q")",
       R"(at position 13: unknown escape '\q' in a string (use \" \\ \n \t or \r))"},
      {"where a contains 5", "at position 17: 'contains' needs a string, found '5'"},
      {"where a < true", "at position 10: '<' needs a number or a string, found 'true'"},
      {"where a >= null", "at position 11: '>=' needs a number or a string, found 'null'"},
      {"where ts > 15m", "at position 11: a duration is only allowed after 'since' or 'until'; "
                         "compare ts with epoch ms or an RFC 3339 time"},
      {R"(where ts > "yesterday")",
       R"(at position 11: '"yesterday"' is not an RFC 3339 time: expected a 4-digit year at position 0, found 'y')"},
      {"where ts == null", "at position 12: ts compares with epoch ms or an RFC 3339 time, found 'null'"},
      {R"(where ts contains "1")", "at position 9: 'contains' does not apply to ts"},
      {"where a == 99999999999999999999", "at position 11: integer out of range (64 bits)"},
      {"where a == 1e999", "at position 11: number out of range"},
      {"where a == 1.", "at position 12: expected a digit after '.' in a number"},
      {"where a == -", "at position 11: unexpected character '-'"},
      {"where count > 5",
       "at position 6: expected a field name, '(' or 'not' after 'where', found the keyword 'count' "
       "(a field with that name is written in backquotes: `count`)"},
      {"fields Limit", "at position 7: expected a field name after 'fields', found the keyword "
                       "'Limit' (a field with that name is written in backquotes: `Limit`)"},
      {"where `name == 1", "at position 6: unterminated field name (no closing '`')"},
      {"where `` == 1", "at position 6: empty field name"},
      {"count by a b", "at position 11: expected a clause " + clauses + " or the end after 'a', found 'b'"},
      {"by a", "at position 0: expected 'where' or a clause " + clauses + ", found 'by'"},
      {"where a == \"" + std::string(60, 'y'),
       "at position 11: unterminated string (no closing '\"')"},
      {"where a == 1 or " + std::string(50, 'z'),
       "at position 66: expected an operator (==, !=, <, <=, >, >=, contains) after '"
           + std::string(40, 'z') + "...', found the end of the query"},
  };
}

TEST(QueryParseErrors, NameThePositionAndTheToken) {
  for (const auto& c : error_cases())
    EXPECT_EQ(parse_error(c.text), c.message) << "text: " << c.text;
}

TEST(QueryParseErrors, ErrorsAreBadRequest) {
  for (const auto& c : error_cases()) {
    auto r = parse(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code(), code::bad_request);
    EXPECT_EQ(r.error().to_string(), "bad_request: " + c.message);
  }
}

TEST(QueryParseErrors, LimitsAtTheBoundPassAndOneOverFails) {
  query_limits l;
  l.max_depth = 3;
  l.max_terms = 3;
  l.max_fields = 2;
  l.max_text_bytes = 30;
  EXPECT_TRUE(parse("where ((not a == 1))", l).ok());
  EXPECT_EQ(parse_error("where (((not a == 1)))", l),
            "at position 9: query.max_depth observed 4 > max 3: parentheses and 'not' nest too deeply");
  EXPECT_TRUE(parse("where a==1 or b==2 or c==3", l).ok());
  auto too_long = parse("where a==1 or b==2 or c==3 or d", l);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().to_string(),
            "message_too_large: at position 30: query.max_text_bytes observed 31 > max 30: the "
            "query text is longer than a query may be; shorten the query (fewer or shorter terms)");
  l.max_text_bytes = 4096;
  EXPECT_EQ(parse_error("where a==1 or b==2 or c==3 or d==4", l),
            "at position 30: query.max_terms observed 4 > max 3: too many comparisons");
  EXPECT_TRUE(parse("fields a,b", l).ok());
  EXPECT_EQ(parse_error("fields a,b,c", l),
            "at position 11: query.max_fields observed 3 > max 2: too many field names in one list");
  EXPECT_EQ(parse_error("count by a,b,c", l),
            "at position 13: query.max_fields observed 3 > max 2: too many field names in one list");
  EXPECT_TRUE(parse(std::string(4096, ' ')).ok());
}

TEST(QueryParseErrors, DepthAboveTheCeilingIsCapped) {
  query_limits l;
  l.max_depth = 1'000'000;  // asks for more than the stack may give
  std::string deep = "where " + repeat("(", 257) + "a == 1" + repeat(")", 257);
  EXPECT_EQ(parse_error(deep, l),
            "at position 262: query.max_depth observed 257 > max 256: parentheses and 'not' nest too deeply");
  std::string at_ceiling = "where " + repeat("(", 256) + "a == 1" + repeat(")", 256);
  EXPECT_TRUE(parse(at_ceiling, l).ok());
}

// -- canonical text ---------------------------------------------------------------------

TEST(QueryCanonical, ExpectedForms) {
  struct canonical_case { const char* text; const char* canonical; };
  for (auto c : {
           canonical_case{"where a==1", "where a == 1"},
           canonical_case{"where (a == 1)", "where a == 1"},
           canonical_case{"where ((a == 1) or (b == 2)) or c == 3", "where a == 1 or b == 2 or c == 3"},
           canonical_case{"where a == 1 and (b == 2 or c == 3)", "where a == 1 and (b == 2 or c == 3)"},
           canonical_case{"where (a == 1 and b == 2) or c == 3", "where a == 1 and b == 2 or c == 3"},
           canonical_case{"where not (a == 1)", "where not a == 1"},
           canonical_case{"where not (a == 1 or b == 2)", "where not (a == 1 or b == 2)"},
           canonical_case{"where a == 1.50", "where a == 1.5"},
           canonical_case{"where a == 5.0", "where a == 5.0"},
           canonical_case{"where a == -0.0", "where a == -0.0"},
           canonical_case{"where a == 1e20", "where a == 1e+20"},
           canonical_case{"where a == 0.1", "where a == 0.1"},
           canonical_case{"where a == \"q\\\"b\\\\s\\n\\t\\r\"", "where a == \"q\\\"b\\\\s\\n\\t\\r\""},
           canonical_case{"where `user name` == \"x\" and `count` > 1 and `ts` != 1",
                          "where `user name` == \"x\" and `count` > 1 and `ts` != 1"},
           canonical_case{"where `plain` == 1", "where plain == 1"},
           canonical_case{"where ts >= \"2026-11-22T05:00:00Z\"", "where ts >= 1795323600000"},
           canonical_case{"where a == NULL and b != True", "where a == null and b != true"},
           canonical_case{"fields  ts , user,msg", "fields ts,user,msg"},
           canonical_case{"count by user limit 10", "limit 10 count by user"},
           canonical_case{"WHERE (a==1) And NOT (b==2 OR c==3.50) SINCE 60000MS Limit 5",
                          "where a == 1 and not (b == 2 or c == 3.5) since 1m limit 5"},  // QUERY.md
       })
    EXPECT_EQ(must_parse(c.text).to_string(), c.canonical) << c.text;
}

TEST(QueryCanonical, CorpusRoundTrips) {
  for (const char* text : {
           "",
           "count",
           "count by user since 1h",
           R"(where level == "ERROR" and user != "bot" since 15m limit 100 fields ts,user,msg)",
           R"(where status >= 500 or (path contains "/api" and not method == "GET"))",
           "where not not not (a == 1 and (b == 2 or not (c < 3.25 and d >= -4)))",
           "where a == 1 and b == 2 or c == 3 and (d == 4 or e == 5) until 5m",
           R"(where ts > "2026-11-22T05:00:00.5+02:00" and ts <= 1800000000000 since 7d)",
           R"(where `a b` contains "\"x\"" and `where` == null and http.status != 200)",
           "where x == 9223372036854775807 or x == -9223372036854775808 or y == 1e-300",
           "where _private.field-name == false limit 1000000",
           "since 500ms until 100ms fields a,`b c`,ts",
           "since \"1970-01-01T00:00:00Z\" until 1",
           R"(where ts > "0001-02-22T05:00:00.5+06:00" until "0226-11-22T05:00:00.5+02:00")",
           "count by `ts`,ts,a.b",
       }) {
    auto first = must_parse(text);
    std::string canonical = first.to_string();
    auto again = parse(canonical);
    ASSERT_TRUE(again.ok()) << text << " -> " << canonical << ": " << again.error().to_string();
    EXPECT_EQ(*again, first) << text << " -> " << canonical;
    EXPECT_EQ(again->to_string(), canonical);
  }
}

// -- projection -------------------------------------------------------------------------

TEST(QueryProjection, KeepsListedFieldsInQueryOrderAndTheTimestamp) {
  auto q = must_parse("fields ts,`user name`,missing,i,s");
  auto e = sample_event();
  auto p = project(q, e);
  EXPECT_EQ(p.timestamp_ms, 1000);
  ASSERT_EQ(p.fields.size(), 3u);  // ts is the timestamp; missing is left out
  EXPECT_EQ(p.fields[0], (field{"user name", std::string{"ann"}}));
  EXPECT_EQ(p.fields[1], (field{"i", int64_t{5}}));
  EXPECT_EQ(p.fields[2], (field{"s", std::string{"Hello World"}}));
}

TEST(QueryProjection, NoFieldsClauseKeepsEverything) {
  auto e = sample_event();
  EXPECT_EQ(project(must_parse("where i == 5"), e), e);
}

TEST(QueryProjection, BackquotedTsIsTheField) {
  auto p = project(must_parse("fields `ts`"), sample_event());
  EXPECT_EQ(p.timestamp_ms, 1000);
  ASSERT_EQ(p.fields.size(), 1u);
  EXPECT_EQ(p.fields[0], (field{"ts", std::string{"a field named ts"}}));
}

// -- counter ----------------------------------------------------------------------------

event with_user(value user, int64_t ts = 0) {
  event e;
  e.timestamp_ms = ts;
  if (!std::holds_alternative<std::monostate>(user))
    e.fields.push_back(field{"user", std::move(user)});
  return e;
}

TEST(QueryCounter, CountsByFieldMissingIsNull) {
  counter c{must_parse("count by user")};
  for (auto u : {value{std::string{"ann"}}, value{std::string{"bob"}}, value{std::string{"ann"}},
                 value{}, value{std::string{"ann"}}})
    ASSERT_TRUE(c.add(with_user(u)).ok());
  event null_user;
  null_user.fields = {{"user", std::monostate{}}};
  ASSERT_TRUE(c.add(null_user).ok());  // an explicit null is the same group as missing
  auto r = c.results();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], (group{{std::string{"ann"}}, 3}));
  EXPECT_EQ(r[1], (group{{std::monostate{}}, 2}));
  EXPECT_EQ(r[2], (group{{std::string{"bob"}}, 1}));
}

TEST(QueryCounter, TiesAreOrderedByValue) {
  counter c{must_parse("count by user")};
  for (auto u : {value{std::string{"b"}}, value{int64_t{10}}, value{true}, value{std::string{"a"}},
                 value{2.5}, value{}, value{false}})
    ASSERT_TRUE(c.add(with_user(u)).ok());
  auto r = c.results();
  std::vector<value> order;
  for (auto& g : r) {
    EXPECT_EQ(g.count, 1u);
    order.push_back(g.values[0]);
  }
  EXPECT_EQ(order, (std::vector<value>{value{}, value{false}, value{true}, value{2.5},
                                       value{int64_t{10}}, value{std::string{"a"}},
                                       value{std::string{"b"}}}));
}

TEST(QueryCounter, EqualIntAndDoubleAreOneGroup) {
  counter c{must_parse("count by user")};
  ASSERT_TRUE(c.add(with_user(int64_t{5})).ok());
  ASSERT_TRUE(c.add(with_user(5.0)).ok());
  ASSERT_TRUE(c.add(with_user(5.5)).ok());
  ASSERT_TRUE(c.add(with_user(-0.0)).ok());
  ASSERT_TRUE(c.add(with_user(int64_t{0})).ok());
  auto r = c.results();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], (group{{-0.0}, 2})) << "a group keeps the value seen first";
  EXPECT_EQ(r[1], (group{{int64_t{5}}, 2}));
  EXPECT_EQ(r[2], (group{{5.5}, 1}));
}

TEST(QueryCounter, TotalCountHasOneGroupEvenWhenEmpty) {
  counter c{must_parse("count")};
  EXPECT_EQ(c.results(), (std::vector<group>{group{{}, 0}}));
  for (int i = 0; i < 7; ++i)
    ASSERT_TRUE(c.add(sample_event()).ok());
  EXPECT_EQ(c.results(), (std::vector<group>{group{{}, 7}}));
}

TEST(QueryCounter, ByTwoFieldsAndByTimestamp) {
  counter c{must_parse("count by ts,user")};
  ASSERT_TRUE(c.add(with_user(std::string{"a"}, 1)).ok());
  ASSERT_TRUE(c.add(with_user(std::string{"a"}, 1)).ok());
  ASSERT_TRUE(c.add(with_user(std::string{"a"}, 2)).ok());
  ASSERT_TRUE(c.add(with_user(std::string{"b"}, 1)).ok());
  auto r = c.results();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], (group{{int64_t{1}, std::string{"a"}}, 2}));
  EXPECT_EQ(r[1], (group{{int64_t{1}, std::string{"b"}}, 1}));
  EXPECT_EQ(r[2], (group{{int64_t{2}, std::string{"a"}}, 1}));
}

TEST(QueryCounter, StringKeysDoNotRunTogether) {
  counter c{must_parse("count by a,b")};
  event x, y;
  x.fields = {{"a", std::string{"ab"}}, {"b", std::string{"c"}}};
  y.fields = {{"a", std::string{"a"}}, {"b", std::string{"bc"}}};
  ASSERT_TRUE(c.add(x).ok());
  ASSERT_TRUE(c.add(y).ok());
  EXPECT_EQ(c.group_count(), 2u);
}

TEST(QueryCounter, RefusesAGroupPastMaxGroups) {
  query_limits l;
  l.max_groups = 3;
  counter c{must_parse("count by user"), l};
  for (const char* u : {"a", "b", "c"})
    ASSERT_TRUE(c.add(with_user(std::string{u})).ok());
  auto st = c.add(with_user(std::string{"d"}));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::message_too_large);
  EXPECT_EQ(st.message(),
            "query.max_groups observed 4 > max 3, do not retry: a count by user has more groups "
            "than allowed; narrow the query (a filter, a shorter time range, fewer by-fields)");
  // The refusal it becomes keeps the numbers as fields (a relayed Reject keeps them too);
  // no limit key: the bound is the query language's own.
  auto r0 = st.as_rejection();
  EXPECT_EQ(r0.code, code::message_too_large);
  EXPECT_EQ(r0.limit, "");
  EXPECT_EQ(r0.observed, 4u);
  EXPECT_EQ(r0.max, 3u);
  EXPECT_NE(r0.detail.find("query.max_groups"), std::string::npos) << r0.detail;
  EXPECT_EQ(c.group_count(), 3u);
  EXPECT_TRUE(c.add(with_user(std::string{"a"})).ok()) << "known groups still count";
  auto r = c.results();
  EXPECT_EQ(r[0], (group{{std::string{"a"}}, 2}));
  uint64_t total = 0;
  for (auto& g : r)
    total += g.count;
  EXPECT_EQ(total, 4u) << "the refused event is not counted";
}

TEST(QueryCounter, MergeSumsGroups) {
  auto q = must_parse("count by user");
  counter left{q}, right{q};
  for (const char* u : {"a", "a", "b"})
    ASSERT_TRUE(left.add(with_user(std::string{u})).ok());
  for (const char* u : {"b", "c", "b"})
    ASSERT_TRUE(right.add(with_user(std::string{u})).ok());
  ASSERT_TRUE(left.merge(right).ok());
  EXPECT_EQ(left.results(), (std::vector<group>{group{{std::string{"b"}}, 3},
                                                group{{std::string{"a"}}, 2},
                                                group{{std::string{"c"}}, 1}}));
  // A satellite's results arrive as groups; a repeated key is summed.
  ASSERT_TRUE(left.merge(std::vector<group>{group{{std::string{"c"}}, 5},
                                            group{{std::string{"c"}}, 1}}).ok());
  EXPECT_EQ(left.results()[0], (group{{std::string{"c"}}, 7}));
}

TEST(QueryCounter, MergePastMaxGroupsChangesNothing) {
  query_limits l;
  l.max_groups = 3;
  auto q = must_parse("count by user");
  counter left{q, l}, right{q, l};
  for (const char* u : {"a", "b"})
    ASSERT_TRUE(left.add(with_user(std::string{u})).ok());
  for (const char* u : {"a", "c", "d"})
    ASSERT_TRUE(right.add(with_user(std::string{u})).ok());
  auto before = left.results();
  auto st = left.merge(right);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::message_too_large);
  EXPECT_EQ(st.message().find("query.max_groups observed 4 > max 3, do not retry"), 0u);
  EXPECT_EQ(st.as_rejection().observed, 4u);
  EXPECT_EQ(st.as_rejection().max, 3u);
  EXPECT_EQ(left.results(), before);
}

TEST(QueryCounter, MergeRefusesMismatchedShapes) {
  counter c{must_parse("count by a,b")};
  auto st = c.merge(std::vector<group>{group{{int64_t{1}}, 1}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::bad_request);
  EXPECT_EQ(st.message(), "a partial count has 1 values per group, expected 2");
  counter other{must_parse("count by a")};
  EXPECT_EQ(c.merge(other).code(), code::bad_request);
  EXPECT_EQ(c.group_count(), 0u);
}

// -- scale and allocation ---------------------------------------------------------------

struct generated {
  std::vector<event> events;
};

// A deterministic mix of levels, users (some missing), numeric statuses as int or double,
// and paths.
generated generate(size_t n) {
  generated g;
  g.events.reserve(n);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  const char* levels[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  const char* paths[] = {"/api/v1/items", "/health", "/api/v2/users", "/static/app.js"};
  for (size_t i = 0; i < n; ++i) {
    event e;
    e.timestamp_ms = 1'700'000'000'000 + static_cast<int64_t>(i) * 10;
    e.fields.push_back({"level", std::string{levels[next() % 4]}});
    uint64_t u = next() % 60;
    if (u < 50)
      e.fields.push_back({"user", u == 0 ? std::string{"bot"} : "user-" + std::to_string(u)});
    int64_t status = 200 + static_cast<int64_t>(next() % 400);
    if (next() % 3 == 0)
      e.fields.push_back({"status", static_cast<double>(status) + 0.5});
    else
      e.fields.push_back({"status", status});
    e.fields.push_back({"path", std::string{paths[next() % 4]}});
    g.events.push_back(std::move(e));
  }
  return g;
}

double number_of(const value* v) {
  if (auto i = std::get_if<int64_t>(v))
    return static_cast<double>(*i);
  return std::get<double>(*v);
}

TEST(QueryScale, HundredThousandEventsMatchExactly) {
  auto data = generate(100'000);
  auto q = must_parse(R"(where level == "ERROR" and user != "bot" or (status >= 500 and not path contains "/health") since 1700000000000 until 1700000500000)");
  auto range = q.resolve_time(0);
  uint64_t matched = 0, expected = 0;
  for (const auto& e : data.events) {
    if (q.selects(e, range))
      ++matched;
    const value* user = e.find("user");
    bool error_not_bot = std::get<std::string>(*e.find("level")) == "ERROR"
                         && !(user && std::get<std::string>(*user) == "bot");
    bool server_error = number_of(e.find("status")) >= 500
                        && std::get<std::string>(*e.find("path")).find("/health") == std::string::npos;
    bool in_range = e.timestamp_ms >= 1'700'000'000'000 && e.timestamp_ms < 1'700'000'500'000;
    if (in_range && (error_not_bot || server_error))
      ++expected;
  }
  EXPECT_EQ(matched, expected);
  EXPECT_GT(expected, 10'000u);  // the mix really exercises both branches
  EXPECT_LT(expected, 50'000u);
}

TEST(QueryScale, CountByLevelMatchesAReferenceCount) {
  auto data = generate(100'000);
  auto q = must_parse("where status >= 400.5 count by level,user");
  counter c{q};
  std::map<std::pair<std::string, std::string>, uint64_t> reference;
  for (const auto& e : data.events) {
    if (!q.matches(e))
      continue;
    ASSERT_TRUE(c.add(e).ok());
    const value* user = e.find("user");
    ++reference[{std::get<std::string>(*e.find("level")),
                 user ? std::get<std::string>(*user) : std::string{"<null>"}}];
  }
  auto r = c.results();
  ASSERT_EQ(r.size(), reference.size());
  uint64_t previous = UINT64_MAX;
  for (const auto& g : r) {
    EXPECT_LE(g.count, previous);
    previous = g.count;
    std::string user = std::holds_alternative<std::monostate>(g.values[1])
                           ? std::string{"<null>"}
                           : std::get<std::string>(g.values[1]);
    EXPECT_EQ(g.count, (reference[{std::get<std::string>(g.values[0]), user}]));
  }
}

TEST(QueryScale, MatchingAndCountingKnownGroupsDoNotAllocate) {
  auto data = generate(1000);
  auto q = must_parse(R"(where (level == "ERROR" or path contains "/api") and user != "bot" and status > 250.25 and ts >= 0)");
  counter c{must_parse("count by level")};
  for (const auto& e : data.events)
    ASSERT_TRUE(c.add(e).ok());  // every level seen once: the groups exist
  uint64_t before = allocations.load();
  uint64_t matched = 0;
  for (int round = 0; round < 10; ++round)
    for (const auto& e : data.events) {
      matched += q.matches(e) ? 1 : 0;
      (void)c.add(e);
    }
  uint64_t after = allocations.load();
  EXPECT_EQ(after - before, 0u);
  EXPECT_GT(matched, 0u);
}

} // namespace
} // namespace levee::query

namespace levee::query {
namespace {

// -- parse_cache -------------------------------------------------------------------------

TEST(ParseCache, ATextParsedOnceServesEveryRunWithTheSameQuery) {
  parse_cache cache{4};
  auto a = cache.parse("where level == \"ERROR\" limit 10");
  ASSERT_TRUE(a) << a.error().message();
  auto b = cache.parse("where level == \"ERROR\" limit 10");
  ASSERT_TRUE(b);
  EXPECT_EQ(a->get(), b->get());  // the same parsed query, not a second parse
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);
  auto direct = parse("where level == \"ERROR\" limit 10");
  ASSERT_TRUE(direct);
  EXPECT_EQ(**b, *direct);
}

TEST(ParseCache, TheLeastRecentlyUsedTextGoesFirstAndTheBoundHolds) {
  parse_cache cache{2};
  ASSERT_TRUE(cache.parse("limit 1"));
  ASSERT_TRUE(cache.parse("limit 2"));
  ASSERT_TRUE(cache.parse("limit 1"));  // now the most recent
  ASSERT_TRUE(cache.parse("limit 3"));  // "limit 2" goes
  EXPECT_EQ(cache.size(), 2u);
  auto misses = cache.misses();
  ASSERT_TRUE(cache.parse("limit 1"));
  EXPECT_EQ(cache.misses(), misses);
  ASSERT_TRUE(cache.parse("limit 2"));
  EXPECT_EQ(cache.misses(), misses + 1);
  auto q = cache.parse("limit 3");  // went when "limit 2" came back
  ASSERT_TRUE(q);
  EXPECT_EQ((*q)->limit(), std::optional<uint64_t>{3});
  EXPECT_EQ(cache.misses(), misses + 2);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(ParseCache, BadTextIsRefusedWithItsPositionEveryTimeAndNotKept) {
  parse_cache cache{4};
  for (int i = 0; i < 2; ++i) {
    auto q = cache.parse("where level == and");
    ASSERT_FALSE(q);
    EXPECT_EQ(q.error().code(), code::bad_request);
    EXPECT_NE(q.error().message().find("at position 15"), std::string::npos)
      << q.error().message();
  }
  EXPECT_EQ(cache.size(), 0u);
  std::string too_long(defaults::max_text_bytes + 1, ' ');
  auto q = cache.parse(too_long);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code(), code::message_too_large);
}

TEST(ParseCache, ACacheOfNoEntriesParsesEachTime) {
  parse_cache cache{0};
  ASSERT_TRUE(cache.parse("limit 1"));
  ASSERT_TRUE(cache.parse("limit 1"));
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.size(), 0u);
}

} // namespace
} // namespace levee::query
