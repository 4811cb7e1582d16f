// The event sources on real files, a real UNIX socket and the real /proc, each in a
// temporary directory under /tmp that is removed afterwards. No sleeps decide an outcome:
// tests poll in loops bounded by a deadline until the expected events have arrived.

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

#include "events/sources.hpp"
#include "tests/test_support.hpp"

namespace levee::events {
namespace {

namespace fs = std::filesystem;

constexpr int64_t now_ms = 1'800'000'000'000;

struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path = fs::path{"/tmp"}
           / ("levee-events-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
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

void overwrite(const std::string& path, const std::string& text) {
  std::ofstream f{path, std::ios::binary | std::ios::trunc};
  f << text;
}

/// Polls until `want` events have arrived in total or a few seconds passed.
std::vector<event> poll_until(source& src, size_t want, size_t max_events = 1000) {
  std::vector<event> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    if (src.poll(out, max_events, now_ms) == 0)
      std::this_thread::sleep_for(test::poll_pause);  // nothing yet: look again shortly
  }
  return out;
}

/// Polls until `done()` or a few seconds passed; what arrived is appended to `out`.
bool poll_while(source& src, std::vector<event>& out, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    if (src.poll(out, 1000, now_ms) == 0)
      std::this_thread::sleep_for(test::poll_pause);  // nothing yet: look again shortly
  }
  return true;
}

int64_t int_field(const event& e, std::string_view name) {
  auto* v = e.find(name);
  if (v == nullptr || !std::holds_alternative<int64_t>(*v))
    return -1;
  return std::get<int64_t>(*v);
}

json_limits small_lines(uint64_t max_line_bytes) {
  json_limits l;
  l.max_line_bytes = max_line_bytes;
  return l;
}

// -- file_tail ------------------------------------------------------------------------------

file_tail_config tail_config(const std::string& path, bool start_at_end = false) {
  file_tail_config c;
  c.path = path;
  c.start_at_end = start_at_end;
  return c;
}

TEST(FileTail, ReadsAppendedLinesFromTheEnd) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"old\":1}\n{\"old\":2}\n");
  file_tail tail{tail_config(path, /*start_at_end=*/true), {}};
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  append(path, "{\"i\":1}\n{\"i\":2,\"ts\":1700000000}\n{\"i\":3}\n");
  auto got = poll_until(tail, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(int_field(got[0], "i"), 1);
  EXPECT_EQ(int_field(got[1], "i"), 2);
  EXPECT_EQ(got[1].timestamp_ms, 1'700'000'000'000);
  EXPECT_EQ(got[0].timestamp_ms, now_ms);
  EXPECT_EQ(int_field(got[2], "i"), 3);
  EXPECT_EQ(tail.stats().events, 3u);
  EXPECT_EQ(tail.stats().bad_lines, 0u);
  EXPECT_EQ(tail.last_error(), "");
}

TEST(FileTail, ReadsFromTheBeginningWhenAsked) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"old\":1}\n{\"old\":2}\r\n");
  file_tail tail{tail_config(path), {}};
  auto got = poll_until(tail, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(int_field(got[1], "old"), 2);
  EXPECT_EQ(tail.offset(), 21u);
}

TEST(FileTail, StartingAtTheEndSkipsAHalfWrittenLastLine) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"old\":1}\n{\"half\":");
  file_tail tail{tail_config(path, /*start_at_end=*/true), {}};
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  append(path, "1}\n{\"b\":2}\n");
  auto got = poll_until(tail, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(int_field(got[0], "b"), 2);
  EXPECT_EQ(tail.stats().bad_lines, 0u);
}

TEST(FileTail, HoldsAPartialLineUntilItsNewline) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"a\":1}\n{\"b\":");
  file_tail tail{tail_config(path), {}};
  auto got = poll_until(tail, 1);
  ASSERT_EQ(got.size(), 1u);
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  EXPECT_EQ(tail.buffered_bytes(), 5u);
  append(path, "2");
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  append(path, "}\n");
  got = poll_until(tail, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(int_field(got[0], "b"), 2);
  EXPECT_EQ(tail.stats().bad_lines, 0u);
}

TEST(FileTail, FollowsRotationByRenameAndCreateFinishingTheOldFileFirst) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"f\":1,\"i\":1}\n");
  file_tail tail{tail_config(path), {}};
  ASSERT_EQ(poll_until(tail, 1).size(), 1u);
  // The writer adds to the old file, it is renamed, and a new file takes its name; the
  // old one's last line has no newline (its writer died mid-line).
  append(path, "{\"f\":1,\"i\":2}\n{\"f\":1,\"i\":3}");
  fs::rename(path, dir.file("app.json.1"));
  overwrite(path, "{\"f\":2,\"i\":1}\n{\"f\":2,\"i\":2}\n");
  auto got = poll_until(tail, 4);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(int_field(got[0], "f"), 1);
  EXPECT_EQ(int_field(got[0], "i"), 2);
  EXPECT_EQ(int_field(got[1], "f"), 1);
  EXPECT_EQ(int_field(got[1], "i"), 3);
  EXPECT_EQ(int_field(got[2], "f"), 2);
  EXPECT_EQ(int_field(got[3], "i"), 2);
  EXPECT_EQ(tail.stats().rotations, 1u);
  EXPECT_EQ(tail.stats().files_opened, 2u);
  // And it keeps following the new file.
  append(path, "{\"f\":2,\"i\":3}\n");
  got = poll_until(tail, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(int_field(got[0], "i"), 3);
}

TEST(FileTail, WaitsOnTheOldFileWhileThePathIsMissing) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"i\":1}\n");
  file_tail tail{tail_config(path), {}};
  ASSERT_EQ(poll_until(tail, 1).size(), 1u);
  fs::rename(path, dir.file("app.json.1"));
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  EXPECT_EQ(tail.stats().rotations, 0u);
  overwrite(path, "{\"i\":2}\n");
  auto got = poll_until(tail, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(int_field(got[0], "i"), 2);
  EXPECT_EQ(tail.stats().rotations, 1u);
}

TEST(FileTail, RestartsFromZeroAfterTruncation) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"i\":1,\"pad\":\"xxxxxxxxxxxxxxxxxx\"}\n{\"i\":2}\n{\"partial\":");
  file_tail tail{tail_config(path), {}};
  ASSERT_EQ(poll_until(tail, 2).size(), 2u);
  fs::resize_file(path, 0);
  append(path, "{\"i\":3}\n");
  auto got = poll_until(tail, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(int_field(got[0], "i"), 3);
  EXPECT_EQ(tail.stats().truncations, 1u);
  EXPECT_EQ(tail.stats().bad_lines, 0u);  // the partial line before truncation is dropped
}

TEST(FileTail, SkipsAnOverLongLineAndCountsIt) {
  temp_dir dir;
  auto path = dir.file("app.json");
  auto cfg = tail_config(path);
  cfg.read_chunk_bytes = 256;  // the long line arrives over many reads
  cfg.max_read_bytes_per_poll = 256;
  overwrite(path, "{\"i\":1}\n{\"long\":\"" + std::string(5000, 'x') + "\"}\n{\"i\":2}\n");
  file_tail tail{cfg, small_lines(1024)};
  std::vector<event> out;
  ASSERT_TRUE(poll_while(tail, out, [&] {
    EXPECT_LE(tail.buffered_bytes(), 1024u + 256u);
    return out.size() == 2;
  }));
  EXPECT_EQ(int_field(out[0], "i"), 1);
  EXPECT_EQ(int_field(out[1], "i"), 2);
  auto& s = tail.stats();
  EXPECT_EQ(s.bad_lines, 1u);
  EXPECT_EQ(s.bad_lines_by_kind[static_cast<size_t>(bad_line_kind::too_long)], 1u);
  EXPECT_EQ(s.last_bad_reason, "line of 5011 bytes exceeds events.max_line_bytes 1024");
  EXPECT_EQ(s.lines, 3u);
}

TEST(FileTail, AnOverLongLineStillBeingWrittenIsSkippedWhenItEnds) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"a\":\"" + std::string(3000, 'x'));
  file_tail tail{tail_config(path), small_lines(1024)};
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  EXPECT_EQ(tail.buffered_bytes(), 0u);  // over the bound: nothing of it is held
  EXPECT_EQ(tail.stats().bad_lines, 0u);  // not yet known to be one line
  append(path, std::string(3000, 'y') + "\"}\n{\"b\":1}\n");
  auto got = poll_until(tail, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(int_field(got[0], "b"), 1);
  EXPECT_EQ(tail.stats().last_bad_reason, "line of 6008 bytes exceeds events.max_line_bytes 1024");
}

TEST(FileTail, CountsMalformedLinesWithReasonsWhileGoodOnesArrive) {
  temp_dir dir;
  auto path = dir.file("app.json");
  overwrite(path, "{\"i\":1}\nnot json\n\n   \n[1,2]\n{\"i\":2}\n{\"ts\":\"soon\"}\n{\"i\":3}\n");
  file_tail tail{tail_config(path), {}};
  auto got = poll_until(tail, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(int_field(got[2], "i"), 3);
  auto& s = tail.stats();
  EXPECT_EQ(s.events, 3u);
  EXPECT_EQ(s.bad_lines, 3u);
  EXPECT_EQ(s.lines, 6u);  // blank lines are not counted
  EXPECT_EQ(s.bad_lines_by_kind[static_cast<size_t>(bad_line_kind::invalid_json)], 1u);
  EXPECT_EQ(s.bad_lines_by_kind[static_cast<size_t>(bad_line_kind::not_an_object)], 1u);
  EXPECT_EQ(s.bad_lines_by_kind[static_cast<size_t>(bad_line_kind::bad_timestamp)], 1u);
  EXPECT_NE(s.last_bad_reason.find("timestamp 'ts' = \"soon\""), std::string::npos)
    << s.last_bad_reason;
}

TEST(FileTail, WaitsForAMissingFileThenReadsItFromTheStart) {
  temp_dir dir;
  auto path = dir.file("later.json");
  file_tail tail{tail_config(path, /*start_at_end=*/true), {}};
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  EXPECT_TRUE(tail.stats().waiting_for_file);
  EXPECT_EQ(tail.last_error(), "");
  EXPECT_EQ(tail.stats().errors, 0u);
  overwrite(path, "{\"i\":1}\n{\"i\":2}\n");
  auto got = poll_until(tail, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(tail.stats().waiting_for_file);
}

TEST(FileTail, ReturnsAtMostMaxEventsAndKeepsTheRest) {
  temp_dir dir;
  auto path = dir.file("app.json");
  std::string text;
  for (int i = 0; i < 10; ++i)
    text += "{\"i\":" + std::to_string(i) + "}\n";
  overwrite(path, text);
  file_tail tail{tail_config(path), {}};
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 3, now_ms), 3u);
  EXPECT_EQ(tail.poll(out, 3, now_ms), 3u);
  EXPECT_EQ(tail.poll(out, 3, now_ms), 3u);
  EXPECT_EQ(tail.poll(out, 3, now_ms), 1u);
  ASSERT_EQ(out.size(), 10u);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(int_field(out[i], "i"), i);
}

TEST(FileTail, OnePollReadsAtMostItsByteBudget) {
  temp_dir dir;
  auto path = dir.file("app.json");
  std::string bad(100'000, 'x');
  for (size_t i = 99; i < bad.size(); i += 100)
    bad[i] = '\n';
  overwrite(path, bad);
  auto cfg = tail_config(path);
  cfg.read_chunk_bytes = 4096;
  cfg.max_read_bytes_per_poll = 8192;
  file_tail tail{cfg, {}};
  std::vector<event> out;
  tail.poll(out, 1000, now_ms);
  EXPECT_EQ(tail.stats().bytes_read, 8192u);
  EXPECT_EQ(tail.stats().bad_lines, 81u);
}

TEST(FileTail, APathThatIsNotARegularFileIsAnError) {
  temp_dir dir;
  file_tail tail{tail_config(dir.path.string()), {}};
  std::vector<event> out;
  EXPECT_EQ(tail.poll(out, 100, now_ms), 0u);
  EXPECT_EQ(tail.last_status().code(), code::bad_request);
  EXPECT_NE(tail.last_error().find("is not a regular file"), std::string::npos) << tail.last_error();
  EXPECT_EQ(tail.stats().errors, 1u);
}

TEST(FileTail, ValidateNamesTheKey) {
  file_tail_config c;
  auto st = validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::bad_request);
  EXPECT_EQ(st.message(), "events.file_tail.path: must not be empty");
  c.path = "/var/log/app.json";
  EXPECT_TRUE(validate(c).ok());
  c.read_chunk_bytes = 0;
  st = validate(c, "sat.tail1");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("sat.tail1.read_chunk_bytes = 0: ", 0), 0u) << st.message();
  c.read_chunk_bytes = 1024;
  c.max_read_bytes_per_poll = 512;
  st = validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("events.file_tail.max_read_bytes_per_poll = 512"), std::string::npos);
}

// -- unix_socket_source --------------------------------------------------------------------

class client_socket {
public:
  explicit client_socket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~client_socket() { close(); }
  bool connected() const { return connected_; }
  void write(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
      auto n = ::send(fd_, text.data() + done, text.size() - done, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send: " << errno_text(errno);
      done += static_cast<size_t>(n);
    }
  }
  /// Everything the server sends until it closes (with a bound).
  std::string read_all() {
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string text;
    char buf[256];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0)
      text.append(buf, static_cast<size_t>(n));
    return text;
  }
  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
  bool connected_ = false;
};

unix_socket_config socket_config(const std::string& path) {
  unix_socket_config c;
  c.path = path;
  return c;
}

std::unique_ptr<unix_socket_source> listen_ok(const unix_socket_config& c,
                                              const json_limits& limits = {}) {
  auto r = unix_socket_source::listen(c, limits);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(UnixSocket, TwoClientsWritingInterleavedLinesWithPartials) {
  temp_dir dir;
  auto src = listen_ok(socket_config(dir.file("events.sock")));
  ASSERT_TRUE(src);
  client_socket a{src->path()}, b{src->path()};
  ASSERT_TRUE(a.connected() && b.connected());
  std::vector<event> out;
  ASSERT_TRUE(poll_while(*src, out, [&] { return src->clients() == 2; }));
  a.write("{\"c\":1,\"i\":0}\n{\"c\":1,");
  b.write("{\"c\":2,\"i\":0}\n");
  b.write("{\"c\":2,\"i\":1}\n{\"c\":2");
  ASSERT_TRUE(poll_while(*src, out, [&] { return out.size() == 3; }));
  a.write("\"i\":1}\n");
  b.write(",\"i\":2}\n");
  a.write("{\"c\":1,\"i\":2}\n");
  ASSERT_TRUE(poll_while(*src, out, [&] { return out.size() == 6; }));
  // Per client, lines arrive whole and in order.
  int64_t next[3] = {0, 0, 0};
  for (auto& e : out) {
    auto c = int_field(e, "c");
    ASSERT_TRUE(c == 1 || c == 2);
    EXPECT_EQ(int_field(e, "i"), next[c]++);
  }
  EXPECT_EQ(next[1], 3);
  EXPECT_EQ(next[2], 3);
  EXPECT_EQ(src->stats().bad_lines, 0u);
  EXPECT_EQ(src->stats().connections_accepted, 2u);
}

TEST(UnixSocket, RefusesConnectionsOverTheBoundAndTellsThem) {
  temp_dir dir;
  auto cfg = socket_config(dir.file("events.sock"));
  cfg.max_connections = 2;
  auto src = listen_ok(cfg);
  ASSERT_TRUE(src);
  client_socket a{src->path()}, b{src->path()};
  std::vector<event> out;
  ASSERT_TRUE(poll_while(*src, out, [&] { return src->clients() == 2; }));
  client_socket c{src->path()};
  ASSERT_TRUE(c.connected());  // the kernel queues it; the source then refuses it
  ASSERT_TRUE(poll_while(*src, out, [&] { return src->stats().connections_refused == 1; }));
  EXPECT_EQ(c.read_all(), "too_many_connections: events.unix_socket.max_connections 2 reached\n");
  EXPECT_EQ(src->clients(), 2u);
  a.write("{\"ok\":1}\n");
  b.write("{\"ok\":2}\n");
  ASSERT_TRUE(poll_while(*src, out, [&] { return out.size() == 2; }));
  // A slot freed by a closing client can be taken again.
  a.close();
  ASSERT_TRUE(poll_while(*src, out, [&] { return src->clients() == 1; }));
  client_socket d{src->path()};
  d.write("{\"ok\":3}\n");
  ASSERT_TRUE(poll_while(*src, out, [&] { return out.size() == 3; }));
  EXPECT_EQ(src->stats().connections_accepted, 3u);
  EXPECT_EQ(src->stats().connections_refused, 1u);
  EXPECT_EQ(src->stats().connections_closed, 1u);
}

TEST(UnixSocket, AClosedClientsLastLineCountsAndTheClientIsCleanedUp) {
  temp_dir dir;
  auto src = listen_ok(socket_config(dir.file("events.sock")));
  ASSERT_TRUE(src);
  std::vector<event> out;
  {
    client_socket a{src->path()};
    a.write("{\"i\":1}\n{\"i\":2}");
  }
  ASSERT_TRUE(poll_while(*src, out, [&] {
    return out.size() == 2 && src->clients() == 0 && src->stats().connections_closed == 1;
  }));
  EXPECT_EQ(int_field(out[1], "i"), 2);
  EXPECT_EQ(src->stats().connections_open, 0u);
}

TEST(UnixSocket, BoundsEachClientsPartialLine) {
  temp_dir dir;
  auto cfg = socket_config(dir.file("events.sock"));
  cfg.read_chunk_bytes = 512;
  auto src = listen_ok(cfg, small_lines(1024));
  ASSERT_TRUE(src);
  client_socket a{src->path()};
  a.write("{\"x\":\"" + std::string(10'000, 'x'));
  std::vector<event> out;
  ASSERT_TRUE(poll_while(*src, out, [&] { return src->stats().bytes_read == 10'006; }));
  a.write("\"}\n{\"i\":1}\n");
  ASSERT_TRUE(poll_while(*src, out, [&] { return out.size() == 1; }));
  EXPECT_EQ(src->stats().bad_lines, 1u);
  EXPECT_EQ(src->stats().last_bad_reason, "line of 10008 bytes exceeds events.max_line_bytes 1024");
}

TEST(UnixSocket, ReplacesAStaleSocketFile) {
  temp_dir dir;
  auto path = dir.file("events.sock");
  {
    // A socket bound and closed without unlinking: what a crashed process leaves.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  ASSERT_TRUE(fs::is_socket(path));
  auto src = listen_ok(socket_config(path));
  ASSERT_TRUE(src);
  client_socket a{path};
  a.write("{\"i\":1}\n");
  EXPECT_EQ(poll_until(*src, 1).size(), 1u);
}

TEST(UnixSocket, RefusesASocketALiveProcessListensOn) {
  temp_dir dir;
  auto cfg = socket_config(dir.file("events.sock"));
  auto first = listen_ok(cfg);
  ASSERT_TRUE(first);
  auto second = unix_socket_source::listen(cfg, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), code::bad_request);
  EXPECT_EQ(second.error().message(),
            "events.unix_socket.path '" + cfg.path + "': a live process listens on this socket");
  EXPECT_TRUE(fs::is_socket(cfg.path));
}

TEST(UnixSocket, RefusesARegularFileAndLeavesIt) {
  temp_dir dir;
  auto path = dir.file("events.sock");
  overwrite(path, "precious");
  auto r = unix_socket_source::listen(socket_config(path), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), code::bad_request);
  EXPECT_EQ(r.error().message(), "events.unix_socket.path '" + path
                                   + "' is a regular file, not a socket; refusing to remove it");
  std::ifstream f{path};
  std::string text;
  f >> text;
  EXPECT_EQ(text, "precious");
}

TEST(UnixSocket, RemovesItsSocketFileWhenDestroyed) {
  temp_dir dir;
  auto path = dir.file("events.sock");
  {
    auto src = listen_ok(socket_config(path));
    ASSERT_TRUE(src);
    EXPECT_TRUE(fs::is_socket(path));
    EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read
                | fs::perms::group_write);
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(UnixSocket, ValidateNamesTheKey) {
  auto c = socket_config("/run/levee/" + std::string(120, 'p'));
  auto st = validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "events.unix_socket.path: 131 bytes, longer than the 107 a UNIX socket "
                          "address holds");
  c.path = "/run/levee/events.sock";
  c.max_connections = 0;
  st = validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::bad_request);
  EXPECT_EQ(st.message(), "events.unix_socket.max_connections = 0: must be between 1 and 4096 "
                          "connections");
  auto r = unix_socket_source::listen(c, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), st.message());
}

// -- proc_metrics ---------------------------------------------------------------------------

double double_field(const event& e, std::string_view name) {
  auto* v = e.find(name);
  if (v == nullptr || !std::holds_alternative<double>(*v))
    return -1;
  return std::get<double>(*v);
}

TEST(ProcMetrics, RealProcFieldsArePresentAndSane) {
  proc_metrics proc{{}};
  for (int round = 0; round < 2; ++round) {
    std::vector<event> out;
    ASSERT_EQ(proc.poll(out, 10, now_ms + round), 1u);
    auto& e = out[0];
    EXPECT_EQ(e.timestamp_ms, now_ms + round);
    ASSERT_NE(e.find("source"), nullptr);
    EXPECT_EQ(*e.find("source"), value{std::string{"proc"}});
    ASSERT_NE(e.find("host"), nullptr);
    EXPECT_FALSE(std::get<std::string>(*e.find("host")).empty());
    auto cpu = double_field(e, "cpu_percent");
    EXPECT_GE(cpu, 0.0);
    EXPECT_LE(cpu, 100.0);
    auto total = int_field(e, "mem_total_bytes");
    auto available = int_field(e, "mem_available_bytes");
    EXPECT_GT(total, 0);
    EXPECT_GE(available, 0);
    EXPECT_LE(available, total);
    auto used = double_field(e, "mem_used_percent");
    EXPECT_GE(used, 0.0);
    EXPECT_LE(used, 100.0);
    for (auto* load : {"load1", "load5", "load15"})
      EXPECT_GE(double_field(e, load), 0.0) << load;
  }
  EXPECT_EQ(proc.last_error(), "");
  EXPECT_EQ(proc.stats().events, 2u);
}

TEST(ProcMetrics, CpuPercentIsSinceTheLastPoll) {
  temp_dir dir;
  overwrite(dir.file("stat"), "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n");
  overwrite(dir.file("meminfo"), "MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    250 kB\n");
  overwrite(dir.file("loadavg"), "0.50 1.25 2.00 1/100 4242\n");
  proc_metrics_config cfg;
  cfg.proc_dir = dir.path.string();
  cfg.host = "test-host";
  proc_metrics proc{cfg};
  std::vector<event> out;
  ASSERT_EQ(proc.poll(out, 1, now_ms), 1u);
  EXPECT_DOUBLE_EQ(double_field(out[0], "cpu_percent"), 20.0);  // since boot: 200 of 1000
  // 60 busy ticks and 40 idle (30 idle + 10 iowait) since: 60%.
  overwrite(dir.file("stat"), "cpu  150 0 110 730 110 0 0 0 0 0\n");
  ASSERT_EQ(proc.poll(out, 1, now_ms), 1u);
  auto& e = out[1];
  EXPECT_DOUBLE_EQ(double_field(e, "cpu_percent"), 60.0);
  EXPECT_EQ(*e.find("host"), value{std::string{"test-host"}});
  EXPECT_EQ(int_field(e, "mem_total_bytes"), 1'024'000);
  EXPECT_EQ(int_field(e, "mem_available_bytes"), 256'000);
  EXPECT_DOUBLE_EQ(double_field(e, "mem_used_percent"), 75.0);
  EXPECT_DOUBLE_EQ(double_field(e, "load1"), 0.5);
  EXPECT_DOUBLE_EQ(double_field(e, "load5"), 1.25);
  EXPECT_DOUBLE_EQ(double_field(e, "load15"), 2.0);
  EXPECT_EQ(proc.last_error(), "");
}

TEST(ProcMetrics, AnUnreadableFileLeavesItsFieldsOutAndIsReported) {
  temp_dir dir;
  overwrite(dir.file("stat"), "cpu  1 0 1 8 0 0 0 0 0 0\n");
  overwrite(dir.file("meminfo"), "MemTotal: 1000 kB\n");  // no MemAvailable
  proc_metrics_config cfg;
  cfg.proc_dir = dir.path.string();
  proc_metrics proc{cfg};
  std::vector<event> out;
  ASSERT_EQ(proc.poll(out, 1, now_ms), 1u);
  EXPECT_NE(out[0].find("cpu_percent"), nullptr);
  EXPECT_EQ(out[0].find("mem_total_bytes"), nullptr);
  EXPECT_EQ(out[0].find("load1"), nullptr);
  EXPECT_EQ(proc.stats().errors, 2u);
  EXPECT_EQ(proc.last_status().code(), code::storage_error);
  EXPECT_NE(proc.last_error().find("loadavg"), std::string::npos) << proc.last_error();
  EXPECT_EQ(proc.poll(out, 0, now_ms), 0u);
}

TEST(ProcMetrics, ValidateNamesTheKey) {
  proc_metrics_config c;
  EXPECT_TRUE(validate(c).ok());
  c.interval_ms = 5;
  auto st = validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "events.proc.interval_ms = 5: must be between 100 and 3600000 ms");
}

// -- synthetic ------------------------------------------------------------------------------

synthetic_config rate(uint64_t per_sec, uint64_t burst = 0) {
  synthetic_config c;
  c.rate_per_sec = per_sec;
  c.burst_events = burst;
  return c;
}

TEST(Synthetic, MakesExactlyWhatTheClockAdvanceIsWorth) {
  synthetic gen{rate(100)};
  std::vector<event> out;
  EXPECT_EQ(gen.poll(out, 10'000, now_ms), 0u);  // starts the clock
  EXPECT_EQ(gen.poll(out, 10'000, now_ms + 1000), 100u);
  EXPECT_EQ(gen.poll(out, 10'000, now_ms + 1010), 1u);
  EXPECT_EQ(gen.poll(out, 10'000, now_ms + 1015), 0u);  // half an event, carried over
  EXPECT_EQ(gen.poll(out, 10'000, now_ms + 1020), 1u);
  EXPECT_EQ(out.size(), 102u);

  synthetic slow{rate(3)};
  size_t total = 0;
  slow.poll(out, 100, 0);
  for (int64_t t = 100; t <= 10'000; t += 100)
    total += slow.poll(out, 100, t);
  EXPECT_EQ(total, 30u);
  EXPECT_EQ(slow.stats().events, 30u);
}

TEST(Synthetic, ALatePollIsCappedAtTheBurst) {
  synthetic gen{rate(1000, 50)};
  std::vector<event> out;
  gen.poll(out, 10'000, now_ms);
  EXPECT_EQ(gen.poll(out, 10'000, now_ms + 3'600'000), 50u);
  EXPECT_EQ(gen.poll(out, 10'000, now_ms + 3'600'000), 0u);
  EXPECT_EQ(gen.poll(out, 10'000, now_ms + 3'600'010), 10u);
  // burst 0: one second's worth; a year's pause must not overflow anything.
  synthetic wide{rate(10'000'000)};
  std::vector<event> many;
  wide.poll(many, 1, 0);
  EXPECT_EQ(wide.poll(many, 5, int64_t{365} * 86'400'000), 5u);
  EXPECT_EQ(wide.owed(), 10'000'000u - 5);
}

TEST(Synthetic, MaxEventsLeavesTheRestOwed) {
  synthetic gen{rate(1000)};
  std::vector<event> out;
  gen.poll(out, 100, now_ms);
  EXPECT_EQ(gen.poll(out, 30, now_ms + 100), 30u);
  EXPECT_EQ(gen.owed(), 70u);
  EXPECT_EQ(gen.poll(out, 30, now_ms + 100), 30u);
  EXPECT_EQ(gen.poll(out, 30, now_ms + 100), 30u);
  EXPECT_EQ(gen.poll(out, 30, now_ms + 100), 10u);
  EXPECT_EQ(gen.poll(out, 30, now_ms + 100), 0u);
  EXPECT_EQ(out.size(), 100u);
  for (size_t i = 0; i < out.size(); ++i)
    EXPECT_EQ(int_field(out[i], "seq"), static_cast<int64_t>(i));
}

TEST(Synthetic, IsDeterministicGivenTheSeedAndTheClock) {
  auto run = [](uint64_t seed) {
    auto c = rate(500);
    c.seed = seed;
    synthetic gen{c};
    std::vector<event> out;
    for (int64_t t = 0; t <= 2000; t += 137)
      gen.poll(out, 1000, now_ms + t);
    return out;
  };
  auto a = run(7), b = run(7), c = run(8);
  ASSERT_EQ(a.size(), 959u);  // 1918 ms at 500/s
  EXPECT_EQ(a, b);
  ASSERT_EQ(c.size(), a.size());
  EXPECT_NE(a, c);
}

TEST(Synthetic, EventsHaveTheConfiguredShape) {
  auto c = rate(1000);
  c.users = 3;
  c.msg_bytes = 100;
  synthetic gen{c};
  std::vector<event> out;
  gen.poll(out, 10'000, now_ms);
  ASSERT_EQ(gen.poll(out, 10'000, now_ms + 2000), 1000u);  // capped at one second's worth
  std::map<std::string, int> levels;
  std::set<std::string> users;
  int64_t last_ts = now_ms;
  for (auto& e : out) {
    ASSERT_EQ(e.fields.size(), 6u);
    EXPECT_GT(e.timestamp_ms, now_ms);
    EXPECT_LE(e.timestamp_ms, now_ms + 2000);
    EXPECT_GE(e.timestamp_ms, last_ts);
    last_ts = e.timestamp_ms;
    auto& level = std::get<std::string>(*e.find("level"));
    ++levels[level];
    users.insert(std::get<std::string>(*e.find("user")));
    EXPECT_EQ(std::get<std::string>(*e.find("msg")).size(), 100u);
    auto status = int_field(e, "status");
    if (level == "INFO")
      EXPECT_TRUE(status >= 200 && status < 300) << status;
    else if (level == "WARN")
      EXPECT_TRUE(status >= 400 && status < 500) << status;
    else
      EXPECT_TRUE(status >= 500 && status < 600) << status;
    EXPECT_GE(double_field(e, "latency_ms"), 0.0);
  }
  EXPECT_EQ(last_ts, now_ms + 2000);
  EXPECT_EQ(users, (std::set<std::string>{"user-00000", "user-00001", "user-00002"}));
  EXPECT_EQ(levels.size(), 3u);
  EXPECT_GT(levels["INFO"], 800);  // 90% expected
  EXPECT_GT(levels["WARN"], 40);   // 8%
  EXPECT_GT(levels["ERROR"], 5);   // 2%
  // Its JSON is a valid line.
  EXPECT_TRUE(parse_json_line(to_json(out[0]), now_ms, {}).ok());
}

TEST(Synthetic, AZeroWeightIsNeverPicked) {
  auto c = rate(1000);
  c.levels = {{"DEBUG", 1}, {"FATAL", 0}};
  synthetic gen{c};
  std::vector<event> out;
  gen.poll(out, 1000, 0);
  gen.poll(out, 1000, 1000);
  ASSERT_EQ(out.size(), 1000u);
  for (auto& e : out)
    EXPECT_EQ(*e.find("level"), value{std::string{"DEBUG"}});
}

TEST(Synthetic, ValidateNamesTheKey) {
  EXPECT_TRUE(validate(synthetic_config{}).ok());
  auto c = rate(0);
  auto st = validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::bad_request);
  EXPECT_EQ(st.message(), "events.synthetic.rate_per_sec = 0: must be between 1 and 10000000 events/s");
  c = rate(10);
  c.levels = {{"A", 0}};
  st = validate(c);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "events.synthetic.levels: the weights must not all be 0");
  c = rate(10);
  c.users = 0;
  EXPECT_EQ(validate(c).message(), "events.synthetic.users = 0: must be between 1 and 10000000 users");
}

} // namespace
} // namespace levee::events
