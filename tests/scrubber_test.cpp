// The scrubber on real segment logs: clean logs scrub clean (compressed, compacted, batches
// larger than a step), damage in a closed segment is reported with the file, the byte and
// recovery's reason, segments that go mid-walk are skipped, and a step reads no more than
// it may.

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "persistence/crc32c.hpp"
#include "persistence/scrubber.hpp"
#include "persistence/segment_log.hpp"
#include "tests/log_test_support.hpp"

namespace levee::persistence {
namespace {

/// Steps until a pass ends (at most `max_steps`); every step's new damage, in order.
std::vector<scrub_damage> run_pass(scrubber& s, uint64_t step_bytes = 64 * 1024,
                                   int max_steps = 10'000) {
  std::vector<scrub_damage> out;
  for (int i = 0; i < max_steps; ++i) {
    auto r = s.step(step_bytes);
    out.insert(out.end(), r.new_damage.begin(), r.new_damage.end());
    if (r.pass_done)
      return out;
  }
  ADD_FAILURE() << "no pass ended within " << max_steps << " steps";
  return out;
}

/// Where each batch of a segment file starts (the file read whole and walked with
/// check_batch, as a reader that trusts nothing would).
std::vector<uint64_t> batch_starts(const fs::path& file) {
  std::ifstream in{file, std::ios::binary};
  std::string bytes{std::istreambuf_iterator<char>(in), {}};
  std::vector<uint64_t> out;
  size_t at = 0;
  while (at < bytes.size()) {
    batch_header h;
    std::string why;
    if (check_batch(reinterpret_cast<const uint8_t*>(bytes.data()) + at, bytes.size() - at,
                    1 << 30, h, why)
        != batch_check::ok)
      break;
    out.push_back(at);
    at += h.length;
  }
  return out;
}

void flip_byte(const fs::path& file, uint64_t position) {
  std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
  f.seekg(static_cast<std::streamoff>(position));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(position));
  f.put(static_cast<char>(c ^ 0x20));
}

uint64_t closed_bytes(const std::vector<fs::path>& segments) {
  uint64_t total = 0;
  for (size_t i = 0; i + 1 < segments.size(); ++i)
    total += fs::file_size(segments[i]);
  return total;
}

/// A log of 12 batches of ~500 bytes over segments of ~1500 bytes, open.
struct ScrubTest : ::testing::Test {
  temp_dir dir;
  log_options opts = rolling(dir.path, 1500);
  std::unique_ptr<segment_log> log;

  void SetUp() override {
    ASSERT_EQ(write_rolled(opts).size(), 60u);
    auto opened = segment_log::open(opts);
    ASSERT_TRUE(opened.ok()) << opened.error().to_string();
    log = std::move(*opened);
    ASSERT_GE(log->segment_count(), 4u);
  }
  std::vector<fs::path> segments() const { return files_with(dir.path, ".log"); }
};

TEST_F(ScrubTest, ACleanLogScrubsClean) {
  scrubber s{*log};
  EXPECT_TRUE(run_pass(s).empty());
  auto st = s.stats();
  EXPECT_EQ(st.passes_completed, 1u);
  EXPECT_EQ(st.segments_verified, log->segment_count() - 1);  // never the one being written
  EXPECT_EQ(st.bytes_verified, closed_bytes(segments()));
  EXPECT_EQ(st.damaged_segments, 0u);
  EXPECT_EQ(st.segments_skipped, 0u);
  EXPECT_FALSE(st.last_damage.has_value());
  EXPECT_FALSE(s.in_pass());
  // A second pass does it again.
  EXPECT_TRUE(run_pass(s).empty());
  EXPECT_EQ(s.stats().passes_completed, 2u);
  EXPECT_EQ(s.stats().bytes_verified, 2 * closed_bytes(segments()));
}

TEST(Scrub, CompressedAndCompactedBatchesScrubClean) {
  temp_dir dir;
  auto opts = options(dir.path);
  opts.max_segment_bytes = 2048;
  opts.limits.compress = true;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  // LZ4 batches (their values compress well), keyed so that compaction removes some, over
  // several segments.
  for (int b = 0; b < 20; ++b)
    ASSERT_TRUE((*log)->append(make_batch(b * 10, 10, 3000)).ok());
  ASSERT_GE((*log)->segment_count(), 3u);
  auto report = (*log)->compact({}, 1'700'000'000'000);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  ASSERT_GT(report->segments_rewritten, 0u);
  scrubber s{**log};
  EXPECT_TRUE(run_pass(s, scrub_min_step_bytes).empty());
  EXPECT_EQ(s.stats().segments_verified, (*log)->segment_count() - 1);
  EXPECT_EQ(s.stats().bytes_verified, closed_bytes(files_with(dir.path, ".log")));
}

TEST_F(ScrubTest, AFlippedPayloadByteIsReportedWithFileAndPosition) {
  auto files = segments();
  auto starts = batch_starts(files[1]);
  ASSERT_GE(starts.size(), 2u);
  flip_byte(files[1], starts[1] + batch_header_bytes + 7);
  scrubber s{*log};
  auto damage = run_pass(s);
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].file, files[1].string());
  EXPECT_EQ(damage[0].position, starts[1]);
  EXPECT_EQ(damage[0].reason, "batch payload checksum mismatch");
  EXPECT_EQ(damage[0].to_string(), files[1].string() + " at byte " + std::to_string(starts[1])
                                     + ": batch payload checksum mismatch");
  auto st = s.stats();
  EXPECT_EQ(st.damaged_segments, 1u);
  ASSERT_TRUE(st.last_damage.has_value());
  EXPECT_EQ(st.last_damage->position, starts[1]);
  // The other closed segments were verified all the same.
  EXPECT_EQ(st.segments_verified, log->segment_count() - 1);
  // A second pass finds it again, but it is new only once.
  EXPECT_TRUE(run_pass(s).empty());
  EXPECT_EQ(s.stats().damaged_segments, 1u);
}

TEST_F(ScrubTest, ADamagedHeaderIsReportedWithFileAndPosition) {
  auto files = segments();
  auto starts = batch_starts(files[2]);
  ASSERT_GE(starts.size(), 2u);
  flip_byte(files[2], starts[1] + 20);  // offset_count
  scrubber s{*log};
  auto damage = run_pass(s);
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].file, files[2].string());
  EXPECT_EQ(damage[0].position, starts[1]);
  EXPECT_EQ(damage[0].reason, "batch header checksum mismatch");
}

TEST_F(ScrubTest, ATruncatedClosedSegmentIsReportedWhereItsBatchesEnd) {
  auto files = segments();
  auto first = batch_starts(files[0]);
  auto second = batch_starts(files[1]);
  ASSERT_GE(first.size(), 2u);
  ASSERT_GE(second.size(), 2u);
  // Cut inside the last batch of one segment, and at a batch boundary of another.
  fs::resize_file(files[0], first.back() + 100);
  fs::resize_file(files[1], second.back());
  scrubber s{*log};
  auto damage = run_pass(s);
  ASSERT_EQ(damage.size(), 2u);
  EXPECT_EQ(damage[0].file, files[0].string());
  EXPECT_EQ(damage[0].position, first.back());
  EXPECT_EQ(damage[0].reason.rfind("incomplete batch", 0), 0u) << damage[0].reason;
  EXPECT_EQ(damage[1].file, files[1].string());
  EXPECT_EQ(damage[1].position, second.back());
  EXPECT_NE(damage[1].reason.find("the file ends at byte " + std::to_string(second.back())),
            std::string::npos)
    << damage[1].reason;
  EXPECT_EQ(s.stats().damaged_segments, 2u);
}

TEST_F(ScrubTest, AWrongIndexEntryIsReported) {
  // An index whose own checksum is sound (so the log opens from it without reading the
  // segment) but whose second entry points inside a batch: reads from there would fail.
  log.reset();
  auto indexes = files_with(dir.path, ".index");
  ASSERT_FALSE(indexes.empty());
  opts.index_interval_bytes = 1;  // an entry for every batch, so there is a second one
  fs::remove(indexes[0]);
  {
    auto rebuilt = segment_log::open(opts);  // writes the index again, dense
    ASSERT_TRUE(rebuilt.ok());
  }
  std::fstream f{indexes[0], std::ios::in | std::ios::out | std::ios::binary};
  std::string bytes{std::istreambuf_iterator<char>(f), {}};
  ASSERT_GE(bytes.size(), 48u + 2 * 24 + 4);
  auto second_position = 48 + 24 + 8;  // entry 1: offset, position, max timestamp
  uint64_t position = 0;
  for (int i = 0; i < 8; ++i)
    position |= uint64_t{static_cast<uint8_t>(bytes[second_position + i])} << (8 * i);
  position += 10;
  for (int i = 0; i < 8; ++i)
    bytes[second_position + i] = static_cast<char>(position >> (8 * i));
  auto crc = crc32c(0, bytes.data(), bytes.size() - 4);
  for (int i = 0; i < 4; ++i)
    bytes[bytes.size() - 4 + i] = static_cast<char>(crc >> (8 * i));
  f.seekp(0);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  recovery_report report;
  auto reopened = segment_log::open(opts, &report);
  ASSERT_TRUE(reopened.ok());
  ASSERT_EQ(report.indexes_rebuilt, 0u);  // open trusted it
  scrubber s{**reopened};
  auto damage = run_pass(s);
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].file, segments()[0].string());
  EXPECT_EQ(damage[0].position, position);
  EXPECT_EQ(damage[0].reason.rfind("the index has an entry inside a batch", 0), 0u)
    << damage[0].reason;
}

/// Real files; the bytes each read asked for.
struct read_recording_io final : forwarding_io {
  uint64_t bytes = 0;
  int64_t pread(int fd, void* data, size_t n, uint64_t offset) override {
    bytes += n;
    return real.pread(fd, data, n, offset);
  }
};

TEST(Scrub, NoStepReadsMoreThanItMayEvenForBatchesLargerThanAStep) {
  temp_dir dir;
  read_recording_io io;
  auto opts = rolling(dir.path, 64 * 1024);
  opts.io = &io;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  for (int b = 0; b < 12; ++b)  // batches of ~20 KiB: five steps each
    ASSERT_TRUE((*log)->append(make_batch(b * 4, 4, 5000)).ok());
  ASSERT_GE((*log)->segment_count(), 3u);
  auto files = files_with(dir.path, ".log");
  scrubber s{**log};
  uint64_t steps = 0;
  for (;;) {
    io.bytes = 0;
    auto r = s.step(scrub_min_step_bytes);
    ASSERT_LE(r.bytes_read, scrub_min_step_bytes);
    ASSERT_LE(io.bytes, scrub_min_step_bytes);
    ASSERT_TRUE(r.new_damage.empty()) << r.new_damage[0].to_string();
    ++steps;
    if (r.pass_done)
      break;
    ASSERT_LT(steps, 1000u);
  }
  EXPECT_GE(steps, closed_bytes(files) / scrub_min_step_bytes);
  EXPECT_EQ(s.stats().bytes_verified, closed_bytes(files));
  // A flipped byte at the end of a big batch is still found, over several steps.
  auto starts = batch_starts(files[0]);
  ASSERT_GE(starts.size(), 2u);
  flip_byte(files[0], starts[1] - 3);
  auto damage = run_pass(s, scrub_min_step_bytes);
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].position, starts[0]);
  EXPECT_EQ(damage[0].reason, "batch payload checksum mismatch");
}

TEST(Scrub, SegmentsRemovedOrRewrittenMidWalkAreSkipped) {
  temp_dir dir;
  auto opts = rolling(dir.path, 16 * 1024);
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  for (int b = 0; b < 40; ++b)
    ASSERT_TRUE((*log)->append(make_batch(b * 4, 4, 1000)).ok());
  ASSERT_GE((*log)->segment_count(), 4u);
  scrubber s{**log};
  // Into the first segment, not through it.
  auto first = s.step(scrub_min_step_bytes);
  ASSERT_FALSE(first.pass_done);
  ASSERT_EQ(s.stats().segments_verified, 0u);
  // Retention takes the segment being walked.
  auto files = files_with(dir.path, ".log");
  segment_log::retention drop_first{(*log)->size_bytes() - fs::file_size(files[0]), 0, 0};
  ASSERT_EQ(*(*log)->apply_retention(drop_first, 0), 1u);
  EXPECT_TRUE(run_pass(s, scrub_min_step_bytes).empty());
  EXPECT_EQ(s.stats().segments_skipped, 1u);
  EXPECT_EQ(s.stats().segments_verified, (*log)->segment_count() - 1);
  EXPECT_EQ(s.stats().damaged_segments, 0u);
  // Compaction rewrites the segment being walked.
  auto again = s.step(scrub_min_step_bytes);
  ASSERT_FALSE(again.pass_done);
  auto compacted = (*log)->compact({}, 1'700'000'000'000);
  ASSERT_TRUE(compacted.ok());
  ASSERT_GT(compacted->segments_rewritten, 0u);
  EXPECT_TRUE(run_pass(s, scrub_min_step_bytes).empty());
  EXPECT_EQ(s.stats().segments_skipped, 2u);
  EXPECT_EQ(s.stats().damaged_segments, 0u);
  // Truncation removes it (and everything after it).
  ASSERT_FALSE(s.step(scrub_min_step_bytes).pass_done);
  ASSERT_TRUE(s.in_pass());
  ASSERT_TRUE((*log)->truncate_to((*log)->start_offset() + 1).ok());
  EXPECT_TRUE(run_pass(s, scrub_min_step_bytes).empty());
  EXPECT_EQ(s.stats().segments_skipped, 3u);
  EXPECT_EQ(s.stats().passes_completed, 3u);
}

TEST_F(ScrubTest, ADamagedSegmentThatRetentionRemovesIsNoLongerCounted) {
  auto files = segments();
  flip_byte(files[0], batch_header_bytes + 3);
  scrubber s{*log};
  ASSERT_EQ(run_pass(s).size(), 1u);
  EXPECT_EQ(s.stats().damaged_segments, 1u);
  segment_log::retention drop_first{log->size_bytes() - fs::file_size(files[0]), 0, 0};
  ASSERT_EQ(*log->apply_retention(drop_first, 0), 1u);
  EXPECT_EQ(s.stats().damaged_segments, 0u);  // at once, not after the next pass
  ASSERT_TRUE(s.stats().last_damage.has_value());  // what was found stays told
  EXPECT_EQ(s.stats().last_damage->file, files[0].string());
}

TEST(Scrub, ALogWithoutClosedSegmentsEndsAPassAtOnce) {
  temp_dir dir;
  auto log = segment_log::open(options(dir.path));
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->append(make_batch(0, 3)).ok());
  scrubber s{**log};
  auto r = s.step(scrub_min_step_bytes);
  EXPECT_TRUE(r.pass_done);
  EXPECT_EQ(r.bytes_read, 0u);
  EXPECT_EQ(s.stats().passes_completed, 1u);
}

} // namespace
} // namespace levee::persistence
