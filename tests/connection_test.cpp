// The connection gate over real TCP on 127.0.0.1: a server (CAF brokers) in this process,
// clients over real sockets. Every bad input gets its Reject and a close, counted by
// code, and other connections keep working.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/atoms.hpp"
#include "actors/io_loop.hpp"
#include "actors/limited_actor.hpp"
#include "actors/wire_target.hpp"
#include "levee/client.hpp"
#include "net/frame.hpp"
#include "net/levee.pb.h"
#include "net/listener.hpp"
#include "net/reject_frame.hpp"
#include "net/uplink.hpp"
#include "tests/test_support.hpp"
#include "tests/wire_support.hpp"

namespace levee {
namespace {

using namespace std::chrono_literals;

/// Echoes payloads; "big:N" answers N incompressible bytes; "hold" blocks until released.
/// Requests wire_service holds unanswered ("never:..."), for tests to wait on.
std::atomic<size_t> kept_requests{0};

class wire_service : public limited_actor {
public:
  wire_service(caf::actor_config& cfg, test::latch* release) : limited(cfg), release_(release) {}
  caf::behavior make_behavior() override {
    return {
      [this](wire_stream_atom, const std::string& payload, uint64_t rid, uint64_t,
             uint64_t) -> caf::result<stream_tail, std::string> {
        // "N": N batches "part-0" .. "part-(N-1)" to the requester, then the summary;
        // "N+M": N batches alone, then M more with the summary (its tail).
        auto plus = payload.find('+');
        auto n = std::stoul(payload.substr(0, plus));
        auto m = plus == std::string::npos ? 0 : std::stoul(payload.substr(plus + 1));
        auto to = caf::actor_cast<caf::actor>(current_sender());
        for (size_t i = 0; i < n; ++i)
          send(to, wire_batch_atom::value, rid, "part-" + std::to_string(i));
        stream_tail tail;
        for (size_t i = n; i < n + m; ++i)
          tail.push_back("part-" + std::to_string(i));
        return {std::move(tail), std::to_string(n + m) + " parts"};
      },
      [this](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      if (payload.rfind("never:", 0) == 0) {
        // Not answered until (tick_atom) comes, then with what follows "never:".
        kept_.emplace_back(make_response_promise<std::string>(), payload.substr(6));
        kept_requests = kept_.size();
        return kept_.back().first;
      }
      if (payload == "hold")
        release_->wait();
      if (payload.rfind("big:", 0) == 0) {
        std::string out(std::stoul(payload.substr(4)), '\0');
        uint32_t x = 7;
        for (auto& c : out) {
          x = x * 1664525 + 1013904223;
          c = static_cast<char>(x >> 24);
        }
        return out;
      }
      return payload;
      },
      [](credit_atom, uint64_t, uint64_t, uint64_t) {
        // Sends every batch at once, credit or not: the connection must cope with a
        // producer that overruns (it writes what comes, and lends nothing more).
      },
      [this](tick_atom) {
        for (auto& [rp, answer] : kept_)
          rp.deliver(answer);
        kept_.clear();
        kept_requests = 0;
      },
    };
  }

private:
  test::latch* release_;
  std::vector<std::pair<caf::typed_response_promise<std::string>, std::string>> kept_;
};

/// A plain TCP socket, for what the client library would never send.
struct raw_socket {
  int fd = -1;
  explicit raw_socket(uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      ADD_FAILURE() << "connect failed";
    timeval tv{10, 0};  // a bound: no test waits longer for the server
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~raw_socket() { ::close(fd); }
  void send(const std::string& bytes) { ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  /// Hands each frame the server sends to `done` until it returns true (then true) or
  /// the server closes (false).
  template <class F>
  bool read_frames(F done) {
    net::frame_reader r{net::codec_limits{1u << 30, 1u << 30, 0}};
    char buf[4096];
    for (;;) {
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        return false;
      size_t pos = 0;
      while (pos < static_cast<size_t>(n) && !r.error()) {
        pos += r.feed(reinterpret_cast<const uint8_t*>(buf) + pos, static_cast<size_t>(n) - pos);
        if (r.frame_ready()) {
          auto env = r.take();
          if (getenv("LEVEE_TEST_TRACE"))
            std::fprintf(stderr, "raw socket got: %s\n", env.ShortDebugString().c_str());
          if (done(env))
            return true;
        }
      }
    }
  }
  /// Reads until the server closes; the last Reject it sent.
  std::optional<rejection> read_until_close() {
    std::optional<rejection> last;
    read_frames([&](const wire::Envelope& env) {
      if (env.has_reject())
        last = net::from_wire(env.reject());
      return false;
    });
    return last;
  }
  /// Reads until the server's Hello (true), or its Reject and close (false).
  bool read_hello() {
    bool hello = false;
    read_frames([&](const wire::Envelope& env) {
      hello = env.has_hello();
      return true;
    });
    return hello;
  }
};

std::string frame_of(const wire::Envelope& env) {
  std::string out;
  net::encode_frame(env, net::codec_limits{1u << 30, 1u << 30, 1u << 30}, out);
  return out;
}

std::string hello_frame(uint32_t version = net::protocol_version, std::string token = "",
                        wire::Role role = wire::ROLE_CLIENT) {
  wire::Envelope env;
  env.mutable_hello()->set_protocol_version(version);
  env.mutable_hello()->set_token(std::move(token));
  env.mutable_hello()->set_role(role);
  return frame_of(env);
}


/// Reads the answer to a probe sent to learn whether an in-flight slot is free again: true
/// when it was answered (`out` holds the answer); false for "not yet" (too_many_inflight),
/// after a pause that keeps the probes within the frame rate the server advertised, so
/// that however fast the machine, they never outrun net.max_msgs_per_sec and whatever the
/// test sends next passes. Should a probe be refused as rate_limited all the same, its
/// retry_after_ms is waited out. Any other answer fails the test.
bool probe_answered(client& c, reply& out) {
  out = c.receive(10s);
  if (!out.rejected)
    return true;
  auto& why = *out.rejected;
  if (why.code == code::rate_limited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(why.retry_after_ms));
    return false;
  }
  EXPECT_EQ(why.code, code::too_many_inflight) << why.to_string();
  if (auto rate = c.limits().max_msgs_per_sec; rate != 0)
    std::this_thread::sleep_for(std::chrono::microseconds(1'000'000 / rate));
  return false;
}

struct ConnectionTest : ::testing::Test {
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::shared_ptr<net::server_context> ctx;
  net::listener lst;
  std::vector<caf::actor> targets;
  test::latch release;
  manual_clock frozen;
  net::listener_config lcfg;

  void SetUp() override {
    set_log_sink([](std::string_view) {});
    lcfg.limits.handshake_timeout_ms = 10'000;
  }

  void start(const clock_source& clock = steady_clock_source::instance(), uint16_t port = 0) {
    cfg = std::make_unique<caf::actor_system_config>();
    cfg->load<caf::io::middleman>();
    cfg->set("scheduler.max-threads", 4);
    add_error_category(*cfg);
    sys = std::make_unique<caf::actor_system>(*cfg);
    limits_config lc;
    auto held = actor_limits::defaults();
    held.mailbox_capacity = 2;
    lc.kinds.emplace("held", held);
    auto small = actor_limits::defaults();
    small.max_message_bytes = 64;
    lc.kinds.emplace("small", small);
    // One connection is one requester to the actors behind it: let it pipeline 128.
    auto echo = actor_limits::defaults();
    echo.max_inflight_per_requester = 128;
    lc.kinds.emplace("echo", echo);
    rt = std::make_unique<runtime>(lc);
    ctx = std::make_shared<net::server_context>(lcfg, clock);
    targets = {spawn_limited<wire_service>(*sys, *rt, "echo", &release),
               spawn_limited<wire_service>(*sys, *rt, "held", &release)};
    targets.push_back(spawn_limited_fun(
      *sys, *rt, "small", io_thread_of(*sys), [](limited_actor*) -> caf::behavior {
        return {[](wire_request_atom, std::string& s) { return std::move(s); }};
      }));
    ctx->expose("echo", targets[0]);
    ctx->expose("held", targets[1]);
    ctx->expose("mx", targets[2]);
    auto l = net::start_listener(*sys, ctx, "127.0.0.1", port);
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    lst = *l;
  }

  void stop() {
    release.open();
    if (sys) {
      net::stop_listener(lst, *ctx);
      EXPECT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 0; }));
      for (auto& t : targets)
        caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
      targets.clear();
      lst.acceptor = nullptr;
      sys.reset();
      ctx.reset();
    }
  }

  void TearDown() override { stop(); }

  client make_client(std::string token = "") {
    client_options o;
    o.port = lst.port;
    o.token = std::move(token);
    return client{o};
  }

  /// Another connection does a round trip: the server keeps serving everyone else.
  void expect_others_still_served() {
    auto c = make_client(lcfg.token);
    ASSERT_TRUE(c.connect().ok());
    auto r = c.request("echo", "still here", 10s);
    ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "");
    EXPECT_EQ(*r.payload, "still here");
  }
};

TEST_F(ConnectionTest, HelloAdvertisesLimitsAndRequestsRoundTrip) {
  lcfg.limits.max_frame_bytes = 200'000;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  EXPECT_EQ(c.limits().max_frame_bytes, 200'000u);
  EXPECT_EQ(c.limits().max_inflight_requests, lcfg.limits.max_inflight_requests);
  EXPECT_EQ(c.limits().node_id, "levee");
  auto r = c.request("echo", "hello", 10s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r.payload, "hello");
  // Pipelined: many in flight, every answer matched to its request id.
  std::map<uint64_t, std::string> sent;
  for (int i = 0; i < 50; ++i) {
    uint64_t id = 0;
    ASSERT_FALSE(c.send_request("echo", "m" + std::to_string(i), id));
    sent[id] = "m" + std::to_string(i);
  }
  for (int i = 0; i < 50; ++i) {
    auto a = c.receive(10s);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(*a.payload, sent[a.request_id]);
  }
  auto big = c.request("echo", "big:100000", 10s);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big.payload->size(), 100'000u);
}

TEST_F(ConnectionTest, BatchedRequestsInOneWriteAndAnswersAsTheyArrive) {
  lcfg.limits.max_inflight_requests = 100;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  std::vector<std::string> payloads;
  for (int i = 0; i < 100; ++i)
    payloads.push_back("b" + std::to_string(i));
  std::vector<uint64_t> ids;
  ASSERT_FALSE(c.send_requests("echo", payloads, ids));
  ASSERT_EQ(ids.size(), 100u);
  EXPECT_EQ(c.in_flight(), 100u);
  // One more would pass the advertised bound: refused locally, all or nothing.
  std::vector<uint64_t> more;
  auto refused = c.send_requests("echo", {"x"}, more);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, code::too_many_inflight);
  EXPECT_TRUE(more.empty());
  std::map<uint64_t, std::string> expected;
  for (size_t i = 0; i < ids.size(); ++i)
    expected[ids[i]] = payloads[i];
  std::vector<reply> answers;
  while (answers.size() < 100) {
    auto before = answers.size();
    c.receive_ready(answers, 10s);
    ASSERT_GT(answers.size(), before);
  }
  for (auto& a : answers) {
    ASSERT_TRUE(a.ok()) << a.rejected->to_string();
    EXPECT_EQ(*a.payload, expected[a.request_id]);
  }
  EXPECT_EQ(c.in_flight(), 0u);
}

// Also when the target ends with batches in its answer (stream_tail, "97+3"): they leave as
// Batch frames, in sequence, before the EndOfStream, which counts them.
TEST_F(ConnectionTest, StreamedAnswersArriveInOrderThenEndOfStream) {
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  for (std::string asked : {"100", "97+3"}) {
  SCOPED_TRACE(asked);
  uint64_t stream_id = 0;
  ASSERT_FALSE(c.send_stream_request("echo", asked, stream_id));
  std::map<uint64_t, std::string> plain;
  for (int i = 0; i < 10; ++i) {
    uint64_t id = 0;
    ASSERT_FALSE(c.send_request("echo", "p" + std::to_string(i), id));
    plain[id] = "p" + std::to_string(i);
  }
  uint64_t next_sequence = 0;
  bool ended = false;
  size_t answered = 0;
  while (!ended || answered < plain.size()) {
    auto r = c.receive(10s);
    ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "");
    if (r.request_id == stream_id) {
      ASSERT_FALSE(ended) << "nothing may follow the end of a stream";
      if (r.end_of_stream) {
        EXPECT_EQ(r.sequence, 100u);  // batches sent
        EXPECT_EQ(*r.payload, "100 parts");
        ended = true;
      } else {
        ASSERT_TRUE(r.batch);
        EXPECT_EQ(r.sequence, next_sequence);
        EXPECT_EQ(*r.payload, "part-" + std::to_string(next_sequence));
        ++next_sequence;
      }
    } else {
      EXPECT_EQ(*r.payload, plain[r.request_id]);
      ++answered;
    }
  }
  EXPECT_EQ(next_sequence, 100u);
  EXPECT_EQ(c.in_flight(), 0u);
  }
}

TEST_F(ConnectionTest, WrongOrMissingTokenIsUnauthenticatedThenClosed) {
  lcfg.token = "s3cret";
  start();
  auto wrong = make_client("guess");
  auto st = wrong.connect();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::unauthenticated);
  auto none = make_client();
  EXPECT_EQ(none.connect().code(), code::unauthenticated);
  EXPECT_TRUE(test::wait_until([&] { return ctx->stats.closed(code::unauthenticated) == 2; }));
  expect_others_still_served();
}

TEST_F(ConnectionTest, UnknownTargetIsNotFoundAndTheConnectionStays) {
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  auto r = c.request("nobody", "x", 10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.rejected->code, code::not_found);
  EXPECT_TRUE(c.request("echo", "x", 10s).ok());
}

// Text fields (PROTOCOL.md): bytes that are not UTF-8 never make a frame unparseable; each
// field is accepted or refused by name, and protobuf prints nothing on the node's stderr.

TEST_F(ConnectionTest, AHelloWhoseNodeIdIsNotUtf8IsRefusedSayingWhy) {
  start();
  test::protobuf_log_capture logs;
  raw_socket s{lst.port};
  auto hello = test::number_field(1, net::protocol_version) + test::bytes_field(2, "sat\xff-1");
  s.send(test::frame_around(test::bytes_field(2, hello)));
  auto last = s.read_until_close();
  ASSERT_TRUE(last) << "closed without a Reject";
  EXPECT_EQ(last->code, code::bad_request);
  EXPECT_EQ(last->limit, "");
  EXPECT_EQ(last->detail,
            "Hello.node_id is not valid UTF-8: byte 0xff at offset 3 of it; a node id is text: "
            "set it (net.node_id, client_options::node_id) to UTF-8");
  EXPECT_TRUE(logs.lines().empty()) << logs.lines().front();
  expect_others_still_served();
}

TEST_F(ConnectionTest, ATokenIsAnyBytesComparedAsTheyAre) {
  lcfg.token = "k\xffy\x01";
  start();
  test::protobuf_log_capture logs;
  auto c = make_client(lcfg.token);
  ASSERT_TRUE(c.connect().ok());
  auto r = c.request("echo", "in", 10s);
  ASSERT_TRUE(r.ok()) << r.rejected->to_string();
  auto wrong = make_client("k\xfey\x01");
  auto st = wrong.connect();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::unauthenticated) << st.message();
  EXPECT_TRUE(logs.lines().empty()) << logs.lines().front();
}

TEST_F(ConnectionTest, ATargetThatIsNotUtf8IsNotFoundAndTheConnectionGoesOn) {
  start();
  test::protobuf_log_capture logs;
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  auto r = c.request("ec\xffho\x1b[2J", "x", 10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.rejected->code, code::not_found);
  EXPECT_EQ(r.rejected->limit, "");
  // The Reject quotes the bytes as they came; shown, they are escaped.
  EXPECT_EQ(r.rejected->detail, "no actor is exposed as 'ec\xffho\x1b[2J'");
  EXPECT_EQ(r.rejected->to_string(),
            "not_found (11): do not retry: no actor is exposed as "
            "'ec\\xffho\\x1b[2J'");
  auto again = c.request("echo", "after", 10s);
  ASSERT_TRUE(again.ok()) << again.rejected->to_string();
  EXPECT_EQ(*again.payload, "after");
  EXPECT_TRUE(logs.lines().empty()) << logs.lines().front();
}

TEST_F(ConnectionTest, FourGiBLengthHeaderIsRefusedWithoutMemoryGrowth) {
  start();
  auto rss_before = current_rss_bytes();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  ASSERT_TRUE(c.send_raw(std::string("\xff\xff\xff\xff\x00", 5)).ok());
  auto r = c.wait_for_close(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::message_too_large);
  EXPECT_EQ(r->limit, "net.max_frame_bytes");
  EXPECT_EQ(r->observed, 0xFFFFFFFFu);
  EXPECT_EQ(r->max, lcfg.limits.max_frame_bytes);
  EXPECT_LT(current_rss_bytes(), rss_before + (8u << 20));
  EXPECT_EQ(ctx->stats.closed(code::message_too_large), 1u);
  expect_others_still_served();
}

// CAF does not set TCP_NODELAY on the sockets it accepts; the connection sets it, so a
// small answer is sent at once rather than when the peer acknowledged the previous one.
TEST_F(ConnectionTest, AcceptedConnectionsSendWithoutNaglesDelay) {
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  ASSERT_TRUE(c.request("echo", "hello", 10s).ok());
  // This process's sockets bound to the listener's port with a peer: the accepted ones.
  int accepted = 0, without = 0;
  DIR* fds = ::opendir("/proc/self/fd");
  ASSERT_NE(fds, nullptr);
  while (auto* e = ::readdir(fds)) {
    int fd = std::atoi(e->d_name);
    sockaddr_in local{}, peer{};
    socklen_t len = sizeof local;
    if (fd <= 2 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0
        || local.sin_family != AF_INET || ntohs(local.sin_port) != lst.port)
      continue;
    len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0)
      continue;  // the listening socket
    ++accepted;
    int on = 0;
    len = sizeof on;
    ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    if (on == 0)
      ++without;
  }
  ::closedir(fds);
  EXPECT_GE(accepted, 1) << "found no accepted socket of the listener";
  EXPECT_EQ(without, 0) << without << " of " << accepted << " accepted sockets delay small writes";
}

TEST_F(ConnectionTest, GarbageBytesInsteadOfAHello) {
  start();
  raw_socket s{lst.port};
  s.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  auto r = s.read_until_close();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::message_too_large);  // "GET " read as a length is ~1.2 GB
  expect_others_still_served();
}

TEST_F(ConnectionTest, InvalidProtobufUnknownTypeAndFirstFrameNotHello) {
  start();
  {
    raw_socket s{lst.port};
    s.send(hello_frame() + std::string("\x00\x00\x00\x03\x00\xff\xff\xff", 8));
    auto r = s.read_until_close();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, code::bad_request);
    EXPECT_NE(r->detail.find("not a valid protobuf"), std::string::npos) << r->detail;
  }
  {
    raw_socket s{lst.port};
    s.send(hello_frame() + std::string("\x00\x00\x00\x03\x00\xea\x02\x00", 8));
    auto r = s.read_until_close();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, code::bad_request);
    EXPECT_NE(r->detail.find("Envelope field 45"), std::string::npos) << r->detail;
  }
  {
    raw_socket s{lst.port};
    wire::Envelope ping;
    ping.mutable_ping()->set_nonce(1);
    s.send(frame_of(ping));
    auto r = s.read_until_close();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, code::bad_request);
    EXPECT_NE(r->detail.find("first frame must be a Hello"), std::string::npos);
  }
  EXPECT_TRUE(test::wait_until([&] { return ctx->stats.closed(code::bad_request) == 3; }));
  expect_others_still_served();
}

TEST_F(ConnectionTest, WrongProtocolVersionIsUnsupported) {
  start();
  raw_socket s{lst.port};
  s.send(hello_frame(2));
  auto r = s.read_until_close();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::unsupported_version);
  EXPECT_EQ(r->observed, 2u);
  EXPECT_EQ(r->max, 1u);
}

TEST_F(ConnectionTest, RateLimitWithExactCountsAndRetryAfter) {
  // Time frozen on the server: exactly the burst passes, every further frame is refused.
  lcfg.limits.max_msgs_per_sec = 1000;
  lcfg.limits.burst_msgs = 5;
  lcfg.limits.max_bytes_per_sec = 0;
  start(frozen);
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  for (int i = 0; i < 8; ++i) {
    uint64_t id = 0;
    ASSERT_FALSE(c.send_request("echo", "r", id));
  }
  int answered = 0, limited = 0;
  for (int i = 0; i < 8; ++i) {
    auto a = c.receive(10s);
    if (a.ok()) {
      ++answered;
    } else {
      ASSERT_TRUE(a.rejected);
      EXPECT_EQ(a.rejected->code, code::rate_limited);
      EXPECT_EQ(a.rejected->limit, "net.max_msgs_per_sec");
      EXPECT_EQ(a.rejected->retry_after_ms, 1u);
      EXPECT_EQ(a.rejected->max, 5u);
      ++limited;
    }
  }
  EXPECT_EQ(answered, 5);
  EXPECT_EQ(limited, 3);
  EXPECT_EQ(ctx->stats.rejected(code::rate_limited), 3u);
  // Time moves on: the connection may send again.
  frozen.advance_ms(10);
  EXPECT_TRUE(c.request("echo", "again", 10s).ok());
}

TEST_F(ConnectionTest, InflightBoundOfTheConnection) {
  lcfg.limits.max_inflight_requests = 2;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  uint64_t id = 0;
  ASSERT_FALSE(c.send_request("echo", "hold", id));
  ASSERT_FALSE(c.send_request("echo", "queued", id));
  // The client respects the advertised bound: refused locally, nothing sent.
  auto local = c.send_request("echo", "third", id);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->code, code::too_many_inflight);
  // A client that does not respect it gets the server's refusal.
  wire::Envelope third;
  third.set_request_id(99);
  third.mutable_request()->set_target("echo");
  third.mutable_request()->set_payload("third");
  ASSERT_TRUE(c.send_raw(frame_of(third)).ok());
  auto r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, 99u);
  EXPECT_EQ(r.rejected->code, code::too_many_inflight);
  EXPECT_EQ(r.rejected->observed, 3u);
  EXPECT_EQ(r.rejected->max, 2u);
  release.open();
  EXPECT_TRUE(c.receive(10s).ok());
  EXPECT_TRUE(c.receive(10s).ok());
}

TEST_F(ConnectionTest, RequestPastItsDeadlineIsAnsweredAndKeepsItsSlotUntilItsActorAnswers) {
  lcfg.limits.request_deadline_ms = 100;
  lcfg.limits.max_inflight_requests = 1;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  uint64_t held = 0;
  ASSERT_FALSE(c.send_request("echo", "hold", held));
  // The connection's own deadline answers it; the actor is still working on it.
  auto r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, held);
  EXPECT_EQ(r.rejected->code, code::deadline_exceeded);
  EXPECT_EQ(r.rejected->limit, "net.request_deadline_ms");
  EXPECT_EQ(r.rejected->max, 100u);
  EXPECT_GE(r.rejected->observed, 100u);
  // Its slot stays taken until the actor answers: the in-flight bound counts the work.
  uint64_t next = 0;
  ASSERT_FALSE(c.send_request("echo", "next", next));
  r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, next);
  EXPECT_EQ(r.rejected->code, code::too_many_inflight);
  EXPECT_EQ(r.rejected->observed, 2u);
  // The late answer is dropped; the slot is free again.
  release.open();
  ASSERT_TRUE(test::wait_until([&] {
    uint64_t id = 0;
    if (c.send_request("echo", "after", id))
      return false;
    reply a;
    if (!probe_answered(c, a))
      return false;
    EXPECT_EQ(a.request_id, id);
    EXPECT_EQ(*a.payload, "after");  // never the held request's late answer
    return true;
  }));
}

TEST_F(ConnectionTest, AnActorThatNeverAnswersGivesItsSlotBackAfterTheGrace) {
  lcfg.limits.request_deadline_ms = 100;
  lcfg.limits.max_inflight_requests = 1;
  // A rate that probes sent as fast as the machine allows outrun on any machine (on a fast
  // one the default rate was outrun too): the probes below keep to it.
  lcfg.limits.max_msgs_per_sec = 200;
  lcfg.limits.burst_msgs = 20;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  auto request = [&](uint64_t id, const std::string& payload) {
    wire::Envelope env;
    env.set_request_id(id);
    env.mutable_request()->set_target("echo");
    env.mutable_request()->set_payload(payload);
    return c.send_raw(frame_of(env));
  };
  kept_requests = 0;
  ASSERT_TRUE(request(7, "never:first").ok());
  auto r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, 7u);
  EXPECT_EQ(r.rejected->code, code::deadline_exceeded);
  // The slot stays taken for the grace (at least a second), then it is given back.
  ASSERT_TRUE(test::wait_until([&] {
    if (!request(8, "probe").ok())
      return false;
    reply a;
    if (!probe_answered(c, a))
      return false;
    EXPECT_EQ(a.request_id, 8u);
    EXPECT_EQ(*a.payload, "probe");
    return true;
  }));
  EXPECT_EQ(ctx->stats.requests_abandoned.load(), 1u);
  // Request id 7 again, while the first actor still holds the first request 7: its late
  // answer ("first") is not taken for the second's ("second").
  ASSERT_TRUE(request(7, "never:second").ok());
  ASSERT_TRUE(test::wait_until([&] { return kept_requests.load() == 2; }));
  caf::anon_send(targets[0], tick_atom::value);  // both answers go out, "first" first
  r = c.receive(10s);
  ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "");
  EXPECT_EQ(r.request_id, 7u);
  EXPECT_EQ(*r.payload, "second");
}

/// Stands where the broker will: answers a typed stream request (a BrokerCall) with the
/// number of its call; a streamed one (Subscribe) with one batch naming its stream, then
/// holds it open until cancelled.
struct call_echo_state {
  std::map<uint64_t, caf::response_promise> open;
};
caf::behavior call_echo(caf::stateful_actor<call_echo_state>* self) {
  return {
    [=](wire_request_atom, const std::string& payload) -> std::string {
      wire::BrokerCall call;
      if (!call.ParseFromString(payload))
        return "unparsed";
      return std::to_string(call.call_case());
    },
    [=](wire_stream_atom, const std::string& payload, uint64_t tag, uint64_t,
        uint64_t) -> caf::result<stream_tail, std::string> {
      wire::BrokerCall call;
      if (!call.ParseFromString(payload) || !call.has_subscribe())
        return to_error(rejection::of(code::bad_request).detail("not a Subscribe"));
      self->send(caf::actor_cast<caf::actor>(self->current_sender()), wire_batch_atom::value,
                 tag, call.subscribe().stream());
      auto rp = self->make_response_promise<stream_tail, std::string>();
      self->state.open.emplace(tag, rp);
      return rp;
    },
    [](credit_atom, uint64_t, uint64_t, uint64_t) {},
    [=](cancel_atom, uint64_t tag) {
      if (auto i = self->state.open.find(tag); i != self->state.open.end()) {
        i->second.deliver(to_error(rejection::of(code::cancelled).detail("cancelled")));
        self->state.open.erase(i);
      }
    },
  };
}

// The stream requests (Envelope members 50-57) reach the target "broker" as a BrokerCall;
// a subscription outlives net.request_deadline_ms (it has none) and ends when cancelled.
TEST_F(ConnectionTest, StreamRequestsGoToTheBrokerAndASubscriptionHasNoDeadline) {
  lcfg.limits.request_deadline_ms = 100;
  lcfg.limits.max_inflight_requests = 2;
  start();
  auto broker = sys->spawn(call_echo);
  targets.push_back(broker);
  ctx->expose("broker", broker);
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  wire::BrokerCall publish;
  publish.mutable_publish()->set_subject("a.b");
  uint64_t id = 0;
  ASSERT_FALSE(c.send_call(publish, id));
  auto r = c.receive(10s);
  ASSERT_TRUE(r.ok()) << r.rejected->to_string();
  EXPECT_EQ(*r.payload, std::to_string(wire::BrokerCall::kPublish));
  wire::BrokerCall sub;
  sub.mutable_subscribe()->set_stream("orders");
  uint64_t sub_id = 0;
  ASSERT_FALSE(c.send_call(sub, sub_id));
  r = c.receive(10s);
  ASSERT_TRUE(r.batch);
  EXPECT_EQ(r.request_id, sub_id);
  EXPECT_EQ(*r.payload, "orders");
  // A plain request that is never answered: its deadline passes (100 ms), and its slot is
  // given up after the grace (1 s more), when a streamed request with the connection's
  // deadline would have been given up too (100 ms + its 1 s grace).
  uint64_t never = 0;
  ASSERT_FALSE(c.send_request("echo", "never:x", never));
  r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, never);
  EXPECT_EQ(r.rejected->code, code::deadline_exceeded);
  ASSERT_TRUE(test::wait_until([&] {
    uint64_t probe = 0;
    if (c.send_request("echo", "probe", probe))
      return false;
    reply a;
    if (!probe_answered(c, a))
      return false;
    EXPECT_EQ(a.request_id, probe);  // nothing ended the subscription meanwhile
    return true;
  }, 20s));
  // The subscription is still there: a Cancel reaches it and ends it.
  ASSERT_TRUE(c.cancel(sub_id).ok());
  r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, sub_id);
  EXPECT_EQ(r.rejected->code, code::cancelled) << r.rejected->to_string();
}

TEST_F(ConnectionTest, ARequestIdStillInFlightIsRefused) {
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  wire::Envelope env;
  env.set_request_id(42);
  env.mutable_request()->set_target("echo");
  env.mutable_request()->set_payload("hold");
  ASSERT_TRUE(c.send_raw(frame_of(env)).ok());
  env.mutable_request()->set_payload("again");
  ASSERT_TRUE(c.send_raw(frame_of(env)).ok());
  auto r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, 42u);
  EXPECT_EQ(r.rejected->code, code::bad_request);
  EXPECT_EQ(r.rejected->limit, "");
  release.open();
  r = c.receive(10s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r.payload, "hold");
}

TEST_F(ConnectionTest, PipelinedLargeAnswersArriveWholeAndInOrderWhenTheSocketFills) {
  // Answers larger than the socket buffers take: the connection's direct sends go
  // partly, the rest through CAF, and what follows must wait its turn.
  lcfg.limits.max_bytes_per_sec = 0;
  lcfg.limits.max_msgs_per_sec = 0;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  {
    // 32 answers of ~200 KB asked before any is read: the socket fills for certain.
    std::map<uint64_t, size_t> size_of;
    for (size_t i = 0; i < 32; ++i) {
      uint64_t id = 0;
      auto n = 150'000 + i * 997;
      ASSERT_FALSE(c.send_request("echo", "big:" + std::to_string(n), id));
      size_of[id] = n;
    }
    while (!size_of.empty()) {
      auto r = c.receive(10s);
      ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "");
      auto i = size_of.find(r.request_id);
      ASSERT_NE(i, size_of.end());
      EXPECT_EQ(r.payload->size(), i->second);
      size_of.erase(i);
    }
  }
  auto payload_of = [](uint64_t n) {
    std::string p(40'000 + (n * 7919) % 60'000, static_cast<char>('a' + n % 26));
    p += std::to_string(n);
    return p;
  };
  std::map<uint64_t, uint64_t> number_of;  // request id -> n
  uint64_t sent = 0, answered = 0;
  constexpr uint64_t total = 300, window = 16;
  auto send_one = [&] {
    uint64_t id = 0;
    ASSERT_FALSE(c.send_request("echo", payload_of(sent), id));
    number_of[id] = sent++;
  };
  while (sent < window)
    send_one();
  while (answered < total) {
    auto r = c.receive(10s);
    ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "");
    auto i = number_of.find(r.request_id);
    ASSERT_NE(i, number_of.end());
    EXPECT_EQ(*r.payload, payload_of(i->second));
    number_of.erase(i);
    ++answered;
    if (sent < total)
      send_one();
  }
  EXPECT_TRUE(number_of.empty());
}

TEST_F(ConnectionTest, ActorGateRefusalsTravelBackAsRejects) {
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  uint64_t id = 0;
  ASSERT_FALSE(c.send_request("held", "hold", id));
  ASSERT_FALSE(c.send_request("held", "second", id));
  uint64_t third = 0;
  ASSERT_FALSE(c.send_request("held", "third", third));
  auto r = c.receive(10s);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.request_id, third);
  EXPECT_EQ(r.rejected->code, code::mailbox_full);
  EXPECT_EQ(r.rejected->limit, "limits.held.mailbox_capacity");
  EXPECT_EQ(r.rejected->observed, 3u);
  EXPECT_EQ(r.rejected->max, 2u);
  EXPECT_GT(r.rejected->retry_after_ms, 0u);
  release.open();
}

// A limited actor placed on the multiplexer thread: same gate, no worker hand-off.
TEST_F(ConnectionTest, LimitedActorOnTheMultiplexerIsGatedToo) {
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  // The actor's message is (wire_request_atom, payload): 8 bytes of atom plus the payload.
  auto ok = c.request("mx", std::string(56, 'm'), 10s);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.payload->size(), 56u);
  auto refused = c.request("mx", std::string(57, 'm'), 10s);
  ASSERT_TRUE(refused.rejected);
  EXPECT_EQ(refused.rejected->code, code::message_too_large);
  EXPECT_EQ(refused.rejected->limit, "limits.small.max_message_bytes");
  EXPECT_EQ(refused.rejected->observed, 65u);
}

TEST_F(ConnectionTest, ConnectionBoundRefusesTheOneOver) {
  lcfg.limits.max_connections = 3;
  lcfg.limits.reserved_connections = 0;
  start();
  std::vector<client> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(make_client());
    ASSERT_TRUE(clients.back().connect().ok());
  }
  auto extra = make_client();
  auto st = extra.connect();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::too_many_connections);
  EXPECT_EQ(ctx->stats.connections_refused.load(), 1u);
  for (auto& c : clients)
    EXPECT_TRUE(c.request("echo", "ok", 10s).ok());
  clients.front().close();
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 2; }));
  EXPECT_TRUE(extra.connect().ok());
}

// Issue 14: satellites may not take the connections operators need. Of
// net.max_connections, net.reserved_connections are kept for peers whose Hello does not
// say satellite: the satellite over its share is refused (too_many_connections, naming
// net.max_connections with the satellites' share as max and a retry-after), and a client
// still connects and is answered while the satellites hold theirs.
TEST_F(ConnectionTest, SatellitesLeaveTheReservedConnectionsToOtherPeers) {
  lcfg.limits.max_connections = 5;
  lcfg.limits.reserved_connections = 2;
  start();
  std::vector<std::unique_ptr<raw_socket>> satellites;
  for (int i = 0; i < 3; ++i) {
    satellites.push_back(std::make_unique<raw_socket>(lst.port));
    satellites.back()->send(hello_frame(net::protocol_version, "", wire::ROLE_SATELLITE));
    ASSERT_TRUE(satellites.back()->read_hello()) << "satellite " << i;
  }
  EXPECT_EQ(ctx->stats.satellite_connections.load(), 3u);
  raw_socket over{lst.port};
  over.send(hello_frame(net::protocol_version, "", wire::ROLE_SATELLITE));
  auto r = over.read_until_close();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, code::too_many_connections);
  EXPECT_EQ(r->limit, "net.max_connections");
  EXPECT_EQ(r->observed, 4u);
  EXPECT_EQ(r->max, 3u);
  EXPECT_GT(r->retry_after_ms, 0u);
  EXPECT_NE(r->detail.find("net.reserved_connections"), std::string::npos) << r->detail;
  // The refused one is let go (its count with it) once it has closed.
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 3; }));
  // The reserve: two clients connect and are answered.
  auto a = make_client();
  auto b = make_client();
  ASSERT_TRUE(a.connect().ok());
  ASSERT_TRUE(b.connect().ok());
  EXPECT_TRUE(a.request("echo", "ok", 10s).ok());
  EXPECT_TRUE(b.request("echo", "ok", 10s).ok());
  // A satellite that goes gives its place back; the client library can take it as a
  // satellite (client_options::satellite), as a fleet simulator does.
  satellites.pop_back();
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.satellite_connections.load() == 2; }));
  client_options o;
  o.port = lst.port;
  o.satellite = true;
  client again{o};
  ASSERT_TRUE(again.connect().ok());
  EXPECT_EQ(ctx->stats.satellite_connections.load(), 3u);
  // One more satellite, with room in the total (a client left): refused for the share.
  b.close();
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 4; }));
  client one_more{o};
  auto st = one_more.connect();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::too_many_connections);
  EXPECT_EQ(st.as_rejection().limit, "net.max_connections");
  EXPECT_EQ(st.as_rejection().max, 3u);
}

// A stream this side asked for (the server's to a satellite): batches reach the requester
// in order; the last one and the EndOfStream, read together, come as one answer, the batch
// in its tail (one message instead of two). The satellite here is a raw socket that
// writes Batch, Batch, EndOfStream in one send(), so they are read together.
TEST_F(ConnectionTest, AStreamsLastBatchReadWithItsEndComesInTheAnswer) {
  start();
  raw_socket sat{lst.port};
  wire::Envelope hello;
  hello.mutable_hello()->set_protocol_version(net::protocol_version);
  hello.mutable_hello()->set_node_id("sat-raw");
  hello.mutable_hello()->set_role(wire::ROLE_SATELLITE);
  sat.send(frame_of(hello));
  ASSERT_TRUE(sat.read_hello());
  caf::actor conn;
  ASSERT_TRUE(test::wait_until([&] { return (conn = ctx->connection_for("sat-raw")) != nullptr; }));
  caf::scoped_actor self{*sys};
  self->send(conn, wire_stream_atom::value, std::string{"query"}, std::string{"q"},
             uint64_t{9}, uint64_t{16}, uint64_t{1} << 20);
  uint64_t rid = 0;
  ASSERT_TRUE(sat.read_frames([&](const wire::Envelope& env) {
    rid = env.request_id();
    return env.has_request();
  }));
  std::string bytes;
  for (uint64_t i = 0; i < 2; ++i) {
    wire::Envelope b;
    b.set_request_id(rid);
    b.mutable_batch()->set_sequence(i);
    b.mutable_batch()->set_payload("b" + std::to_string(i));
    bytes += frame_of(b);
  }
  wire::Envelope end;
  end.set_request_id(rid);
  end.mutable_end_of_stream()->set_batches(2);
  end.mutable_end_of_stream()->set_summary("done");
  bytes += frame_of(end);
  sat.send(bytes);
  self->receive([&](wire_batch_atom, uint64_t tag, std::string& part) {
    EXPECT_EQ(tag, 9u);
    EXPECT_EQ(part, "b0");
  }, caf::after(10s) >> [&] { ADD_FAILURE() << "no batch"; });
  self->receive([&](stream_tail& tail, std::string& summary) {
    EXPECT_EQ(tail, stream_tail{"b1"});
    EXPECT_EQ(summary, "done");
  }, caf::after(10s) >> [&] { ADD_FAILURE() << "no end"; });
}

TEST_F(ConnectionTest, ConnectionFloodIsRefusedWithExactCounts) {
  lcfg.limits.max_connections = 10;
  lcfg.limits.reserved_connections = 0;
  start();
  std::vector<std::unique_ptr<raw_socket>> held;
  for (int i = 0; i < 10; ++i) {
    held.push_back(std::make_unique<raw_socket>(lst.port));
    held.back()->send(hello_frame());
  }
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 10; }));
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    raw_socket s{lst.port};
    auto r = s.read_until_close();
    if (r && r->code == code::too_many_connections && r->observed == 11 && r->max == 10)
      ++refused;
  }
  EXPECT_EQ(refused, 40);
  EXPECT_EQ(ctx->stats.connections_refused.load(), 40u);
  EXPECT_EQ(ctx->stats.closed(code::too_many_connections), 40u);
  EXPECT_EQ(ctx->stats.connections_open.load(), 10u);
}

TEST_F(ConnectionTest, ASlowConsumerLosesAnswersBeyondTheBoundThenTheConnection) {
  lcfg.limits.max_write_buffer_bytes = 1 << 20;
  lcfg.limits.write_stall_timeout_ms = 300;
  lcfg.limits.max_bytes_per_sec = 0;
  lcfg.limits.max_msgs_per_sec = 0;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  // 64 answers of 256 KiB that the client does not read: 16 MiB for a 1 MiB bound. What
  // does not fit ends its request with slow_consumer; the connection stays until the
  // client has taken nothing for net.write_stall_timeout_ms.
  for (int i = 0; i < 64; ++i) {
    uint64_t id = 0;
    ASSERT_FALSE(c.send_request("echo", "big:262144", id));
  }
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.closed(code::slow_consumer) == 1; }));
  EXPECT_GT(ctx->stats.rejected(code::slow_consumer), 1u);  // answers dropped, and the close
  std::vector<reply> got;
  for (;;) {
    auto r = c.receive(10s);
    if (!r.ok() && r.request_id == 0)
      break;  // the close
    got.push_back(std::move(r));
  }
  size_t answered = 0, dropped = 0;
  for (auto& r : got) {
    if (r.ok()) {
      EXPECT_EQ(r.payload->size(), 262144u);
      ++answered;
    } else {
      ASSERT_TRUE(r.rejected);
      EXPECT_EQ(r.rejected->code, code::slow_consumer);
      EXPECT_EQ(r.rejected->limit, "net.max_write_buffer_bytes");
      EXPECT_EQ(r.rejected->max, 1u << 20);
      ++dropped;
    }
  }
  EXPECT_GT(answered, 0u);
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(answered + dropped, 64u) << "every request is answered or refused";
  auto closing = c.wait_for_close(1s);
  ASSERT_TRUE(closing);
  EXPECT_EQ(closing->code, code::slow_consumer);
  EXPECT_EQ(closing->limit, "net.write_stall_timeout_ms");
  EXPECT_EQ(closing->max, 300u);
  expect_others_still_served();
}

TEST_F(ConnectionTest, HandshakeTimeoutClosesSilentConnections) {
  lcfg.limits.handshake_timeout_ms = 100;
  start();
  raw_socket s{lst.port};
  auto r = s.read_until_close();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::deadline_exceeded);
  EXPECT_EQ(r->limit, "net.handshake_timeout_ms");
}

TEST_F(ConnectionTest, SlowlorisHoldingAFrameOpenIsClosed) {
  lcfg.limits.read_timeout_ms = 100;
  lcfg.limits.idle_timeout_ms = 100;
  start();
  {
    // A header, then a body that never completes.
    raw_socket s{lst.port};
    s.send(hello_frame() + std::string("\x00\x00\x01\x00\x00" "abc", 8));
    auto r = s.read_until_close();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, code::deadline_exceeded);
    EXPECT_EQ(r->limit, "net.read_timeout_ms");
  }
  {
    // Part of a header, then nothing.
    raw_socket s{lst.port};
    s.send(hello_frame() + std::string("\x00\x00", 2));
    auto r = s.read_until_close();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, code::deadline_exceeded);
    EXPECT_EQ(r->limit, "net.read_timeout_ms");
  }
  {
    // Nothing at all after the Hello: pinged, no Pong, closed.
    raw_socket s{lst.port};
    s.send(hello_frame());
    auto r = s.read_until_close();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, code::deadline_exceeded);
    EXPECT_EQ(r->limit, "net.idle_timeout_ms");
  }
  expect_others_still_served();
}

TEST_F(ConnectionTest, IdleClientsArePingedAndStayWhenTheyAnswer) {
  lcfg.limits.idle_timeout_ms = 50;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  // receive() answers Pings while it waits; nothing else arrives.
  auto r = c.receive(400ms);
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.rejected->code, code::deadline_exceeded);  // the local timeout, not a close
  EXPECT_TRUE(c.connected());
  EXPECT_TRUE(c.request("echo", "alive", 10s).ok());
}

TEST_F(ConnectionTest, OverweightPermitAllowsOneLargerFrame) {
  lcfg.limits.max_frame_bytes = 64 * 1024;
  lcfg.limits.max_decompressed_bytes = 256 * 1024;
  lcfg.limits.permit_ceiling_bytes = 512 * 1024;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  std::string payload(100'000, '\0');
  uint32_t x = 3;
  for (auto& ch : payload) {
    x = x * 1664525 + 1013904223;
    ch = static_cast<char>(x >> 24);
  }
  auto refused = c.request("echo", payload, 10s);
  ASSERT_TRUE(refused.rejected);
  EXPECT_EQ(refused.rejected->code, code::message_too_large);  // refused by the client itself
  auto too_big = c.request_permit(1 << 20, 10s);
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->code, code::message_too_large);
  EXPECT_EQ(too_big->limit, "net.permit_ceiling_bytes");
  ASSERT_FALSE(c.request_permit(200'000, 10s));
  auto ok = c.request("echo", payload, 10s);
  ASSERT_TRUE(ok.ok()) << (ok.rejected ? ok.rejected->to_string() : "");
  EXPECT_EQ(ok.payload->size(), payload.size());
  // Used once: the next large frame needs a new permit.
  EXPECT_EQ(c.request("echo", payload, 10s).rejected->code, code::message_too_large);
}

TEST_F(ConnectionTest, PermitsCanBeSwitchedOff) {
  lcfg.limits.permit_ceiling_bytes = 0;
  start();
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  auto r = c.request_permit(2 << 20, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, code::permission_denied);
}

TEST_F(ConnectionTest, TwoHundredConcurrentConnectionsRoundTrip) {
  start();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<client> clients;
      for (int i = 0; i < 50; ++i) {
        clients.push_back(make_client());
        if (!clients.back().connect().ok())
          return;
      }
      for (int i = 0; i < 50; ++i) {
        auto payload = std::to_string(t) + "/" + std::to_string(i);
        auto r = clients[i].request("echo", payload, 20s);
        if (r.ok() && *r.payload == payload)
          ++ok;
      }
    });
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_GE(ctx->stats.connections_accepted.load(), 200u);
}

TEST_F(ConnectionTest, ClientReconnectsAfterTheServerRestarts) {
  start();
  auto port = lst.port;
  auto c = make_client();
  ASSERT_TRUE(c.connect().ok());
  ASSERT_TRUE(c.request("echo", "before", 10s).ok());
  stop();
  // The server said goodbye: the request says so instead of hanging.
  auto lost = c.request("echo", "during", 5s);
  ASSERT_TRUE(lost.rejected);
  EXPECT_TRUE(lost.rejected->code == code::shutting_down
              || lost.rejected->code == code::unavailable)
    << lost.rejected->to_string();

  start(steady_clock_source::instance(), port);
  reply after;
  for (int attempt = 0; attempt < 3 && !after.ok(); ++attempt)
    after = c.request("echo", "after", 10s);  // reconnects with backoff
  ASSERT_TRUE(after.ok()) << (after.rejected ? after.rejected->to_string() : "");
  EXPECT_EQ(*after.payload, "after");
}

// -- the dialing side: an uplink that keeps a connection to the server ------------------

struct UplinkTest : ConnectionTest {
  std::shared_ptr<net::server_context> uctx;
  caf::actor link;

  void start_uplink(std::string token = "") {
    net::listener_config ucfg;
    ucfg.node_id = "sat-1";
    uctx = std::make_shared<net::server_context>(ucfg);
    targets.push_back(spawn_limited<wire_service>(*sys, *rt, "echo", &release));
    uctx->expose("local", targets.back());
    net::uplink_options o;
    o.port = lst.port;
    o.token = std::move(token);
    o.backoff_initial = 10ms;
    o.backoff_max = 100ms;
    link = net::start_uplink(*sys, uctx, o);
  }

  bool connected() {
    caf::scoped_actor self{*sys};
    bool up = false;
    self->request(link, 10s, caf::get_atom::value).receive([&](bool b) { up = b; },
                                                           [](caf::error&) {});
    return up;
  }

  /// (wire_request_atom, target, payload) to `dest`; the answer or the rejection.
  reply ask(const caf::actor& dest, std::string target, std::string payload) {
    caf::scoped_actor self{*sys};
    reply out;
    self->request(dest, 10s, wire_request_atom::value, std::move(target), std::move(payload))
      .receive([&](std::string& s) { out.payload = std::move(s); },
               [&](caf::error& err) {
                 out.rejected = rejection_from(err);
                 if (!out.rejected)
                   out.rejected = rejection::of(code::unavailable).detail(to_string(err));
               });
    return out;
  }

  void TearDown() override {
    if (link)
      caf::anon_send(link, stop_atom::value);
    link = nullptr;
    ConnectionTest::TearDown();
  }
};

TEST_F(UplinkTest, RequestsFlowBothWaysOnTheDialedConnection) {
  start();
  start_uplink();
  ASSERT_TRUE(test::wait_until([&] { return connected(); }));
  // The uplink's side asks the server.
  auto up = ask(link, "echo", "from the satellite");
  ASSERT_TRUE(up.ok()) << up.rejected->to_string();
  EXPECT_EQ(*up.payload, "from the satellite");
  // The server asks the node that dialed in, over the same connection.
  auto conn = ctx->connection_for("sat-1");
  ASSERT_TRUE(conn);
  auto down = ask(conn, "local", "from the server");
  ASSERT_TRUE(down.ok()) << down.rejected->to_string();
  EXPECT_EQ(*down.payload, "from the server");
  // Refusals travel both ways too.
  auto missing = ask(conn, "nobody", "x");
  ASSERT_TRUE(missing.rejected);
  EXPECT_EQ(missing.rejected->code, code::not_found);
}

TEST_F(UplinkTest, ReconnectsWithBackoffAfterTheServerRestarts) {
  start();
  auto port = lst.port;
  start_uplink();
  ASSERT_TRUE(test::wait_until([&] { return connected(); }));
  // Stop only the listener side: shut down its connections and stop accepting.
  net::stop_listener(lst, *ctx);
  ASSERT_TRUE(test::wait_until([&] { return !connected(); }));
  auto refused = ask(link, "echo", "while down");
  ASSERT_TRUE(refused.rejected);
  EXPECT_EQ(refused.rejected->code, code::unavailable);
  auto l = net::start_listener(*sys, ctx, "127.0.0.1", port);
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  lst = *l;
  ASSERT_TRUE(test::wait_until([&] { return connected(); }));
  auto again = ask(link, "echo", "back");
  ASSERT_TRUE(again.ok()) << again.rejected->to_string();
}

TEST_F(UplinkTest, WrongTokenKeepsTheUplinkDownAndSaysWhy) {
  lcfg.token = "s3cret";
  start();
  start_uplink("guess");
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.closed(code::unauthenticated) >= 2; }));
  EXPECT_FALSE(connected());
  auto r = ask(link, "echo", "x");
  ASSERT_TRUE(r.rejected);
  EXPECT_EQ(r.rejected->code, code::unavailable);
  EXPECT_NE(r.rejected->detail.find("unauthenticated"), std::string::npos) << r.rejected->detail;
}

/// A streamed target that sends `n` batches and then holds its answer until cancelled;
/// counts the cancels it gets.
struct holding_stream_state {
  std::map<uint64_t, caf::response_promise> open;
};
caf::behavior holding_stream(caf::stateful_actor<holding_stream_state>* self,
                             test::event_counter* cancels) {
  return {
    [=](wire_stream_atom, const std::string& payload, uint64_t rid, uint64_t,
        uint64_t) -> caf::result<stream_tail, std::string> {
      auto to = caf::actor_cast<caf::actor>(self->current_sender());
      for (size_t i = 0; i < std::stoul(payload); ++i)
        self->send(to, wire_batch_atom::value, rid, "part-" + std::to_string(i));
      auto rp = self->make_response_promise<stream_tail, std::string>();
      self->state.open.emplace(rid, rp);
      return rp;
    },
    [=](cancel_atom, uint64_t rid) {
      auto i = self->state.open.find(rid);
      if (i == self->state.open.end())
        return;
      i->second.deliver(to_error(rejection::of(code::cancelled).detail("cancelled")));
      self->state.open.erase(i);
      cancels->add();
    },
  };
}

// The server streams from the node that dialed in; the requester's cancel becomes a Cancel
// frame that reaches the target; a closed connection cancels the streams it carried.
TEST_F(UplinkTest, StreamsToTheDialedNodeAndCancelsReachTheTarget) {
  start();
  test::event_counter cancels;
  net::listener_config ucfg;
  ucfg.node_id = "sat-2";
  uctx = std::make_shared<net::server_context>(ucfg);
  auto target = sys->spawn(holding_stream, &cancels);
  uctx->expose("hold", target);
  net::uplink_options o;
  o.port = lst.port;
  o.backoff_initial = 10ms;
  link = net::start_uplink(*sys, uctx, o);
  ASSERT_TRUE(test::wait_until([&] { return connected(); }));
  auto conn = ctx->connection_for("sat-2");
  ASSERT_TRUE(conn);
  caf::scoped_actor self{*sys};
  self->send(conn, wire_stream_atom::value, std::string{"hold"}, std::string{"3"}, uint64_t{42},
             uint64_t{16}, uint64_t{1} << 20);
  std::vector<std::string> parts;
  for (int i = 0; i < 3; ++i)
    self->receive([&](wire_batch_atom, uint64_t tag, std::string& part) {
      EXPECT_EQ(tag, 42u);
      parts.push_back(std::move(part));
    }, caf::after(10s) >> [&] { ADD_FAILURE() << "no batch"; });
  EXPECT_EQ(parts, (std::vector<std::string>{"part-0", "part-1", "part-2"}));
  // Cancelled by the requester: the target hears of it, the request ends `cancelled`.
  self->send(conn, cancel_atom::value, uint64_t{42});
  ASSERT_TRUE(cancels.wait_for_at_least(1, 10s));
  // A second stream, then the uplink goes away: its target is told to stop as well.
  self->send(conn, wire_stream_atom::value, std::string{"hold"}, std::string{"1"}, uint64_t{7},
             uint64_t{16}, uint64_t{1} << 20);
  self->receive([&](wire_batch_atom, uint64_t tag, std::string&) { EXPECT_EQ(tag, 7u); },
                caf::after(10s) >> [&] { ADD_FAILURE() << "no batch"; });
  caf::anon_send(link, stop_atom::value);
  link = nullptr;
  ASSERT_TRUE(cancels.wait_for_at_least(2, 10s));
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}

// A connection is found by its peer's node id (connection_for) until it closes or the name
// moves to a newer connection; a close forgets only the names it held (and costs what it
// held, not a look at every named connection: issue 14).
TEST(ServerContext, ACloseForgetsOnlyTheNamesItHeld) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto idle = [](caf::event_based_actor*) -> caf::behavior { return {[](int) {}}; };
  auto a = sys.spawn(idle);
  auto b = sys.spawn(idle);
  auto ctx = std::make_shared<net::server_context>(net::listener_config{});
  ctx->add_connection(a);
  ctx->add_connection(b);
  ctx->name_connection("x", a);
  ctx->name_connection("y", a);
  ctx->name_connection("y", a);  // again: no second entry to forget
  ctx->name_connection("x", b);  // x moves to b
  EXPECT_EQ(ctx->connection_for("x"), b);
  EXPECT_EQ(ctx->connection_for("y"), a);
  ctx->remove_connection(a.id());
  EXPECT_EQ(ctx->connection_for("x"), b) << "a's close took the name b holds now";
  EXPECT_EQ(ctx->connection_for("y"), caf::actor{});
  EXPECT_EQ(ctx->connection_by_id(a.id()), caf::actor{});
  ctx->name_connection("y", b);
  ctx->remove_connection(b.id());
  EXPECT_EQ(ctx->connection_for("x"), caf::actor{});
  EXPECT_EQ(ctx->connection_for("y"), caf::actor{});
  EXPECT_TRUE(ctx->connections().empty());
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace levee
