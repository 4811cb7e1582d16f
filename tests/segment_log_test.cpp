// The segment log on real files in a temporary directory.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "persistence/crc32c.hpp"
#include "persistence/segment_log.hpp"
#include "tests/log_test_support.hpp"

namespace levee::persistence {
namespace {

namespace fs = std::filesystem;

TEST(Crc32c, KnownVector) {
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
  // Extending in pieces gives the same as at once.
  auto part = crc32c(0, "1234", 4);
  EXPECT_EQ(crc32c(part, "56789", 5), 0xE3069283u);
}

// The worked example of FORMAT.md, byte for byte.
TEST(Batch, WorkedExampleOfFormatMd) {
  std::string out;
  record r;
  r.key = "k";
  r.value = "v";
  r.timestamp_ms = 1000;
  ASSERT_TRUE(encode_batch(7, {r}, batch_limits{1024, 4096, false}, out).ok());
  const std::vector<uint8_t> expected = {
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // base_offset 7
    0x3a, 0x00, 0x00, 0x00,                          // length 58
    0x4c, 0x15, 0x0a, 0xcb,                          // body_crc
    0x01, 0x00, 0x00, 0x00,                          // version, attributes, reserved
    0x01, 0x00, 0x00, 0x00,                          // record_count 1
    0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // first_timestamp_ms 1000
    0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // max_timestamp_ms 1000
    0x0a, 0x00, 0x00, 0x00,                          // payload_bytes 10
    0x68, 0xde, 0x9d, 0xa5,                          // header_crc
    0x09, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76, 0x18, 0xe8, 0x07,  // one Record
  };
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.end()), expected);
  batch_header h;
  std::string why;
  ASSERT_EQ(check_batch(reinterpret_cast<const uint8_t*>(out.data()), out.size(), 4096, h, why),
            batch_check::ok);
  std::vector<stored_record> back;
  ASSERT_TRUE(decode_records(h, reinterpret_cast<const uint8_t*>(out.data()), back).ok());
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].offset, 7u);
  EXPECT_EQ(back[0].rec, r);
}

// The append path's encoder reuses its buffers: batch after batch, big then small,
// compressible or not, it gives exactly encode_batch's bytes, and a refusal leaves none.
TEST(Batch, EncoderReusingItsBuffersGivesEncodeBatchsBytes) {
  batch_encoder encoder;
  for (bool compress : {false, true}) {
    batch_limits limits{1 << 20, 4 << 20, compress};
    uint64_t base = 0;
    for (auto [count, value_bytes] : {std::pair{64, 1024}, std::pair{1, 10}, std::pair{200, 300},
                                      std::pair{3, 5000}, std::pair{64, 1024}}) {
      auto records = make_batch(static_cast<int>(base), count, static_cast<size_t>(value_bytes));
      std::string want;
      ASSERT_TRUE(encode_batch(base, records, limits, want).ok());
      ASSERT_TRUE(encoder.encode(base, records, limits).ok());
      EXPECT_TRUE(encoder.bytes() == want) << count << " records of " << value_bytes << " B";
      int64_t max_ts = records[0].timestamp_ms;
      for (auto& r : records)
        max_ts = std::max(max_ts, r.timestamp_ms);
      EXPECT_EQ(encoder.max_timestamp_ms(), max_ts);
      base += static_cast<uint64_t>(count);
    }
    auto too_big = encoder.encode(0, make_batch(0, 1, 2 << 20), limits);
    EXPECT_EQ(too_big.code(), code::message_too_large);
    EXPECT_TRUE(encoder.bytes().empty());
    EXPECT_EQ(encoder.encode(0, {}, limits).code(), code::bad_request);
  }
}

TEST(SegmentLog, AppendReopenAndReadBack) {
  temp_dir dir;
  std::vector<record> all;
  {
    auto log = segment_log::open(options(dir.path));
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    for (int b = 0; b < 3; ++b) {
      auto batch = make_batch(b * 10, 10, b == 1 ? 2000 : 50);  // batch 1 compresses
      auto base = (*log)->append(batch);
      ASSERT_TRUE(base.ok()) << base.error().to_string();
      EXPECT_EQ(*base, static_cast<uint64_t>(b * 10));
      all.insert(all.end(), batch.begin(), batch.end());
    }
  }
  recovery_report report;
  auto log = segment_log::open(options(dir.path), &report);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(report.batches, 3u);
  EXPECT_EQ(report.records, 30u);
  EXPECT_EQ(report.truncated_bytes, 0u);
  EXPECT_EQ((*log)->next_offset(), 30u);
  auto read = (*log)->read(0, 1 << 20);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 30u);
  for (size_t i = 0; i < 30; ++i) {
    EXPECT_EQ((*read)[i].offset, i);
    EXPECT_EQ((*read)[i].rec, all[i]) << i;
  }
  auto middle = (*log)->read(15, 1 << 20);
  ASSERT_TRUE(middle.ok());
  ASSERT_EQ(middle->size(), 15u);
  EXPECT_EQ(middle->front().offset, 15u);
  // A small byte budget still returns one whole batch, and no more.
  auto small = (*log)->read(0, 1);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->size(), 10u);
  EXPECT_TRUE((*log)->read(30, 1 << 20)->empty());
}

// Two writers on one log interleave their batches and corrupt it (two nodes given the same
// data_dir did: a batch whose start another process overwrote, a header of event text).
// The log holds a lock on its directory: a second open is refused and writes nothing, in
// this process or another; a writer killed with -9 leaves no lock behind.
TEST(SegmentLog, ASecondOpenOfTheSameDirectoryIsRefusedUntilTheFirstEnds) {
  temp_dir dir;
  {
    auto first = segment_log::open(options(dir.path));
    ASSERT_TRUE(first.ok()) << first.error().to_string();
    ASSERT_TRUE((*first)->append(make_batch(0, 5)).ok());
    auto second = segment_log::open(options(dir.path));
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().code(), code::storage_error);
    EXPECT_NE(second.error().message().find(dir.path.string()), std::string::npos)
      << second.error().message();
    EXPECT_NE(second.error().message().find("same data directory"), std::string::npos)
      << second.error().message();
    ASSERT_TRUE((*first)->append(make_batch(5, 5)).ok());  // the first is unharmed
  }
  // Another process holds it: refused; once that process is killed -9, the log opens.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = segment_log::open(options(dir.path));
    char c = held.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    for (;;)
      ::pause();
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  auto refused = segment_log::open(options(dir.path));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_EQ(c, 'y') << "the child could not open the log";
  ASSERT_FALSE(refused.ok()) << "opened while another process held the log";
  EXPECT_EQ(refused.error().code(), code::storage_error);
  auto after = segment_log::open(options(dir.path));
  ASSERT_TRUE(after.ok()) << after.error().to_string();
  EXPECT_EQ((*after)->next_offset(), 10u);
}

TEST(SegmentLog, LimitsAreTypedErrorsAndWriteNothing) {
  temp_dir dir;
  auto opts = options(dir.path);
  opts.limits.max_record_bytes = 100;
  opts.limits.max_batch_bytes = 1000;
  opts.limits.compress = false;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  auto big_record = (*log)->append({record{"k", std::string(200, 'x'), 1, {}}});
  ASSERT_FALSE(big_record.ok());
  EXPECT_EQ(big_record.error().code(), code::message_too_large);
  EXPECT_NE(big_record.error().message().find("persistence.max_record_bytes"), std::string::npos);
  std::vector<record> many(20, record{"k", std::string(90, 'y'), 1, {}});
  auto big_batch = (*log)->append(many);
  ASSERT_FALSE(big_batch.ok());
  EXPECT_EQ(big_batch.error().code(), code::message_too_large);
  EXPECT_FALSE((*log)->append({}).ok());
  EXPECT_EQ((*log)->next_offset(), 0u);
  EXPECT_EQ(fs::file_size(only_segment(dir.path)), 0u);
}

// Cut the file at every byte of the last batch: the log opens with exactly the first two
// batches and says how much it cut.
TEST(SegmentLog, TruncationAtEveryByteOfTheLastBatchRecoversThePrefix) {
  temp_dir dir;
  uint64_t end_of_second = 0, end_of_third = 0;
  {
    auto log = segment_log::open(options(dir.path));
    ASSERT_TRUE((*log)->append(make_batch(0, 5)));
    ASSERT_TRUE((*log)->append(make_batch(5, 5)));
    end_of_second = fs::file_size(only_segment(dir.path));
    ASSERT_TRUE((*log)->append(make_batch(10, 5)));
    end_of_third = fs::file_size(only_segment(dir.path));
  }
  auto original = only_segment(dir.path);
  for (auto cut = end_of_second; cut < end_of_third; ++cut) {
    temp_dir copy;
    auto target = copy.path / original.filename();
    fs::copy_file(original, target);
    fs::resize_file(target, cut);
    recovery_report report;
    auto log = segment_log::open(options(copy.path), &report);
    ASSERT_TRUE(log.ok()) << "cut at " << cut << ": " << log.error().to_string();
    EXPECT_EQ((*log)->next_offset(), 10u) << cut;
    EXPECT_EQ(report.truncated_bytes, cut - end_of_second) << cut;
    EXPECT_EQ(fs::file_size(target), end_of_second);
    // And the log goes on from there.
    auto base = (*log)->append(make_batch(10, 1));
    ASSERT_TRUE(base.ok());
    EXPECT_EQ(*base, 10u);
  }
}

// Flip one bit at every byte: the log never opens with a changed record and never
// silently. Damage to the last batch's payload looks like a torn write and is cut off
// (and reported); any other damage is an error that names the file and position.
TEST(SegmentLog, SingleBitFlipsAnywhereAreDetected) {
  temp_dir dir;
  std::vector<record> all;
  uint64_t end_of_second = 0;
  {
    auto log = segment_log::open(options(dir.path));
    for (int b = 0; b < 3; ++b) {
      auto batch = make_batch(b * 4, 4, 20);
      ASSERT_TRUE((*log)->append(batch));
      all.insert(all.end(), batch.begin(), batch.end());
      if (b == 1)
        end_of_second = fs::file_size(only_segment(dir.path));
    }
  }
  auto original = only_segment(dir.path);
  auto size = fs::file_size(original);
  std::string bytes(size, '\0');
  std::ifstream{original, std::ios::binary}.read(bytes.data(), static_cast<std::streamsize>(size));
  for (size_t pos = 0; pos < size; ++pos) {
    temp_dir copy;
    auto target = copy.path / original.filename();
    auto flipped = bytes;
    flipped[pos] = static_cast<char>(flipped[pos] ^ (1 << (pos % 8)));
    std::ofstream{target, std::ios::binary}.write(flipped.data(),
                                                  static_cast<std::streamsize>(size));
    recovery_report report;
    auto log = segment_log::open(options(copy.path), &report);
    if (!log.ok()) {
      EXPECT_EQ(log.error().code(), code::storage_error) << pos;
      EXPECT_NE(log.error().message().find(target.string()), std::string::npos) << pos;
      EXPECT_FALSE(pos >= end_of_second + batch_header_bytes)
        << "damage to the last payload is a torn tail, not an error";
      continue;
    }
    EXPECT_GE(pos, end_of_second + batch_header_bytes)
      << "damage before the last payload must not open";
    EXPECT_GT(report.truncated_bytes, 0u) << pos;
    auto read = (*log)->read(0, 1 << 20);
    ASSERT_TRUE(read.ok());
    ASSERT_EQ(read->size(), 8u) << pos;
    for (size_t i = 0; i < read->size(); ++i)
      EXPECT_EQ((*read)[i].rec, all[i]);
  }
}

TEST(SegmentLog, RollsSegmentsAndReadsAcrossThem) {
  temp_dir dir;
  auto opts = rolling(dir.path, 2000);
  {
    auto log = segment_log::open(opts);
    for (int b = 0; b < 20; ++b)
      ASSERT_TRUE((*log)->append(make_batch(b * 5, 5, 100)).ok());
    EXPECT_GT((*log)->segment_count(), 3u);
  }
  recovery_report report;
  auto log = segment_log::open(opts, &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  EXPECT_GT(report.segments, 3u);
  EXPECT_EQ((*log)->next_offset(), 100u);
  auto read = (*log)->read(37, 1 << 20);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 63u);
  for (size_t i = 0; i < read->size(); ++i)
    EXPECT_EQ((*read)[i].offset, 37 + i);
}

TEST(SegmentLog, TruncateToAnOffsetInsideABatchAtABoundaryAndAcrossSegments) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1500);
  std::vector<record> all;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  for (int b = 0; b < 12; ++b) {
    auto batch = make_batch(b * 5, 5, 100);
    ASSERT_TRUE((*log)->append(batch).ok());
    all.insert(all.end(), batch.begin(), batch.end());
  }
  auto segments_before = (*log)->segment_count();
  ASSERT_GT(segments_before, 2u);
  ASSERT_TRUE((*log)->truncate_to(52).ok());   // inside a batch of the last segment
  EXPECT_EQ((*log)->next_offset(), 52u);
  ASSERT_TRUE((*log)->truncate_to(30).ok());   // a batch boundary, earlier segments
  EXPECT_EQ((*log)->next_offset(), 30u);
  EXPECT_LT((*log)->segment_count(), segments_before);
  ASSERT_TRUE((*log)->truncate_to(13).ok());   // inside a batch again
  EXPECT_EQ((*log)->next_offset(), 13u);
  auto kept = (*log)->read(0, 1 << 20);
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 13u);
  for (size_t i = 0; i < 13; ++i)
    EXPECT_EQ((*kept)[i].rec, all[i]);
  // Appending goes on at 13, and all of it survives a reopen.
  auto base = (*log)->append(make_batch(100, 4, 100));
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(*base, 13u);
  log->reset();
  recovery_report report;
  auto again = segment_log::open(opts, &report);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(report.truncated_bytes, 0u);
  EXPECT_EQ((*again)->next_offset(), 17u);
  EXPECT_EQ((*again)->read(0, 1 << 20)->size(), 17u);
  // Below the start: the log empties and continues at that offset.
  ASSERT_TRUE((*again)->truncate_to(0).ok());
  EXPECT_EQ((*again)->next_offset(), 0u);
  EXPECT_TRUE((*again)->read(0, 1 << 20)->empty());
}

TEST(SegmentLog, RetentionDropsWholeOldSegmentsOnly) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1500);
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  for (int b = 0; b < 12; ++b)
    ASSERT_TRUE((*log)->append(make_batch(b * 5, 5, 100)).ok());  // timestamps 1.7e12 + i
  auto segments = (*log)->segment_count();
  ASSERT_GT(segments, 4u);
  // Nothing is over any limit: nothing goes.
  segment_log::retention none{1u << 30, 1000, 3'600'000};
  EXPECT_EQ(*(*log)->apply_retention(none, 1'700'000'000'100), 0u);
  // Keep at least 20 records: whole segments before them go, never a partial one.
  segment_log::retention by_count{0, 20, 0};
  auto removed = (*log)->apply_retention(by_count, 0);
  ASSERT_TRUE(removed.ok());
  EXPECT_GT(*removed, 0u);
  EXPECT_GE((*log)->next_offset() - (*log)->start_offset(), 20u);
  auto start = (*log)->start_offset();
  EXPECT_EQ((*log)->read(start, 1 << 20)->front().offset, start);
  EXPECT_EQ((*log)->read(0, 1 << 20).error().code(), code::not_found);
  // By age: everything older than the newest record goes, except the active segment.
  segment_log::retention by_age{0, 0, 1};
  ASSERT_TRUE((*log)->apply_retention(by_age, 1'700'000'000'000 + 60 + 1000).ok());
  EXPECT_EQ((*log)->segment_count(), 1u);
  // It all survives a reopen.
  auto next = (*log)->next_offset();
  auto first = (*log)->start_offset();
  log->reset();
  auto again = segment_log::open(opts);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ((*again)->start_offset(), first);
  EXPECT_EQ((*again)->next_offset(), next);
}

TEST(SegmentLog, OffsetForTimeFindsTheFirstBatchThatMayHoldIt) {
  temp_dir dir;
  auto log = segment_log::open(options(dir.path));
  for (int b = 0; b < 4; ++b)
    ASSERT_TRUE((*log)->append(make_batch(b * 10, 10)).ok());  // timestamps base + 0..39
  const int64_t base = 1'700'000'000'000;
  EXPECT_EQ((*log)->offset_for_time(0), 0u);
  EXPECT_EQ((*log)->offset_for_time(base + 9), 0u);
  EXPECT_EQ((*log)->offset_for_time(base + 10), 10u);
  EXPECT_EQ((*log)->offset_for_time(base + 25), 20u);
  EXPECT_EQ((*log)->offset_for_time(base + 1000), 40u);
}

// Closed segments get an index file; a sound one lets the log open without reading the
// segment, a missing, stale or damaged one is rebuilt by reading it.
TEST(SegmentLog, ClosedSegmentsOpenFromTheirIndexAndBadIndexesAreRebuilt) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1500);
  auto all = write_rolled(opts);
  ASSERT_EQ(all.size(), 60u);
  auto indexes = files_with(dir.path, ".index");
  ASSERT_GE(indexes.size(), 3u);
  auto check_all = [&](segment_log& log) {
    auto recs = log.read(0, 1 << 20);
    ASSERT_TRUE(recs.ok()) << recs.error().to_string();
    ASSERT_EQ(recs->size(), all.size());
    for (size_t i = 0; i < all.size(); ++i)
      EXPECT_EQ((*recs)[i].rec, all[i]);
    EXPECT_EQ(log.offset_for_time(1'700'000'000'000 + 37), 35u);
  };
  {
    recovery_report report;
    auto log = segment_log::open(opts, &report);
    ASSERT_TRUE(log.ok());
    EXPECT_EQ(report.segments_from_index, indexes.size());
    EXPECT_EQ(report.indexes_rebuilt, 0u);
    EXPECT_EQ((*log)->next_offset(), 60u);
    check_all(**log);
  }
  // Remove one index, flip a bit in another: both are rebuilt, the log is the same.
  fs::remove(indexes[0]);
  {
    std::fstream f{indexes[1], std::ios::in | std::ios::out | std::ios::binary};
    f.seekg(20);
    char c = 0;
    f.get(c);
    f.seekp(20);
    f.put(static_cast<char>(c ^ 0x10));
  }
  {
    recovery_report report;
    auto log = segment_log::open(opts, &report);
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    EXPECT_EQ(report.indexes_rebuilt, 2u);
    EXPECT_EQ(report.segments_from_index, indexes.size() - 2);
    check_all(**log);
  }
  recovery_report report;
  auto log = segment_log::open(opts, &report);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(report.indexes_rebuilt, 0u);  // rewritten last time
  // Damage in a closed segment opened from its index is found when it is read.
  log->reset();
  auto segments = files_with(dir.path, ".log");
  {
    std::fstream f{segments[0], std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(60);
    f.put('X');
  }
  auto damaged = segment_log::open(opts);
  ASSERT_TRUE(damaged.ok());
  auto r = (*damaged)->read(0, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), code::storage_error);
}

TEST(SegmentLog, KeepsNoMoreFilesOpenThanAllowed) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1000);
  opts.max_open_files = 2;
  {
    auto log = segment_log::open(opts);
    for (int b = 0; b < 20; ++b)
      ASSERT_TRUE((*log)->append(make_batch(b * 5, 5, 100)).ok());
    ASSERT_GT((*log)->segment_count(), 5u);
  }
  for (bool with_indexes : {true, false}) {
    if (!with_indexes)
      for (auto& index : files_with(dir.path, ".index"))
        fs::remove(index);
    auto log = segment_log::open(opts);
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    EXPECT_LE((*log)->open_files(), 2u);
    auto all = (*log)->read(0, 1 << 30);
    ASSERT_TRUE(all.ok()) << all.error().to_string();
    EXPECT_EQ(all->size(), 100u);
    EXPECT_LE((*log)->open_files(), 2u);
    EXPECT_EQ((*log)->read(3, 1 << 30)->size(), 97u);  // reopens what it closed
    ASSERT_TRUE((*log)->append(make_batch(100, 5, 100)).ok());
    ASSERT_TRUE((*log)->truncate_to(100).ok());
    EXPECT_LE((*log)->open_files(), 2u);
  }
}

TEST(SegmentLog, AZeroFilledTailIsATornWrite) {
  temp_dir dir;
  uint64_t good = 0;
  {
    auto log = segment_log::open(options(dir.path));
    ASSERT_TRUE((*log)->append(make_batch(0, 5)));
    good = fs::file_size(only_segment(dir.path));
  }
  fs::resize_file(only_segment(dir.path), good + 300);  // zeros, as after a crash
  recovery_report report;
  auto log = segment_log::open(options(dir.path), &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  EXPECT_EQ(report.truncated_bytes, 300u);
  EXPECT_EQ((*log)->next_offset(), 5u);
}

TEST(SegmentLog, AMissingSegmentIsAnErrorNotAGap) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1000);
  {
    auto log = segment_log::open(opts);
    for (int b = 0; b < 10; ++b)
      ASSERT_TRUE((*log)->append(make_batch(b * 5, 5, 100)));
  }
  auto files = files_with(dir.path, ".log");
  ASSERT_GE(files.size(), 3u);
  fs::remove(files[1]);
  auto log = segment_log::open(opts);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.error().code(), code::storage_error);
  EXPECT_NE(log.error().message().find("a segment is missing"), std::string::npos);
}

} // namespace
} // namespace levee::persistence

#include "persistence/checkpoint.hpp"

namespace levee::persistence {
namespace {

TEST(Checkpoint, RoundTripsAndReplacesAtomically) {
  temp_dir dir;
  auto hw = (dir.path / "high-water").string();
  EXPECT_EQ(read_high_water(hw).error().code(), code::not_found);
  ASSERT_TRUE(write_high_water(hw, 42).ok());
  EXPECT_EQ(*read_high_water(hw), 42u);
  ASSERT_TRUE(write_high_water(hw, 43).ok());
  EXPECT_EQ(*read_high_water(hw), 43u);
  EXPECT_FALSE(fs::exists(hw + ".tmp"));
  auto ep = (dir.path / "leader-epochs").string();
  std::vector<epoch_entry> epochs{{0, 0}, {1, 120}, {4, 530}};
  ASSERT_TRUE(write_leader_epochs(ep, epochs).ok());
  EXPECT_EQ(*read_leader_epochs(ep), epochs);
  // A high-water file is not read as an epoch list, or the reverse.
  EXPECT_EQ(read_leader_epochs(hw).error().code(), code::storage_error);
  // A temporary file a crash left behind does not disturb the real one.
  std::ofstream{hw + ".tmp"} << "half written";
  EXPECT_EQ(*read_high_water(hw), 43u);
}

TEST(Checkpoint, DamageIsAnErrorNeverAWrongValue) {
  temp_dir dir;
  auto ep = (dir.path / "leader-epochs").string();
  ASSERT_TRUE(write_leader_epochs(ep, {{0, 0}, {1, 120}, {4, 530}}).ok());
  auto size = fs::file_size(ep);
  std::string bytes(size, '\0');
  std::ifstream{ep, std::ios::binary}.read(bytes.data(), static_cast<std::streamsize>(size));
  for (size_t pos = 0; pos < size; ++pos) {
    auto flipped = bytes;
    flipped[pos] = static_cast<char>(flipped[pos] ^ (1 << (pos % 8)));
    std::ofstream{ep, std::ios::binary | std::ios::trunc}.write(
      flipped.data(), static_cast<std::streamsize>(size));
    auto r = read_leader_epochs(ep);
    ASSERT_FALSE(r.ok()) << pos;
    EXPECT_EQ(r.error().code(), code::storage_error) << pos;
  }
  for (size_t cut = 0; cut < size; ++cut) {
    std::ofstream{ep, std::ios::binary | std::ios::trunc}.write(
      bytes.data(), static_cast<std::streamsize>(cut));
    EXPECT_EQ(read_leader_epochs(ep).error().code(), code::storage_error) << cut;
  }
}

} // namespace
} // namespace levee::persistence

#include <csignal>
#include <map>
#include <random>
#include <set>
#include <sys/wait.h>

#include "tests/kill_test_support.hpp"

namespace levee::persistence {
namespace {

record crash_record(uint64_t offset) {
  record r;
  r.key = "k" + std::to_string(offset % 13);
  r.value = std::string(offset % 300 + 1, static_cast<char>('a' + offset * 7 % 26))
            + std::to_string(offset);
  r.timestamp_ms = 1'700'000'000'000 + static_cast<int64_t>(offset);
  return r;
}

// A writer process appends with fsync per batch and reports each append that returned;
// it is killed with SIGKILL at a random moment, 50 times over one log. Every reported
// record must read back intact, and nothing but records of the writer may appear.
TEST(SegmentLog, KilledWritersLoseNothingTheyReported) {
  temp_dir dir;
  auto opts = options(dir.path);
  opts.fsync = fsync_policy::every_batch;
  opts.max_segment_bytes = 64 * 1024;
  std::mt19937 rng{20261122};
  uint64_t reported = 0;  // every record below this was reported durable
  for (int run = 0; run < 50; ++run) {
    auto writer = [&](const std::function<void(const uint64_t&)>& report) {
      auto log = segment_log::open(opts);
      if (!log.ok())
        ::_exit(2);
      for (;;) {
        auto next = (*log)->next_offset();
        std::vector<record> batch;
        for (uint64_t i = 0; i < 1 + next % 7; ++i)
          batch.push_back(crash_record(next + i));
        if (!(*log)->append(batch).ok())
          ::_exit(3);
        report((*log)->next_offset());
      }
    };
    // Let it report a random number of appends, then kill it wherever it is.
    auto take = [&](const uint64_t& end) { reported = std::max(reported, end); };
    ASSERT_TRUE(test::run_until_killed<uint64_t>(writer, 1 + rng() % 30, take))
      << "run " << run << ": the writer failed on its own";
    auto log = segment_log::open(opts);
    ASSERT_TRUE(log.ok()) << "run " << run << ": " << log.error().to_string();
    ASSERT_GE((*log)->next_offset(), reported) << "run " << run;
  }
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  uint64_t offset = 0, count = 0;
  while (offset < (*log)->next_offset()) {
    auto recs = (*log)->read(offset, 1 << 20);
    ASSERT_TRUE(recs.ok());
    ASSERT_FALSE(recs->empty());
    for (auto& r : *recs) {
      ASSERT_EQ(r.offset, offset);
      ASSERT_EQ(r.rec, crash_record(offset)) << offset;
      ++offset;
      ++count;
    }
  }
  EXPECT_GE(count, reported);
}

} // namespace
} // namespace levee::persistence

namespace levee::persistence {
namespace {

/// Real files with injected faults: a write budget (short write, then ENOSPC), failing
/// syncs, failing truncation.
struct faulty_io final : forwarding_io {
  int64_t write_budget = -1;  // bytes writes may still take; -1 = unlimited
  bool fail_sync = false;
  bool fail_truncate = false;

  int64_t pwrite(int fd, const void* data, size_t n, uint64_t offset) override {
    if (write_budget < 0)
      return real.pwrite(fd, data, n, offset);
    if (write_budget == 0)
      return -ENOSPC;
    auto take = std::min<int64_t>(write_budget, static_cast<int64_t>(n));
    write_budget -= take;
    return real.pwrite(fd, data, static_cast<size_t>(take), offset);  // a short write
  }
  int fdatasync(int fd) override { return fail_sync ? -EIO : real.fdatasync(fd); }
  int ftruncate(int fd, uint64_t size) override {
    return fail_truncate ? -EIO : real.ftruncate(fd, size);
  }
};

struct FaultTest : ::testing::Test {
  temp_dir dir;
  faulty_io io;
  log_options opts = [this] {
    auto o = options(dir.path);
    o.fsync = fsync_policy::every_batch;
    o.io = &io;
    return o;
  }();
};

TEST_F(FaultTest, ShortWriteThenNoSpaceIsAnErrorAndLeavesNothingBehind) {
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->append(make_batch(0, 3)).ok());
  auto size_before = fs::file_size(only_segment(dir.path));
  io.write_budget = 30;
  auto r = (*log)->append(make_batch(3, 3));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), code::storage_error);
  EXPECT_NE(r.error().message().find("No space left on device"), std::string::npos)
    << r.error().message();
  EXPECT_EQ((*log)->next_offset(), 3u);
  EXPECT_EQ(fs::file_size(only_segment(dir.path)), size_before);
  io.write_budget = -1;
  auto again = (*log)->append(make_batch(3, 3));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 3u);
  log->reset();
  recovery_report report;
  auto reopened = segment_log::open(options(dir.path), &report);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(report.truncated_bytes, 0u);
  EXPECT_EQ((*reopened)->next_offset(), 6u);
}

TEST_F(FaultTest, AFailedSyncIsNotReportedWritten) {
  auto log = segment_log::open(opts);
  ASSERT_TRUE((*log)->append(make_batch(0, 2)).ok());
  io.fail_sync = true;
  auto r = (*log)->append(make_batch(2, 2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), code::storage_error);
  EXPECT_NE(r.error().message().find("Input/output error"), std::string::npos);
  EXPECT_EQ((*log)->next_offset(), 2u);
  log->reset();
  auto reopened = segment_log::open(options(dir.path));
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->next_offset(), 2u);  // the unsynced batch was cut back too
}

TEST_F(FaultTest, WhenEvenTheCutBackFailsRecoveryRemovesTheTornBatch) {
  auto log = segment_log::open(opts);
  ASSERT_TRUE((*log)->append(make_batch(0, 2)).ok());
  auto size_before = fs::file_size(only_segment(dir.path));
  io.write_budget = 30;
  io.fail_truncate = true;
  ASSERT_FALSE((*log)->append(make_batch(2, 2)).ok());
  EXPECT_EQ(fs::file_size(only_segment(dir.path)), size_before + 30);  // a torn batch
  log->reset();
  recovery_report report;
  auto reopened = segment_log::open(options(dir.path), &report);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(report.truncated_bytes, 30u);
  EXPECT_EQ((*reopened)->next_offset(), 2u);
  EXPECT_EQ((*reopened)->read(0, 1 << 20)->size(), 2u);
}

} // namespace
} // namespace levee::persistence

namespace levee::persistence {
namespace {

/// Counts syncs on real files.
struct counting_io final : forwarding_io {
  int syncs = 0;
  int fdatasync(int fd) override {
    ++syncs;
    return real.fdatasync(fd);
  }
};

TEST(SegmentLog, IntervalPolicySyncsOncePerIntervalBeforeTheNextAppend) {
  temp_dir dir;
  counting_io io;
  int64_t now = 10'000;
  auto opts = options(dir.path);
  opts.fsync = fsync_policy::interval;
  opts.fsync_interval_ms = 100;
  opts.io = &io;
  opts.now_ms = [&] { return now; };
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->append(make_batch(0, 1)).ok());  // first append: due, syncs first
  EXPECT_EQ(io.syncs, 1);
  for (int i = 1; i < 10; ++i) {
    now += 5;
    ASSERT_TRUE((*log)->append(make_batch(i, 1)).ok());
  }
  EXPECT_EQ(io.syncs, 1);  // 45 ms later: not due
  now += 100;
  ASSERT_TRUE((*log)->append(make_batch(10, 1)).ok());
  EXPECT_EQ(io.syncs, 2);
  ASSERT_TRUE((*log)->sync().ok());
  EXPECT_EQ(io.syncs, 3);
}

// Under fsync none a roll syncs nothing, the closed segment's index included: an index
// that a machine crash leaves empty or zero-filled (written, renamed, never synced) is
// rebuilt from its segment on the next open, and every record reads back.
TEST(SegmentLog, FsyncNoneRollsWithoutSyncingAndACrashDamagedIndexIsRebuilt) {
  temp_dir dir;
  counting_io io;
  auto opts = rolling(dir.path, 1500);
  opts.io = &io;
  auto all = write_rolled(opts);
  ASSERT_EQ(all.size(), 60u);
  EXPECT_EQ(io.syncs, 0);
  auto indexes = files_with(dir.path, ".index");
  ASSERT_GE(indexes.size(), 3u);
  // What a crash after the rename can leave of an unsynced file: nothing, or zeros.
  fs::resize_file(indexes[0], 0);
  auto size = fs::file_size(indexes[1]);
  fs::resize_file(indexes[1], 0);
  fs::resize_file(indexes[1], size);
  recovery_report report;
  auto log = segment_log::open(opts, &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  EXPECT_EQ(report.indexes_rebuilt, 2u);
  EXPECT_EQ(report.segments_from_index, indexes.size() - 2);
  auto recs = (*log)->read(0, 1 << 20);
  ASSERT_TRUE(recs.ok()) << recs.error().to_string();
  ASSERT_EQ(recs->size(), all.size());
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ((*recs)[i].rec, all[i]);
}

// Under the durable policies the index is synced before the roll goes on, as before.
TEST(SegmentLog, DurablePoliciesSyncTheIndexOnRoll) {
  temp_dir dir;
  counting_io io;
  auto opts = rolling(dir.path, 1500);
  opts.fsync = fsync_policy::interval;
  opts.fsync_interval_ms = 1'000'000;  // only the first append's sync and the rolls'
  opts.now_ms = [] { return int64_t{5'000'000}; };
  opts.io = &io;
  auto all = write_rolled(opts);
  ASSERT_EQ(all.size(), 60u);
  auto indexes = files_with(dir.path, ".index");
  ASSERT_GE(indexes.size(), 3u);
  // Per roll: the closed segment, then its index; plus the first append's.
  EXPECT_EQ(io.syncs, 1 + 2 * static_cast<int>(indexes.size()));
}

TEST(SegmentLog, RecoveryReportsProgress) {
  temp_dir dir;
  auto opts = options(dir.path);
  {
    auto log = segment_log::open(opts);
    for (int b = 0; b < 10; ++b)
      ASSERT_TRUE((*log)->append(make_batch(b * 5, 5, 200)));
  }
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  opts.on_progress = [&](uint64_t done, uint64_t total) { calls.emplace_back(done, total); };
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().first, calls.back().second);  // done at the end
  EXPECT_EQ(calls.back().second, (*log)->size_bytes());
}

} // namespace
} // namespace levee::persistence

namespace levee::persistence {
namespace {

// The fast path (three interleaved streams) agrees with a plain bitwise CRC32C on every
// length around its block boundaries, from any starting value.
TEST(Crc32c, FastPathAgreesWithTheDefinition) {
  auto reference = [](uint32_t crc, const uint8_t* p, size_t n) {
    crc = ~crc;
    while (n-- > 0) {
      crc ^= *p++;
      for (int k = 0; k < 8; ++k)
        crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
  };
  std::mt19937 rng{5};
  std::vector<uint8_t> data(40000);
  for (auto& b : data)
    b = static_cast<uint8_t>(rng());
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{12287}, size_t{12288},
                   size_t{12289}, size_t{24576}, size_t{30001}, size_t{40000}}) {
    for (uint32_t start : {0u, 0xDEADBEEFu}) {
      EXPECT_EQ(crc32c(start, data.data(), n), reference(start, data.data(), n))
        << "length " << n << " start " << start << (crc32c_hardware() ? " (hardware)" : "");
    }
  }
}

} // namespace
} // namespace levee::persistence

// --- key compaction, sparse reads, chunked recovery ------------------------------------

namespace levee::persistence {
namespace {

/// Appends `batches` batches of `per_batch` records with keys from a small set (and some
/// without a key), returning every record by offset.
std::vector<record> keyed_history(segment_log& log, int batches, int per_batch, int keys) {
  std::vector<record> all;
  for (int b = 0; b < batches; ++b) {
    std::vector<record> batch;
    for (int i = 0; i < per_batch; ++i) {
      int n = b * per_batch + i;
      record r;
      r.key = n % 5 == 0 ? std::string{} : "user-" + std::to_string(n % keys);
      r.value = "v" + std::to_string(n) + std::string(40, 'x');
      r.timestamp_ms = 1'700'000'000'000 + n;
      batch.push_back(r);
    }
    EXPECT_TRUE(log.append(batch).ok());
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

/// Offsets that compaction must keep: every unkeyed record, the last one of each key, and
/// everything in the segment being written (from `active_base`).
std::vector<uint64_t> survivors(const std::vector<record>& all, uint64_t active_base) {
  std::map<std::string, uint64_t> last;
  for (uint64_t o = 0; o < all.size(); ++o)
    if (!all[o].key.empty())
      last[all[o].key] = o;
  std::vector<uint64_t> out;
  for (uint64_t o = 0; o < all.size(); ++o)
    if (o >= active_base || all[o].key.empty() || last[all[o].key] == o)
      out.push_back(o);
  return out;
}

void expect_exactly(segment_log& log, const std::vector<record>& all,
                    const std::vector<uint64_t>& offsets) {
  auto recs = log.read(log.start_offset(), 1ull << 30);
  ASSERT_TRUE(recs.ok()) << recs.error().to_string();
  ASSERT_EQ(recs->size(), offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) {
    EXPECT_EQ((*recs)[i].offset, offsets[i]);
    EXPECT_EQ((*recs)[i].rec, all[offsets[i]]) << "offset " << offsets[i];
  }
}

uint64_t active_base_of(const fs::path& dir) {
  auto segs = files_with(dir, ".log");
  return std::stoull(segs.back().filename().string().substr(0, 20));
}

TEST(Batch, CompactedBatchesKeepOffsetsAndRefuseBadOnes) {
  batch_limits limits{1 << 20, 1 << 22, false};
  std::vector<stored_record> recs(2);
  recs[0].offset = 12;
  recs[0].rec.key = "a";
  recs[0].rec.value = "1";
  recs[1].offset = 17;
  recs[1].rec.key = "b";
  std::string bytes;
  ASSERT_TRUE(encode_compacted_batch(10, 8, recs, limits, bytes).ok());
  batch_header h;
  std::string why;
  ASSERT_EQ(check_batch(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 1 << 22,
                        h, why),
            batch_check::ok);
  EXPECT_EQ(h.version, batch_format_compacted);
  EXPECT_EQ(h.offset_count, 8u);
  std::vector<stored_record> back;
  ASSERT_TRUE(decode_records(h, reinterpret_cast<const uint8_t*>(bytes.data()), back).ok());
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].offset, 12u);
  EXPECT_EQ(back[1].offset, 17u);
  EXPECT_EQ(back[1].rec, recs[1].rec);
  // Outside the range, out of order, or no range at all: refused, nothing written.
  std::string none;
  EXPECT_FALSE(encode_compacted_batch(10, 7, recs, limits, none).ok());
  EXPECT_FALSE(encode_compacted_batch(13, 8, recs, limits, none).ok());
  std::swap(recs[0], recs[1]);
  EXPECT_FALSE(encode_compacted_batch(10, 8, recs, limits, none).ok());
  EXPECT_FALSE(encode_compacted_batch(10, 0, {}, limits, none).ok());
  EXPECT_TRUE(none.empty());
  // An empty range (all compacted away) is a valid batch with no records.
  ASSERT_TRUE(encode_compacted_batch(10, 5, {}, limits, none).ok());
  ASSERT_EQ(check_batch(reinterpret_cast<const uint8_t*>(none.data()), none.size(), 1 << 22, h,
                        why),
            batch_check::ok);
  back.clear();
  ASSERT_TRUE(decode_records(h, reinterpret_cast<const uint8_t*>(none.data()), back).ok());
  EXPECT_TRUE(back.empty());
}

TEST(SegmentLog, CompactionKeepsTheLastRecordPerKeyAndEveryUnkeyedOne) {
  temp_dir dir;
  auto opts = rolling(dir.path, 2000);
  std::vector<record> all;
  uint64_t active = 0;
  {
    auto log = segment_log::open(opts);
    all = keyed_history(**log, 40, 4, 7);
    active = active_base_of(dir.path);
    ASSERT_GE((*log)->segment_count(), 5u);
    auto before = (*log)->size_bytes();
    auto report = (*log)->compact({}, 1'700'000'000'000);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    EXPECT_GT(report->segments_rewritten, 0u);
    EXPECT_EQ(report->keys, 7u);
    EXPECT_EQ(report->records_removed, all.size() - survivors(all, active).size());
    EXPECT_LT((*log)->size_bytes(), before);
    EXPECT_EQ((*log)->next_offset(), all.size());
    expect_exactly(**log, all, survivors(all, active));
    // A second pass finds nothing to do.
    auto again = (*log)->compact({}, 1'700'000'000'000);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->segments_rewritten, 0u);
    // Appends go on at the same offsets; reads from any offset start at the next survivor.
    auto next = (*log)->append(make_batch(500, 2));
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(*next, all.size());
    auto batch = make_batch(500, 2);
    all.insert(all.end(), batch.begin(), batch.end());
    auto kept = survivors(all, active);
    for (uint64_t from = 0; from < all.size(); ++from) {
      auto r = (*log)->read(from, 1);
      ASSERT_TRUE(r.ok());
      ASSERT_FALSE(r->empty());
      EXPECT_EQ(r->front().offset, *std::lower_bound(kept.begin(), kept.end(), from));
    }
  }
  // Reopened from the new indexes, and with them gone (every compacted batch verified).
  recovery_report report;
  auto log = segment_log::open(opts, &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  EXPECT_EQ(report.segments_from_index + 1, report.segments);
  expect_exactly(**log, all, survivors(all, active));
  log->reset();
  for (auto& index : files_with(dir.path, ".index"))
    fs::remove(index);
  log = segment_log::open(opts, &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  expect_exactly(**log, all, survivors(all, active));
  EXPECT_EQ((*log)->next_offset(), all.size());
}

TEST(SegmentLog, TombstonesRemoveEarlierRecordsThenThemselvesAfterRetention) {
  temp_dir dir;
  auto opts = rolling(dir.path, 600);
  auto log = segment_log::open(opts);
  const int64_t t0 = 1'700'000'000'000;
  auto put = [&](const std::string& key, const std::string& value, int64_t ts) {
    record r;
    r.key = key;
    r.value = value;
    r.timestamp_ms = ts;
    auto o = (*log)->append({r});
    EXPECT_TRUE(o.ok());
    return *o;
  };
  put("a", std::string(100, '1'), t0);
  put("b", std::string(100, '2'), t0);
  put("a", std::string(100, '3'), t0 + 1);
  auto tomb = put("a", "", t0 + 2);  // delete "a"
  for (int i = 0; i < 12; ++i)
    put("filler-" + std::to_string(i), std::string(100, 'f'), t0 + 3);  // close its segment
  segment_log::compaction policy;
  policy.tombstone_retention_ms = 1000;
  auto first = (*log)->compact(policy, t0 + 500);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  EXPECT_EQ(first->records_removed, 2u);   // both earlier "a"s
  EXPECT_EQ(first->tombstones_removed, 0u);  // still within its retention
  auto recs = (*log)->read(0, 1 << 20);
  ASSERT_TRUE(recs.ok());
  std::vector<std::string> keys;
  for (auto& r : *recs)
    if (r.rec.key == "a" || r.rec.key == "b")
      keys.push_back(r.rec.key + "@" + std::to_string(r.offset));
  EXPECT_EQ(keys, (std::vector<std::string>{"b@1", "a@" + std::to_string(tomb)}));
  auto second = (*log)->compact(policy, t0 + 5000);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->tombstones_removed, 1u);
  recs = (*log)->read(0, 1 << 20);
  ASSERT_TRUE(recs.ok());
  for (auto& r : *recs)
    EXPECT_NE(r.rec.key, "a");
  EXPECT_EQ(recs->front().offset, 1u);
}

TEST(SegmentLog, ASegmentCompactedAwayKeepsItsOffsetRange) {
  temp_dir dir;
  auto opts = rolling(dir.path, 700);
  std::vector<record> all;
  {
    auto log = segment_log::open(opts);
    // The same key again and again: every closed segment ends up empty of records.
    for (int i = 0; i < 30; ++i) {
      record r;
      r.key = "only";
      r.value = std::string(100, static_cast<char>('a' + i % 26));
      r.timestamp_ms = 1'700'000'000'000 + i;
      ASSERT_TRUE((*log)->append({r}).ok());
      all.push_back(r);
    }
    auto report = (*log)->compact({}, 0);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    EXPECT_EQ(report->records_removed, active_base_of(dir.path));  // all but the active segment's
  }
  for (auto& index : files_with(dir.path, ".index"))
    fs::remove(index);
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  expect_exactly(**log, all, survivors(all, active_base_of(dir.path)));
  EXPECT_EQ((*log)->offset_for_time(1'700'000'000'000), active_base_of(dir.path));
}

TEST(SegmentLog, ABoundedKeyMapCompactsLessButNeverWrongly) {
  temp_dir dir;
  auto opts = rolling(dir.path, 2000);
  auto log = segment_log::open(opts);
  auto all = keyed_history(**log, 40, 4, 20);
  segment_log::compaction policy;
  policy.max_map_bytes = 3 * (64 + 7);  // room for three keys
  auto report = (*log)->compact(policy, 0);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->map_full);
  EXPECT_EQ(report->keys, 3u);
  auto recs = (*log)->read(0, 1 << 30);
  ASSERT_TRUE(recs.ok());
  // Everything kept is as written; every removed record has a later one with its key;
  // the last record of every key is there.
  std::set<uint64_t> kept;
  for (auto& r : *recs) {
    EXPECT_EQ(r.rec, all[r.offset]);
    kept.insert(r.offset);
  }
  EXPECT_LT(kept.size(), all.size());
  for (uint64_t o = 0; o < all.size(); ++o) {
    if (kept.count(o))
      continue;
    bool superseded = false;
    for (uint64_t later = o + 1; later < all.size(); ++later)
      superseded |= all[later].key == all[o].key;
    EXPECT_TRUE(superseded) << "offset " << o << " removed without a later record";
  }
  for (auto o : survivors(all, all.size()))
    EXPECT_TRUE(kept.count(o)) << o;
}

TEST(SegmentLog, CompactedSegmentsAreVerifiedTruncatedAndCrashLeftoversIgnored) {
  temp_dir dir;
  auto opts = rolling(dir.path, 2000);
  std::vector<record> all;
  uint64_t active = 0;
  {
    auto log = segment_log::open(opts);
    all = keyed_history(**log, 40, 4, 7);
    active = active_base_of(dir.path);
    ASSERT_TRUE((*log)->compact({}, 0).ok());
  }
  // A compaction that died before its rename leaves `<segment>.cleaned`: ignored, removed.
  auto segments = files_with(dir.path, ".log");
  { std::ofstream{segments[1].string() + ".cleaned"} << "half a segment"; }
  {
    auto log = segment_log::open(opts);
    ASSERT_TRUE(log.ok()) << log.error().to_string();
    EXPECT_FALSE(fs::exists(segments[1].string() + ".cleaned"));
    expect_exactly(**log, all, survivors(all, active));
    // Truncating into a compacted segment keeps its holes before the cut.
    auto kept = survivors(all, active);
    auto cut = kept[kept.size() / 3] + 1;
    ASSERT_TRUE((*log)->truncate_to(cut).ok());
    EXPECT_EQ((*log)->next_offset(), cut);
    std::vector<uint64_t> prefix;
    for (auto o : kept)
      if (o < cut)
        prefix.push_back(o);
    expect_exactly(**log, all, prefix);
    auto next = (*log)->append(make_batch(0, 1));
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(*next, cut);
  }
  // A flipped byte inside a compacted segment is found on open (its index removed).
  segments = files_with(dir.path, ".log");
  fs::remove(fs::path(segments[0]).replace_extension(".index"));
  {
    std::fstream f{segments[0], std::ios::in | std::ios::out | std::ios::binary};
    f.seekg(70);
    char c = 0;
    f.get(c);
    f.seekp(70);
    f.put(static_cast<char>(c ^ 0x01));
  }
  auto damaged = segment_log::open(opts);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.error().code(), code::storage_error);
  EXPECT_NE(damaged.error().message().find(segments[0].filename().string()), std::string::npos);
}

// Recovery reads a segment in bounded chunks: batches straddle chunk boundaries, and a
// torn tail far beyond the first chunk is still found and cut.
TEST(SegmentLog, RecoveryOfASegmentLargerThanItsReadChunk) {
  temp_dir dir;
  auto opts = options(dir.path);
  opts.limits.compress = false;
  uint64_t records = 0;
  {
    auto log = segment_log::open(opts);
    for (int b = 0; b < 90; ++b) {
      ASSERT_TRUE((*log)->append(make_batch(b * 7, 7, 6000)).ok());  // ~42 KB a batch
      records += 7;
    }
  }
  auto seg = only_segment(dir.path);
  auto size = fs::file_size(seg);
  ASSERT_GT(size, 3 * defaults::log_read_chunk_bytes);
  fs::resize_file(seg, size - 100);  // the last batch torn
  recovery_report report;
  auto log = segment_log::open(opts, &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  EXPECT_EQ(report.batches, 89u);
  EXPECT_EQ((*log)->next_offset(), records - 7);
  auto recs = (*log)->read(0, 1ull << 30);
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), records - 7);
  EXPECT_EQ(recs->back().rec, make_batch(88 * 7, 7, 6000).back());
}

} // namespace
} // namespace levee::persistence

namespace levee::persistence {
namespace {

// Damage a crash cannot explain fails the open by default; corruption policy truncate cuts
// the log at the first damaged batch, removes what follows and says what it removed.
TEST(SegmentLog, TheTruncatePolicyCutsAtTheFirstDamageAndReportsIt) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1500);
  auto all = write_rolled(opts);
  ASSERT_EQ(all.size(), 60u);
  auto segments = files_with(dir.path, ".log");
  ASSERT_GE(segments.size(), 4u);
  // Damage the second batch of the second segment (its index goes, so it is scanned).
  fs::remove(fs::path(segments[1]).replace_extension(".index"));
  uint64_t second_batch = 0;
  {
    std::ifstream f{segments[1], std::ios::binary};
    uint8_t header[12];
    f.read(reinterpret_cast<char*>(header), 12);
    second_batch = header[8] | (header[9] << 8) | (header[10] << 16);
  }
  {
    std::fstream f{segments[1], std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(static_cast<std::streamoff>(second_batch + 60));
    f.put('#');
  }
  auto failed = segment_log::open(opts);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message().find("corruption policy truncate"), std::string::npos);
  EXPECT_EQ(files_with(dir.path, ".log").size(), segments.size());  // nothing touched

  auto repair = opts;
  repair.on_corruption = corruption_policy::truncate;
  recovery_report report;
  auto log = segment_log::open(repair, &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  EXPECT_TRUE(report.repaired);
  EXPECT_EQ(report.truncated_file, segments[1].string());
  EXPECT_EQ(report.repaired_segments_removed, segments.size() - 2);
  auto base = std::stoull(segments[1].filename().string().substr(0, 20));
  EXPECT_EQ(report.repaired_from_offset, base + 5);  // the first batch of it survives
  EXPECT_EQ((*log)->next_offset(), base + 5);
  auto recs = (*log)->read(0, 1 << 20);
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), base + 5);
  for (size_t i = 0; i < recs->size(); ++i)
    EXPECT_EQ((*recs)[i].rec, all[i]);
  // It goes on from there, and opens cleanly afterwards.
  auto next = (*log)->append(make_batch(0, 2));
  ASSERT_TRUE(next.ok()) << next.error().to_string();
  EXPECT_EQ(*next, base + 5);
  log->reset();
  recovery_report again;
  ASSERT_TRUE(segment_log::open(opts, &again).ok());
  EXPECT_FALSE(again.repaired);
}

TEST(SegmentLog, TheTruncatePolicyDropsEverythingFromAMissingSegment) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1500);
  ASSERT_EQ(write_rolled(opts).size(), 60u);
  auto segments = files_with(dir.path, ".log");
  fs::remove(segments[2]);
  ASSERT_FALSE(segment_log::open(opts).ok());
  opts.on_corruption = corruption_policy::truncate;
  recovery_report report;
  auto log = segment_log::open(opts, &report);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  EXPECT_EQ(report.repaired_segments_removed, segments.size() - 3);
  EXPECT_EQ((*log)->next_offset(), std::stoull(segments[2].filename().string().substr(0, 20)));
  EXPECT_EQ((*log)->segment_count(), 2u);
  ASSERT_TRUE((*log)->append(make_batch(0, 1)).ok());
}

} // namespace
} // namespace levee::persistence

namespace levee::persistence {
namespace {

// visit() reads records in place with a hand-written parser; read() decodes them with
// protobuf's. Both must see the same records, compressed, compacted or not, from any offset.
TEST(SegmentLog, VisitSeesWhatReadDecodes) {
  for (bool compress : {false, true}) {
    temp_dir dir;
    auto opts = rolling(dir.path, 3000);
    opts.limits.compress = compress;
    auto log = segment_log::open(opts);
    auto all = keyed_history(**log, 30, 5, 6);
    ASSERT_TRUE((*log)->compact({}, 0).ok());
    for (uint64_t from = 0; from < all.size(); from += 7) {
      auto recs = (*log)->read(from, 2048);
      ASSERT_TRUE(recs.ok());
      std::vector<stored_record> seen;
      auto next = (*log)->visit(from, 2048, [&](const record_view& v) {
        seen.push_back(stored_record{v.offset, record{std::string{v.key}, std::string{v.value},
                                                      v.timestamp_ms, {}}});
        return true;
      });
      ASSERT_TRUE(next.ok()) << next.error().to_string();
      ASSERT_EQ(seen.size(), recs->size()) << "from " << from;
      for (size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].offset, (*recs)[i].offset);
        EXPECT_EQ(seen[i].rec.key, (*recs)[i].rec.key);
        EXPECT_EQ(seen[i].rec.value, (*recs)[i].rec.value);
        EXPECT_EQ(seen[i].rec.timestamp_ms, (*recs)[i].rec.timestamp_ms);
      }
      if (!seen.empty()) {
        EXPECT_GT(*next, seen.back().offset);
      }
    }
    // Stopping after the first record reads no further batch.
    size_t calls = 0;
    auto stopped = (*log)->visit(0, 1ull << 30, [&](const record_view&) {
      ++calls;
      return false;
    });
    ASSERT_TRUE(stopped.ok());
    EXPECT_EQ(calls, 1u);
    EXPECT_LE(*stopped, 5u);  // the end of the first batch (5 records a batch)
    auto end = (*log)->visit((*log)->next_offset(), 100, [](const record_view&) {
      ADD_FAILURE();
      return true;
    });
    ASSERT_TRUE(end.ok());
    EXPECT_EQ(*end, (*log)->next_offset());
  }
}

} // namespace
} // namespace levee::persistence

namespace levee::persistence {
namespace {

// A segment rolls when it is older than max_segment_age_ms at an append, however small.
TEST(SegmentLog, SegmentsRollByAge) {
  temp_dir dir;
  int64_t now = 1000;
  auto opts = options(dir.path);
  opts.max_segment_age_ms = 500;
  opts.now_ms = [&] { return now; };
  auto log = segment_log::open(opts);
  ASSERT_TRUE((*log)->append(make_batch(0, 3)).ok());
  now += 499;
  ASSERT_TRUE((*log)->append(make_batch(3, 3)).ok());
  EXPECT_EQ((*log)->segment_count(), 1u);
  now += 1;
  ASSERT_TRUE((*log)->append(make_batch(6, 3)).ok());
  EXPECT_EQ((*log)->segment_count(), 2u);
  now += 10'000;
  log->reset();
  log = segment_log::open(opts);  // reopened: its age counts from the reopening
  ASSERT_TRUE((*log)->append(make_batch(9, 1)).ok());
  EXPECT_EQ((*log)->segment_count(), 2u);
  now += 500;
  ASSERT_TRUE((*log)->append(make_batch(10, 1)).ok());
  EXPECT_EQ((*log)->segment_count(), 3u);
  auto recs = (*log)->read(0, 1 << 20);
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 11u);
}

} // namespace
} // namespace levee::persistence

namespace levee::persistence {
namespace {

/// Real files; counts the reads that reach them.
struct read_counting_io final : forwarding_io {
  uint64_t preads = 0;
  int64_t pread(int fd, void* data, size_t n, uint64_t offset) override {
    ++preads;
    return real.pread(fd, data, n, offset);
  }
};

std::vector<stored_record> read_all(const segment_log& log, uint64_t from) {
  auto r = log.read(from, 1 << 20);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  return r.ok() ? *r : std::vector<stored_record>{};
}

TEST(ReadCache, ABatchReadTwiceIsKeptAndThenReadWithoutTheFile) {
  temp_dir dir;
  read_counting_io io;
  auto opts = rolling(dir.path, 1 << 20);
  opts.io = &io;
  opts.read_cache_bytes = 64 * 1024;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  auto batch = make_batch(0, 8, 200);
  ASSERT_TRUE((*log)->append(batch).ok());
  auto& cache = (*log)->read_cache();
  // First read: from the file, offered once, not kept.
  ASSERT_EQ(read_all(**log, 3).size(), 5u);
  EXPECT_EQ(cache.size(), 0u);
  auto after_first = io.preads;
  EXPECT_GT(after_first, 0u);
  // Second: from the file again, now kept.
  ASSERT_EQ(read_all(**log, 3).size(), 5u);
  EXPECT_EQ(cache.size(), 1u);
  auto after_second = io.preads;
  EXPECT_GT(after_second, after_first);
  // Third and later: no read reaches the file, and the records are the same.
  for (uint64_t from : {0, 3, 7}) {
    auto recs = read_all(**log, from);
    ASSERT_EQ(recs.size(), 8 - from);
    for (auto& r : recs)
      EXPECT_EQ(r.rec, batch[r.offset]);
  }
  EXPECT_EQ(io.preads, after_second);
  EXPECT_EQ(cache.hits(), 3u);
  // visit() sees the cached batch too.
  uint64_t seen = 0;
  ASSERT_TRUE((*log)->visit(0, 1 << 20, [&](const record_view& r) {
    EXPECT_EQ(std::string(r.value), batch[r.offset].value);
    ++seen;
    return true;
  }).ok());
  EXPECT_EQ(seen, 8u);
  EXPECT_EQ(io.preads, after_second);
}

TEST(ReadCache, AOnePassScanKeepsNothingAndTheBoundHolds) {
  temp_dir dir;
  auto opts = rolling(dir.path, 16 * 1024);
  opts.read_cache_bytes = 8 * 1024;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  for (int b = 0; b < 40; ++b)
    ASSERT_TRUE((*log)->append(make_batch(b * 4, 4, 300)).ok());  // ~1.3 KB batches
  ASSERT_GT((*log)->segment_count(), 2u);
  auto& cache = (*log)->read_cache();
  EXPECT_EQ(read_all(**log, 0).size(), 160u);  // one pass over every segment
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
  // Read again and again: what is kept stays under the bound, least recently used out.
  for (int pass = 0; pass < 3; ++pass) {
    auto recs = read_all(**log, 0);
    ASSERT_EQ(recs.size(), 160u);
    for (size_t i = 0; i < recs.size(); ++i)
      ASSERT_EQ(recs[i].offset, i);
    EXPECT_LE(cache.bytes(), 8u * 1024);
  }
  EXPECT_GT(cache.size(), 0u);
  EXPECT_GT(cache.hits(), 0u);
}

TEST(ReadCache, ABatchOverAQuarterOfTheBoundIsNeverKept) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1 << 20);
  opts.read_cache_bytes = 8 * 1024;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->append(make_batch(0, 10, 400)).ok());  // ~4.2 KB
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(read_all(**log, 0).size(), 10u);
  EXPECT_EQ((*log)->read_cache().size(), 0u);
  EXPECT_EQ((*log)->read_cache().hits(), 0u);
}

TEST(ReadCache, TruncationRetentionAndCompactionNeverServeOldBytes) {
  temp_dir dir;
  auto opts = rolling(dir.path, 1500);
  opts.read_cache_bytes = 1 << 20;
  auto log = segment_log::open(opts);
  ASSERT_TRUE(log.ok());
  for (int b = 0; b < 12; ++b)
    ASSERT_TRUE((*log)->append(make_batch(b * 5, 5, 100)).ok());
  auto warm = [&](uint64_t from) {
    read_all(**log, from);
    read_all(**log, from);  // kept now
  };
  auto& cache = (*log)->read_cache();
  // Truncate into the middle of a cached batch, then append different records at the same
  // offsets and positions: the reads return the new ones.
  warm(50);
  ASSERT_GT(cache.size(), 0u);
  ASSERT_TRUE((*log)->truncate_to(52).ok());
  EXPECT_EQ(cache.size(), 0u);
  auto replaced = make_batch(1000, 8, 100);
  ASSERT_TRUE((*log)->append(replaced).ok());
  warm(50);
  auto recs = read_all(**log, 52);
  ASSERT_EQ(recs.size(), 8u);
  for (size_t i = 0; i < recs.size(); ++i)
    EXPECT_EQ(recs[i].rec, replaced[i]);
  // Retention removes the cached segments: the cache is emptied with them.
  warm(0);
  ASSERT_GT(cache.size(), 0u);
  segment_log::retention by_count{0, 20, 0};
  ASSERT_GT(*(*log)->apply_retention(by_count, 0), 0u);
  EXPECT_EQ(cache.size(), 0u);
  // Compaction rewrites closed segments: the cache is emptied before any is read again.
  auto start = (*log)->start_offset();
  warm(start);
  ASSERT_GT(cache.size(), 0u);
  ASSERT_TRUE((*log)->compact({}, 1'700'000'000'000).ok());
  EXPECT_EQ(cache.size(), 0u);
  auto after = read_all(**log, start);
  ASSERT_FALSE(after.empty());
  // What a fresh log (no cache) reads from the same files.
  auto plain_opts = rolling(dir.path, 1500);
  log->reset();
  auto plain = segment_log::open(plain_opts);
  ASSERT_TRUE(plain.ok());
  auto expected = read_all(**plain, start);
  ASSERT_EQ(after.size(), expected.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].offset, expected[i].offset);
    EXPECT_EQ(after[i].rec, expected[i].rec);
  }
}

} // namespace
} // namespace levee::persistence
