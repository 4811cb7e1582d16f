// File tail checkpoints (events/EVENTS.md "Positions and restarts", persistence/FORMAT.md
// "Source positions"): a file_tail says where each event's line ended, and a new
// file_tail resumed from such a position reads every later line once — in the same file,
// across a rotation while stopped, after the rotated file was deleted, after a truncation,
// and when the inode now holds another file. Then the positions' recovery from a store:
// the hint, the log batches after it, a hint ahead of the log, a damaged hint.
//
// Real files in a temporary directory. Every file is written before the poll that reads
// it, and one poll reads all there is (within its budget), so nothing here waits.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events/defaults.hpp"
#include "events/file_tail.hpp"
#include "limits/defaults.hpp"
#include "persistence/checkpoint.hpp"
#include "persistence/crc32c.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/source_positions.hpp"

namespace levee {
namespace {

namespace fs = std::filesystem;
using events::event;
using events::file_tail;
using events::file_tail_config;
using persistence::file_position;

constexpr int64_t now_ms = 1'800'000'000'000;

struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path = fs::path{"/tmp"} / ("levee-tail-test-" + std::to_string(::getpid()) + "-"
                               + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void append(const std::string& path, const std::string& text) {
  std::ofstream f{path, std::ios::binary | std::ios::app};
  f << text;
}

/// Rewrites the file in place: same inode, new bytes.
void overwrite(const std::string& path, const std::string& text) {
  std::ofstream f{path, std::ios::binary | std::ios::trunc};
  f << text;
}

std::string line(int n, const std::string& file = "a") {
  return "{\"file\":\"" + file + "\",\"n\":" + std::to_string(n) + "}\n";
}

std::string lines(int first, int last, const std::string& file = "a") {
  std::string out;
  for (int n = first; n <= last; ++n)
    out += line(n, file);
  return out;
}

int64_t n_of(const event& e) {
  auto* v = e.find("n");
  return v != nullptr && std::holds_alternative<int64_t>(*v) ? std::get<int64_t>(*v) : -1;
}

std::vector<int64_t> ns(const std::vector<event>& events) {
  std::vector<int64_t> out;
  for (auto& e : events)
    out.push_back(n_of(e));
  return out;
}

file_tail_config config(const std::string& path, bool start_at_end = false) {
  file_tail_config c;
  c.path = path;
  c.start_at_end = start_at_end;
  return c;
}

/// One poll of at most `max_events`: everything written before it that fits.
std::vector<event> poll(file_tail& tail, size_t max_events = 1000) {
  std::vector<event> out;
  tail.poll(out, max_events, now_ms);
  return out;
}

/// Waits, in pauses of 1 ms (bounded), until a file made now is born later than `path`:
/// birth times come from a coarse clock (a few ms), and these tests order files by them.
void after_birth_of(const std::string& path) {
  auto born = [](const std::string& p) {
    struct statx sx {};
    EXPECT_EQ(::statx(AT_FDCWD, p.c_str(), 0, STATX_BTIME, &sx), 0) << p;
    EXPECT_NE(sx.stx_mask & STATX_BTIME, 0u) << "no birth times on this file system";
    return std::make_pair(sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec);
  };
  auto probe = path + ".probe";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    append(probe, "");
    bool later = born(probe) > born(path);
    fs::remove(probe);
    if (later || std::chrono::steady_clock::now() > deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

file_position inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  file_position p;
  p.device = static_cast<uint64_t>(st.st_dev);
  p.inode = static_cast<uint64_t>(st.st_ino);
  return p;
}

// -- the encoding -------------------------------------------------------------------------

TEST(TailCheckpoint, DefaultsArePinned) {
  EXPECT_EQ(events::defaults::fingerprint_bytes, 1024u);
  EXPECT_EQ(events::defaults::fingerprint_bytes_ceiling, 65'536u);
  EXPECT_EQ(events::defaults::rotated_search_max_entries, 100'000u);
  EXPECT_EQ(defaults::log_position_hint_max_bytes, 1024u * 1024);
  EXPECT_EQ(file_tail_config{}.fingerprint_bytes, 1024u);
}

TEST(TailCheckpoint, FingerprintBytesOutOfRangeNamesTheKey) {
  auto c = config("/tmp/x");
  c.fingerprint_bytes = 0;
  auto st = validate(c, "source.app");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::bad_request);
  EXPECT_EQ(st.message(), "source.app.fingerprint_bytes = 0: must be between 1 and 65536 bytes");
  c.fingerprint_bytes = 65'537;
  EXPECT_FALSE(validate(c).ok());
}

TEST(TailCheckpoint, HeaderValueIsTheWorkedExampleOfFormatMd) {
  file_position p;
  p.device = 2049;
  p.inode = 131074;
  p.offset = 62;
  p.fingerprint = 0x11223344;
  p.fingerprint_bytes = 62;
  auto encoded = persistence::encode_file_position(p);
  ASSERT_EQ(encoded.size(), persistence::file_position_bytes);
  auto value = persistence::position_header_value("app", encoded);
  const unsigned char expected[] = {
    0x01, 0x03, 'a', 'p', 'p',                        // version, name
    0x01, 0x08, 0, 0, 0, 0, 0, 0,                     // device 2049
    0x02, 0x00, 0x02, 0, 0, 0, 0, 0,                  // inode 131074
    0x3e, 0, 0, 0, 0, 0, 0, 0,                        // offset 62
    0x44, 0x33, 0x22, 0x11,                           // fingerprint
    0x3e, 0, 0, 0,                                    // fingerprint_bytes
    0x00,                                             // flags
  };
  EXPECT_EQ(value, std::string(reinterpret_cast<const char*>(expected), sizeof expected));
  std::string name;
  file_position back;
  ASSERT_TRUE(persistence::parse_position_header(value, name, back));
  EXPECT_EQ(name, "app");
  EXPECT_EQ(back, p);
  p.mid_line = true;
  ASSERT_TRUE(persistence::decode_file_position(persistence::encode_file_position(p), back));
  EXPECT_TRUE(back.mid_line);
  // Unknown flags, a short value, another version: refused, not misread.
  auto bad = persistence::encode_file_position(p);
  bad.back() = 0x02;
  EXPECT_FALSE(persistence::decode_file_position(bad, back));
  EXPECT_FALSE(persistence::parse_position_header(value.substr(0, value.size() - 1), name, back));
  auto other = value;
  other[0] = 2;
  EXPECT_FALSE(persistence::parse_position_header(other, name, back));
}

// -- positions while reading ---------------------------------------------------------------

TEST(TailCheckpoint, EachEventCarriesThePositionAfterItsLine) {
  temp_dir dir;
  auto path = dir.file("app.log");
  auto text = line(1) + "not json\n" + line(2) + "\n" + line(3) + "{\"n\":4";
  append(path, text);
  file_tail tail{config(path), {}};
  auto got = poll(tail);
  ASSERT_EQ(ns(got), (std::vector<int64_t>{1, 2, 3}));
  auto* ends = tail.event_positions();
  ASSERT_NE(ends, nullptr);
  ASSERT_EQ(ends->size(), 3u);
  auto id = inode_of(path);
  auto after = [&](const std::string& prefix) { return prefix.size(); };
  EXPECT_EQ((*ends)[0].offset, after(line(1)));
  EXPECT_EQ((*ends)[1].offset, after(line(1) + "not json\n" + line(2)));
  EXPECT_EQ((*ends)[2].offset, after(line(1) + "not json\n" + line(2) + "\n" + line(3)));
  for (auto& p : *ends) {
    EXPECT_EQ(p.device, id.device);
    EXPECT_EQ(p.inode, id.inode);
    EXPECT_FALSE(p.mid_line);
  }
  // The fingerprint covers the first bytes read (the whole file: it is under 1 KiB).
  auto& last = ends->back();
  EXPECT_EQ(last.fingerprint_bytes, text.size());
  EXPECT_EQ(last.fingerprint, persistence::crc32c(0, text.data(), text.size()));
  // The position of the source is after the last whole line; the partial one is not in it.
  ASSERT_TRUE(tail.position().has_value());
  EXPECT_EQ(tail.position()->offset, last.offset);
  // A poll with nothing new has no event positions, and bad lines move position() alone.
  append(path, "}\nbad\n");
  got = poll(tail);
  ASSERT_EQ(ns(got), (std::vector<int64_t>{4}));
  append(path, "also bad\n");
  EXPECT_TRUE(poll(tail).empty());
  EXPECT_TRUE(tail.event_positions()->empty());
  EXPECT_EQ(tail.position()->offset, fs::file_size(path));
}

TEST(TailCheckpoint, APositionBeforeAnyFileSaysThereWasNone) {
  temp_dir dir;
  auto path = dir.file("app.log");
  file_tail tail{config(path, /*start_at_end=*/true), {}};
  EXPECT_FALSE(tail.position().has_value());  // before the first poll: nothing known
  EXPECT_TRUE(poll(tail).empty());
  ASSERT_TRUE(tail.position().has_value());
  EXPECT_FALSE(tail.position()->has_file());
  // Resumed from it, a file that appeared meanwhile is read from its start, although the
  // config says start_at_end.
  append(path, lines(1, 3));
  file_tail again{config(path, /*start_at_end=*/true), {}};
  auto note = again.resume(*tail.position());
  EXPECT_NE(note.find("read from its start"), std::string::npos) << note;
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{1, 2, 3}));
}

// -- resuming --------------------------------------------------------------------------------

TEST(TailCheckpoint, ResumesInTheSameFileAtTheByteAfterTheLastStoredLine) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 5) + "{\"n\":6,");
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first, 3)), (std::vector<int64_t>{1, 2, 3}));
  auto stored = first.event_positions()->back();  // the store took events 1..3
  // Stopped; the writer finishes line 6 and adds 7 meanwhile.
  append(path, "\"x\":1}\n" + line(7));
  // start_at_end does not apply to a source with a stored position.
  file_tail again{config(path, /*start_at_end=*/true), {}};
  auto note = again.resume(stored);
  EXPECT_EQ(note, "resuming " + path + " at byte " + std::to_string(stored.offset));
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(again.stats().files_lost, 0u);
  EXPECT_EQ(again.stats().truncations, 0u);
  EXPECT_EQ(again.stats().bad_lines, 0u);
  // And it follows the file on.
  append(path, line(8));
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{8}));
}

TEST(TailCheckpoint, AMidLineStartIsResumedBySkippingThatLine) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 2) + "{\"n\":3");
  file_tail first{config(path, /*start_at_end=*/true), {}};
  EXPECT_TRUE(poll(first).empty());
  auto at = first.position();
  ASSERT_TRUE(at.has_value());
  EXPECT_TRUE(at->mid_line);
  EXPECT_EQ(at->offset, fs::file_size(path));
  append(path, "}\n" + line(4));
  file_tail again{config(path), {}};
  again.resume(*at);
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{4}));  // the half-seen line 3 is skipped
  EXPECT_EQ(again.stats().bad_lines, 0u);
  EXPECT_FALSE(again.position()->mid_line);
}

TEST(TailCheckpoint, RotatedWhileStoppedReadsTheOldFileToItsEndThenTheNewOne) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 4));
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first, 2)), (std::vector<int64_t>{1, 2}));
  auto stored = first.event_positions()->back();
  // While stopped: more lines in the old file, the last one unterminated; it is renamed
  // and a new file takes the path.
  append(path, line(5) + "{\"file\":\"a\",\"n\":6}");
  fs::rename(path, dir.file("app.log.1"));
  append(path, lines(7, 8, "b"));
  file_tail again{config(path), {}};
  auto note = again.resume(stored);
  EXPECT_EQ(note, path + " was rotated while the satellite was stopped: reading " + path
                    + ".1 from byte " + std::to_string(stored.offset) + " to its end, then "
                    + path + " from its start");
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(again.stats().rotations, 1u);
  EXPECT_EQ(again.stats().files_lost, 0u);
  // The positions of the new file's events name the new file.
  auto ends = *again.event_positions();
  ASSERT_EQ(ends.size(), 6u);
  EXPECT_EQ(ends[3].inode, stored.inode);
  EXPECT_EQ(ends[4].inode, inode_of(path).inode);
  EXPECT_EQ(ends[5].offset, lines(7, 8, "b").size());
}

TEST(TailCheckpoint, RotatedTwiceWhileStoppedReadsEveryFileInTheOrderTheyWereBorn) {
  temp_dir dir;
  auto path = dir.file("app.log");
  // An older rotated file, born before the one the position is in: not read again.
  append(dir.file("app.log.9"), lines(900, 901, "old"));
  after_birth_of(dir.file("app.log.9"));
  append(path, lines(1, 4));
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first, 2)), (std::vector<int64_t>{1, 2}));
  auto stored = first.event_positions()->back();
  // Stopped: rotated twice, names shifting as logrotate does (the newest is .1), with a
  // compressed copy among them.
  after_birth_of(path);
  fs::rename(path, dir.file("app.log.1"));
  append(path, lines(5, 6, "b"));
  append(dir.file("app.log.3.gz"), "\x1f\x8b not lines\n");
  after_birth_of(path);
  fs::rename(dir.file("app.log.1"), dir.file("app.log.2"));
  fs::rename(path, dir.file("app.log.1"));
  append(path, lines(7, 8, "c"));
  file_tail again{config(path), {}};
  auto note = again.resume(stored);
  EXPECT_EQ(note, path + " was rotated while the satellite was stopped: reading " + path
                    + ".2 from byte " + std::to_string(stored.offset) + " to its end, then "
                    + path + ".1, " + path + " from its start");
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(again.stats().files_lost, 0u);
  EXPECT_EQ(again.stats().bad_lines, 0u);
}

TEST(TailCheckpoint, TwoRotationsBetweenPollsAreBothRead) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 2));
  file_tail tail{config(path), {}};
  ASSERT_EQ(ns(poll(tail)), (std::vector<int64_t>{1, 2}));
  append(path, line(3));
  after_birth_of(path);
  fs::rename(path, dir.file("app.log.1"));
  append(path, lines(4, 5, "b"));
  after_birth_of(path);
  fs::rename(path, dir.file("app.log.2"));
  append(path, lines(6, 7, "c"));
  EXPECT_EQ(ns(poll(tail)), (std::vector<int64_t>{3, 4, 5, 6, 7}));
  EXPECT_EQ(tail.stats().files_lost, 0u);
  EXPECT_EQ(tail.stats().files_opened, 3u);
}

TEST(TailCheckpoint, AFileBornInTheSameClockTickAsTheCurrentOneIsNotReadAgain) {
  temp_dir dir;
  auto path = dir.file("app.log");
  auto born = [](const std::string& p) {
    struct statx sx {};
    EXPECT_EQ(::statx(AT_FDCWD, p.c_str(), 0, STATX_BTIME, &sx), 0);
    return std::make_pair(sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec);
  };
  // The previous file, rotated away, and the current one, born in the same tick of the
  // coarse clock birth times come from (made back to back until they are).
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::remove(path);
    fs::remove(dir.file("app.log.1"));
    append(path, lines(1, 2, "p"));
    fs::rename(path, dir.file("app.log.1"));
    append(path, lines(3, 4));
    if (born(path) == born(dir.file("app.log.1")))
      break;
  }
  ASSERT_EQ(born(path), born(dir.file("app.log.1")));
  file_tail tail{config(path), {}};
  ASSERT_EQ(ns(poll(tail)), (std::vector<int64_t>{3, 4}));
  after_birth_of(path);
  fs::rename(path, dir.file("app.log.2"));
  append(path, lines(5, 6, "c"));
  // Only the new file follows: the one born in the same tick could be (and is) older.
  EXPECT_EQ(ns(poll(tail)), (std::vector<int64_t>{5, 6}));
}

TEST(TailCheckpoint, RotatedAndDeletedWhileStoppedReadsTheNewFileAndCountsTheLoss) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 4));
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first, 2)), (std::vector<int64_t>{1, 2}));
  auto stored = first.event_positions()->back();
  fs::rename(path, dir.file("app.log.1"));
  append(path, lines(7, 8, "b"));
  // The old file is removed (its inode may now be reused: it is not found either way).
  fs::remove(dir.file("app.log.1"));
  file_tail again{config(path), {}};
  auto note = again.resume(stored);
  EXPECT_NE(note.find("is gone: lines written to it after byte " + std::to_string(stored.offset)
                      + ", before it was rotated away, may be lost; reading " + path
                      + " from its start"),
            std::string::npos)
    << note;
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(again.stats().files_lost, 1u);
}

TEST(TailCheckpoint, RotatedAwayWithNoNewFileYetFollowsTheOldOneUntilOneAppears) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 3));
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first, 1)), (std::vector<int64_t>{1}));
  auto stored = first.event_positions()->back();
  fs::rename(path, dir.file("app.log.1"));
  file_tail again{config(path), {}};
  again.resume(stored);
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{2, 3}));
  append(dir.file("app.log.1"), line(4));  // its writer still has it open
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{4}));
  append(path, line(5, "b"));
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{5}));
  EXPECT_EQ(again.stats().files_lost, 0u);
}

TEST(TailCheckpoint, TruncatedWhileStoppedIsReadFromItsStartAndCounted) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 5));
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first)).size(), 5u);
  auto stored = first.event_positions()->back();
  auto id = inode_of(path);
  fs::resize_file(path, 0);  // copytruncate, then the writer goes on
  append(path, line(6));
  ASSERT_EQ(inode_of(path).inode, id.inode);
  file_tail again{config(path), {}};
  auto note = again.resume(stored);
  EXPECT_NE(note.find("was truncated, and is read again from its start"), std::string::npos)
    << note;
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{6}));
  EXPECT_EQ(again.stats().truncations, 1u);
  EXPECT_EQ(again.stats().files_lost, 0u);
}

TEST(TailCheckpoint, AnInodeHoldingOtherBytesIsAnotherFileReadFromItsStart) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 3));
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first)).size(), 3u);
  auto stored = first.event_positions()->back();
  // The same inode now holds a different file, longer than the stored offset: only the
  // fingerprint can tell (an inode of a deleted file handed to a new one looks the same).
  overwrite(path, lines(100, 110, "other"));
  ASSERT_EQ(inode_of(path).inode, stored.inode);
  ASSERT_GT(fs::file_size(path), stored.offset);
  file_tail again{config(path), {}};
  auto note = again.resume(stored);
  EXPECT_NE(note.find("is gone"), std::string::npos) << note;
  auto got = ns(poll(again));
  ASSERT_EQ(got.size(), 11u);
  EXPECT_EQ(got.front(), 100);
  EXPECT_EQ(again.stats().files_lost, 1u);
}

TEST(TailCheckpoint, AnotherFileWithTheOldInodeBesideThePathIsNotTakenForTheOldOne) {
  temp_dir dir;
  auto path = dir.file("app.log");
  append(path, lines(1, 3));
  file_tail first{config(path), {}};
  ASSERT_EQ(ns(poll(first)).size(), 3u);
  auto stored = first.event_positions()->back();
  // Renamed away and rewritten in place under its new name (other bytes, same inode).
  fs::rename(path, dir.file("app.log.1"));
  overwrite(dir.file("app.log.1"), lines(50, 60, "x"));
  append(path, line(7, "b"));
  file_tail again{config(path), {}};
  auto note = again.resume(stored);
  EXPECT_NE(note.find("is gone"), std::string::npos) << note;
  EXPECT_EQ(ns(poll(again)), (std::vector<int64_t>{7}));
  EXPECT_EQ(again.stats().files_lost, 1u);
}

// -- recovering positions from a store -----------------------------------------------------

struct store_fixture {
  temp_dir dir;
  std::string hint = dir.file("source-positions");
  std::unique_ptr<persistence::segment_log> log;

  store_fixture() {
    persistence::log_options o;
    o.dir = dir.file("log");
    o.fsync = persistence::fsync_policy::none;
    o.limits.compress = false;
    auto opened = persistence::segment_log::open(o);
    EXPECT_TRUE(opened.ok());
    log = std::move(*opened);
  }

  /// A batch of `events` records for `source`, the last carrying `at` as the store writes it.
  void append(const std::string& source, int events, const file_position& at) {
    std::vector<persistence::record> batch;
    for (int i = 0; i < events; ++i)
      batch.push_back(persistence::record{{}, "event " + std::to_string(i), now_ms, {}});
    batch.back().headers.emplace_back(
      std::string{persistence::position_header_name},
      persistence::position_header_value(source, persistence::encode_file_position(at)));
    ASSERT_TRUE(log->append(batch).ok());
  }

  persistence::position_recovery recover() {
    auto r = persistence::recover_positions(*log, hint);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? std::move(*r) : persistence::position_recovery{};
  }
};

file_position at(uint64_t offset, uint64_t inode = 7) {
  file_position p;
  p.device = 1;
  p.inode = inode;
  p.offset = offset;
  p.fingerprint = 0xabcd;
  p.fingerprint_bytes = 100;
  return p;
}

TEST(TailCheckpointRecovery, TheHintThenNewerPositionsFromTheBatchesAfterIt) {
  store_fixture s;
  s.append("app", 3, at(100));
  s.append("other", 2, at(40, 9));
  persistence::position_hint h;
  h.log_offset = s.log->next_offset();
  h.positions = {{"app", at(100)}, {"other", at(40, 9)}, {"quiet", at(5, 11)}};
  ASSERT_TRUE(persistence::write_position_hint(s.hint, h).ok());
  s.append("app", 4, at(200));
  s.append("app", 1, at(230));
  s.append("late", 1, at(1, 12));
  auto r = s.recover();
  EXPECT_TRUE(r.hint_used);
  EXPECT_EQ(r.whole_log_because, "");
  EXPECT_EQ(r.scanned_from, h.log_offset);
  EXPECT_EQ(r.headers_found, 3u);  // only the batches after the hint were read
  EXPECT_EQ(r.positions.size(), 4u);
  EXPECT_EQ(r.positions["app"], at(230));
  EXPECT_EQ(r.positions["other"], at(40, 9));
  EXPECT_EQ(r.positions["quiet"], at(5, 11));  // only in the hint (no batch carries it)
  EXPECT_EQ(r.positions["late"], at(1, 12));
}

TEST(TailCheckpointRecovery, TheHintIsUsedAlsoWhenNothingFollowsIt) {
  store_fixture s;
  s.append("app", 3, at(100));
  persistence::position_hint h;
  h.log_offset = s.log->next_offset();
  h.positions = {{"app", at(100)}};
  ASSERT_TRUE(persistence::write_position_hint(s.hint, h).ok());
  auto r = s.recover();
  EXPECT_TRUE(r.hint_used);
  EXPECT_EQ(r.headers_found, 0u);
  EXPECT_EQ(r.positions["app"], at(100));
}

TEST(TailCheckpointRecovery, AHintAheadOfTheLogFallsBackToTheWholeLog) {
  store_fixture s;
  s.append("app", 3, at(100));
  s.append("app", 3, at(200));
  persistence::position_hint h;
  h.log_offset = s.log->next_offset();
  h.positions = {{"app", at(200)}};
  ASSERT_TRUE(persistence::write_position_hint(s.hint, h).ok());
  // The log's tail is cut (as recovery cuts a torn write): the hint now covers events
  // that are gone, and its position would skip their lines.
  ASSERT_TRUE(s.log->truncate_to(3).ok());
  auto r = s.recover();
  EXPECT_FALSE(r.hint_used);
  EXPECT_EQ(r.scanned_from, 0u);
  EXPECT_NE(r.whole_log_because.find("covers the log up to offset 6, past its end at 3"),
            std::string::npos)
    << r.whole_log_because;
  EXPECT_EQ(r.positions["app"], at(100));
}

TEST(TailCheckpointRecovery, ADamagedHintFallsBackToTheWholeLog) {
  store_fixture s;
  s.append("app", 3, at(100));
  persistence::position_hint h;
  h.log_offset = s.log->next_offset();
  h.positions = {{"app", at(999)}};
  ASSERT_TRUE(persistence::write_position_hint(s.hint, h).ok());
  s.append("app", 3, at(200));
  {
    std::fstream f{s.hint, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(30);
    f.put('\x5a');
  }
  auto damaged = persistence::read_position_hint(s.hint);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.error().code(), code::storage_error);
  auto r = s.recover();
  EXPECT_FALSE(r.hint_used);
  EXPECT_NE(r.whole_log_because.find("corrupt position hint"), std::string::npos)
    << r.whole_log_because;
  EXPECT_EQ(r.headers_found, 2u);
  EXPECT_EQ(r.positions["app"], at(200));
  // A hint cut short is damaged too.
  fs::resize_file(s.hint, 20);
  r = s.recover();
  EXPECT_NE(r.whole_log_because.find("shorter than its header"), std::string::npos)
    << r.whole_log_because;
}

TEST(TailCheckpointRecovery, NoHintReadsTheWholeLogAndSaysSoUnlessTheLogIsEmpty) {
  store_fixture s;
  auto empty = s.recover();
  EXPECT_EQ(empty.whole_log_because, "");
  EXPECT_TRUE(empty.positions.empty());
  s.append("app", 3, at(100));
  s.append("app", 3, at(150));
  auto r = s.recover();
  EXPECT_FALSE(r.hint_used);
  EXPECT_NE(r.whole_log_because.find("there is no position hint"), std::string::npos);
  EXPECT_EQ(r.positions["app"], at(150));
}

TEST(TailCheckpointRecovery, HintRoundTripsAndRefusesWhatWouldBeTooBig) {
  temp_dir dir;
  auto path = dir.file("hint");
  EXPECT_EQ(persistence::read_position_hint(path).error().code(), code::not_found);
  persistence::position_hint h;
  h.log_offset = 12345;
  h.positions = {{"a", at(1)}, {"b", at(2)}};
  h.positions["b"].mid_line = true;
  ASSERT_TRUE(persistence::write_position_hint(path, h).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto back = persistence::read_position_hint(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->log_offset, 12345u);
  EXPECT_EQ(back->positions, h.positions);
  persistence::position_hint big;
  big.positions[std::string(60'000, 'x')] = at(1);
  for (int i = 0; i < 20; ++i)
    big.positions[std::string(60'000, 'y') + std::to_string(i)] = at(1);
  auto st = persistence::write_position_hint(path, big);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::bad_request);
  EXPECT_NE(st.message().find("log_position_hint_max_bytes"), std::string::npos);
  EXPECT_EQ(persistence::read_position_hint(path)->log_offset, 12345u);  // the old one stays
}

TEST(TailCheckpointRecovery, VisitShowsEveryHeaderOfARecord) {
  store_fixture s;
  std::vector<persistence::record> batch(2);
  batch[0].value = "a";
  batch[1].value = "b";
  batch[1].headers = {{"one", "1"}, {"two", std::string("\0x", 2)}, {"", ""}};
  ASSERT_TRUE(s.log->append(batch).ok());
  std::vector<std::vector<std::pair<std::string, std::string>>> seen;
  ASSERT_TRUE(s.log
                ->visit(0, 1 << 20,
                        [&](const persistence::record_view& r) {
                          seen.emplace_back();
                          for (auto& [n, v] : r.headers)
                            seen.back().emplace_back(std::string{n}, std::string{v});
                          return true;
                        })
                .ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].empty());
  EXPECT_EQ(seen[1], batch[1].headers);
}

} // namespace
} // namespace levee
