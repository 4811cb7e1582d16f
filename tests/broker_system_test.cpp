// Streams on a broker as real `levee node` processes on 127.0.0.1 (issue 15): the typed
// stream requests through the connection gate, the CLI with --json, publish and consume
// across segment rolls, a kill -9 of the broker under each fsync policy (nothing
// acknowledged is lost, nothing is stored twice), cursors across a restart, a subscriber
// that grants no credit while a lot is published (the broker's memory stays bounded), a
// damaged segment (that stream reports it, the others serve), and bad input.
//
// Every wait is bounded (a line from the process, an answer from the broker); each
// process runs under a guard that SIGKILLs and reaps it, also when an assertion fails.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include "levee/streams.hpp"
#include "net/frame.hpp"
#include "tests/process_support.hpp"
#include "tests/test_support.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string levee_binary = LEVEE_BINARY;

/// The bound on every wait: far above what a loaded 2-core machine needs.
constexpr milliseconds bound = 30s;

using test::ini;

/// A `levee node` with roles = broker on a data directory that outlives restarts.
class broker_process {
public:
  broker_process(const test::temp_dir& dir, std::string name) : dir_(dir), name_(std::move(name)) {
    config_.set("node", "roles", "broker")
      .set("broker", "listen", "127.0.0.1:0")
      .set("broker", "data_dir", dir_.file(name_ + "-data"));
  }
  ini& config() { return config_; }
  std::string data_dir() const { return dir_.file(name_ + "-data"); }

  /// Starts it and reads its port from "broker listening on HOST:PORT".
  bool start() {
    auto path = dir_.file(name_ + ".ini");
    test::write_file(path, config_.text());
    stderr_path_ = dir_.file(name_ + ".stderr");
    if (!proc_.start({levee_binary, "node", "--config", path}, stderr_path_))
      return false;
    auto line = proc_.wait_for_line("broker listening on", bound);
    if (!line)
      return false;
    port_ = static_cast<uint16_t>(std::stoul(line->substr(line->rfind(':') + 1)));
    return true;
  }
  void kill9() {
    proc_.signal(SIGKILL);
    proc_.wait_exit(bound);
  }
  /// SIGSTOP (returns once stopped) and SIGCONT: what is sent meanwhile waits in its socket.
  bool pause() { return proc_.pause(); }
  bool resume() { return proc_.resume(); }
  /// SIGTERM and the exit code.
  std::optional<int> stop() {
    proc_.signal(SIGTERM);
    return proc_.wait_exit(bound);
  }
  uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return proc_.pid(); }
  std::string stderr_text() const { return test::read_file(stderr_path_); }

  stream_client client() const {
    client_options o;
    o.port = port_;
    o.node_id = "broker-system-test";
    stream_client sc{o};
    auto st = sc.connect_with_backoff(bound);
    EXPECT_TRUE(st.ok()) << st.message();
    return sc;
  }

private:
  const test::temp_dir& dir_;
  std::string name_;
  ini config_;
  std::string stderr_path_;
  test::child_process proc_;
  uint16_t port_ = 0;
};

stream_spec spec_of(const std::string& name, const std::string& subject) {
  stream_spec s;
  s.name = name;
  s.subject = subject;
  return s;
}

/// Creates `spec`'s stream; a failure says why.
::testing::AssertionResult create(stream_client& sc, const stream_spec& spec) {
  auto info = sc.create_stream(spec, bound);
  if (info)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "create " << spec.name << ": " << info.error().to_string();
}

/// Reads partition `p` of `stream` from `from` through `last` (inclusive).
std::vector<message_in> read_range(stream_client& sc, const std::string& stream, uint32_t p,
                                        start_at from, uint64_t last) {
  subscribe_options so;
  so.stream = stream;
  so.partition = p;
  so.start = from;
  so.stop_offset = last;
  std::vector<message_in> out;
  auto id = sc.subscribe(so);
  EXPECT_TRUE(id) << id.error().to_string();
  if (!id)
    return out;
  auto deadline = steady_clock::now() + bound;
  while (steady_clock::now() < deadline) {
    auto ev = sc.next(*id, 1s);
    if (ev.error && ev.error->code == code::deadline_exceeded)
      continue;
    EXPECT_FALSE(ev.error) << ev.error->to_string();
    if (ev.error || ev.end)
      break;
    for (auto& m : ev.batch->messages)
      out.push_back(m);
  }
  return out;
}

/// Every committed message of partition `p` (empty when there is none).
std::vector<message_in> read_all(stream_client& sc, const std::string& stream,
                                      uint32_t p = 0) {
  auto info = sc.get_stream_info(stream, bound);
  EXPECT_TRUE(info) << info.error().to_string();
  if (!info || p >= info->partitions.size())
    return {};
  auto& part = info->partitions[p];
  if (part.high_water <= part.start_offset)
    return {};
  return read_range(sc, stream, p, start_at::earliest(), part.high_water - 1);
}

std::string body_of(uint64_t n, size_t size) {
  auto text = "message-" + std::to_string(n) + "-";
  std::string out;
  while (out.size() < size)
    out += text;
  out.resize(size);
  return out;
}

/// `size` bytes that do not compress (the segment log compresses batches with LZ4): a
/// test that needs several segments gets them.
std::string noise_of(uint64_t n, size_t size) {
  std::string out(size, '\0');
  uint64_t x = n * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>('!' + x % 90);
  }
  return out;
}

/// VmHWM (peak resident set) of `pid` in bytes, 0 when unreadable.
uint64_t peak_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stoull(line.substr(6)) * 1024;  // kB
  return 0;
}

class BrokerSystem : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(dir_.ok()); }
  test::temp_dir dir_{"levee-broker"};
};

TEST_F(BrokerSystem, CreateListInfoDeleteAndRestart) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("orders", "orders.>");
  spec.partitions = 3;
  auto info = sc.create_stream(spec, bound);
  ASSERT_TRUE(info) << info.error().to_string();
  EXPECT_EQ(info->config.partitions, 3u);
  EXPECT_EQ(info->partitions.size(), 3u);
  ASSERT_TRUE(create(sc, spec_of("audit", "*.eu.*")));
  auto again = sc.create_stream(spec_of("orders", "x"), bound);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), code::bad_request) << again.error().to_string();

  auto acks = sc.publish("orders.eu.created", {{"k1", "", "one", {}}});
  ASSERT_TRUE(acks) << acks.error().to_string();
  ASSERT_EQ(acks->size(), 2u);  // orders.> and *.eu.*
  std::set<std::string> streams;
  for (auto& a : *acks)
    streams.insert(a.stream);
  EXPECT_EQ(streams, (std::set<std::string>{"orders", "audit"}));

  auto list = sc.list_streams(bound);
  ASSERT_TRUE(list) << list.error().to_string();
  std::set<std::string> names;
  for (auto& s : list->streams)
    names.insert(s.config.name);
  EXPECT_EQ(names, (std::set<std::string>{"orders", "audit"}));

  // A restart keeps the streams and their messages.
  ASSERT_EQ(b.stop(), 0) << b.stderr_text();
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc2 = b.client();
  auto audit = read_all(sc2, "audit");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].body, "one");
  EXPECT_EQ(audit[0].key, "k1");
  ASSERT_TRUE(sc2.delete_stream("audit", bound));
  auto gone = sc2.get_stream_info("audit", bound);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), code::not_found);
  // Nothing matches any more for a subject only audit bound.
  auto none = sc2.publish("x.eu.y", {{"", "", "lost?", {}}});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), code::not_found) << none.error().to_string();
}

TEST_F(BrokerSystem, PublishAndConsumeExactlyInOrderAcrossSegmentRolls) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("logs", "logs.*");
  spec.max_segment_bytes = 64 * 1024;  // many segments
  spec.max_message_bytes = 16 * 1024;
  ASSERT_TRUE(create(sc, spec));
  constexpr uint64_t total = 3000;
  std::vector<std::string> sent;
  for (uint64_t i = 0; i < total; i += 100) {
    std::vector<out_message> batch;
    for (uint64_t j = i; j < i + 100; ++j) {
      sent.push_back(body_of(j, 200 + j % 300));
      batch.push_back(out_message{"", "", sent.back(), {{"n", std::to_string(j)}}});
    }
    auto acks = sc.publish("logs.app", std::move(batch));
    ASSERT_TRUE(acks) << acks.error().to_string();
    ASSERT_EQ(acks->size(), 100u);
    EXPECT_EQ(acks->front().offset, i);
  }
  auto got = read_all(sc, "logs");
  ASSERT_EQ(got.size(), total);
  for (uint64_t i = 0; i < total; ++i) {
    ASSERT_EQ(got[i].offset, i);
    ASSERT_EQ(got[i].body, sent[i]) << "offset " << i;
    ASSERT_EQ(got[i].headers.size(), 1u);
    EXPECT_EQ(got[i].headers[0].second, std::to_string(i));
  }
  // Other start positions over the same data.
  auto from_offset = read_range(sc, "logs", 0, start_at::at_offset(2990), total - 1);
  ASSERT_EQ(from_offset.size(), 10u);
  EXPECT_EQ(from_offset.front().offset, 2990u);
  auto latest = read_range(sc, "logs", 0, start_at::latest(), total - 1);
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest.front().offset, total - 1);
  auto by_time = read_range(sc, "logs", 0, start_at::at_time(got[1500].timestamp_ms), total - 1);
  ASSERT_FALSE(by_time.empty());
  EXPECT_LE(by_time.front().offset, 1500u);
  EXPECT_EQ(by_time.front().timestamp_ms, got[by_time.front().offset].timestamp_ms);

  // `new`: only what is published after the subscription started.
  subscribe_options so;
  so.stream = "logs";
  so.start = start_at::new_only();
  auto id = sc.subscribe(so);
  ASSERT_TRUE(id);
  // The subscription is running once the broker answered a later request on the same
  // connection (requests on one connection reach the broker in order).
  ASSERT_TRUE(sc.get_stream_info("logs", bound));
  ASSERT_TRUE(sc.publish("logs.app", {{"", "", "after", {}}}));
  auto deadline = steady_clock::now() + bound;
  std::optional<message_in> first;
  while (!first && steady_clock::now() < deadline) {
    auto ev = sc.next(*id, 1s);
    if (ev.batch && !ev.batch->messages.empty())
      first = ev.batch->messages[0];
  }
  ASSERT_TRUE(first);
  EXPECT_EQ(first->offset, total);
  EXPECT_EQ(first->body, "after");
  ASSERT_TRUE(sc.unsubscribe(*id));
}

TEST_F(BrokerSystem, RefusalsCarryTheirCodeAndLimit) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("small", "small");
  spec.max_message_bytes = 1000;
  spec.on_full = full_policy::reject;
  spec.retention_max_messages = 5;
  ASSERT_TRUE(create(sc, spec));

  auto big = sc.publish("small", {{"", "", std::string(5000, 'x'), {}}});
  ASSERT_FALSE(big);
  auto r = big.error().as_rejection();
  EXPECT_EQ(r.code, code::message_too_large);
  EXPECT_EQ(r.limit, "stream.max_message_bytes");
  EXPECT_EQ(r.max, 1000u);

  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(sc.publish("small", {{"", "", "m" + std::to_string(i), {}}}));
  auto full = sc.publish("small", {{"", "", "one too many", {}}});
  ASSERT_FALSE(full);
  r = full.error().as_rejection();
  EXPECT_EQ(r.code, code::stream_full) << r.to_string();
  EXPECT_EQ(r.limit, "stream.retention_max_messages");
  EXPECT_EQ(r.max, 5u);

  publish_options expect;
  expect.partition = 0;
  expect.expected_last_offset = 1;  // it is 4
  auto stale = sc.publish("small", {{"", "", "cas", {}}}, expect);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), code::precondition_failed) << stale.error().to_string();

  auto bad_subject = sc.publish("small..x", {{"", "", "b", {}}});
  ASSERT_FALSE(bad_subject);
  EXPECT_EQ(bad_subject.error().code(), code::bad_request);
  EXPECT_NE(bad_subject.error().message().find("position 6"), std::string::npos)
    << bad_subject.error().message();

  subscribe_options so;
  so.stream = "nope";
  auto id = sc.subscribe(so);
  ASSERT_TRUE(id);
  auto ev = sc.next(*id, bound);
  ASSERT_TRUE(ev.error);
  EXPECT_EQ(ev.error->code, code::not_found) << ev.error->to_string();

  // Deduplication: the same id again is acknowledged with the original offset.
  ASSERT_TRUE(create(sc, spec_of("dedupe", "dd")));
  auto a1 = sc.publish("dd", {{"", "id-1", "first", {}}});
  auto a2 = sc.publish("dd", {{"", "id-1", "first again", {}}});
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(a1->at(0).duplicate);
  EXPECT_TRUE(a2->at(0).duplicate);
  EXPECT_EQ(a1->at(0).offset, a2->at(0).offset);
  EXPECT_EQ(read_all(sc, "dedupe").size(), 1u);
}

TEST_F(BrokerSystem, GarbageFrameClosesOnlyThatConnection) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  ASSERT_TRUE(create(sc, spec_of("s", "s")));
  // A frame whose body claims field 54 (publish) with bytes that are no Publish.
  client_options o;
  o.port = b.port();
  client raw{o};
  ASSERT_TRUE(raw.connect_with_backoff(bound));
  std::string body = {'\x08', '\x01', '\xb2', '\x03', '\x05', '\xff', '\xff', '\xff', '\xff', '\xff'};
  std::string frame = {'\0', '\0', '\0', static_cast<char>(body.size()), '\0'};
  ASSERT_TRUE(raw.send_raw(frame + body));
  auto last = raw.wait_for_close(bound);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->code, code::bad_request) << last->to_string();
  // Everyone else is served.
  auto acks = sc.publish("s", {{"", "", "still here", {}}});
  ASSERT_TRUE(acks) << acks.error().to_string();
  EXPECT_EQ(read_all(sc, "s").size(), 1u);
}

/// kill -9 of the broker while a publisher has acknowledged messages and more in flight:
/// after a restart every acknowledged message is there exactly once, in order, and the
/// publisher's retries of what was not acknowledged are stored at most once (dedupe).
void kill_while_publishing(const test::temp_dir& dir, fsync_mode policy) {
  broker_process b{dir, "kill-" + std::to_string(static_cast<int>(policy))};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("durable", "d");
  spec.fsync = policy;
  spec.fsync_interval_ms = 20;
  spec.max_segment_bytes = 256 * 1024;
  spec.max_message_bytes = 16 * 1024;
  ASSERT_TRUE(create(sc, spec));
  std::map<uint64_t, uint64_t> acked;  // message number -> offset
  std::map<uint64_t, std::vector<uint64_t>> in_frame;  // request id -> message numbers
  sc.on_acks([&](uint64_t rid, result<std::vector<message_ack>> acks) {
    auto numbers = in_frame[rid];
    in_frame.erase(rid);
    if (!acks)
      return;
    for (size_t i = 0; i < acks->size() && i < numbers.size(); ++i)
      acked[numbers[i]] = (*acks)[i].offset;
  });
  sc.set_max_unacked(200);
  constexpr uint64_t per_frame = 10;
  uint64_t next = 0;
  // Publish until 2,000 are acknowledged, then kill -9 with frames in flight.
  while (acked.size() < 2000) {
    std::vector<out_message> batch;
    std::vector<uint64_t> numbers;
    for (uint64_t i = 0; i < per_frame; ++i, ++next) {
      batch.push_back(out_message{"", "m-" + std::to_string(next), body_of(next, 512), {}});
      numbers.push_back(next);
    }
    uint64_t rid = 0;
    auto st = sc.publish_async("d", std::move(batch), {}, &rid);
    ASSERT_TRUE(st) << st.to_string();
    in_frame[rid] = std::move(numbers);
  }
  b.kill9();
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc2 = b.client();
  auto got = read_all(sc2, "durable");
  std::map<std::string, uint64_t> stored;  // id -> offset
  std::optional<uint64_t> previous_n;
  for (auto& m : got) {
    ASSERT_TRUE(stored.emplace(m.id, m.offset).second) << "stored twice: " << m.id;
    auto n = std::stoull(m.id.substr(2));
    if (previous_n) {
      EXPECT_GT(n, *previous_n) << "out of order at offset " << m.offset;
    }
    previous_n = n;
    EXPECT_EQ(m.body, body_of(n, 512));
  }
  for (auto& [n, offset] : acked) {
    auto i = stored.find("m-" + std::to_string(n));
    ASSERT_NE(i, stored.end()) << "acknowledged message " << n << " lost (policy "
                               << static_cast<int>(policy) << ")";
    EXPECT_EQ(i->second, offset);
  }
  // The publisher retries everything it sent and was not told about: what had landed is
  // a duplicate, the rest is stored once.
  std::vector<out_message> retry;
  for (uint64_t n = 0; n < next; ++n)
    if (!acked.count(n))
      retry.push_back(out_message{"", "m-" + std::to_string(n), body_of(n, 512), {}});
  if (!retry.empty()) {
    auto acks = sc2.publish("d", std::move(retry));
    ASSERT_TRUE(acks) << acks.error().to_string();
    // An ack = leader publish is answered once appended; under `interval` readers see it
    // when the next sync moves the high-water mark (fsync_interval_ms later).
    uint64_t last = 0;
    for (auto& a : *acks)
      last = std::max(last, a.offset);
    auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      auto info = sc2.get_stream_info("durable", bound);
      ASSERT_TRUE(info) << info.error().to_string();
      if (info->partitions[0].high_water > last)
        break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "the high-water mark stayed at " << info->partitions[0].high_water
        << " below the retried messages' last offset " << last;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  auto after = read_all(sc2, "durable");
  std::set<std::string> ids;
  for (auto& m : after)
    ASSERT_TRUE(ids.insert(m.id).second) << "stored twice after the retry: " << m.id;
  EXPECT_EQ(ids.size(), next);
}

TEST_F(BrokerSystem, KillNineUnderEveryBatchLosesNothingAcknowledged) {
  kill_while_publishing(dir_, fsync_mode::every_batch);
}
TEST_F(BrokerSystem, KillNineUnderIntervalLosesNothingAcknowledged) {
  kill_while_publishing(dir_, fsync_mode::interval);
}
// fsync none acknowledges once written to the page cache: a killed process loses nothing
// the kernel holds (a machine that loses power may: streams/README.md).
TEST_F(BrokerSystem, KillNineUnderNoneLosesNothingAcknowledged) {
  kill_while_publishing(dir_, fsync_mode::none);
}

TEST_F(BrokerSystem, CursorsSurviveARestart) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  ASSERT_TRUE(create(sc, spec_of("jobs", "jobs")));
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(sc.publish("jobs", {{"", "", "job-" + std::to_string(i), {}}}));
  auto none = sc.fetch_cursor("workers", "jobs", 0, bound);
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_FALSE(*none);
  ASSERT_TRUE(sc.commit_cursor("workers", "jobs", 0, 7, bound));
  ASSERT_EQ(b.stop(), 0);
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc2 = b.client();
  auto at = sc2.fetch_cursor("workers", "jobs", 0, bound);
  ASSERT_TRUE(at) << at.error().to_string();
  ASSERT_TRUE(*at);
  EXPECT_EQ(**at, 7u);
  subscribe_options so;
  so.stream = "jobs";
  so.start = start_at::cursor();
  so.group = "workers";
  so.stop_offset = 9;
  auto id = sc2.subscribe(so);
  ASSERT_TRUE(id);
  std::vector<std::string> bodies;
  auto deadline = steady_clock::now() + bound;
  while (steady_clock::now() < deadline) {
    auto ev = sc2.next(*id, 1s);
    ASSERT_FALSE(ev.error && ev.error->code != code::deadline_exceeded) << ev.error->to_string();
    if (ev.end)
      break;
    if (ev.batch)
      for (auto& m : ev.batch->messages)
        bodies.push_back(m.body);
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"job-7", "job-8", "job-9"}));
}

TEST_F(BrokerSystem, ASubscriberWithoutCreditKeepsTheBrokersMemoryBounded) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("firehose", "fire");
  spec.fsync = fsync_mode::none;
  spec.retention_max_bytes = 128u << 20;  // the disk stays bounded too
  ASSERT_TRUE(create(sc, spec));
  // A subscriber that grants one batch of credit and then never reads again.
  client_options o;
  o.port = b.port();
  o.stream_credit_batches = 1;
  o.stream_credit_bytes = 64 * 1024;
  stream_client stalled{o};
  ASSERT_TRUE(stalled.connect_with_backoff(bound));
  subscribe_options so;
  so.stream = "firehose";
  auto stalled_id = stalled.subscribe(so);
  ASSERT_TRUE(stalled_id);
  // 1 GiB in 512 KiB frames (32 x 16 KiB: under limits.broker.max_message_bytes), at most
  // 8 MiB un-acknowledged.
  sc.set_max_unacked(512);
  std::string body(16 * 1024, 'f');
  uint64_t failed = 0;
  std::string first_failure;
  sc.on_acks([&](uint64_t, result<std::vector<message_ack>> acks) {
    if (!acks && failed++ == 0)
      first_failure = acks.error().to_string();
  });
  for (int frame = 0; frame < 2048; ++frame) {
    std::vector<out_message> batch(32, out_message{"", "", body, {}});
    auto st = sc.publish_async("fire", std::move(batch), {});
    ASSERT_TRUE(st) << st.to_string();
  }
  ASSERT_TRUE(sc.flush(bound * 4));
  EXPECT_EQ(failed, 0u) << first_failure;
  auto peak = peak_rss_bytes(b.pid());
  ASSERT_GT(peak, 0u);
  // Far below the 1 GiB that went through: the stalled subscriber holds one batch.
  EXPECT_LT(peak, 256u << 20) << "the broker's peak RSS";
  std::printf("broker peak RSS after 1 GiB published past a stalled subscriber: %.1f MiB\n",
              static_cast<double>(peak) / (1 << 20));
  // The stalled subscriber still gets what it is owed once it reads.
  auto ev = stalled.next(*stalled_id, bound);
  ASSERT_TRUE(ev.batch) << (ev.error ? ev.error->to_string() : "no batch");
  EXPECT_FALSE(ev.batch->messages.empty());
}

TEST_F(BrokerSystem, ADamagedSegmentTakesOnlyItsStreamDown) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  {
    auto sc = b.client();
    auto spec = spec_of("fragile", "fragile");
    spec.max_segment_bytes = 16 * 1024;
    spec.max_message_bytes = 4 * 1024;
    ASSERT_TRUE(create(sc, spec));
    ASSERT_TRUE(create(sc, spec_of("sturdy", "sturdy")));
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(sc.publish("fragile", {{"", "", noise_of(i, 400), {}}}));
      ASSERT_TRUE(sc.publish("sturdy", {{"", "", noise_of(i, 400), {}}}));
    }
  }
  ASSERT_EQ(b.stop(), 0);
  // Flip bytes in the middle of the first (closed) segment of `fragile`.
  std::vector<fs::path> segments;
  for (auto& e : fs::recursive_directory_iterator(b.data_dir()))
    if (e.path().string().find("/fragile/") != std::string::npos && e.path().extension() == ".log")
      segments.push_back(e.path());
  std::sort(segments.begin(), segments.end());
  ASSERT_GE(segments.size(), 2u) << "expected several segments of fragile";
  {
    std::fstream f(segments.front(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4000);
    f.write("garbage!garbage!", 16);
  }
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto info = sc.get_stream_info("fragile", bound);
  // The stream is listed with its partition unavailable, saying why.
  if (info) {
    ASSERT_EQ(info->partitions.size(), 1u);
    EXPECT_FALSE(info->partitions[0].problem.empty());
  } else {
    EXPECT_EQ(info.error().code(), code::storage_error) << info.error().to_string();
  }
  auto publish = sc.publish("fragile", {{"", "", "x", {}}});
  ASSERT_FALSE(publish);
  EXPECT_EQ(publish.error().code(), code::storage_error) << publish.error().to_string();
  // The other stream serves.
  ASSERT_TRUE(sc.publish("sturdy", {{"", "", "fine", {}}}));
  EXPECT_EQ(read_all(sc, "sturdy").size(), 201u);
}

// A publisher pipelining as many single-message publishes as the connection admits
// (net.max_inflight_requests, 256) is refused by nothing behind the connection: the broker
// and the leader admit what the connection admitted (their per-requester bounds used to
// answer too_many_inflight past 64).
TEST_F(BrokerSystem, PipelinedPublishesWithinTheConnectionsBoundAreAllStored) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("piped", "piped");
  spec.fsync = fsync_mode::none;
  ASSERT_TRUE(create(sc, spec));
  uint64_t acked = 0, failed = 0;
  std::string first_failure;
  sc.on_acks([&](uint64_t, result<std::vector<message_ack>> acks) {
    if (acks)
      acked += acks->size();
    else if (failed++ == 0)
      first_failure = acks.error().to_string();
  });
  sc.set_max_unacked(4096);  // the connection's 256 frames bound it first
  sc.set_batch_bytes(0);     // one frame per publish: the frames are what is bounded here
  // With the broker stopped, the first 256 publishes wait in its socket: they arrive
  // together, all in flight at once, on any machine.
  auto limit = sc.connection().limits().max_inflight_requests;
  ASSERT_GT(limit, 64u);
  ASSERT_TRUE(b.pause());
  for (uint64_t i = 0; i < limit; ++i)
    ASSERT_TRUE(sc.publish_async("piped", {{"", "", "m" + std::to_string(i), {}}}));
  EXPECT_EQ(sc.connection().in_flight(), limit);
  ASSERT_TRUE(b.resume());
  constexpr uint64_t total = 2000;
  for (uint64_t i = limit; i < total; ++i)
    ASSERT_TRUE(sc.publish_async("piped", {{"", "", "m" + std::to_string(i), {}}}));
  ASSERT_TRUE(sc.flush(bound));
  EXPECT_EQ(failed, 0u) << first_failure;
  EXPECT_EQ(acked, total);
  EXPECT_EQ(read_all(sc, "piped").size(), total);
}

// Publishes that reach a leader together are written together (group commit), yet each
// is answered as if alone: with the broker stopped while ten are sent, they arrive in one
// read; the stream holds six, so the first six are stored in order and the last four are
// refused stream_full; an id repeated within the group is a duplicate of its first.
TEST_F(BrokerSystem, PublishesWrittenTogetherAreAnsweredAsIfAlone) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("six", "six");
  spec.on_full = full_policy::reject;
  spec.retention_max_messages = 6;
  ASSERT_TRUE(create(sc, spec));
  std::map<uint64_t, result<std::vector<message_ack>>> answers;
  sc.on_acks([&](uint64_t rid, result<std::vector<message_ack>> acks) {
    answers.emplace(rid, std::move(acks));
  });
  std::vector<uint64_t> rids;
  sc.set_batch_bytes(0);  // ten frames, each its own append request
  ASSERT_TRUE(b.pause());
  for (int i = 0; i < 10; ++i) {
    // Publish 3 repeats publish 1's id: a duplicate, taking no place.
    std::string id = i == 3 ? "id-1" : "id-" + std::to_string(i);
    uint64_t rid = 0;
    ASSERT_TRUE(sc.publish_async("six", {{"", id, "m" + std::to_string(i), {}}}, {}, &rid));
    rids.push_back(rid);
  }
  ASSERT_TRUE(b.resume());
  ASSERT_TRUE(sc.flush(bound));
  ASSERT_EQ(answers.size(), 10u);
  std::vector<uint64_t> offsets;
  for (int i = 0; i < 10; ++i) {
    auto& a = answers.at(rids[static_cast<size_t>(i)]);
    if (i < 7) {
      ASSERT_TRUE(a) << "publish " << i << ": " << a.error().to_string();
      offsets.push_back(a->at(0).offset);
      EXPECT_EQ(a->at(0).duplicate, i == 3) << "publish " << i;
    } else {
      ASSERT_FALSE(a) << "publish " << i << " was stored past the bound";
      EXPECT_EQ(a.error().code(), code::stream_full) << a.error().to_string();
    }
  }
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 1, 2, 1, 3, 4, 5}));
  auto stored = read_all(sc, "six");
  ASSERT_EQ(stored.size(), 6u);
  EXPECT_EQ(stored[3].body, "m4");
}

/// Polls the stream's info (a short pause between looks) until `pred` holds for
/// partition 0; false when the bound passes.
bool until_info(stream_client& sc, const std::string& stream,
                const std::function<bool(const partition_info&)>& pred) {
  return test::wait_until(
    [&] {
      auto info = sc.get_stream_info(stream, bound);
      if (!info || info->partitions.empty())
        return false;
      if (pred(info->partitions[0]))
        return true;
      std::this_thread::sleep_for(10ms);  // a look every 10 ms, not as fast as the CPU
      return false;
    },
    bound);
}

// Retention by bytes and by count drops whole old segments under drop_oldest (a reader
// from the earliest starts after them), by age under either policy; compaction keeps the
// last message of each key. The broker's maintenance timer runs every 100 ms here.
TEST_F(BrokerSystem, RetentionAndCompactionThroughARunningBroker) {
  broker_process b{dir_, "b"};
  b.config().set("broker", "maintenance_interval_ms", "100");
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto by_bytes = spec_of("bounded", "bounded");
  by_bytes.max_segment_bytes = 16 * 1024;
  by_bytes.max_message_bytes = 4 * 1024;
  by_bytes.retention_max_bytes = 64 * 1024;
  by_bytes.on_full = full_policy::drop_oldest;
  ASSERT_TRUE(create(sc, by_bytes));
  auto by_count = spec_of("counted", "counted");
  by_count.max_segment_bytes = 16 * 1024;
  by_count.max_message_bytes = 4 * 1024;
  by_count.retention_max_messages = 100;
  by_count.on_full = full_policy::drop_oldest;
  ASSERT_TRUE(create(sc, by_count));
  for (uint64_t i = 0; i < 1000; i += 10) {  // ten a frame: a segment rolls every ~3 frames
    std::vector<out_message> batch;
    for (uint64_t j = i; j < i + 10; ++j)
      batch.push_back(out_message{"", "", noise_of(j, 500), {}});
    ASSERT_TRUE(sc.publish("bounded", batch));
    ASSERT_TRUE(sc.publish("counted", std::move(batch)));
  }
  for (const char* name : {"bounded", "counted"}) {
    auto info = sc.get_stream_info(name, bound);
    ASSERT_TRUE(info);
    auto& p = info->partitions[0];
    EXPECT_GT(p.dropped_segments, 0u) << name;
    EXPECT_GT(p.start_offset, 0u) << name;
    EXPECT_EQ(p.next_offset, 1000u) << name;
    auto kept = read_all(sc, name);
    ASSERT_FALSE(kept.empty()) << name;
    EXPECT_EQ(kept.front().offset, p.start_offset) << name;
    EXPECT_EQ(kept.back().body, noise_of(999, 500)) << name;
  }
  EXPECT_LE(sc.get_stream_info("bounded", bound)->partitions[0].size_bytes, 64u * 1024 + 16 * 1024);
  EXPECT_LE(read_all(sc, "counted").size(), 100u + 16 * 1024 / 500 + 1);

  // Age, under reject: old segments go as time passes, not as the stream fills.
  auto aged = spec_of("aged", "aged");
  aged.max_segment_bytes = 16 * 1024;
  aged.max_message_bytes = 4 * 1024;
  aged.retention_max_age_ms = 300;
  aged.on_full = full_policy::reject;
  ASSERT_TRUE(create(sc, aged));
  for (uint64_t i = 0; i < 100; ++i)
    ASSERT_TRUE(sc.publish("aged", {{"", "", noise_of(i, 500), {}}}));
  EXPECT_TRUE(until_info(sc, "aged", [](const partition_info& p) {
    return p.dropped_segments > 0;
  })) << "no segment of 'aged' was dropped by age";

  // Compaction: ten keys written ten times each; closed segments keep each key's last.
  auto keyed = spec_of("keyed", "keyed");
  keyed.max_segment_bytes = 8 * 1024;
  keyed.max_message_bytes = 1024;
  keyed.compact_by_key = true;
  ASSERT_TRUE(create(sc, keyed));
  for (int round = 0; round < 10; ++round)
    for (int k = 0; k < 10; ++k)
      ASSERT_TRUE(sc.publish("keyed", {{"k" + std::to_string(k), "",
                                        "v" + std::to_string(round) + noise_of(k, 400), {}}}));
  EXPECT_TRUE(until_info(sc, "keyed", [](const partition_info& p) { return p.compacted > 0; }))
    << "nothing of 'keyed' was compacted";
  auto left = read_all(sc, "keyed");
  std::map<std::string, std::string> last;
  for (auto& m : left)
    last[m.key] = m.body;
  EXPECT_LT(left.size(), 100u);
  ASSERT_EQ(last.size(), 10u);
  for (int k = 0; k < 10; ++k)
    EXPECT_EQ(last["k" + std::to_string(k)], "v9" + noise_of(k, 400)) << "key k" << k;
}

/// Runs `cmd` in a shell; its stdout and stderr.
std::string shell(const std::string& cmd, int* rc) {
  std::string out;
  auto* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int status = ::pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

/// Runs the CLI (with `input` on its stdin, printf's escapes allowed); its output.
std::string cli(const std::vector<std::string>& args, int* rc, const std::string& input = {}) {
  std::string cmd = levee_binary;
  for (auto& a : args)
    cmd += " '" + a + "'";
  if (!input.empty())
    cmd = "printf '" + input + "' | " + cmd;
  return shell(cmd, rc);
}

TEST_F(BrokerSystem, TheCliSpeaksJson) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto broker = "127.0.0.1:" + std::to_string(b.port());
  int rc = -1;
  auto out = cli({"stream", "create", "events", "--subject", "ev.>", "--partitions", "2",
                  "--broker", broker, "--json"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  auto created = nlohmann::json::parse(out);
  EXPECT_EQ(created["config"]["name"], "events");
  out = cli({"pub", "ev.a", "--key", "k", "--id", "x", "--broker", broker, "--json"}, &rc,
            "one\\ntwo\\nthree\\n");
  ASSERT_EQ(rc, 0) << out;
  std::vector<nlohmann::json> acks;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    acks.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(acks.size(), 3u);
  auto partition = acks[0]["partition"].get<int>();
  // The same input with the same --id again: every line a duplicate.
  out = cli({"pub", "ev.a", "--key", "k", "--id", "x", "--broker", broker, "--json"}, &rc,
            "one\\ntwo\\nthree\\n");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3);
  EXPECT_EQ(out.find("\"duplicate\":false"), std::string::npos) << out;
  out = cli({"sub", "events", "--partition", std::to_string(partition), "--count", "3",
             "--broker", broker, "--json", "--group", "g"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  std::vector<std::string> bodies;
  std::istringstream sub_lines(out);
  for (std::string line; std::getline(sub_lines, line);)
    if (!line.empty() && line[0] == '{')
      bodies.push_back(nlohmann::json::parse(line)["body"]);
  EXPECT_EQ(bodies, (std::vector<std::string>{"one", "two", "three"}));
  out = cli({"stream", "list", "--broker", broker, "--json"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["streams"].size(), 1u);
  out = cli({"stream", "info", "nope", "--broker", broker}, &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("not_found"), std::string::npos) << out;
  out = cli({"sub", "events", "--from", "offset:x", "--broker", broker}, &rc);
  EXPECT_EQ(rc, 2) << out;
  // A line longer than any frame (3 MB without a newline) is an error naming the bound,
  // read no further than the bound.
  out = shell("head -c 3000000 /dev/zero | tr '\\0' x | " + levee_binary + " pub ev.a --broker "
                + broker,
              &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("line 1 is longer than the broker's largest frame"), std::string::npos)
    << out;
  out = cli({"stream", "list", "--broker", "127.0.0.1:1"}, &rc);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("cannot reach the broker"), std::string::npos) << out;
}

/// The broker's stats as `levee stats --json` prints them.
nlohmann::json broker_stats(const broker_process& b) {
  int rc = -1;
  auto out = cli({"stats", "--server", "127.0.0.1:" + std::to_string(b.port()), "--json"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << out;
  return j.is_discarded() ? nlohmann::json{} : j["broker"];
}

uint64_t counter(const nlohmann::json& j, const char* name) {
  return j.is_object() && j.contains(name) ? j[name].get<uint64_t>() : 0;
}

// Asynchronous publishes that follow each other share frames (stream_client batching) and
// one append per frame, yet every call is answered with its own acks: one per message and
// matching stream, each stream's offsets in call order with no gap. With batching off,
// every call is its own frame.
TEST_F(BrokerSystem, BatchedAsyncPublishesAreAnsweredCallByCall) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  for (auto* name : {"all", "eu"}) {
    auto spec = spec_of(name, std::string{name} == "all" ? "orders.>" : "orders.eu");
    spec.fsync = fsync_mode::none;
    ASSERT_TRUE(create(sc, spec));
  }
  struct call {
    uint64_t messages = 0;
    std::optional<result<std::vector<message_ack>>> answer;
  };
  std::map<uint64_t, call> calls;  // publish id -> call
  std::vector<uint64_t> order;     // publish ids in call order
  sc.on_acks([&](uint64_t id, result<std::vector<message_ack>> acks) {
    auto& c = calls[id];
    EXPECT_FALSE(c.answer) << "publish " << id << " answered twice";
    c.answer = std::move(acks);
  });
  auto before = counter(broker_stats(b), "publishes");
  constexpr int n_calls = 300;
  uint64_t messages = 0;
  for (int i = 0; i < n_calls; ++i) {
    std::vector<out_message> batch;
    for (int j = 0; j <= i % 3; ++j)
      batch.push_back(out_message{"", "c" + std::to_string(i) + "-" + std::to_string(j),
                                  "b" + std::to_string(i) + "-" + std::to_string(j), {}});
    uint64_t id = 0;
    auto n = batch.size();
    ASSERT_TRUE(sc.publish_async("orders.eu", std::move(batch), {}, &id));
    calls[id].messages = n;
    order.push_back(id);
    messages += n;
  }
  ASSERT_TRUE(sc.flush(bound));
  std::map<std::string, std::vector<uint64_t>> offsets;  // stream -> offsets in call order
  for (auto id : order) {
    auto& c = calls[id];
    ASSERT_TRUE(c.answer) << "publish " << id << " not answered";
    ASSERT_TRUE(*c.answer) << c.answer->error().to_string();
    auto& acks = **c.answer;
    ASSERT_EQ(acks.size(), 2 * c.messages) << "publish " << id;
    for (size_t k = 0; k < acks.size(); ++k) {
      // Stream by stream: this call's messages in the first stream, then in the second.
      EXPECT_EQ(acks[k].stream, acks[k < c.messages ? 0 : c.messages].stream);
      offsets[acks[k].stream].push_back(acks[k].offset);
    }
  }
  ASSERT_EQ(offsets.size(), 2u);
  for (auto& [stream, got] : offsets) {
    std::vector<uint64_t> want(messages);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(got, want) << "stream " << stream;
  }
  auto stored = read_all(sc, "eu");
  ASSERT_EQ(stored.size(), messages);
  EXPECT_EQ(stored[0].id, "c0-0");
  EXPECT_EQ(stored.back().body, "b299-2");
  auto batched = counter(broker_stats(b), "publishes") - before;
  EXPECT_LE(batched, n_calls / 10) << "300 calls of 1-3 small messages took " << batched
                                   << " frames";
  // Off: a frame per call.
  sc.set_batch_bytes(0);
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(sc.publish_async("orders.eu", {{"", "", "one", {}}}));
  ASSERT_TRUE(sc.flush(bound));
  EXPECT_EQ(counter(broker_stats(b), "publishes") - before - batched, 50u);
}

// A batch is stored or refused as a whole: one message over its stream's bound refuses
// every call that shares its frame, with the code, and nothing of them is stored.
TEST_F(BrokerSystem, ARefusedBatchAnswersEveryCallInIt) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("small", "small");
  spec.max_message_bytes = 100;
  ASSERT_TRUE(create(sc, spec));
  std::map<uint64_t, result<std::vector<message_ack>>> answers;
  sc.on_acks([&](uint64_t id, result<std::vector<message_ack>> acks) {
    answers.emplace(id, std::move(acks));
  });
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(sc.publish_async("small", {{"", "", std::string(i == 2 ? 200 : 10, 'x'), {}}}));
  ASSERT_TRUE(sc.flush(bound));
  ASSERT_EQ(answers.size(), 5u);
  for (auto& [id, a] : answers) {
    ASSERT_FALSE(a) << "publish " << id << " was stored with the batch's refusal";
    EXPECT_EQ(a.error().code(), code::message_too_large) << a.error().to_string();
  }
  EXPECT_TRUE(read_all(sc, "small").empty());
  auto stats = broker_stats(b);
  EXPECT_EQ(counter(stats["rejections"], "message_too_large"), 1u) << stats.dump();
}

// The ack handler runs when a call of the client returns, never inside one, so it may
// publish itself: each of 200 publishes to "a" answered publishes one to "b" from the
// handler, and every message lands in its own stream.
TEST_F(BrokerSystem, TheAckHandlerMayPublishAgain) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  ASSERT_TRUE(create(sc, spec_of("a", "a")));
  ASSERT_TRUE(create(sc, spec_of("b", "b")));
  uint64_t answered_a = 0, answered_b = 0, failed = 0;
  sc.set_max_unacked(64);  // the window fills: handlers run while publishes wait
  sc.on_acks([&](uint64_t, result<std::vector<message_ack>> acks) {
    if (!acks) {
      ++failed;
      return;
    }
    // By its stream: a publish may be answered before the call that made it returned
    // its id (a handler's publish sends the batch the call joined).
    if (acks->at(0).stream != "a") {
      ++answered_b;
      return;
    }
    ++answered_a;
    EXPECT_TRUE(sc.publish_async("b", {{"", "", "b" + std::to_string(answered_a), {}}}));
  });
  for (int i = 0; i < 200; ++i)
    ASSERT_TRUE(sc.publish_async("a", {{"", "", "a" + std::to_string(i), {}}}));
  // The handler's own publishes are answered by a later flush.
  for (int round = 0; round < 10 && answered_b < 200; ++round)
    ASSERT_TRUE(sc.flush(bound));
  EXPECT_EQ(failed, 0u);
  EXPECT_EQ(answered_a, 200u);
  EXPECT_EQ(answered_b, 200u);
  auto a = read_all(sc, "a");
  auto bs = read_all(sc, "b");
  ASSERT_EQ(a.size(), 200u);
  ASSERT_EQ(bs.size(), 200u);
  for (auto& m : a)
    EXPECT_EQ(m.body[0], 'a') << m.body;
  for (auto& m : bs)
    EXPECT_EQ(m.body[0], 'b') << m.body;
}

// Publishes the old connection had on its way (here still held in the client's batch
// when the broker died) are answered unavailable when the client connects again, and
// the window is free for new ones.
TEST_F(BrokerSystem, ANewConnectionAnswersWhatTheOldOneHadOnItsWay) {
  broker_process b{dir_, "b"};
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  ASSERT_TRUE(create(sc, spec_of("r", "r")));
  std::map<uint64_t, result<std::vector<message_ack>>> answers;
  sc.on_acks([&](uint64_t id, result<std::vector<message_ack>> acks) {
    answers.emplace(id, std::move(acks));
  });
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(sc.publish_async("r", {{"", "", "lost" + std::to_string(i), {}}}));
  EXPECT_EQ(sc.unacked(), 10u);
  b.kill9();
  b.config().set("broker", "listen", "127.0.0.1:" + std::to_string(b.port()));
  ASSERT_TRUE(b.start()) << b.stderr_text();
  ASSERT_TRUE(sc.connect_with_backoff(bound));
  ASSERT_EQ(answers.size(), 10u);
  for (auto& [id, a] : answers) {
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), code::unavailable) << a.error().to_string();
  }
  EXPECT_EQ(sc.unacked(), 0u);
  answers.clear();
  ASSERT_TRUE(sc.publish_async("r", {{"", "", "after", {}}}));
  ASSERT_TRUE(sc.flush(bound));
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_TRUE(answers.begin()->second);
  auto stored = read_all(sc, "r");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].body, "after");
}

// [limits.consumer] paces every subscription: with 200 msgs/s and a burst of 50, reading
// 450 stored messages takes at least (450 - 50) / 200 = 2 s however fast the machine (a
// lower bound: a slower machine only takes longer), every message arrives once and in
// order, and the waits are counted.
TEST_F(BrokerSystem, LimitsConsumerPacesEachSubscription) {
  broker_process b{dir_, "b"};
  b.config().set("limits.consumer", "rate_msgs_per_sec", "200")
    .set("limits.consumer", "rate_burst_msgs", "50");
  ASSERT_TRUE(b.start()) << b.stderr_text();
  auto sc = b.client();
  auto spec = spec_of("paced", "paced");
  spec.partitions = 1;
  ASSERT_TRUE(create(sc, spec));
  std::vector<out_message> batch;
  for (int i = 0; i < 450; ++i)
    batch.push_back(out_message{"", "", "m" + std::to_string(i), {}});
  auto acks = sc.publish("paced", std::move(batch));
  ASSERT_TRUE(acks) << acks.error().to_string();
  auto t0 = steady_clock::now();
  auto got = read_range(sc, "paced", 0, start_at::earliest(), 449);
  auto took = duration_cast<milliseconds>(steady_clock::now() - t0);
  ASSERT_EQ(got.size(), 450u);
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i].offset, i);
  // 1.9 s, not 2: the bucket fills from the subscription on, a little before t0's read.
  EXPECT_GE(took, 1900ms) << "450 messages at 200/s after a burst of 50";
  EXPECT_GT(counter(broker_stats(b), "subscriptions_paced"), 0u);
}

} // namespace
} // namespace levee
