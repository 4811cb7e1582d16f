// A satellite's parts that are plain C++: the query scan over a real segment log, and the
// reading of [satellite], [events] and [source.<name>] config.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "events/codec.hpp"
#include "net/satellite.pb.h"
#include "persistence/segment_log.hpp"
#include "query/query.hpp"
#include "satellite/heartbeat_timing.hpp"
#include "satellite/satellite.hpp"
#include "satellite/scan.hpp"

namespace levee::satellite {
namespace {

namespace fs = std::filesystem;

constexpr int64_t t0 = 1'800'000'000'000;
const char* const levels[] = {"INFO", "INFO", "WARN", "INFO", "ERROR"};

events::event make_event(int n) {
  events::event e;
  e.timestamp_ms = t0 + n * 10;
  e.fields.push_back({"level", std::string{levels[n % 5]}});
  e.fields.push_back({"user", "u" + std::to_string(n % 7)});
  e.fields.push_back({"n", int64_t{n}});
  e.fields.push_back({"msg", std::string(40, static_cast<char>('a' + n % 26))});
  return e;
}

struct ScanTest : ::testing::Test {
  fs::path dir;
  std::unique_ptr<persistence::segment_log> log;
  std::vector<events::event> all;

  void SetUp() override {
    dir = fs::temp_directory_path() / ("levee-scan-test-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    persistence::log_options o;
    o.dir = dir.string();
    o.fsync = persistence::fsync_policy::none;
    o.max_segment_bytes = 64 * 1024;  // several segments
    o.limits.compress = false;        // as a satellite store
    log = std::move(*persistence::segment_log::open(o));
    for (int b = 0; b < 20; ++b) {
      std::vector<persistence::record> batch;
      for (int i = 0; i < 50; ++i) {
        all.push_back(make_event(b * 50 + i));
        batch.push_back(events::to_record(all.back()));
      }
      ASSERT_TRUE(log->append(batch).ok());
    }
  }
  void TearDown() override {
    log.reset();
    fs::remove_all(dir);
  }

  struct outcome {
    std::vector<events::event> rows;
    std::vector<wire::ResultBatch> batches;
    wire::QueryStats stats;
    status error;
    int steps = 0;
  };

  outcome run(const std::string& text, scan_limits limits = {100, 4096},
              uint64_t step_bytes = 16 * 1024) {
    auto q = query::parse(text);
    EXPECT_TRUE(q.ok()) << q.error().to_string();
    auto range = q->resolve_time(t0 + 10'000);
    uint64_t start = log->start_offset();
    if (range.since_ms != std::numeric_limits<int64_t>::min())
      start = log->offset_for_time(range.since_ms);
    scan_task task{*q, range, start, log->next_offset(), limits, "s1"};
    outcome out;
    while (!task.done() && out.steps < 10'000) {
      ++out.steps;
      out.error = task.step(*log, step_bytes, [&](std::string&& part) {
        wire::ResultBatch b;
        EXPECT_TRUE(b.ParseFromString(part));
        EXPECT_EQ(b.satellite_id(), "s1");
        for (auto& row : b.events()) {
          events::event e;
          EXPECT_TRUE(events::decode(row, e).ok());
          out.rows.push_back(e);
        }
        out.batches.push_back(std::move(b));
      });
      if (!out.error)
        break;
    }
    out.stats = task.stats();
    return out;
  }
};

TEST_F(ScanTest, FilterReturnsExactlyTheMatchingEventsInBoundedBatches) {
  auto r = run("where level == \"ERROR\" and n >= 100", {30, 2048}, 8 * 1024);
  ASSERT_TRUE(r.error.ok()) << r.error.to_string();
  std::vector<events::event> expected;
  for (auto& e : all)
    if (*e.find("level") == events::value{std::string{"ERROR"}}
        && std::get<int64_t>(*e.find("n")) >= 100)
      expected.push_back(e);
  EXPECT_EQ(r.rows, expected);
  EXPECT_GT(r.steps, 5) << "steps";  // the scan really went in steps
  for (auto& b : r.batches) {
    EXPECT_LE(b.events_size(), 30);
    uint64_t bytes = 0;
    for (auto& row : b.events())
      bytes += row.size();
    EXPECT_LT(bytes, 2048u + 200u);  // the bound, plus at most the row that crossed it
  }
  EXPECT_EQ(r.stats.events_scanned(), all.size());
  EXPECT_EQ(r.stats.rows_returned(), expected.size());
  EXPECT_FALSE(r.stats.truncated());
}

TEST_F(ScanTest, ProjectionLimitAndTimeRange) {
  auto r = run("where user == \"u3\" limit 7 fields ts,n");
  ASSERT_TRUE(r.error.ok());
  ASSERT_EQ(r.rows.size(), 7u);
  EXPECT_TRUE(r.stats.truncated());
  for (size_t i = 0; i < r.rows.size(); ++i) {
    auto n = static_cast<int>(3 + 7 * i);
    EXPECT_EQ(r.rows[i].timestamp_ms, t0 + n * 10);
    ASSERT_EQ(r.rows[i].fields.size(), 1u);
    EXPECT_EQ(r.rows[i].fields[0].name, "n");
  }
  // since/until: [t0 + 5000, t0 + 6000) holds n = 500 .. 599.
  auto ranged = run("since \"2027-01-15T08:00:05Z\" until \"2027-01-15T08:00:06Z\"");
  ASSERT_TRUE(ranged.error.ok());
  // t0 = 2027-01-15T08:00:00Z
  ASSERT_EQ(ranged.rows.size(), 100u);
  EXPECT_EQ(ranged.rows.front(), all[500]);
  EXPECT_EQ(ranged.rows.back(), all[599]);
  EXPECT_LT(ranged.stats.events_scanned(), all.size());  // started near since, not at 0
}

TEST_F(ScanTest, CountByGroupsEveryEventOnce) {
  auto r = run("count by level");
  ASSERT_TRUE(r.error.ok());
  ASSERT_EQ(r.batches.size(), 1u);
  std::map<std::string, uint64_t> got;
  for (auto& g : r.batches[0].counts()) {
    events::event key;
    ASSERT_TRUE(events::decode(g.key(), key).ok());
    got[std::get<std::string>(*key.find("level"))] = g.count();
  }
  EXPECT_EQ(got, (std::map<std::string, uint64_t>{{"INFO", 600}, {"WARN", 200}, {"ERROR", 200}}));
  auto total = run("where level != \"INFO\" count");
  ASSERT_EQ(total.batches.size(), 1u);
  ASSERT_EQ(total.batches[0].counts_size(), 1);
  EXPECT_EQ(total.batches[0].counts(0).count(), 400u);
}

TEST_F(ScanTest, TooManyGroupsAndDamagedEventsAreTypedErrors) {
  // A count with more groups than its bound (the scan's counter has the same bound,
  // query.max_groups; 1000 distinct n over a bound of 10).
  auto q = query::parse("count by n");
  query::counter c{q->count_by(), 10};
  status last;
  for (auto& e : all)
    if (last = c.add(e); !last)
      break;
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.code(), code::message_too_large);
  // A stored value that is not an event: the scan says which offset.
  persistence::record junk{{}, "\xff\xff\xff", t0 + 20'000, {}};
  ASSERT_TRUE(log->append({junk}).ok());
  auto r = run("where level == \"INFO\"");
  ASSERT_FALSE(r.error.ok());
  EXPECT_EQ(r.error.code(), code::storage_error);
  EXPECT_NE(r.error.message().find("offset 1000"), std::string::npos) << r.error.message();
}

flat_config config(std::initializer_list<std::pair<const std::string, std::string>> kv) {
  return flat_config(kv);
}

TEST(SatelliteConfig, ReadsEverySectionAndNamesTheKeyOfAnyError) {
  auto good = satellite_from_config(config({
    {"satellite.id", "a"},
    {"satellite.server", "127.0.0.1:7400"},
    {"satellite.labels", "env=prod, zone = eu"},
    {"satellite.data_dir", "/tmp/x"},
    {"satellite.batch_max_rows", "500"},
    {"events.max_line_bytes", "1KiB"},
    {"source.app.type", "file_tail"},
    {"source.app.path", "/var/log/app.jsonl"},
    {"source.app.start_at_end", "false"},
    {"source.gen.type", "synthetic"},
    {"source.gen.rate", "1000"},
    {"source.gen.levels", "INFO:9,ERROR:1"},
  }));
  ASSERT_TRUE(good.ok()) << good.error().to_string();
  EXPECT_EQ(good->satellite.labels, (std::map<std::string, std::string>{{"env", "prod"}, {"zone", "eu"}}));
  EXPECT_EQ(good->satellite.batch_max_rows, 500u);
  EXPECT_EQ(good->json.max_line_bytes, 1024u);
  ASSERT_EQ(good->sources.size(), 2u);
  EXPECT_EQ(good->sources[0].name, "app");
  EXPECT_FALSE(good->sources[0].file_tail.start_at_end);
  EXPECT_EQ(good->sources[1].synthetic.rate_per_sec, 1000u);
  // The store's scrub is on by default, at its documented rate and pause.
  EXPECT_EQ(good->satellite.scrub_bytes_per_sec, 8 * defaults::MiB);
  EXPECT_EQ(good->satellite.scrub_interval_ms, 3'600'000u);
  ASSERT_EQ(good->sources[1].synthetic.levels.size(), 2u);
  // Heartbeats: at the server's interval unless asked, 10% jitter.
  EXPECT_EQ(good->satellite.heartbeat_interval_ms, 0u);
  EXPECT_EQ(good->satellite.heartbeat_jitter_pct, 10u);
  auto fleet = satellite_from_config(config({{"satellite.data_dir", "/tmp/x"},
                                             {"satellite.heartbeat_interval_ms", "10000"},
                                             {"satellite.heartbeat_jitter_pct", "25"}}));
  ASSERT_TRUE(fleet.ok()) << fleet.error().to_string();
  EXPECT_EQ(fleet->satellite.heartbeat_interval_ms, 10'000u);
  EXPECT_EQ(fleet->satellite.heartbeat_jitter_pct, 25u);

  struct bad_case {
    flat_config cfg;
    std::string names;
  };
  auto base = [](std::initializer_list<std::pair<const std::string, std::string>> extra) {
    flat_config c{{"satellite.data_dir", "/tmp/x"}};
    for (auto& [k, v] : extra)
      c[k] = v;
    return c;
  };
  std::vector<bad_case> cases = {
    {flat_config{{"satellite.id", "a"}}, "satellite.data_dir"},
    {base({{"satellite.colour", "red"}}), "unknown key 'satellite.colour'"},
    {base({{"satellite.batch_max_rows", "0"}}), "satellite.batch_max_rows = 0"},
    {base({{"satellite.server", "nowhere"}}), "satellite.server = nowhere"},
    {base({{"satellite.server", "h:99999"}}), "satellite.server = h:99999"},
    {base({{"satellite.labels", "justtext"}}), "satellite.labels = justtext"},
    {base({{"source.x.path", "/a"}}), "source.x.type is missing"},
    {base({{"source.x.type", "kafka"}}), "source.x.type = kafka"},
    {base({{"source.x.type", "file_tail"}, {"source.x.rate", "5"}}), "unknown key 'source.x.rate'"},
    {base({{"source.x.type", "file_tail"}}), "source.x.path"},
    {base({{"source.x.type", "file_tail"}, {"source.x.path", "/a"}, {"source.x.start_at_end", "maybe"}}),
     "source.x.start_at_end = maybe"},
    {base({{"source.x.type", "synthetic"}, {"source.x.levels", "INFO"}}), "source.x.levels = INFO"},
    {base({{"events.max_depth", "0"}}), "events.max_depth = 0"},
    {base({{"satellite.scrub_bytes_per_sec", "-1"}}), "satellite.scrub_bytes_per_sec"},
    {base({{"satellite.scrub_bytes_per_sec", "65GiB"}}), "satellite.scrub_bytes_per_sec = "},
    {base({{"satellite.scrub_interval_ms", "0"}}), "satellite.scrub_interval_ms = 0"},
    {base({{"satellite.heartbeat_interval_ms", "5"}}),
     "satellite.heartbeat_interval_ms = 5: must be 0 (the server's interval) or from 10"},
    {base({{"satellite.heartbeat_interval_ms", "2h"}}), "satellite.heartbeat_interval_ms"},
    {base({{"satellite.heartbeat_jitter_pct", "60"}}),
     "satellite.heartbeat_jitter_pct = 60: must be between 0 and 50 percent"},
  };
  for (auto& c : cases) {
    auto r = satellite_from_config(c.cfg);
    ASSERT_FALSE(r.ok()) << c.names;
    EXPECT_EQ(r.error().code(), code::bad_request);
    EXPECT_NE(r.error().message().find(c.names), std::string::npos)
      << "wanted '" << c.names << "' in: " << r.error().message();
  }
}

// Issue 14: at 100,000 satellites the server reads every beat of each; a beat stays small.
// A busy satellite's (millions of events, a scrub running, no damage): under 100 bytes.
TEST(HeartbeatSize, ABusySatellitesBeatIsUnderOneHundredBytes) {
  wire::Heartbeat hb;
  hb.set_satellite_id("sat-100000");
  hb.set_sequence(8'640'000);  // 100 days at one a second
  auto& st = *hb.mutable_store();
  st.set_events(40'000'000);
  st.set_bytes(1ull << 30);
  st.set_first_offset(100'000'000);
  st.set_next_offset(140'000'000);
  st.set_bad_lines(12);
  st.set_read_cache_bytes(8u << 20);
  st.set_read_cache_hits(1'000'000);
  st.set_read_cache_misses(50'000);
  st.set_scrub_bytes_per_sec(8u << 20);
  st.set_scrub_bytes_verified(500ull << 30);
  st.set_scrub_passes(2'400);
  st.set_scrub_segments_verified(40'000);
  hb.set_load(1.25);
  hb.set_queries_running(2);
  std::printf("a busy satellite's Heartbeat: %zu bytes\n", hb.ByteSizeLong());
  EXPECT_LT(hb.ByteSizeLong(), 100u);
}

// Issue 14: a fleet that registered together must not beat in lockstep. Seeded, so the
// draws are the same in every run.
TEST(HeartbeatTiming, BeatsComeEarlyByAtMostTheJitterAndTheFirstAnywhereInTheInterval) {
  using std::chrono::milliseconds;
  const milliseconds interval{10'000};
  std::mt19937_64 rng{14};
  std::uniform_real_distribution<double> u{0.0, 1.0};
  // Without jitter: exactly the interval, first beat included.
  EXPECT_EQ(heartbeat_delay(interval, 0, false, 0.7), interval);
  EXPECT_EQ(heartbeat_delay(interval, 0, true, 0.7), interval);
  // The extremes of the draw.
  EXPECT_EQ(heartbeat_delay(interval, 10, false, 0.0), interval);
  EXPECT_EQ(heartbeat_delay(interval, 10, false, 0.999999), milliseconds{9'000});
  EXPECT_EQ(heartbeat_delay(interval, 10, true, 0.999999), milliseconds{1});
  int64_t lo = interval.count(), hi = 0, first_lo = interval.count(), first_hi = 0;
  double first_sum = 0;
  constexpr int draws = 10'000;
  // Ten buckets of the interval: first beats of a fleet fall in every one of them.
  std::vector<int> buckets(10, 0);
  for (int i = 0; i < draws; ++i) {
    auto d = heartbeat_delay(interval, 10, false, u(rng)).count();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    auto f = heartbeat_delay(interval, 10, true, u(rng)).count();
    first_lo = std::min(first_lo, f);
    first_hi = std::max(first_hi, f);
    first_sum += static_cast<double>(f);
    ++buckets[std::min<int64_t>(f * 10 / interval.count(), 9)];
  }
  // Never later than the interval (the server's count of missed beats is unchanged), at
  // most 10% early.
  EXPECT_GE(lo, 9'000);
  EXPECT_LE(hi, 10'000);
  EXPECT_LT(lo, 9'100) << "the draws use the whole jitter";
  EXPECT_GE(first_lo, 1);
  EXPECT_LE(first_hi, 10'000);
  EXPECT_NEAR(first_sum / draws, 5'000.0, 250.0);
  for (int b : buckets)
    EXPECT_GT(b, draws / 20) << "first beats bunch up instead of spreading";
  // A refused registration waits the server's retry-after, up to jitter_pct more; 1 s
  // when the server gave none.
  EXPECT_EQ(register_retry_delay(0, 0, 0.5), milliseconds{1'000});
  EXPECT_EQ(register_retry_delay(10'000, 10, 0.0), milliseconds{10'000});
  EXPECT_EQ(register_retry_delay(10'000, 10, 0.5), milliseconds{10'500});
  for (int i = 0; i < 1000; ++i) {
    auto d = register_retry_delay(10'000, 10, u(rng));
    EXPECT_GE(d, milliseconds{10'000});
    EXPECT_LE(d, milliseconds{11'000});
  }
}

} // namespace
} // namespace levee::satellite
