// A satellite store's background scrub, plain C++ on a real segment log and a manual
// clock: its steps keep to their rate and size, it rests between passes, and each damaged
// segment is said once, at a bounded rate, and counted in the StoreStats it fills.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "limits/defaults.hpp"
#include "persistence/segment_log.hpp"
#include "satellite/store_scrub.hpp"

namespace levee::satellite {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

struct StoreScrubTest : ::testing::Test {
  fs::path dir;
  std::unique_ptr<persistence::segment_log> log;
  manual_clock clock;
  std::vector<std::string> lines;

  void SetUp() override {
    dir = fs::temp_directory_path() / ("levee-store-scrub-test-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    persistence::log_options o;
    o.dir = dir.string();
    o.fsync = persistence::fsync_policy::none;
    o.max_segment_bytes = 4096;  // dozens of closed segments
    o.limits.compress = false;   // as a satellite store
    log = std::move(*persistence::segment_log::open(o));
    for (int b = 0; b < 60; ++b) {
      std::vector<persistence::record> batch;
      for (int i = 0; i < 10; ++i)
        batch.push_back({{}, std::string(200, static_cast<char>('a' + i)), 1000 + b, {}});
      ASSERT_TRUE(log->append(batch).ok());
    }
    ASSERT_GE(log->segment_count(), 30u);
  }
  void TearDown() override {
    log.reset();
    fs::remove_all(dir);
  }

  store_scrub make(uint64_t bytes_per_sec, uint64_t max_step_bytes) {
    return store_scrub{*log, bytes_per_sec, max_step_bytes, 60s, clock,
                       [this](const std::string& line) { lines.push_back(line); }};
  }

  /// Calls step() and waits (on the manual clock) as it says until a pass ends; the time
  /// that took, in ns. Fails when a call verifies more than a step.
  int64_t run_pass(store_scrub& s, int max_calls = 100'000) {
    auto start = clock.now_ns();
    auto passes = s.stats().passes_completed;
    for (int i = 0; i < max_calls; ++i) {
      auto before = s.stats().bytes_verified;
      auto wait = s.step();
      EXPECT_LE(s.stats().bytes_verified - before, s.step_bytes());
      if (s.stats().passes_completed > passes) {
        EXPECT_EQ(wait, nanoseconds(60s));  // then it rests
        return clock.now_ns() - start;
      }
      clock.advance_ns(wait.count());
    }
    ADD_FAILURE() << "no pass ended within " << max_calls << " calls";
    return 0;
  }

  std::vector<fs::path> segments() const {
    std::vector<fs::path> out;
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".log")
        out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }

  static void flip_payload_byte(const fs::path& file) {
    std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(persistence::batch_header_bytes + 10);
    f.put('#');
  }
};

TEST_F(StoreScrubTest, StepsKeepToTheirRateAndSize) {
  const uint64_t rate = 16 * 1024;
  auto s = make(rate, 8192);
  EXPECT_EQ(s.step_bytes(), 8192u);
  auto elapsed = run_pass(s);
  auto bytes = s.stats().bytes_verified;
  ASSERT_GT(bytes, 100'000u);
  // Never ahead of the rate (one step may go at once), and not far behind it.
  auto allowed = static_cast<double>(s.step_bytes()) + rate * (static_cast<double>(elapsed) / 1e9);
  EXPECT_LE(static_cast<double>(bytes), allowed);
  EXPECT_GE(static_cast<double>(bytes), 0.8 * allowed);
  EXPECT_TRUE(lines.empty());
  // A step is at most one second's rate, and never below the scrubber's smallest.
  EXPECT_EQ(make(4096, 256 * 1024).step_bytes(), 4096u);
  EXPECT_EQ(make(1, 256 * 1024).step_bytes(), persistence::scrub_min_step_bytes);
}

TEST_F(StoreScrubTest, EachDamagedSegmentIsSaidOnceAtABoundedRateAndCounted) {
  auto files = segments();
  ASSERT_GE(files.size(), 27u);
  for (size_t i = 0; i < 25; ++i)
    flip_payload_byte(files[i]);
  auto s = make(1ull << 40, 256 * 1024);  // no waiting worth the name
  run_pass(s);
  // The log's line rate: its burst at once, the rest held back.
  ASSERT_EQ(lines.size(), defaults::rejection_log_burst_lines);
  EXPECT_NE(lines[0].find(files[0].string() + " at byte 0: batch payload checksum mismatch"),
            std::string::npos)
    << lines[0];
  wire::StoreStats stats;
  s.fill(stats);
  EXPECT_EQ(stats.scrub_damaged_segments(), 25u);
  EXPECT_EQ(stats.scrub_passes(), 1u);
  EXPECT_EQ(stats.scrub_segments_verified(), log->segment_count() - 1);
  EXPECT_EQ(stats.scrub_bytes_per_sec(), 1ull << 40);
  EXPECT_EQ(stats.scrub_last_damage(), files[24].string() + " at byte 0: batch payload checksum mismatch");
  // Found again on the next pass, but said only once.
  clock.advance_ms(10'000);
  run_pass(s);
  EXPECT_EQ(lines.size(), defaults::rejection_log_burst_lines);
  // New damage is said, with what was held back.
  flip_payload_byte(files[25]);
  run_pass(s);
  ASSERT_EQ(lines.size(), defaults::rejection_log_burst_lines + 1);
  EXPECT_NE(lines.back().find(files[25].string()), std::string::npos) << lines.back();
  EXPECT_NE(lines.back().find("(5 more damaged segments not logged)"), std::string::npos)
    << lines.back();
  s.fill(stats);
  EXPECT_EQ(stats.scrub_damaged_segments(), 26u);
}

} // namespace
} // namespace levee::satellite
