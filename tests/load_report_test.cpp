// The load tool's reports (load/): ramp and knee finding from steps' figures, the coarse
// latency series, the HTML report read back with libxml2's XML parser (it must be
// well-formed, and its plots must carry the run's numbers), scenario files and the
// comparison of two JSON results.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "load/compare.hpp"
#include "load/html_report.hpp"
#include "load/latency_series.hpp"
#include "load/ramp.hpp"
#include "load/results.hpp"
#include "load/scenario.hpp"
#include "xml_support.hpp"

namespace levee::load {
namespace {

using namespace std::chrono;

/// One second of `rate` sends: `refused` of them refused (rate_limited by `limit`), the
/// rest accepted after `latency`.
run_result step_of(double rate, uint64_t refused, nanoseconds latency,
                   const std::string& limit = "net.max_msgs_per_sec") {
  recorder r{nanoseconds(0), milliseconds(50)};
  auto n = static_cast<uint64_t>(rate);
  for (uint64_t i = 0; i < n; ++i) {
    auto t = nanoseconds(static_cast<int64_t>(1e9 * static_cast<double>(i) / rate));
    if (i < refused)
      r.rejected(t, t, t, "rate_limited", limit);
    else
      r.accepted(t, t, t + latency);
  }
  run_result out{{}, std::move(r)};
  out.settings.measured_seconds = 1;
  return out;
}

TEST(Ramp, ParsesStartStepMaxAndSeconds) {
  auto s = parse_ramp("100:100:500");
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->rates(), (std::vector<double>{100, 200, 300, 400, 500}));
  EXPECT_EQ(s->step_seconds, 5);
  auto t = parse_ramp("50:25:110:2.5");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->rates(), (std::vector<double>{50, 75, 100}));
  EXPECT_EQ(t->step_seconds, 2.5);
  auto tenths = parse_ramp("0.1:0.1:1");
  ASSERT_TRUE(tenths);
  EXPECT_EQ(tenths->rates().size(), 10u);  // counted, not summed: 1 is the last
}

TEST(Ramp, BadSpecsSayWhatToWrite) {
  auto error_of = [](const char* text) {
    auto s = parse_ramp(text);
    EXPECT_FALSE(s) << text;
    return s ? std::string{} : s.error().message();
  };
  EXPECT_NE(error_of("100:100").find("give 3 or 4 numbers"), std::string::npos);
  EXPECT_NE(error_of("100:x:500").find("'x' is not a number above 0"), std::string::npos);
  EXPECT_NE(error_of("100:nan:500").find("not a number above 0"), std::string::npos);
  EXPECT_NE(error_of("500:100:100").find("MAX must be at least START"), std::string::npos);
  EXPECT_NE(error_of("1:0.001:100000").find("more than 1000 steps"), std::string::npos);
  EXPECT_NE(error_of("1:2:3:4:5").find("e.g. --ramp 100:100:1000"), std::string::npos);
}

TEST(Ramp, TheKneeIsTheLastStepWithinTheBounds) {
  ramp_result r;
  r.spec = *parse_ramp("100:100:500:1");
  EXPECT_TRUE(r.add(100, step_of(100, 0, microseconds(500))));
  EXPECT_TRUE(r.add(200, step_of(200, 0, microseconds(600))));
  // 300/s: a third refused by a limit that began to answer here.
  EXPECT_FALSE(r.add(300, step_of(300, 100, microseconds(700))));
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_EQ(r.knee(), 200.0);
  EXPECT_TRUE(r.crossed());
  EXPECT_NE(r.steps[2].why.find("not accepted 33.33% > 1%"), std::string::npos) << r.steps[2].why;
  // Goodput rose by 0 of the 100/s added: saturated too.
  EXPECT_NE(r.steps[2].why.find("goodput rose by 0.0/s of the 100/s added"), std::string::npos)
    << r.steps[2].why;
  auto began = r.limits_began();
  ASSERT_EQ(began.size(), 1u);
  EXPECT_EQ(began[0].first.second, "net.max_msgs_per_sec");
  EXPECT_EQ(began[0].second, 300.0);
  EXPECT_NE(r.text().find("knee: 200/s"), std::string::npos) << r.text();
  auto json = r.json();
  EXPECT_NE(json.find("\"knee_per_second\":200.000"), std::string::npos) << json;
  EXPECT_NE(json.find("\"limits_began\":[{\"code\":\"rate_limited\",\"limit\":\"net.max_msgs_per_sec\","
                      "\"rate_per_second\":300.000}]"),
            std::string::npos)
    << json;
}

TEST(Ramp, AP99AboveItsBoundIsPastTheKnee) {
  ramp_result r;
  r.spec = *parse_ramp("100:100:300:1");
  r.bounds.max_p99_ms = 10;
  EXPECT_TRUE(r.add(100, step_of(100, 0, milliseconds(2))));
  EXPECT_FALSE(r.add(200, step_of(200, 0, milliseconds(20))));
  EXPECT_EQ(r.knee(), 100.0);
  EXPECT_NE(r.steps[1].why.find("p99 20.00ms > 10ms"), std::string::npos) << r.steps[1].why;
}

TEST(Ramp, NoKneeWhenTheFirstStepIsPastAndNotReachedWhenNoneIs) {
  ramp_result past;
  past.spec = *parse_ramp("100:100:300:1");
  EXPECT_FALSE(past.add(100, step_of(100, 50, microseconds(100))));
  EXPECT_FALSE(past.knee());
  EXPECT_NE(past.text().find("start lower"), std::string::npos);
  EXPECT_NE(past.json().find("\"knee_per_second\":null"), std::string::npos);

  ramp_result within;
  within.spec = *parse_ramp("100:100:200:1");
  EXPECT_TRUE(within.add(100, step_of(100, 0, microseconds(100))));
  EXPECT_TRUE(within.add(200, step_of(200, 0, microseconds(100))));
  EXPECT_EQ(within.knee(), 200.0);
  EXPECT_FALSE(within.crossed());
  EXPECT_NE(within.text().find("ramp higher"), std::string::npos);
}

TEST(LatencySeries, SlotPercentilesAreWithinAnEighthAboveExact) {
  latency_series s;
  for (uint64_t us = 1; us <= 1000; ++us)  // second 0: 1 us .. 1 ms, evenly
    s.record(0, us * 1000);
  ASSERT_EQ(s.slots(), 1u);
  EXPECT_EQ(s.count(0), 1000u);
  for (double p : {50.0, 90.0, 99.0, 100.0}) {
    double exact = p * 10 * 1000;  // ns
    auto got = static_cast<double>(s.percentile(0, p));
    EXPECT_GE(got, exact) << p;
    EXPECT_LE(got, exact * 1.125 + 1000) << p;
  }
  for (size_t b = 0; b + 1 < latency_series::buckets; ++b)
    EXPECT_EQ(latency_series::bucket_of(latency_series::upper_us(b)), b + 1) << b;
}

TEST(LatencySeries, ALongRunMergesNeighboursAndStaysWithinItsSlots) {
  latency_series s;
  for (uint64_t second = 0; second < 1000; ++second)
    s.record(second, 1'000'000 * (second + 1));  // 1 ms more each second
  EXPECT_EQ(s.slot_seconds(), 4u);  // 1000 s in at most 256 slots
  EXPECT_EQ(s.slots(), 250u);
  EXPECT_EQ(s.count(0), 4u);
  latency_series other;
  other.record(3, 5'000'000);
  other.merge(s);  // widened to 4 s slots first
  EXPECT_EQ(other.slot_seconds(), 4u);
  EXPECT_EQ(other.count(0), 5u);
}

TEST(HtmlReport, IsWellFormedAndItsPlotsCarryTheRunsNumbers) {
  // Three seconds: 10, 20, 30 sends; a fifth of them refused by (rate_limited, a limit);
  // a name with characters XML must escape.
  recorder r{nanoseconds(0), milliseconds(50)};
  for (int second = 0; second < 3; ++second)
    for (int i = 0; i < 10 * (second + 1); ++i) {
      auto t = seconds(second) + milliseconds(i);
      if (i % 5 == 0)
        r.rejected(t, t, t, "rate_limited", "net.max_msgs_per_sec");
      else
        r.accepted(t, t, t + microseconds(100 * (second + 1)));
    }
  run_result res{{}, std::move(r)};
  res.settings.target_kind = "actor";
  res.settings.target = "a<b>&\"c\"";
  res.settings.server = "127.0.0.1:7400";
  res.settings.measured_seconds = 3;
  res.settings.max_late_percent = 1;
  ramp_result ramp;
  ramp.spec = *parse_ramp("100:100:300:1");
  ramp.add(100, step_of(100, 0, microseconds(500)));
  ramp.add(200, step_of(200, 0, microseconds(500)));
  ramp.add(300, step_of(300, 100, microseconds(500)));
  target_side side;
  side.stats_status = "read";
  side.accounting.made = true;
  report_parts parts;
  parts.result = &res;
  parts.ramp = &ramp;
  parts.side = &side;
  parts.threshold_lines = {"PASS errors==0 (observed 0)", "FAIL goodput>=9000/s (observed 16.0/s)"};
  auto html = html_report(parts);

  auto doc = test::parse_xml(html);
  ASSERT_TRUE(doc) << "not well-formed:\n" << html;
  auto get = [&](const std::string& path) { return test::xpath_string(doc, path); };
  EXPECT_EQ(get("/html/body/@data-offered"), "60");
  EXPECT_EQ(get("/html/body/@data-accepted"), "48");
  EXPECT_EQ(get("/html/body/@data-rejected"), "12");
  EXPECT_EQ(get("/html/body/@data-valid"), "true");
  EXPECT_EQ(get("/html/body/@data-accounting"), "held");
  EXPECT_EQ(get("/html/head/title"), "levee load: actor a<b>&\"c\" at 127.0.0.1:7400");
  EXPECT_EQ(get("//svg:svg[@data-plot='throughput']/svg:polyline[@data-series='offered']/@data-values"),
            "10.000,20.000,30.000");
  EXPECT_EQ(get("//svg:svg[@data-plot='throughput']/svg:polyline[@data-series='rejected']/@data-values"),
            "2.000,4.000,6.000");
  // Latency over time: 100, 200, 300 us in the three seconds (the slot's p50, within +12.5%).
  EXPECT_EQ(get("//svg:svg[@data-plot='latency-over-time']/@data-slot-seconds"), "1");
  EXPECT_EQ(get("//svg:svg[@data-plot='latency-over-time']/svg:polyline[@data-series='p50']/@data-values"),
            "104.000,208.000,320.000");
  EXPECT_EQ(get("//svg:svg[@data-plot='percentiles']/svg:circle[@data-percentile='100']/@data-us"),
            "300.000");
  EXPECT_EQ(get("//svg:svg[@data-plot='refusals']/svg:rect[@data-code='rate_limited']/@data-limit"),
            "net.max_msgs_per_sec");
  EXPECT_EQ(get("//svg:svg[@data-plot='refusals']/svg:rect[@data-code='rate_limited']/@data-count"), "12");
  EXPECT_EQ(get("//svg:svg[@data-plot='ramp']/@data-knee"), "200.000");
  EXPECT_EQ(get("//svg:svg[@data-plot='ramp']/svg:circle[@data-rate='300.000']/@data-within"), "false");
  EXPECT_EQ(get("count(//li[@data-held='false'])"), "1");
}

TEST(Scenario, KeysBecomeTheOptionsTheyStandFor) {
  auto s = parse_scenario("# a comment\n[load]\ntarget = actor stats  ; the server's stats\n"
                          "payload_bytes = 64\nthreshold = latency.p99<2ms\n"
                          "threshold = errors==0\njson = true\nquiet = false\n",
                          "x.ini");
  ASSERT_TRUE(s) << s.error().message();
  ASSERT_EQ(s->entries.size(), 6u);
  EXPECT_EQ(s->entries[0].line, 3);
  EXPECT_EQ(arguments_of(s->entries[0]), (std::vector<std::string>{"--target", "actor", "stats"}));
  EXPECT_EQ(arguments_of(s->entries[1]), (std::vector<std::string>{"--payload-bytes", "64"}));
  EXPECT_EQ(arguments_of(s->entries[3]), (std::vector<std::string>{"--threshold", "errors==0"}));
  EXPECT_EQ(arguments_of(s->entries[4]), (std::vector<std::string>{"--json"}));
  EXPECT_TRUE(arguments_of(s->entries[5]).empty());
  EXPECT_EQ(entry_error(*s, s->entries[1], "too big"),
            "x.ini:4: key 'payload_bytes': too big; write e.g. payload_bytes = 64");
}

TEST(Scenario, AQueryTargetKeepsItsWordsAndAQueryFileIsFoundBesideTheScenario) {
  for (auto& [line, want] : std::vector<std::pair<std::string, std::vector<std::string>>>{
         {"target = query   count by level", {"--target", "query", "count by level"}},
         {"target = consume load", {"--target", "consume", "load"}},
         {"target = query", {"--target", "query"}}}) {
    auto s = parse_scenario("[load]\n" + line + "\n", "x.ini");
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(arguments_of(s->entries[0]), want) << line;
  }

  auto dir = std::string{::testing::TempDir()} + "scenario-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  auto path = dir + "/q.ini";
  {
    std::ofstream out{path};
    out << "[load]\ntarget = query\nquery_file = mix.txt\n";
  }
  auto read = read_scenario(path);
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(arguments_of(read->entries[0]), (std::vector<std::string>{"--target", "query"}));
  EXPECT_EQ(arguments_of(read->entries[1]),
            (std::vector<std::string>{"--query-file", dir + "/mix.txt"}));
}

TEST(Scenario, ErrorsNameTheLineTheKeyAndWhatToWrite) {
  auto error_of = [](const std::string& text) {
    auto s = parse_scenario(text, "s.ini");
    EXPECT_FALSE(s) << text;
    return s ? std::string{} : s.error().message();
  };
  EXPECT_EQ(error_of("[load]\nrate\n"), "s.ini:2: 'rate' is no key = value; write e.g. rate = 1000");
  EXPECT_NE(error_of("[load]\nrat = 5\n").find("s.ini:2: unknown key 'rat' (the keys: target,"),
            std::string::npos);
  EXPECT_NE(error_of("[load]\nmax-lag-ms = 5\n").find("keys are written with _: max_lag_ms"),
            std::string::npos);
  EXPECT_EQ(error_of("[load]\nrate = 1\n\nrate = 2\n"),
            "s.ini:4: key 'rate' is given again (first on line 2); give it once");
  EXPECT_EQ(error_of("[load]\njson = yes\n"),
            "s.ini:2: key 'json': 'yes' is not true or false; write e.g. json = true");
  EXPECT_EQ(error_of("[load]\nrate =\n"), "s.ini:2: key 'rate' has no value; write e.g. rate = 1000");
  EXPECT_NE(error_of("[node]\nroles = server\n").find("s.ini:1: section [node]: a scenario has one section"),
            std::string::npos);
  EXPECT_NE(error_of("rate = 5\n").find("s.ini:1: 'rate = 5' comes before [load]"), std::string::npos);
  EXPECT_NE(error_of("# nothing\n").find("s.ini: no [load] section"), std::string::npos);
  auto missing = read_scenario("/nonexistent/x.ini");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("no such file"), std::string::npos);
}

TEST(Compare, ShowsEveryFigureOfBothRunsAndTheSettingsThatDiffer) {
  auto result_json = [](double rate, uint64_t accepted, uint64_t rejected) {
    recorder r{nanoseconds(0), milliseconds(50)};
    for (uint64_t i = 0; i < accepted; ++i)
      r.accepted(milliseconds(i), milliseconds(i), milliseconds(i) + microseconds(100));
    for (uint64_t i = 0; i < rejected; ++i)
      r.rejected(milliseconds(i), milliseconds(i), milliseconds(i), "rate_limited", "net.max_msgs_per_sec");
    run_result res{{}, std::move(r)};
    res.settings.target_kind = "actor";
    res.settings.target = "stats";
    res.settings.rate_per_second = rate;
    res.settings.measured_seconds = 1;
    return res.json();
  };
  auto c = compare_results(result_json(100, 100, 0), "a.json", result_json(200, 150, 50), "b.json");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->settings_differ.size(), 1u);
  EXPECT_EQ(c->settings_differ[0].name, "rate_per_second");
  EXPECT_EQ(c->settings_differ[0].a, "100");
  EXPECT_EQ(c->settings_differ[0].b, "200");
  ASSERT_GE(c->rows.size(), 4u);
  EXPECT_EQ(c->rows[0].metric, "offered");  // the headline first
  EXPECT_EQ(c->rows[0].a, 100.0);
  EXPECT_EQ(c->rows[0].b, 200.0);
  bool by_code = false;
  for (auto& r : c->rows)
    if (r.metric == "rejected.by_code.rate_limited") {
      by_code = true;
      EXPECT_FALSE(r.a);  // a had none: "-"
      EXPECT_EQ(r.b, 50.0);
    }
  EXPECT_TRUE(by_code);
  auto text = c->text();
  EXPECT_NE(text.find("settings differ"), std::string::npos) << text;
  EXPECT_NE(text.find("+100.0%"), std::string::npos) << text;  // offered doubled
  auto json = c->json();
  EXPECT_NE(json.find("{\"metric\":\"offered\",\"a\":100.000,\"b\":200.000,\"delta\":100.000,"
                      "\"change_percent\":100.000}"),
            std::string::npos)
    << json;
  auto bad = compare_results("{\"x\":1}", "a.json", result_json(1, 1, 0), "b.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("a.json is not the JSON result of a load run"), std::string::npos);
}

} // namespace
} // namespace levee::load
