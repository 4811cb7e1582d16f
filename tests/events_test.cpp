// JSON lines -> events, events -> JSON, and the storage encoding (events/json, events/codec).

#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "events/codec.hpp"
#include "events/defaults.hpp"
#include "events/event.pb.h"
#include "events/json.hpp"

namespace levee::events {
namespace {

constexpr int64_t now_ms = 1'800'000'000'000;

event parse_ok(std::string_view line, const json_limits& limits = {}) {
  auto r = parse_json_line(line, now_ms, limits);
  EXPECT_TRUE(r.ok()) << line << " -> " << r.error().to_string();
  return r.ok() ? std::move(r).value() : event{};
}

// -- defaults and config ------------------------------------------------------------------

TEST(EventsDefaults, ArePinned) {
  json_limits l;
  EXPECT_EQ(l.max_line_bytes, 65'536u);
  EXPECT_EQ(l.max_fields, 256u);
  EXPECT_EQ(l.max_depth, 8u);
  EXPECT_EQ(l.max_field_name_bytes, 256u);
  EXPECT_TRUE(validate(l).ok());
  EXPECT_EQ(defaults::max_connections, 64u);
  EXPECT_EQ(defaults::file_read_chunk_bytes, 65'536u);
  EXPECT_EQ(defaults::socket_read_chunk_bytes, 16'384u);
  EXPECT_EQ(defaults::max_read_bytes_per_poll, 4u * 1024 * 1024);
  EXPECT_EQ(defaults::proc_interval_ms, 10'000u);
  EXPECT_EQ(defaults::synthetic_rate_per_sec, 1'000u);
}

TEST(JsonLimits, ValidateNamesTheKey) {
  json_limits l;
  l.max_depth = 0;
  auto st = validate(l);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::bad_request);
  EXPECT_EQ(st.message(), "events.max_depth = 0: must be between 1 and 64 levels");
  l = {};
  l.max_line_bytes = defaults::max_line_bytes_ceiling + 1;
  st = validate(l, "satellite.events");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("satellite.events.max_line_bytes = 16777217: ", 0), 0u) << st.message();
}

// -- values --------------------------------------------------------------------------------

TEST(JsonLine, EveryValueKind) {
  auto e = parse_ok(R"({"s":"x","i":42,"neg":-7,"d":1.5,"t":true,"f":false,"n":null,"e":""})");
  ASSERT_EQ(e.fields.size(), 8u);
  EXPECT_EQ(e.fields[0], (field{"s", std::string{"x"}}));
  EXPECT_EQ(e.fields[1], (field{"i", int64_t{42}}));
  EXPECT_EQ(e.fields[2], (field{"neg", int64_t{-7}}));
  EXPECT_EQ(e.fields[3], (field{"d", 1.5}));
  EXPECT_EQ(e.fields[4], (field{"t", true}));
  EXPECT_EQ(e.fields[5], (field{"f", false}));
  EXPECT_EQ(e.fields[6], (field{"n", std::monostate{}}));
  EXPECT_EQ(e.fields[7], (field{"e", std::string{}}));
  EXPECT_EQ(e.timestamp_ms, now_ms);
}

TEST(JsonLine, FlattensNestedObjectsWithDots) {
  auto e = parse_ok(R"({"a":1,"http":{"status":200,"req":{"method":"GET"}},"z":{},"b":2})");
  ASSERT_EQ(e.fields.size(), 4u);  // the empty object "z" makes no field
  EXPECT_EQ(e.fields[0].name, "a");
  EXPECT_EQ(e.fields[1], (field{"http.status", int64_t{200}}));
  EXPECT_EQ(e.fields[2], (field{"http.req.method", std::string{"GET"}}));
  EXPECT_EQ(e.fields[3], (field{"b", int64_t{2}}));
}

TEST(JsonLine, ArraysAreStoredAsCompactJsonText) {
  auto e = parse_ok(
    R"({"tags": [ "a", 1, -2, 2.5, 3.0, true, null, {"k": [1, 2], "q\"": "x\ny"}, [] ], "x": 1})");
  ASSERT_EQ(e.fields.size(), 2u);
  EXPECT_EQ(e.fields[0],
            (field{"tags", std::string{R"(["a",1,-2,2.5,3.0,true,null,{"k":[1,2],"q\"":"x\ny"},[]])"}}));
  EXPECT_EQ(e.fields[1], (field{"x", int64_t{1}}));
  auto nested = parse_ok(R"({"m":{"list":[[1],[2,[3]]]}})");
  ASSERT_EQ(nested.fields.size(), 1u);
  EXPECT_EQ(nested.fields[0], (field{"m.list", std::string{"[[1],[2,[3]]]"}}));
}

TEST(JsonLine, IntegersThatFitInt64StayIntegersOthersBecomeDoubles) {
  auto e = parse_ok(
    R"({"max":9223372036854775807,"min":-9223372036854775808,"over":9223372036854775808,)"
    R"("huge":123456789012345678901234567890,"exp":1e3,"frac":0.1})");
  ASSERT_EQ(e.fields.size(), 6u);
  EXPECT_EQ(e.fields[0].val, value{std::numeric_limits<int64_t>::max()});
  EXPECT_EQ(e.fields[1].val, value{std::numeric_limits<int64_t>::min()});
  EXPECT_EQ(e.fields[2].val, value{9223372036854775808.0});
  EXPECT_EQ(e.fields[3].val, value{123456789012345678901234567890.0});
  EXPECT_EQ(e.fields[4].val, value{1000.0});
  EXPECT_EQ(e.fields[5].val, value{0.1});
}

TEST(JsonLine, ARepeatedNameKeepsTheLastValueInTheFirstPlace) {
  auto e = parse_ok(R"({"a":1,"b":2,"a":"x","c.d":1,"c":{"d":2}})");
  ASSERT_EQ(e.fields.size(), 3u);
  EXPECT_EQ(e.fields[0], (field{"a", std::string{"x"}}));
  EXPECT_EQ(e.fields[1], (field{"b", int64_t{2}}));
  EXPECT_EQ(e.fields[2], (field{"c.d", int64_t{2}}));
}

TEST(JsonLine, WhitespaceAroundTheObjectIsAllowed) {
  auto e = parse_ok(" \t{\"a\" : 1 }  ");
  ASSERT_EQ(e.fields.size(), 1u);
}

TEST(JsonLine, ReusingTheEventLeavesNoStaleFields) {
  event e;
  ASSERT_TRUE(parse_json_line(R"({"a":"long string value","b":2,"c":3})", now_ms, {}, e).ok());
  ASSERT_TRUE(parse_json_line(R"({"x":1})", now_ms, {}, e).ok());
  ASSERT_EQ(e.fields.size(), 1u);
  EXPECT_EQ(e.fields[0], (field{"x", int64_t{1}}));
  EXPECT_FALSE(parse_json_line("{bad", now_ms, {}, e).ok());
  EXPECT_TRUE(e.fields.empty());
}

// -- timestamps -----------------------------------------------------------------------------

struct ts_case {
  const char* line;
  int64_t expected_ms;
};

TEST(JsonTimestamp, EveryFormIsRead) {
  const ts_case cases[] = {
    {R"({"ts":1700000000})", 1'700'000'000'000},             // epoch seconds
    {R"({"ts":1700000000.123})", 1'700'000'000'123},         // fractional seconds
    {R"({"ts":1700000000123})", 1'700'000'000'123},          // epoch ms (> 1e11)
    {R"({"ts":1700000000123.6})", 1'700'000'000'124},        // fractional ms round
    {R"({"ts":0})", 0},
    {R"({"timestamp":"2026-11-22T05:00:00Z"})", 1'795'323'600'000},
    {R"({"time":"2026-11-22T05:00:00.250+01:00"})", 1'795'320'000'250},
    {R"({"@timestamp":"2026-11-22T05:00:00.123456-05:30"})", 1'795'343'400'123},
    {R"({"ts":"2026-11-22t05:00:00z"})", 1'795'323'600'000},
    {R"({"ts":"2026-11-22 05:00:00Z"})", 1'795'323'600'000},
    {R"({"ts":"2024-02-29T23:59:59.999Z"})", 1'709'251'199'999},
    {R"({"ts":"1970-01-01T00:00:00Z"})", 0},
    {R"({"ts":"9999-12-31T23:59:59.999Z"})", 253'402'300'799'999},
    {R"({"ts":"2026-11-22T05:00:00.5Z"})", 1'795'323'600'500},
  };
  for (auto& c : cases) {
    auto e = parse_ok(c.line);
    EXPECT_EQ(e.timestamp_ms, c.expected_ms) << c.line;
    EXPECT_TRUE(e.fields.empty()) << c.line << ": the timestamp key is removed";
  }
}

TEST(JsonTimestamp, TheFirstKeyInPreferenceOrderWinsAndOthersStayFields) {
  auto e = parse_ok(R"({"time":"2026-11-22T05:00:00Z","msg":"m","ts":1700000000,"@timestamp":"x"})");
  EXPECT_EQ(e.timestamp_ms, 1'700'000'000'000);
  ASSERT_EQ(e.fields.size(), 3u);
  EXPECT_EQ(e.fields[0].name, "time");
  EXPECT_EQ(e.fields[1].name, "msg");
  EXPECT_EQ(e.fields[2].name, "@timestamp");
}

TEST(JsonTimestamp, MissingMeansNowAndNestedKeysAreNotTimestamps) {
  auto e = parse_ok(R"({"a":{"ts":5}})");
  EXPECT_EQ(e.timestamp_ms, now_ms);
  ASSERT_EQ(e.fields.size(), 1u);
  EXPECT_EQ(e.fields[0].name, "a.ts");
}

TEST(Rfc3339, RefusesWithAReason) {
  struct bad_case {
    const char* text;
    const char* reason;
  };
  const bad_case cases[] = {
    {"yesterday", "expected a 4-digit year at position 0"},
    {"2026-13-01T00:00:00Z", "month 13 out of range 1-12"},
    {"2026-02-29T00:00:00Z", "day 29 out of range 1-28"},
    {"2026-11-22T24:00:00Z", "hour 24 out of range 0-23"},
    {"2026-11-22T05:60:00Z", "minute 60 out of range 0-59"},
    {"2026-11-22T05:00:61Z", "second 61 out of range 0-60"},
    {"2026-11-22T05:00:00", "expected a time zone (Z or +hh:mm) at position 19, found the end"},
    {"2026-11-22T05:00:00.Z", "expected fractional digits at position 20"},
    {"2026-11-22T05:00:00+0100", "expected ':' at position 22"},
    {"2026-11-22T05:00:00Zjunk", "expected the end at position 20"},
    {"1969-12-31T23:59:59Z", "out of range (1970-01-01 to 9999-12-31)"},
  };
  for (auto& c : cases) {
    auto r = parse_rfc3339_ms(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code(), code::bad_request);
    EXPECT_NE(r.error().message().find(c.reason), std::string::npos)
      << c.text << " -> " << r.error().message();
  }
}

// -- bad lines ------------------------------------------------------------------------------

struct bad_line_case {
  std::string name;
  std::string line;
  bad_line_kind kind;
  std::string reason;  // a substring of the message
};

std::string object_with_fields(int n) {
  std::string s = "{";
  for (int i = 0; i < n; ++i)
    s += (i ? ",\"f" : "\"f") + std::to_string(i) + "\":" + std::to_string(i);
  return s + "}";
}

std::string nested(int depth) {
  std::string s;
  for (int i = 1; i < depth; ++i)
    s += "{\"a\":";
  s += "{\"leaf\":1}";
  for (int i = 1; i < depth; ++i)
    s += "}";
  return s;
}

TEST(JsonLine, EveryBadLineIsRefusedWithItsReason) {
  const std::vector<bad_line_case> cases = {
    {"garbage bytes", "\x01\x02garbage", bad_line_kind::invalid_json, "invalid JSON at byte 1: "},
    {"truncated", R"({"a":1,"b":)", bad_line_kind::invalid_json,
     "invalid JSON at byte 12: syntax error while parsing value - unexpected end of input"},
    {"unterminated string", R"({"a":"abc)", bad_line_kind::invalid_json, "invalid JSON at byte "},
    {"trailing bytes", R"({"a":1} x)", bad_line_kind::invalid_json, "expected end of input"},
    {"empty line", "", bad_line_kind::invalid_json, "invalid JSON at byte "},
    {"invalid UTF-8", "{\"a\":\"\xff\"}", bad_line_kind::invalid_json, "UTF-8"},
    {"number overflow", R"({"a":1e999})", bad_line_kind::invalid_json, "invalid JSON"},
    {"top-level array", "[1,2]", bad_line_kind::not_an_object,
     "not a JSON object: the line is an array"},
    {"top-level string", R"("x")", bad_line_kind::not_an_object,
     "not a JSON object: the line is a string"},
    {"top-level number", "42", bad_line_kind::not_an_object,
     "not a JSON object: the line is a number"},
    {"top-level null", "null", bad_line_kind::not_an_object, "not a JSON object: the line is null"},
    {"over-long line", "{\"a\":\"" + std::string(70'000, 'x') + "\"}", bad_line_kind::too_long,
     "line of 70008 bytes exceeds events.max_line_bytes 65536"},
    {"too many fields", object_with_fields(257), bad_line_kind::too_many_fields,
     "more than 256 fields exceeds events.max_fields 256 (at field 'f256')"},
    {"too deep", nested(9), bad_line_kind::too_deep,
     "field 'a.a.a.a.a.a.a.a' nests deeper than events.max_depth 8"},
    {"too deep in an array", R"({"a":[[[[[[[[1]]]]]]]]})", bad_line_kind::too_deep,
     "field 'a' nests deeper than events.max_depth 8"},
    {"field name too long", "{\"" + std::string(257, 'k') + "\":1}",
     bad_line_kind::field_name_too_long,
     "field name of 257 bytes exceeds events.max_field_name_bytes 256"},
    {"flattened name too long", "{\"" + std::string(200, 'k') + "\":{\"" + std::string(60, 'j')
                                  + "\":1}}",
     bad_line_kind::field_name_too_long,
     "field name of 261 bytes exceeds events.max_field_name_bytes 256"},
    {"timestamp not a time", R"({"ts":"yesterday"})", bad_line_kind::bad_timestamp,
     "timestamp 'ts' = \"yesterday\": not RFC 3339"},
    {"timestamp impossible date", R"({"timestamp":"2026-02-30T00:00:00Z"})",
     bad_line_kind::bad_timestamp, "day 30 out of range 1-28"},
    {"timestamp without zone", R"({"time":"2026-11-22T05:00:00"})", bad_line_kind::bad_timestamp,
     "expected a time zone"},
    {"timestamp boolean", R"({"ts":true})", bad_line_kind::bad_timestamp,
     "timestamp 'ts' is a boolean; expected epoch seconds or ms, or an RFC 3339 string"},
    {"timestamp null", R"({"ts":null})", bad_line_kind::bad_timestamp, "timestamp 'ts' is null"},
    {"timestamp object", R"({"ts":{"s":1}})", bad_line_kind::bad_timestamp,
     "timestamp 'ts' is an object"},
    {"timestamp array", R"({"@timestamp":[1]})", bad_line_kind::bad_timestamp,
     "timestamp '@timestamp' is an array"},
    {"timestamp negative", R"({"ts":-5})", bad_line_kind::bad_timestamp,
     "timestamp 'ts' = -5: out of range"},
    {"timestamp after 9999", R"({"ts":1e15})", bad_line_kind::bad_timestamp, "out of range"},
  };
  for (auto& c : cases) {
    event e;
    bad_line_kind kind = bad_line_kind::too_long;
    auto st = parse_json_line(c.line, now_ms, {}, e, &kind);
    ASSERT_FALSE(st.ok()) << c.name;
    EXPECT_EQ(st.code(), code::bad_request) << c.name;
    EXPECT_EQ(kind, c.kind) << c.name << ": " << st.message();
    EXPECT_NE(st.message().find(c.reason), std::string::npos)
      << c.name << ": got \"" << st.message() << "\", wanted \"" << c.reason << "\"";
  }
}

/// True when `s` is well-formed UTF-8 (checked by the same repair to_json does).
bool valid_utf8(const std::string& s) {
  std::string quoted;
  append_json_string(quoted, s);
  return quoted.find("\\ufffd") == std::string::npos;
}

TEST(JsonLine, ReasonsAreBoundedValidUtf8EvenWhenTheLineIsNot) {
  std::string line = "{\"a\":\"" + std::string(5000, 'x') + "\xff\xfe\"}";
  auto r = parse_json_line(line, now_ms, {});
  ASSERT_FALSE(r.ok());
  auto& m = r.error().message();
  EXPECT_EQ(m.rfind("invalid JSON at byte 5007: ", 0), 0u) << m;
  EXPECT_LE(m.size(), 240u);
  EXPECT_TRUE(valid_utf8(m)) << m;
  auto t = parse_json_line("{\"ts\":\"2026-11-22T05:00:00\xc3\xa9\"}", now_ms, {});
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(valid_utf8(t.error().message())) << t.error().message();
  EXPECT_NE(t.error().message().find("found byte 0xc3"), std::string::npos) << t.error().message();
}

TEST(JsonLine, LimitsAreInclusive) {
  std::string at_limit = "{\"a\":\"" + std::string(65'536 - 8, 'x') + "\"}";
  ASSERT_EQ(at_limit.size(), 65'536u);
  EXPECT_TRUE(parse_json_line(at_limit, now_ms, json_limits{}).ok());
  EXPECT_TRUE(parse_json_line(object_with_fields(256), now_ms, json_limits{}).ok());
  EXPECT_TRUE(parse_json_line(nested(8), now_ms, json_limits{}).ok());
  EXPECT_TRUE(parse_json_line("{\"" + std::string(256, 'k') + "\":1}", now_ms, json_limits{}).ok());
  // The timestamp counts while parsing, so a line at max_fields may carry one.
  json_limits two;
  two.max_fields = 2;
  EXPECT_TRUE(parse_json_line(R"({"ts":1700000000,"a":1})", now_ms, two).ok());
  EXPECT_FALSE(parse_json_line(R"({"ts":1700000000,"a":1,"b":2})", now_ms, two).ok());
}

TEST(JsonLine, BadLineKindsHaveStableNames) {
  EXPECT_EQ(to_string(bad_line_kind::too_long), "too_long");
  EXPECT_EQ(to_string(bad_line_kind::invalid_json), "invalid_json");
  EXPECT_EQ(to_string(bad_line_kind::not_an_object), "not_an_object");
  EXPECT_EQ(to_string(bad_line_kind::too_many_fields), "too_many_fields");
  EXPECT_EQ(to_string(bad_line_kind::too_deep), "too_deep");
  EXPECT_EQ(to_string(bad_line_kind::field_name_too_long), "field_name_too_long");
  EXPECT_EQ(to_string(bad_line_kind::bad_timestamp), "bad_timestamp");
}

// -- to_json --------------------------------------------------------------------------------

TEST(ToJson, WritesTsFirstThenFieldsInOrder) {
  event e;
  e.timestamp_ms = 1'700'000'000'000;
  e.fields = {{"a", int64_t{1}}, {"b", std::string{"x"}}, {"c", 1.0}, {"d", std::monostate{}},
              {"e", true}, {"http.status", int64_t{200}}, {"f", 0.1}, {"g", 1e300}};
  EXPECT_EQ(to_json(e), R"({"ts":1700000000000,"a":1,"b":"x","c":1.0,"d":null,"e":true,)"
                        R"("http.status":200,"f":0.1,"g":1e+300})");
}

TEST(ToJson, RoundTripsThroughTheParser) {
  const char* lines[] = {
    R"({"ts":1700000000123,"s":"q\"uote\\back\nnl\ttab\u0001ctl é 😀","i":-42,"d":-0.0,"big":1.7976931348623157e308,"small":5e-324})",
    R"({"ts":1795323600000,"http":{"status":200,"path":"/x"},"tags":["a",{"b":null}],"n":null,"t":false})",
    R"({"ts":1700000000000,"max":9223372036854775807,"min":-9223372036854775808,"f":0.30000000000000004})",
  };
  for (auto* line : lines) {
    auto first = parse_ok(line);
    auto text = to_json(first);
    auto second = parse_ok(text);
    EXPECT_EQ(first, second) << line << " -> " << text;
    EXPECT_EQ(to_json(second), text);
  }
}

TEST(ToJson, AlwaysValidJsonEvenFromBadBytes) {
  event e;
  e.timestamp_ms = 1'700'000'000'000;
  e.fields = {{"bad\xff", std::string{"a\xc3(\xed\xa0\x80\xf4\x90\x80\x80z\xe2\x82"}},
              {"nan", std::nan("")}, {"inf", std::numeric_limits<double>::infinity()},
              {"ts", int64_t{5}}};
  auto text = to_json(e);
  EXPECT_EQ(text, "{\"ts\":1700000000000,\"bad\\ufffd\":\"a\\ufffd(\\ufffd\\ufffd\\ufffd\\ufffd"
                  "\\ufffd\\ufffd\\ufffdz\\ufffd\\ufffd\",\"nan\":null,\"inf\":null}");
  EXPECT_TRUE(parse_json_line(text, now_ms, {}).ok());
}

// -- the storage encoding -------------------------------------------------------------------

/// Events with every kind of value, awkward names and bytes, and extreme numbers.
class event_generator {
public:
  explicit event_generator(uint64_t seed) : rng_(seed) {}

  event next() {
    event e;
    switch (pick(4)) {
      case 0: e.timestamp_ms = 0; break;
      case 1: e.timestamp_ms = -static_cast<int64_t>(rng_()); break;
      default: e.timestamp_ms = static_cast<int64_t>(rng_() >> 1);
    }
    size_t n = pick(12);
    for (size_t i = 0; i < n; ++i)
      e.fields.push_back({bytes(pick(3) == 0 ? 0 : pick(20)), any_value()});
    return e;
  }

private:
  size_t pick(size_t n) { return static_cast<size_t>(rng_() % n); }

  std::string bytes(size_t n) {
    std::string s(n, '\0');
    for (auto& c : s)
      c = static_cast<char>(pick(4) == 0 ? rng_() : 'a' + pick(26));
    return s;
  }

  value any_value() {
    switch (pick(5)) {
      case 0: return std::monostate{};
      case 1: return pick(2) == 0;
      case 2: {
        const int64_t special[] = {0, -1, 1, std::numeric_limits<int64_t>::min(),
                                   std::numeric_limits<int64_t>::max()};
        return pick(3) == 0 ? special[pick(5)] : static_cast<int64_t>(rng_());
      }
      case 3: {
        const double special[] = {0.0, -0.0, std::numeric_limits<double>::infinity(),
                                  std::numeric_limits<double>::denorm_min(), 1e308};
        return pick(3) == 0 ? special[pick(5)]
                            : std::ldexp(static_cast<double>(rng_() >> 11), static_cast<int>(pick(200)) - 100);
      }
      default: return bytes(pick(4) == 0 ? 300 : pick(30));
    }
  }

  std::mt19937_64 rng_;
};

/// What protobuf's generated code reads from the same bytes.
bool parse_with_protobuf(const std::string& bytes, event& out) {
  levee::events::Event msg;
  if (!msg.ParseFromString(bytes))
    return false;
  out.timestamp_ms = msg.timestamp_ms();
  out.fields.clear();
  for (auto& f : msg.fields()) {
    field g{f.name(), std::monostate{}};
    switch (f.value_case()) {
      case Field::kBoolValue: g.val = f.bool_value(); break;
      case Field::kIntValue: g.val = static_cast<int64_t>(f.int_value()); break;
      case Field::kDoubleValue: g.val = f.double_value(); break;
      case Field::kStringValue: g.val = f.string_value(); break;
      case Field::VALUE_NOT_SET: break;
    }
    out.fields.push_back(std::move(g));
  }
  return true;
}

/// Events compared bit for bit (so -0.0 and 0.0 differ, and NaN equals itself).
bool same_bits(const event& a, const event& b) {
  if (a.timestamp_ms != b.timestamp_ms || a.fields.size() != b.fields.size())
    return false;
  for (size_t i = 0; i < a.fields.size(); ++i) {
    auto& x = a.fields[i];
    auto& y = b.fields[i];
    if (x.name != y.name || x.val.index() != y.val.index())
      return false;
    if (auto* d = std::get_if<double>(&x.val)) {
      double e = std::get<double>(y.val);
      if (std::memcmp(d, &e, sizeof e) != 0)
        return false;
    } else if (x.val != y.val) {
      return false;
    }
  }
  return true;
}

TEST(Codec, RoundTripsManyRandomEvents) {
  event_generator gen{42};
  event decoded;  // reused across all of them, as a scan does
  for (int i = 0; i < 20'000; ++i) {
    auto e = gen.next();
    std::string bytes;
    encode(e, bytes);
    auto st = decode(bytes, decoded);
    ASSERT_TRUE(st.ok()) << i << ": " << st.to_string();
    ASSERT_TRUE(same_bits(e, decoded)) << "event " << i;
  }
}

TEST(Codec, BytesAreWhatProtobufWritesAndReads) {
  event_generator gen{7};
  for (int i = 0; i < 2'000; ++i) {
    auto e = gen.next();
    std::string ours;
    encode(e, ours);

    levee::events::Event msg;
    msg.set_timestamp_ms(e.timestamp_ms);
    for (auto& f : e.fields) {
      auto* m = msg.add_fields();
      m->set_name(f.name);
      if (auto* b = std::get_if<bool>(&f.val))
        m->set_bool_value(*b);
      else if (auto* n = std::get_if<int64_t>(&f.val))
        m->set_int_value(*n);
      else if (auto* d = std::get_if<double>(&f.val))
        m->set_double_value(*d);
      else if (auto* s = std::get_if<std::string>(&f.val))
        m->set_string_value(*s);
    }
    std::string theirs;
    ASSERT_TRUE(msg.SerializeToString(&theirs));
    ASSERT_EQ(ours, theirs) << "event " << i;

    event back;
    ASSERT_TRUE(parse_with_protobuf(ours, back));
    ASSERT_TRUE(same_bits(e, back)) << "event " << i;
  }
}

TEST(Codec, EncodesTheWorkedExampleOfEventsMd) {
  event e;
  e.timestamp_ms = 1'700'000'000'000;
  e.fields = {{"level", std::string{"ERROR"}}, {"status", int64_t{500}}};
  std::string bytes;
  encode(e, bytes);
  const unsigned char expected[] = {0x08, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31,
                                    0x12, 0x0e, 0x0a, 0x05, 'l', 'e', 'v', 'e', 'l',
                                    0x2a, 0x05, 'E', 'R', 'R', 'O', 'R',
                                    0x12, 0x0b, 0x0a, 0x06, 's', 't', 'a', 't', 'u', 's',
                                    0x18, 0xe8, 0x07};
  EXPECT_EQ(bytes, std::string(reinterpret_cast<const char*>(expected), sizeof expected));
}

TEST(Codec, DecodeReusesTheEventWithoutStaleFields) {
  event big;
  big.timestamp_ms = 5;
  big.fields = {{"a", std::string(1000, 'x')}, {"b", int64_t{1}}, {"c", std::string{"y"}}};
  event small;
  small.timestamp_ms = 0;
  small.fields = {{"a", int64_t{3}}};
  std::string b1, b2;
  encode(big, b1);
  encode(small, b2);
  event out;
  ASSERT_TRUE(decode(b1, out).ok());
  EXPECT_EQ(out, big);
  ASSERT_TRUE(decode(b2, out).ok());
  EXPECT_EQ(out, small);
  ASSERT_TRUE(decode(b1, out).ok());
  EXPECT_EQ(out, big);
  ASSERT_TRUE(decode("", out).ok());
  EXPECT_EQ(out, event{});
}

TEST(Codec, SkipsUnknownFieldsFromNewerWriters) {
  event e;
  e.timestamp_ms = 1'700'000'000'000;
  e.fields = {{"a", int64_t{-2}}, {"b", std::monostate{}}};
  std::string bytes;
  encode(e, bytes);
  // Event gets field 9 (varint) and 10 (bytes); the first Field gets 7 (fixed32) and 8 (fixed64).
  std::string extended = bytes + std::string("\x48\x96\x01\x52\x03xyz", 8);
  event out;
  ASSERT_TRUE(decode(extended, out).ok());
  EXPECT_EQ(out, e);
  // Field "a": tag 0x12, length, name (0a 01 'a'), int (18 03). Insert unknowns before the int.
  std::string field_a = std::string("\x0a\x01" "a" "\x3d\x01\x02\x03\x04\x41", 9) + std::string(8, '\x07')
                        + std::string("\x18\x03", 2);
  std::string manual = std::string("\x12", 1) + static_cast<char>(field_a.size()) + field_a;
  ASSERT_TRUE(decode(manual, out).ok());
  ASSERT_EQ(out.fields.size(), 1u);
  EXPECT_EQ(out.fields[0], (field{"a", int64_t{-2}}));
}

/// decode_only of `names` over `e`'s encoding keeps what decode() reads of those names,
/// in the event's order (`some` is reused, as a scan does).
::testing::AssertionResult decode_only_agrees(const event& e, const std::vector<std::string>& names,
                                              event& some) {
  std::string bytes;
  encode(e, bytes);
  event all;
  if (!decode(bytes, all).ok())
    return ::testing::AssertionFailure() << "decode() refused the encoding";
  if (auto st = decode_only(bytes, some, names); !st.ok())
    return ::testing::AssertionFailure() << st.to_string();
  event expected;
  expected.timestamp_ms = all.timestamp_ms;
  for (auto& f : all.fields)
    if (std::find(names.begin(), names.end(), f.name) != names.end())
      expected.fields.push_back(f);
  if (!same_bits(expected, some))
    return ::testing::AssertionFailure() << "other fields than decode() reads";
  return ::testing::AssertionSuccess();
}

TEST(Codec, DecodeOnlyKeepsTheNamedFieldsAsDecodeReadsThem) {
  event_generator gen{7};
  event some;  // reused, as a scan does
  std::vector<std::string> names;
  for (int i = 0; i < 5'000; ++i) {
    auto e = gen.next();
    // Every other field of this event by name, plus one it does not have.
    names.clear();
    for (size_t f = i % 2; f < e.fields.size(); f += 2)
      names.push_back(e.fields[f].name);
    names.push_back("not-a-field");
    ASSERT_TRUE(decode_only_agrees(e, names, some)) << "event " << i;
  }
  // No names: the timestamp only.
  event e;
  e.timestamp_ms = 5;
  e.fields = {{"a", int64_t{1}}, {"b", std::string("x")}};
  std::string bytes;
  encode(e, bytes);
  ASSERT_TRUE(decode_only(bytes, some, {}).ok());
  EXPECT_EQ(some.timestamp_ms, 5);
  EXPECT_TRUE(some.fields.empty());
}

TEST(Codec, DecodeOnlyStopsOnceItHasEveryNamedField) {
  // Every named field present: the same fields as decode() gives, in the event's order.
  event_generator gen{11};
  event some;
  std::vector<std::string> names;
  for (int i = 0; i < 2'000; ++i) {
    auto e = gen.next();
    // Names unique, as every writer keeps them (the generator repeats names).
    for (size_t f = 0; f < e.fields.size(); ++f)
      e.fields[f].name += "#" + std::to_string(f);
    names.clear();
    for (size_t f = i % 3; f < e.fields.size(); f += 3)
      names.push_back(e.fields[f].name);
    ASSERT_TRUE(decode_only_agrees(e, names, some)) << "event " << i;
  }
  // What comes after the last wanted field is not read: a broken field there does not
  // fail this read (decode() and a read that wants a later field still refuse it).
  event e;
  e.timestamp_ms = 9;
  e.fields = {{"seq", int64_t{7}}, {"msg", std::string("hello")}};
  std::string bytes;
  encode(e, bytes);
  bytes += std::string("\x12\x05" "ab", 4);  // a field that runs past the end
  event out;
  auto st = decode_only(bytes, out, {"seq"});
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(out.timestamp_ms, 9);
  ASSERT_EQ(out.fields.size(), 1u);
  EXPECT_EQ(out.fields[0], (field{"seq", int64_t{7}}));
  EXPECT_FALSE(decode(bytes, out).ok());
  EXPECT_FALSE(decode_only(bytes, out, {"seq", "user"}).ok());
}

TEST(Codec, DecodeOnlyRefusesABrokenFieldItSkips) {
  event out;
  // Field "a" whose second entry (an int) breaks off: skipped or not, it is corrupt.
  std::string field_a = std::string("\x0a\x01" "a" "\x18", 4);
  std::string bytes = std::string("\x12", 1) + static_cast<char>(field_a.size()) + field_a;
  auto st = decode_only(bytes, out, {"b"});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::storage_error);
  EXPECT_EQ(st.message(),
            "corrupt event encoding at byte 0: field with a truncated or invalid entry");
  EXPECT_FALSE(decode_only(bytes, out, {"a"}).ok());
  // A field that runs past the end is refused before its name is looked at.
  st = decode_only(std::string("\x12\x05" "ab", 4), out, {"x"});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "corrupt event encoding at byte 0: field runs past the end");
}

TEST(Codec, CorruptInputIsAStorageErrorSayingWhere) {
  event out;
  auto st = decode(std::string("\x12\x05" "ab", 4), out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::storage_error);
  EXPECT_EQ(st.message(), "corrupt event encoding at byte 0: field runs past the end");
  st = decode(std::string("\x08\xff\xff", 3), out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "corrupt event encoding at byte 0: truncated timestamp");
  st = decode(std::string("\x12\x02\x0b\x00", 4), out);  // wire type 3 (group) in a Field
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "corrupt event encoding at byte 2: unknown field with a truncated or invalid value");
  st = decode(std::string("\x00", 1), out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "corrupt event encoding at byte 0: invalid field number");
}

TEST(Codec, EveryTruncationGivesAStatusOrAnEventNeverACrash) {
  event_generator gen{99};
  event out;
  size_t refused = 0, accepted = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes;
    encode(gen.next(), bytes);
    for (size_t len = 0; len < bytes.size(); ++len) {
      auto st = decode(std::string_view{bytes}.substr(0, len), out);
      if (st.ok()) {
        ++accepted;  // cut at a field boundary: a shorter, valid event
      } else {
        ++refused;
        ASSERT_EQ(st.code(), code::storage_error);
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(accepted, 0u);
}

TEST(Codec, RandomByteFlipsGiveAStatusOrTheEventProtobufReads) {
  event_generator gen{1234};
  std::mt19937_64 rng{5};
  event ours, theirs;
  size_t refused = 0, agreed = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string bytes;
    encode(gen.next(), bytes);
    if (bytes.empty())
      continue;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k)
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    auto st = decode(bytes, ours);
    if (!st.ok()) {
      ASSERT_EQ(st.code(), code::storage_error);
      ++refused;
      continue;
    }
    if (parse_with_protobuf(bytes, theirs)) {
      ASSERT_TRUE(same_bits(ours, theirs)) << "input " << i;
      ++agreed;
    }
  }
  EXPECT_GT(refused, 1'000u);
  EXPECT_GT(agreed, 1'000u);
}

TEST(Codec, RecordsCarryTheEventAndItsTimestamp) {
  event e;
  e.timestamp_ms = 1'700'000'000'000;
  e.fields = {{"level", std::string{"ERROR"}}};
  auto r = to_record(e);
  EXPECT_TRUE(r.key.empty());
  EXPECT_EQ(r.timestamp_ms, e.timestamp_ms);
  event out;
  ASSERT_TRUE(from_record(r, out).ok());
  EXPECT_EQ(out, e);
  r.timestamp_ms += 1;
  auto st = from_record(r, out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::storage_error);
  EXPECT_NE(st.message().find("differs from the record's"), std::string::npos);
}

} // namespace
} // namespace levee::events
