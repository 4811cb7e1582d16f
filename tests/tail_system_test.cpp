// File tail checkpoints end to end (events/EVENTS.md "Positions and restarts"): a real
// server and a real satellite (`levee node` processes on 127.0.0.1) while this test
// appends numbered JSON lines to a file, now and then cuts a line in two writes, and
// rotates the file by rename — also while the satellite is down. The satellite is killed
// with SIGKILL at moments chosen by a seeded generator (when its stored event count, read
// from the server's satellite list, passes a random threshold) and started again. At the
// end a query through the server must show every line number exactly once: none lost,
// none stored twice. Run with start_at_end false and true.
//
// Waits are on the server's list moving (a request that names the version it saw and
// is held until the next heartbeat), on the satellite's stdout, or a bounded poll with a
// pause of a few ms; no outcome depends on a sleep. Every process runs under a guard that
// kills and reaps it, also when an assertion fails. LEVEE_TEST_SEED=<n> replays a run.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events/codec.hpp"
#include "levee/client.hpp"
#include "net/satellite.pb.h"
#include "persistence/checkpoint.hpp"
#include "persistence/segment_log.hpp"
#include "persistence/source_positions.hpp"
#include "tests/process_support.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

const std::string levee_binary = LEVEE_BINARY;

/// The bound on every wait: far above what a loaded 2-core machine needs.
constexpr milliseconds bound = 30s;

using test::ini;

/// Appends numbered lines {"n":N,"pad":"..."} to a file the way a logging application
/// does: through one descriptor, sometimes a line in two writes (its second half comes
/// with the next write), and rotation by rename: the old file is renamed, the writer
/// finishes its line there and reopens the path.
class line_writer {
public:
  line_writer(std::string path, std::mt19937_64& rng) : path_(std::move(path)), rng_(rng) {}
  ~line_writer() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  /// Writes lines n = next() .. next() + count - 1 (the last one maybe only in part).
  void write_lines(int count) {
    std::string text = std::move(pending_);
    pending_.clear();
    for (int i = 0; i < count; ++i) {
      // 0..1500 bytes of padding: a restart's backlog is over a store batch (1 MiB).
      auto pad = static_cast<size_t>(rng_() % 1500);
      text += "{\"n\":" + std::to_string(next_++) + ",\"pad\":\"" + std::string(pad, 'x') + "\"}\n";
    }
    if (count > 0 && rng_() % 4 == 0) {
      // The last line's second half waits for the next write: a reader sees it partial.
      auto last = text.rfind('{');
      auto cut = last + 1 + static_cast<size_t>(rng_() % (text.size() - last - 1));
      pending_ = text.substr(cut);
      text.resize(cut);
    }
    put(text);
  }

  /// Finishes a line cut in two.
  void finish_line() {
    put(pending_);
    pending_.clear();
  }

  /// path -> path.<k>; the partial line is finished in the old file, then the path is
  /// created again.
  void rotate() {
    ++rotations_;
    std::filesystem::rename(path_, path_ + "." + std::to_string(rotations_));
    finish_line();
    ::close(fd_);
    fd_ = -1;
  }

  int next() const noexcept { return next_; }
  int rotations() const noexcept { return rotations_; }

  /// Where line n ended: its file and the byte after its newline.
  const persistence::file_position* end_of(int64_t n) const {
    return n >= 0 && static_cast<size_t>(n) < ends_.size() ? &ends_[static_cast<size_t>(n)]
                                                            : nullptr;
  }

private:
  void put(const std::string& text) {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      ASSERT_GE(fd_, 0) << "cannot open " << path_;
      struct stat st {};
      ASSERT_EQ(::fstat(fd_, &st), 0);
      file_.device = static_cast<uint64_t>(st.st_dev);
      file_.inode = static_cast<uint64_t>(st.st_ino);
      file_.offset = static_cast<uint64_t>(st.st_size);
    }
    size_t done = 0;
    while (done < text.size()) {
      auto n = ::write(fd_, text.data() + done, text.size() - done);
      ASSERT_GT(n, 0) << "cannot write " << path_;
      done += static_cast<size_t>(n);
    }
    // Each newline completes the next line, in order.
    for (size_t i = 0; i < text.size(); ++i)
      if (text[i] == '\n') {
        ends_.push_back(file_);
        ends_.back().offset += i + 1;
      }
    file_.offset += text.size();
  }

  std::string path_;
  std::mt19937_64& rng_;
  int fd_ = -1;
  int next_ = 0;
  int rotations_ = 0;
  std::string pending_;
  persistence::file_position file_;            // the file fd_ writes, and its size
  std::vector<persistence::file_position> ends_;  // by line number
};

class TailSystem : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok()) << "cannot create a temporary directory in /tmp";
    seed_ = default_seed();
    if (auto* s = std::getenv("LEVEE_TEST_SEED"))
      seed_ = std::strtoull(s, nullptr, 10);
    RecordProperty("seed", std::to_string(seed_));
    rng_.seed(seed_);
  }
  virtual uint64_t default_seed() const { return 20240611u; }

  /// A server on a free port with heartbeats every 50 ms; sets port_.
  void start_server() {
    ini server;
    server.set("node", "roles", "server")
      .set("server", "listen", "127.0.0.1:0")
      .set("server", "heartbeat_interval_ms", "50")
      .set("server", "unhealthy_after", "1000")
      .set("server", "disconnect_after", "2000");
    auto listening = start(server_, "server", server, "server listening on");
    ASSERT_TRUE(listening.has_value()) << stderr_of("server");
    port_ = static_cast<uint16_t>(std::stoul(listening->substr(listening->rfind(':') + 1)));
  }

  /// Satellite "t" tailing `app` into the store `store`.
  ini satellite_config(const std::string& app, const std::string& store, bool start_at_end) {
    ini sat;
    sat.set("node", "roles", "satellite")
      .set("satellite", "id", "t")
      .set("satellite", "server", "127.0.0.1:" + std::to_string(port_))
      .set("satellite", "data_dir", store)
      .set("satellite", "poll_interval_ms", "10")
      // Syncs (and hint rewrites) often, so kills fall on every side of them.
      .set("satellite", "fsync_interval_ms", std::to_string(20 + rng_() % 200))
      .set("source.app", "type", "file_tail")
      .set("source.app", "path", app)
      .set("source.app", "start_at_end", start_at_end ? "true" : "false")
      // Appends of several MiB, so the store splits them into batches a kill can fall
      // between.
      .set("limits.store", "max_message_bytes", "16MiB")
      .set("limits.store", "mailbox_capacity_bytes", "64MiB");
    return sat;
  }

  /// Every n in [first, end) stored once, and nothing else.
  void expect_each_once(int first, int end, const char* when) {
    const auto expected = static_cast<uint64_t>(end - first);
    EXPECT_TRUE(until([&](const wire::SatelliteInfo& s) { return s.store().events() >= expected; }))
      << when << ": stored " << stored() << " of " << expected << "; stderr:\n"
      << stderr_of("satellite");
    auto got = stored_numbers();
    std::map<int64_t, int> times;
    for (auto n : got)
      ++times[n];
    std::vector<int64_t> missing;
    std::vector<int64_t> twice;
    std::vector<int64_t> unexpected;
    for (int n = first; n < end; ++n) {
      auto it = times.find(n);
      if (it == times.end())
        missing.push_back(n);
      else if (it->second > 1)
        twice.push_back(n);
    }
    for (auto& [n, count] : times)
      if (n < first || n >= end)
        unexpected.push_back(n);
    auto head = [](const std::vector<int64_t>& v) {
      std::string out;
      for (size_t i = 0; i < v.size() && i < 20; ++i)
        out += std::to_string(v[i]) + " ";
      return out + (v.size() > 20 ? "..." : "");
    };
    EXPECT_EQ(got.size(), expected) << when;
    EXPECT_TRUE(missing.empty()) << when << ": " << missing.size() << " missing: " << head(missing);
    EXPECT_TRUE(twice.empty()) << when << ": " << twice.size() << " stored more than once: "
                               << head(twice);
    EXPECT_TRUE(unexpected.empty()) << when << ": " << unexpected.size()
                                    << " that should not be there: " << head(unexpected);
  }

  /// Starts `levee node` with `config` (stderr appended to `stderr_path`) and waits for
  /// the line that says it runs; returns that line.
  std::optional<std::string> start(test::child_process& proc, const std::string& name,
                                   const ini& config, const std::string& needle) {
    auto path = dir_.file(name + ".ini");
    test::write_file(path, config.text());
    if (!proc.start({levee_binary, "node", "--config", path}, dir_.file(name + ".stderr")))
      return std::nullopt;
    return proc.wait_for_line(needle, bound);
  }

  std::string stderr_of(const std::string& name) {
    return test::read_file(dir_.file(name + ".stderr"));
  }

  client& admin() {
    if (!admin_) {
      client_options o;
      o.port = port_;
      o.node_id = "tail-system-test";
      admin_ = std::make_unique<client>(o);
    }
    if (!admin_->connected())
      if (auto st = admin_->connect_with_backoff(2s); !st)
        ADD_FAILURE() << "the admin client cannot connect: " << st.to_string();
    return *admin_;
  }

  /// The satellite's entry in the server's list, after the list moved past `seen_`
  /// (the next heartbeat, a registration, a disconnection) or a second passed.
  std::optional<wire::SatelliteInfo> next_info() {
    wire::SatellitesRequest req;
    if (seen_) {
      req.set_after_version(*seen_);
      req.set_wait_ms(1000);
    }
    auto r = admin().request("satellites", req.SerializeAsString(), 5s);
    wire::SatelliteList list;
    if (!r.ok() || !list.ParseFromString(*r.payload)) {
      admin().close();
      seen_.reset();
      return std::nullopt;
    }
    seen_ = list.version();
    for (auto& s : list.satellites())
      if (s.satellite_id() == "t")
        return s;
    return std::nullopt;
  }

  /// Waits until the satellite's entry satisfies `pred`.
  bool until(const std::function<bool(const wire::SatelliteInfo&)>& pred) {
    auto deadline = steady_clock::now() + bound;
    while (steady_clock::now() < deadline)
      if (auto info = next_info(); info && pred(*info))
        return true;
    return false;
  }

  uint64_t stored() {
    auto info = next_info();
    return info && info->state() == wire::SatelliteInfo::healthy ? info->store().events() : 0;
  }

  /// Every `n` the store holds, as the server's query answers it.
  std::vector<int64_t> stored_numbers() {
    client c{[&] {
      client_options o;
      o.port = port_;
      o.node_id = "tail-system-test-query";
      return o;
    }()};
    EXPECT_TRUE(c.connect_with_backoff(bound).ok());
    wire::QueryRequest q;
    q.set_text("fields n limit 1000000");
    q.set_satellite_id("t");
    uint64_t id = 0;
    EXPECT_FALSE(c.send_stream_request("query", q.SerializeAsString(), id).has_value());
    std::vector<int64_t> out;
    events::event ev;
    auto deadline = steady_clock::now() + bound;
    while (steady_clock::now() < deadline) {
      auto r = c.receive(duration_cast<milliseconds>(deadline - steady_clock::now()));
      if (r.rejected) {
        ADD_FAILURE() << "the query was refused: " << r.rejected->to_string();
        break;
      }
      if (r.request_id != id)
        continue;
      if (r.end_of_stream)
        break;
      wire::ResultBatch b;
      if (!r.batch || !b.ParseFromString(*r.payload))
        continue;
      for (auto& row : b.events()) {
        EXPECT_TRUE(events::decode(row, ev).ok());
        if (auto* v = ev.find("n"); v != nullptr && std::holds_alternative<int64_t>(*v))
          out.push_back(std::get<int64_t>(*v));
      }
    }
    return out;
  }

  test::temp_dir dir_{"levee-tail-system"};
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  uint16_t port_ = 0;
  std::optional<uint64_t> seen_;
  std::unique_ptr<client> admin_;
  // Declared after dir_: killed and reaped before the directory is removed.
  test::child_process server_;
  test::child_process satellite_;
};

class TailSystemTest : public TailSystem, public ::testing::WithParamInterface<bool> {
protected:
  uint64_t default_seed() const override { return 20240611u + (GetParam() ? 1 : 0); }
};

TEST_P(TailSystemTest, EveryLineIsStoredExactlyOnceAcrossKillsAndRotations) {
  const bool start_at_end = GetParam();
  SCOPED_TRACE("seed " + std::to_string(seed_) + " (LEVEE_TEST_SEED replays it)");
  ASSERT_NO_FATAL_FAILURE(start_server());
  auto app = dir_.file("app.log");
  auto store = dir_.file("store");
  auto sat = satellite_config(app, store, start_at_end);

  line_writer writer{app, rng_};
  // Lines before the first start: with start_at_end they are history, not read.
  writer.write_lines(200);
  writer.finish_line();
  const int first_expected = start_at_end ? writer.next() : 0;
  ASSERT_TRUE(start(satellite_, "satellite", sat, "dialing").has_value()) << stderr_of("satellite");
  // The satellite has settled where it starts once its first position is stored.
  auto hint = store + "/source-positions";
  for (auto deadline = steady_clock::now() + bound;
       !std::filesystem::exists(hint) && steady_clock::now() < deadline;)
    std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(std::filesystem::exists(hint)) << stderr_of("satellite");

  // At least this many lines, and on until the last kill.
  constexpr int min_lines = 6000;
  constexpr int kills = 6;
  int killed = 0;
  int rotated_while_down = 0;
  int next_rotation = 400 + static_cast<int>(rng_() % 800);
  uint64_t threshold = 100 + rng_() % 600;
  uint64_t last_stored = 0;
  auto last_progress = steady_clock::now();
  while (writer.next() < min_lines || killed < kills) {
    auto now_stored = stored();
    // Lost lines would leave the store behind the writer for good: fail, do not hang.
    if (now_stored != last_stored) {
      last_stored = now_stored;
      last_progress = steady_clock::now();
    }
    ASSERT_LT(steady_clock::now() - last_progress, 10s)
      << "the store stays at " << now_stored << " events with " << writer.next() - first_expected
      << " lines written to be read; stderr:\n" << stderr_of("satellite");
    // The writer stays at most 2000 lines ahead of the store, so kills fall while it
    // writes, not only while the satellite catches up.
    if (writer.next() - first_expected - static_cast<int64_t>(now_stored) < 2000) {
      writer.write_lines(1 + static_cast<int>(rng_() % 100));
      if (writer.next() >= next_rotation) {
        writer.rotate();
        next_rotation = writer.next() + 400 + static_cast<int>(rng_() % 800);
      }
    }
    if (killed < kills && now_stored >= threshold) {
      ASSERT_TRUE(satellite_.signal(SIGKILL));
      ASSERT_TRUE(satellite_.wait_exit(bound).has_value());
      ++killed;
      ASSERT_TRUE(until([](const wire::SatelliteInfo& s) { return s.state() == wire::SatelliteInfo::disconnected; }));
      // While it is down: more lines, and every other time a rotation between them.
      writer.write_lines(static_cast<int>(rng_() % 1500));
      if (killed % 2 == 1) {
        writer.rotate();
        ++rotated_while_down;
        writer.write_lines(static_cast<int>(rng_() % 300));
        next_rotation = writer.next() + 400 + static_cast<int>(rng_() % 800);
      }
      ASSERT_TRUE(start(satellite_, "satellite", sat, "dialing").has_value())
        << stderr_of("satellite");
      ASSERT_TRUE(until([](const wire::SatelliteInfo& s) { return s.state() == wire::SatelliteInfo::healthy; }))
        << stderr_of("satellite");
      threshold = stored() + 100 + rng_() % 900;
      last_progress = steady_clock::now();
    }
  }
  writer.finish_line();

  expect_each_once(first_expected, writer.next(), "after the kills");

  // A clean stop and start reads nothing again either: once a line written after the
  // start is stored, anything read again (from before it in the file) would be too.
  ASSERT_TRUE(satellite_.signal(SIGTERM));
  EXPECT_EQ(satellite_.wait_exit(bound), std::optional<int>{0});
  ASSERT_TRUE(until([](const wire::SatelliteInfo& s) { return s.state() == wire::SatelliteInfo::disconnected; }));
  ASSERT_TRUE(start(satellite_, "satellite", sat, "dialing").has_value());
  ASSERT_TRUE(until([](const wire::SatelliteInfo& s) { return s.state() == wire::SatelliteInfo::healthy; }));
  writer.write_lines(1);
  writer.finish_line();
  expect_each_once(first_expected, writer.next(), "after a clean restart");

  // In the store itself: each batch's last record carries the position just after its
  // own line (not after its append's last line, which a kill between two batches of one
  // append would turn into lost lines).
  ASSERT_TRUE(satellite_.signal(SIGTERM));
  EXPECT_EQ(satellite_.wait_exit(bound), std::optional<int>{0});
  persistence::log_options lo;
  lo.dir = store;
  lo.fsync = persistence::fsync_policy::none;
  auto log = persistence::segment_log::open(lo);
  ASSERT_TRUE(log.ok()) << log.error().to_string();
  uint64_t headers = 0;
  uint64_t wrong = 0;
  std::string first_wrong;
  events::event ev;
  for (uint64_t from = (*log)->start_offset(); from < (*log)->next_offset();) {
    auto records = (*log)->read(from, 1 << 20);
    ASSERT_TRUE(records.ok()) << records.error().to_string();
    ASSERT_FALSE(records->empty());
    for (auto& r : *records) {
      from = r.offset + 1;
      for (auto& [name, value] : r.rec.headers) {
        std::string source;
        persistence::file_position at;
        ASSERT_EQ(name, persistence::position_header_name);
        ASSERT_TRUE(persistence::parse_position_header(value, source, at));
        EXPECT_EQ(source, "app");
        ++headers;
        ASSERT_TRUE(events::decode(r.rec.value, ev).ok());
        auto* v = ev.find("n");
        ASSERT_TRUE(v != nullptr && std::holds_alternative<int64_t>(*v));
        auto* expected = writer.end_of(std::get<int64_t>(*v));
        ASSERT_NE(expected, nullptr);
        if (at.device != expected->device || at.inode != expected->inode
            || at.offset != expected->offset) {
          if (wrong++ == 0)
            first_wrong = "line " + std::to_string(std::get<int64_t>(*v)) + " ends at inode "
                          + std::to_string(expected->inode) + " byte "
                          + std::to_string(expected->offset) + ", its batch says inode "
                          + std::to_string(at.inode) + " byte " + std::to_string(at.offset);
        }
      }
    }
  }
  EXPECT_GT(headers, static_cast<uint64_t>(kills));
  EXPECT_EQ(wrong, 0u) << "of " << headers << " positions; the first: " << first_wrong;

  auto text = stderr_of("satellite");
  EXPECT_EQ(killed, kills);
  EXPECT_GE(rotated_while_down, kills / 2);
  EXPECT_GE(writer.rotations(), rotated_while_down + 1) << "no rotation while it ran";
  EXPECT_NE(text.find("was rotated while the satellite was stopped"), std::string::npos) << text;
  EXPECT_EQ(text.find("may be lost"), std::string::npos) << text;
  EXPECT_EQ(text.find("read them from the whole store"), std::string::npos) << text;
}

TEST_F(TailSystem, ADamagedOrStaleHintIsReplacedAndThePositionsReadFromTheStore) {
  ASSERT_NO_FATAL_FAILURE(start_server());
  auto app = dir_.file("app.log");
  auto store = dir_.file("store");
  auto hint = store + "/source-positions";
  auto sat = satellite_config(app, store, false);
  line_writer writer{app, rng_};
  writer.write_lines(300);
  writer.finish_line();
  ASSERT_TRUE(start(satellite_, "satellite", sat, "dialing").has_value()) << stderr_of("satellite");
  expect_each_once(0, writer.next(), "at first");
  // A clean stop writes the hint.
  auto stop = [&] {
    ASSERT_TRUE(satellite_.signal(SIGTERM));
    ASSERT_EQ(satellite_.wait_exit(bound), std::optional<int>{0});
    ASSERT_TRUE(until([](const wire::SatelliteInfo& s) { return s.state() == wire::SatelliteInfo::disconnected; }));
  };
  auto start_again = [&] {
    ASSERT_TRUE(start(satellite_, "satellite", sat, "dialing").has_value());
    ASSERT_TRUE(until([](const wire::SatelliteInfo& s) { return s.state() == wire::SatelliteInfo::healthy; }));
  };

  // A damaged hint: said, the whole store read instead, and a sound hint written.
  ASSERT_NO_FATAL_FAILURE(stop());
  auto bytes = test::read_file(hint);
  ASSERT_GT(bytes.size(), 30u);
  bytes[30] = static_cast<char>(bytes[30] ^ 0x40);
  test::write_file(hint, bytes);
  writer.write_lines(100);
  writer.finish_line();
  ASSERT_NO_FATAL_FAILURE(start_again());
  EXPECT_TRUE(test::wait_for_file_text(dir_.file("satellite.stderr"),
                                       "corrupt position hint " + hint + ": checksum mismatch; "
                                       "read them from the whole store instead",
                                       bound))
    << stderr_of("satellite");
  EXPECT_TRUE(persistence::read_position_hint(hint).ok());
  expect_each_once(0, writer.next(), "after a damaged hint");

  // A hint ahead of the store (as when the store's tail was cut) with a position past
  // every line: not believed, and replaced, so a later start does not believe it either.
  persistence::position_hint ahead;
  ahead.log_offset = 1'000'000;
  ahead.positions["app"] = *writer.end_of(writer.next() - 1);
  ahead.positions["app"].offset += 1'000'000;
  ASSERT_NO_FATAL_FAILURE(stop());
  ASSERT_TRUE(persistence::write_position_hint(hint, ahead).ok());
  writer.write_lines(100);
  writer.finish_line();
  ASSERT_NO_FATAL_FAILURE(start_again());
  EXPECT_TRUE(test::wait_for_file_text(dir_.file("satellite.stderr"),
                                       "covers the log up to offset 1000000, past its end", bound))
    << stderr_of("satellite");
  auto replaced = persistence::read_position_hint(hint);
  ASSERT_TRUE(replaced.ok());
  EXPECT_LT(replaced->log_offset, 1'000'000u);
  expect_each_once(0, writer.next(), "after a hint ahead of the store");
  EXPECT_EQ(stderr_of("satellite").find("may be lost"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(StartAtEnd, TailSystemTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string{"FromTheEnd"}
                                             : std::string{"FromTheStart"};
                         });

} // namespace
} // namespace levee
