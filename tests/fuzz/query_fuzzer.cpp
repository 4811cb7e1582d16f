// libFuzzer target for the query language. Any text must parse or be refused with
// bad_request (message_too_large when it is over query.max_text_bytes) — never a crash, a hang or a read past the text — and every query that
// parses must print canonical text that parses back to an equal query and prints the
// same again. Matching, time resolution, projection and counting must not crash either.
//
// Build and run: scripts/fuzz [seconds]

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "query/counter.hpp"
#include "query/query.hpp"

namespace {

using levee::events::event;
using levee::events::field;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "query_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// Events that reach every kind of value, missing fields and extreme timestamps.
std::vector<event> fixed_events() {
  std::vector<event> out(4);
  out[0].timestamp_ms = 1'795'323'600'000;
  out[0].fields = {{"level", std::string{"ERROR"}}, {"user", std::string{"bot"}},
                   {"status", int64_t{503}}, {"http.status", 200.5}, {"ok", false},
                   {"n", std::monostate{}}, {"a", int64_t{1}}, {"b", std::string{"/api"}}};
  out[1].timestamp_ms = std::numeric_limits<int64_t>::min();
  out[1].fields = {{"a", std::numeric_limits<double>::quiet_NaN()},
                   {"b", int64_t{std::numeric_limits<int64_t>::max()}},
                   {"ts", std::string{"x"}}, {"count", 1e300}};
  out[2].timestamp_ms = std::numeric_limits<int64_t>::max();
  out[3].timestamp_ms = 0;
  out[3].fields = {{"a", -0.0}, {"b", std::string{"\0\n\"", 3}}, {"level", true}};
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<event> events = fixed_events();
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto parsed = levee::query::parse(text);
  if (!parsed.ok()) {
    // A text over query.max_text_bytes is message_too_large; any other refusal bad_request.
    auto expected = text.size() > levee::query::defaults::max_text_bytes
                      ? levee::code::message_too_large
                      : levee::code::bad_request;
    if (parsed.error().code() != expected)
      fail("a refusal with the wrong code", parsed.error().to_string());
    if (parsed.error().message().rfind("at position ", 0) != 0)
      fail("an error without a position", parsed.error().to_string());
    return 0;
  }
  const levee::query::query& q = *parsed;
  std::string canonical = q.to_string();
  // Canonical text may be longer than the input (spaces, backquotes), never deeper.
  levee::query::query_limits roomy;
  roomy.max_text_bytes = std::numeric_limits<uint64_t>::max();
  auto again = levee::query::parse(canonical, roomy);
  if (!again.ok())
    fail("canonical text does not parse", canonical + "\n" + again.error().to_string());
  if (!(*again == q))
    fail("canonical text parses to a different query", canonical);
  if (again->to_string() != canonical)
    fail("canonical text is not stable", canonical + "\n" + again->to_string());

  levee::query::counter count{q};
  for (int64_t now : {int64_t{0}, int64_t{1'795'323'600'000}, std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max()}) {
    auto range = q.resolve_time(now);
    for (const event& e : events) {
      bool matched = q.selects(e, range);
      if (matched != (range.contains(e.timestamp_ms) && q.matches(e)))
        fail("selects disagrees with contains and matches", canonical);
      if (matched != again->selects(e, range))
        fail("the reparsed query matches differently", canonical);
      (void)levee::query::project(q, e);
      if (q.is_count())
        (void)count.add(e);
    }
  }
  (void)count.results();
  return 0;
}
