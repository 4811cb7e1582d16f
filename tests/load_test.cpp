// The load tool's core (load/): the histogram against exact sorts, the open-loop schedule,
// the recorder's accounting and the thresholds. Plain C++, no processes.

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "load/consumers.hpp"
#include "load/keys.hpp"
#include "load/latency_histogram.hpp"
#include "load/live_latency.hpp"
#include "load/query_mix.hpp"
#include "load/results.hpp"
#include "load/schedule.hpp"
#include "load/thresholds.hpp"

namespace levee::load {
namespace {

using namespace std::chrono;

/// Every reported percentile is at or above the exact order statistic of the same rank and
/// at most 1/128 above it (the stated error).
void expect_within_stated_error(const std::vector<uint64_t>& samples) {
  latency_histogram h;
  for (auto v : samples)
    h.record(v);
  auto sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_EQ(h.count(), sorted.size());
  EXPECT_EQ(h.max(), sorted.back());
  EXPECT_EQ(h.min(), sorted.front());
  for (double p : {1.0, 10.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0}) {
    uint64_t exact = sorted[latency_histogram::rank_of(p, sorted.size()) - 1];
    uint64_t got = h.percentile(p);
    EXPECT_GE(got, exact) << "p" << p;
    EXPECT_LE(static_cast<double>(got - exact), static_cast<double>(exact) / 128.0) << "p" << p;
  }
}

TEST(LatencyHistogram, PercentilesOfRandomSamplesAreWithinTheStatedError) {
  std::mt19937_64 rng{17};
  // Log-uniform from 1 ns to ~17 s: every bucket is used.
  std::uniform_real_distribution<double> exponent{0, 34};
  std::vector<uint64_t> samples;
  for (int i = 0; i < 200'000; ++i)
    samples.push_back(static_cast<uint64_t>(std::pow(2.0, exponent(rng))));
  expect_within_stated_error(samples);
  // A latency-like shape: most around 100 us, a long tail.
  std::lognormal_distribution<double> shape{std::log(100'000.0), 1.2};
  samples.clear();
  for (int i = 0; i < 200'000; ++i)
    samples.push_back(static_cast<uint64_t>(shape(rng)));
  expect_within_stated_error(samples);
}

TEST(LatencyHistogram, AdversarialSamplesAreWithinTheStatedError) {
  // Values on either side of every sub-bucket edge of every power of two in the range.
  std::vector<uint64_t> edges;
  for (int b = 0; b < 36; ++b)
    for (uint64_t v : {(uint64_t{1} << b) - 1, uint64_t{1} << b, (uint64_t{1} << b) + 1,
                       (uint64_t{255} << b) + 1, (uint64_t{256} << b) - 1})
      edges.push_back(v);
  expect_within_stated_error(edges);
  expect_within_stated_error(std::vector<uint64_t>(1000, 123'456'789));  // all equal
  // Bimodal: 99.9 % fast and a few very slow (the percentile between them is the test).
  std::vector<uint64_t> bimodal(99'900, 50'000);
  bimodal.insert(bimodal.end(), 100, 2'000'000'000);
  expect_within_stated_error(bimodal);
  expect_within_stated_error({0, 0, 1});
  expect_within_stated_error({7});
}

TEST(LatencyHistogram, ValuesAboveTheRangeAreCountedAtItsTop) {
  latency_histogram h{1'000'000};
  h.record(5'000'000);
  h.record(10);
  EXPECT_EQ(h.saturated(), 1u);
  EXPECT_EQ(h.max(), h.highest_trackable());
  EXPECT_EQ(h.count(), 2u);
}

TEST(LatencyHistogram, MergedPerThreadHistogramsEqualOneOfEverything) {
  std::mt19937_64 rng{3};
  std::uniform_int_distribution<uint64_t> any{1, 10'000'000'000};
  latency_histogram all, a, b;
  for (int i = 0; i < 50'000; ++i) {
    auto v = any(rng);
    all.record(v);
    (i % 3 == 0 ? a : b).record(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  for (double p : {50.0, 99.0, 99.99})
    EXPECT_EQ(a.percentile(p), all.percentile(p));
  latency_histogram other_range{1000};
  EXPECT_THROW(a.merge(other_range), std::invalid_argument);
}

TEST(LatencyHistogram, MemoryIsFixedHoweverManyValues) {
  latency_histogram h;
  auto before = h.memory_bytes();
  for (uint64_t i = 0; i < 1'000'000; ++i)
    h.record(i * 7919);
  EXPECT_EQ(h.memory_bytes(), before);
  EXPECT_LE(before, 40u * 1024);
}

TEST(OpenLoopSchedule, SendsAreEvenlySpacedAtEachStepsRate) {
  open_loop_schedule s{{{1000, seconds(2)}, {4000, milliseconds(500)}}};
  EXPECT_EQ(s.total(), 2000u + 2000u);
  EXPECT_EQ(s.intended(0), nanoseconds(0));
  EXPECT_EQ(s.intended(1), milliseconds(1));
  EXPECT_EQ(s.intended(1999), microseconds(1'999'000));
  EXPECT_EQ(s.intended(2000), seconds(2));  // the second step starts on time
  EXPECT_EQ(s.intended(2001), microseconds(2'000'250));
  EXPECT_EQ(s.span(), milliseconds(2500));
  auto counted = open_loop_schedule::of_count(300, 7);
  EXPECT_EQ(counted.total(), 7u);
  EXPECT_NEAR(duration<double>(counted.intended(6)).count(), 0.02, 1e-6);
}

TEST(Recorder, LatencyIsFromTheIntendedTimeAndEverySendIsAccountedFor) {
  recorder r{seconds(1), milliseconds(50)};
  r.accepted(milliseconds(500), milliseconds(500), milliseconds(501));  // warm-up: left out
  // A target that stalled 200 ms: the send went on time, the answer came 200 ms later.
  r.accepted(milliseconds(1000), milliseconds(1000), milliseconds(1200));
  // The tool itself was 100 ms late (counted late), answered 1 ms after the send.
  r.accepted(milliseconds(1001), milliseconds(1101), milliseconds(1102));
  r.rejected(milliseconds(2500), milliseconds(2500), milliseconds(2501), "rate_limited",
             "broker.publish_msgs_per_sec");
  r.failed(milliseconds(2600), milliseconds(2600), "unavailable: the connection was lost");
  r.timed_out(milliseconds(2700), milliseconds(2700));
  r.held_back(milliseconds(2800));
  EXPECT_EQ(r.warmup_sends(), 1u);
  EXPECT_EQ(r.offered(), 6u);
  EXPECT_EQ(r.offered(), r.held_back_count() + r.accepted_count() + r.rejected_count()
                           + r.error_count() + r.timeout_count());
  EXPECT_EQ(r.late_count(), 1u);
  EXPECT_EQ(r.latency().max(), 200'000'000u);               // from the intended time
  EXPECT_EQ(r.service_time().max(), 200'000'000u);
  EXPECT_EQ(r.latency().min(), 101'000'000u);               // 100 ms late + 1 ms
  EXPECT_EQ(r.service_time().min(), 1'000'000u);
  EXPECT_EQ(r.rejected_by_code().at("rate_limited"), 1u);
  EXPECT_EQ(r.rejected_by_limit().at("broker.publish_msgs_per_sec"), 1u);
  ASSERT_EQ(r.seconds().size(), 2u);
  EXPECT_EQ(r.seconds()[0].accepted, 2u);
  EXPECT_EQ(r.seconds()[1].offered, 4u);
}

TEST(Recorder, ARefusalThatNamesNoLimitIsListedUnderANameOfItsOwn) {
  recorder r{seconds(0), milliseconds(0)};  // no warm-up: every send is measured
  r.rejected(milliseconds(1), milliseconds(1), milliseconds(2), "bad_request", "");
  r.rejected(milliseconds(2), milliseconds(2), milliseconds(3), "message_too_large",
             "limits.upper.max_message_bytes");
  auto by_limit = r.rejected_by_limit();
  EXPECT_EQ(by_limit.at(recorder::no_limit_name), 1u);
  EXPECT_EQ(by_limit.at("limits.upper.max_message_bytes"), 1u);
  EXPECT_EQ(by_limit.count(""), 0u);
}

TEST(Recorder, RejectionsByCodeAreCountedInTheirSecondAndMerged) {
  recorder a{seconds(0), milliseconds(50)}, b{seconds(0), milliseconds(50)};
  a.rejected(milliseconds(100), milliseconds(100), milliseconds(101), "rate_limited", "x");
  a.rejected(milliseconds(200), milliseconds(200), milliseconds(201), "rate_limited", "y");
  a.accepted(milliseconds(1500), milliseconds(1500), milliseconds(1501));
  b.rejected(milliseconds(2100), milliseconds(2100), milliseconds(2101), "mailbox_full", "z");
  b.rejected(milliseconds(300), milliseconds(300), milliseconds(301), "rate_limited", "x");
  a.merge(b);
  ASSERT_EQ(a.seconds().size(), 3u);
  EXPECT_EQ(a.rejected_by_code_in(0), (std::map<std::string, uint64_t>{{"rate_limited", 3}}));
  EXPECT_TRUE(a.rejected_by_code_in(1).empty());
  EXPECT_EQ(a.rejected_by_code_in(2), (std::map<std::string, uint64_t>{{"mailbox_full", 1}}));
  EXPECT_TRUE(a.rejected_by_code_in(99).empty());
  // Each second's codes add up to its rejected count.
  for (size_t i = 0; i < a.seconds().size(); ++i) {
    uint64_t sum = 0;
    for (auto& [code, n] : a.rejected_by_code_in(i))
      sum += n;
    EXPECT_EQ(sum, a.seconds()[i].rejected) << "second " << i;
  }
  run_result r{{}, a};
  r.settings.measured_seconds = 3;
  auto json = r.json();
  EXPECT_NE(json.find("{\"offered\":3,\"accepted\":0,\"rejected\":3,\"rejected_by_code\":{\"rate_limited\":3},"),
            std::string::npos) << json;
  EXPECT_NE(json.find("\"rejected\":0,\"rejected_by_code\":{},"), std::string::npos) << json;
}

TEST(Consumers, AStampCarriesTheRunAndIntendedTimeAndOtherMessagesAreForeign) {
  std::string body(100, 'x');
  stamp_body(body, 0xabcdef0123456789u, milliseconds(1500));
  EXPECT_EQ(body.size(), 100u);  // the stamp replaces the start, the size stays
  auto s = read_stamp(body);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->run_id, 0xabcdef0123456789u);
  EXPECT_EQ(s->intended, milliseconds(1500));
  EXPECT_FALSE(read_stamp("hello"));
  EXPECT_FALSE(read_stamp(std::string(100, 'x')));

  consumer_figures a, b;
  a.message(body, 0xabcdef0123456789u, seconds(1), milliseconds(1520));  // measured, 20 ms
  a.message(body, 42, seconds(1), milliseconds(1520));                   // another run's
  std::string early(40, 'x');
  stamp_body(early, 0xabcdef0123456789u, milliseconds(500));
  b.message(early, 0xabcdef0123456789u, seconds(1), milliseconds(600));  // the warm-up's
  b.message("plain text", 0xabcdef0123456789u, seconds(1), milliseconds(600));
  a.merge(b);
  EXPECT_EQ(a.read, 1u);
  EXPECT_EQ(a.read_warmup, 1u);
  EXPECT_EQ(a.foreign, 2u);
  EXPECT_EQ(a.end_to_end.count(), 1u);
  EXPECT_EQ(a.end_to_end.max(), 20'000'000u);

  consumers_report r;
  r.stream = "t";
  r.partitions = 1;
  r.accepted = 10;
  r.each = {a, b};
  EXPECT_EQ(r.read_min(), 0u);
  EXPECT_EQ(r.unread_max(), 10u);
  EXPECT_NE(r.json().find("\"read\":[1,0],\"read_min\":0,\"unread_max\":10"), std::string::npos) << r.json();
}

run_result result_of(recorder r, double seconds) {
  run_result out{{}, std::move(r)};
  out.settings.measured_seconds = seconds;
  out.settings.max_late_percent = 1;
  return out;
}

TEST(Thresholds, HoldAndFailOnTheRunsFigures) {
  recorder r{nanoseconds(0), milliseconds(50)};
  for (int i = 0; i < 100; ++i)
    r.accepted(milliseconds(i), milliseconds(i), milliseconds(i) + microseconds(i < 99 ? 500 : 5000));
  for (int i = 0; i < 10; ++i)
    r.rejected(milliseconds(i), milliseconds(i), milliseconds(i), "rate_limited", "net.max_msgs_per_sec");
  auto res = result_of(std::move(r), 2.0);
  auto check = [&](const char* text) {
    auto t = parse_threshold(text);
    EXPECT_TRUE(t) << text << ": " << t.error().message();
    return t ? evaluate(*t, res).held : false;
  };
  EXPECT_TRUE(check("latency.p99<2ms"));
  EXPECT_FALSE(check("latency.max<2ms"));
  EXPECT_TRUE(check("latency.p50 <= 600us"));
  EXPECT_TRUE(check("goodput>=50/s"));
  EXPECT_FALSE(check("goodput>=9000/s"));
  EXPECT_TRUE(check("rejected{code=rate_limited}.rate>0"));
  EXPECT_TRUE(check("rejected{code=rate_limited}.count==10"));
  EXPECT_TRUE(check("rejected{code=mailbox_full}.count==0"));
  EXPECT_TRUE(check("rejected{limit=net.max_msgs_per_sec}.rate==5/s"));
  EXPECT_FALSE(check("rejected.ratio<5%"));
  EXPECT_TRUE(check("errors==0"));
  auto line = evaluate(*parse_threshold("latency.max<2ms"), res).line;
  EXPECT_EQ(line.rfind("FAIL latency.max<2ms (observed ", 0), 0u) << line;
}

TEST(Thresholds, ParseErrorsSayWhatIsWrong) {
  auto error_of = [](const char* text) {
    auto t = parse_threshold(text);
    EXPECT_FALSE(t) << text;
    return t ? std::string{} : t.error().message();
  };
  EXPECT_NE(error_of("latency.p99").find("no comparison"), std::string::npos);
  EXPECT_NE(error_of("latency.p99<2").find("needs a unit"), std::string::npos);
  EXPECT_NE(error_of("latency<2ms").find("needs a statistic"), std::string::npos);
  EXPECT_NE(error_of("latency.p100<2ms").find("not a statistic"), std::string::npos);
  EXPECT_NE(error_of("speed>3").find("unknown metric 'speed'"), std::string::npos);
  EXPECT_NE(error_of("rejected{code=too_slow}.count>0").find("not a code Levee has"), std::string::npos);
  EXPECT_NE(error_of("goodput>=fast").find("not a number"), std::string::npos);
  EXPECT_NE(error_of("goodput=5").find("use == or !="), std::string::npos);
  EXPECT_NE(error_of("goodput>5/min").find("per second"), std::string::npos);
  EXPECT_NE(error_of("latency{code=x}.p99<1ms").find("only rejected takes a selector"), std::string::npos);
  // Each says what a valid one looks like.
  EXPECT_NE(error_of("x").find("latency.p99<2ms"), std::string::npos);
}

TEST(RunResult, AnOpenLoopRunTooFarBehindItsScheduleIsInvalid) {
  recorder r{nanoseconds(0), milliseconds(10)};
  for (int i = 0; i < 100; ++i)  // 2 of 100 sends 20 ms late: above the 1 % bound
    r.accepted(milliseconds(i), milliseconds(i) + milliseconds(i < 2 ? 20 : 0), milliseconds(i + 30));
  auto res = result_of(std::move(r), 1.0);
  EXPECT_FALSE(res.valid());
  EXPECT_NE(res.text().find("INVALID RUN"), std::string::npos);
  EXPECT_NE(res.json().find("\"valid\":false"), std::string::npos);
  res.settings.max_late_percent = 2;
  EXPECT_TRUE(res.valid());
  res.settings.closed_loop = true;
  EXPECT_NE(res.text().find("coordinated omission"), std::string::npos);
}


// -- keys for keyed publishes ---------------------------------------------------------

TEST(KeyChooser, UniformDrawsEveryKeyAboutEquallyOften) {
  load::key_chooser keys{16, load::key_distribution::uniform, 1};
  std::vector<int> seen(16, 0);
  for (int i = 0; i < 16000; ++i) {
    auto k = keys.next_index();
    ASSERT_LT(k, 16u);
    ++seen[k];
  }
  // 1,000 expected each, standard deviation ~31: 700..1300 is ~10 sigma.
  for (int k = 0; k < 16; ++k) {
    EXPECT_GT(seen[k], 700) << "key " << k;
    EXPECT_LT(seen[k], 1300) << "key " << k;
  }
}

TEST(KeyChooser, ZipfDrawsKeyIWithWeightOneOverIPlusOne) {
  load::key_chooser keys{100, load::key_distribution::zipf, 7};
  std::vector<int> seen(100, 0);
  constexpr int draws = 200'000;
  for (int i = 0; i < draws; ++i) {
    auto k = keys.next_index();
    ASSERT_LT(k, 100u);
    ++seen[k];
  }
  double harmonic = 0;
  for (int i = 1; i <= 100; ++i)
    harmonic += 1.0 / i;
  // P(key 0) = 1/H(100) = 0.193; P(key 9) = 0.0193; P(key 99) = 0.00193.
  EXPECT_NEAR(seen[0] / double(draws), 1.0 / harmonic, 0.01);
  EXPECT_NEAR(seen[1] / double(draws), 0.5 / harmonic, 0.01);
  EXPECT_NEAR(seen[9] / double(draws), 0.1 / harmonic, 0.005);
  EXPECT_GT(seen[99], 0) << "the tail is drawn too";
  EXPECT_LT(seen[99], seen[9]);
}

TEST(KeyChooser, TheSameSeedDrawsTheSameKeysAndKeysAreNamed) {
  load::key_chooser a{1000, load::key_distribution::zipf, 42}, b{1000, load::key_distribution::zipf, 42},
    c{1000, load::key_distribution::zipf, 43};
  std::vector<uint64_t> xa, xb, xc;
  for (int i = 0; i < 50; ++i) {
    xa.push_back(a.next_index());
    xb.push_back(b.next_index());
    xc.push_back(c.next_index());
  }
  EXPECT_EQ(xa, xb);
  EXPECT_NE(xa, xc);
  load::key_chooser one{1, load::key_distribution::uniform, 3};
  EXPECT_EQ(one.next_key(), "k0");
  EXPECT_EQ(load::key_chooser(0, load::key_distribution::uniform, 1).size(), 1u) << "at least one key";
  EXPECT_EQ(load::key_chooser(load::key_chooser::max_keys + 5, load::key_distribution::uniform, 1).size(),
            load::key_chooser::max_keys);
  EXPECT_EQ(load::parse_key_distribution("zipf"), load::key_distribution::zipf);
  EXPECT_EQ(load::parse_key_distribution("uniform"), load::key_distribution::uniform);
  EXPECT_FALSE(load::parse_key_distribution("Zipf"));
  EXPECT_FALSE(load::parse_key_distribution(""));
}

TEST(LiveLatency, ASecondsPercentileIsWithinAnEighthOfExactAndEachSampleCountsOnce) {
  live_latency live;
  std::mt19937_64 rng{17};
  std::lognormal_distribution<double> d{std::log(2e6), 1.0};  // around 2 ms
  std::vector<uint64_t> first;
  for (int i = 0; i < 5000; ++i)
    first.push_back(static_cast<uint64_t>(d(rng)));
  for (auto v : first)
    live.record(v);
  live_latency::counts c{};
  live.take(c);
  ASSERT_EQ(live_latency::total(c), first.size());
  std::sort(first.begin(), first.end());
  for (double p : {50.0, 90.0, 99.0, 100.0}) {
    uint64_t exact = first[latency_histogram::rank_of(p, first.size()) - 1];
    auto got = live_latency::percentile(c, p);
    EXPECT_GE(got, exact) << "p" << p;
    EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * 1.125 + 1000) << "p" << p;
  }
  // Taken: the next second starts empty, and holds only what came after.
  live_latency::counts next{};
  live.take(next);
  EXPECT_EQ(live_latency::total(next), 0u);
  EXPECT_EQ(live_latency::percentile(next, 99), 0u);
  live.record(300'000'000);  // 300 ms
  live.take(next);
  EXPECT_EQ(live_latency::total(next), 1u);
  EXPECT_GE(live_latency::percentile(next, 99), 300'000'000u);
  EXPECT_LE(live_latency::percentile(next, 99), 300'000'000u * 9 / 8);
}

TEST(LiveLatency, SamplesRecordedWhileAnotherThreadTakesAreEachCountedOnce) {
  live_latency live;
  constexpr uint64_t per_thread = 200'000;
  std::atomic<bool> done{false};
  live_latency::counts taken{};
  std::thread reader{[&] {
    while (!done.load())
      live.take(taken);
  }};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t)
    writers.emplace_back([&, t] {
      for (uint64_t i = 0; i < per_thread; ++i)
        live.record((i % 1000 + 1) * 1000 * static_cast<uint64_t>(t + 1));
    });
  for (auto& w : writers)
    w.join();
  done = true;
  reader.join();
  live.take(taken);
  EXPECT_EQ(live_latency::total(taken), 2 * per_thread);
}

/// A stand-in for query::parse (load/ may not include query/): "bad" anywhere is wrong.
std::optional<std::string> check_query(const std::string& text) {
  if (text.find("bad") != std::string::npos)
    return "expected a field name";
  return std::nullopt;
}

TEST(QueryMix, LinesAreWeightAndTextWithBlankLinesAndCommentsSkipped) {
  auto mix = parse_query_mix("# the mix\n\n3\tcount by level\n  1   count\r\n\t# spare\n",
                             "q.txt", check_query);
  ASSERT_TRUE(mix.ok()) << mix.error().message();
  ASSERT_EQ(mix->size(), 2u);
  EXPECT_EQ((*mix)[0].weight, 3u);
  EXPECT_EQ((*mix)[0].text, "count by level");
  EXPECT_EQ((*mix)[0].line, 3u);
  EXPECT_EQ((*mix)[1].weight, 1u);
  EXPECT_EQ((*mix)[1].text, "count");
  EXPECT_EQ((*mix)[1].line, 4u);
}

TEST(QueryMix, ABadLineIsRefusedWithItsNumberAndWhatToWrite) {
  auto error_of = [](const std::string& content) {
    auto mix = parse_query_mix(content, "q.txt", check_query);
    EXPECT_FALSE(mix.ok()) << content;
    return mix.ok() ? std::string{} : mix.error().message();
  };
  auto e = error_of("1 count\ncount by level\n");
  EXPECT_NE(e.find("q.txt:2: "), std::string::npos) << e;
  EXPECT_NE(e.find("starts with its weight"), std::string::npos) << e;
  EXPECT_NE(e.find("e.g. 3 count by level"), std::string::npos) << e;
  e = error_of("\n\n0 count\n");
  EXPECT_NE(e.find("q.txt:3: weight 0 is out of range"), std::string::npos) << e;
  e = error_of("2000000 count\n");
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  e = error_of("5\n");
  EXPECT_NE(e.find("q.txt:1: "), std::string::npos) << e;
  e = error_of("5x count\n");
  EXPECT_NE(e.find("not followed by a tab or a space"), std::string::npos) << e;
  e = error_of("1 count\n2 count bad\n");
  EXPECT_NE(e.find("q.txt:2: query 'count bad': expected a field name"), std::string::npos) << e;
  e = error_of("# only a comment\n\n");
  EXPECT_NE(e.find("no queries"), std::string::npos) << e;
}

TEST(QueryMix, PicksFollowTheWeightsAndRepeatForASeed) {
  auto mix = parse_query_mix("1 a\n3 b\n0000006 c\n", "q.txt", check_query);
  ASSERT_TRUE(mix.ok()) << mix.error().message();
  query_chooser chooser{*mix, 7};
  std::vector<uint64_t> seen(3);
  constexpr int n = 100'000;
  std::vector<size_t> first;
  for (int i = 0; i < n; ++i) {
    auto k = chooser.next_index();
    ASSERT_LT(k, 3u);
    seen[k]++;
    if (i < 50)
      first.push_back(k);
  }
  // 1:3:6 of 100,000 within 1 %-point each (about 7 standard deviations).
  EXPECT_NEAR(static_cast<double>(seen[0]) / n, 0.1, 0.01);
  EXPECT_NEAR(static_cast<double>(seen[1]) / n, 0.3, 0.01);
  EXPECT_NEAR(static_cast<double>(seen[2]) / n, 0.6, 0.01);
  query_chooser again{*mix, 7};
  for (auto k : first)
    EXPECT_EQ(again.next_index(), k);
  query_chooser other{*mix, 8};
  std::vector<size_t> other_first;
  for (int i = 0; i < 50; ++i)
    other_first.push_back(other.next_index());
  EXPECT_NE(other_first, first);
}

} // namespace
} // namespace levee::load
