// Backpressure at the connection gate, over real TCP on 127.0.0.1 (ARCHITECTURE.md "Flow
// control"): a slow reader gets exactly the frames produced, in order, whatever its
// reading pace; a peer that never reads costs bounded memory; connections opened and
// closed leave nothing behind; streamed answers are paced by the credit their reader
// grants.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <random>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/atoms.hpp"
#include "actors/limited_actor.hpp"
#include "actors/wire_target.hpp"
#include "levee/client.hpp"
#include "limits/stream_credit.hpp"
#include "net/frame.hpp"
#include "net/reject_frame.hpp"
#include "net/listener.hpp"
#include "tests/test_support.hpp"

namespace levee {
namespace {

using namespace std::chrono_literals;

/// Deterministic incompressible bytes: what "big:N" answers, and what a test checks.
std::string noise(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed;
  for (auto& c : out) {
    x = x * 1664525 + 1013904223;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

/// "big:N" answers N bytes of noise(N, N); a streamed "N:S" answers N batches of S bytes
/// (batch i is noise(S, i)), within the credit its connection lends, as every producer
/// must (limits/stream_credit.hpp); it counts the batches it has sent in `produced`.
std::atomic<uint64_t> produced{0};

class wire_service : public limited_actor {
public:
  explicit wire_service(caf::actor_config& cfg) : limited(cfg) {}
  caf::behavior make_behavior() override {
    return {
      [](wire_request_atom, const std::string& payload) -> std::string {
        if (payload.rfind("big:", 0) == 0) {
          auto n = std::stoul(payload.substr(4));
          return noise(n, static_cast<uint32_t>(n));
        }
        return payload;
      },
      [this](wire_stream_atom, const std::string& payload, uint64_t tag, uint64_t batches,
             uint64_t bytes) -> caf::result<stream_tail, std::string> {
        auto colon = payload.find(':');
        auto& s = streams_[tag];
        s.total = std::stoul(payload.substr(0, colon));
        s.size = colon == std::string::npos ? 16 : std::stoul(payload.substr(colon + 1));
        s.to = caf::actor_cast<caf::actor>(current_sender());
        s.credit.add(batches, bytes);
        s.rp = make_response_promise<stream_tail, std::string>();
        auto rp = s.rp;
        pump(tag);
        return rp;
      },
      [this](credit_atom, uint64_t tag, uint64_t batches, uint64_t bytes) {
        if (auto i = streams_.find(tag); i != streams_.end()) {
          i->second.credit.add(batches, bytes);
          pump(tag);
        }
      },
      [this](cancel_atom, uint64_t tag) {
        if (auto i = streams_.find(tag); i != streams_.end()) {
          i->second.rp.deliver(to_error(rejection::of(code::cancelled).detail("cancelled")));
          streams_.erase(i);
        }
      },
    };
  }

private:
  struct stream {
    uint64_t total = 0, sent = 0, size = 0;
    caf::actor to;
    stream_credit credit;
    caf::response_promise rp;
  };
  void pump(uint64_t tag) {
    auto i = streams_.find(tag);
    auto& s = i->second;
    while (s.sent < s.total && s.credit.allows_batch()) {
      s.credit.take(s.size);
      send(s.to, wire_batch_atom::value, tag, noise(s.size, static_cast<uint32_t>(s.sent++)));
      produced.fetch_add(1);
    }
    if (s.sent == s.total) {
      s.rp.deliver(stream_tail{}, std::to_string(s.total) + " parts");
      streams_.erase(i);
    }
  }
  std::map<uint64_t, stream> streams_;
};

/// A client socket that reads when the test says so, with a small receive buffer so that
/// what the server writes backs up on its side.
struct slow_socket {
  int fd = -1;
  net::frame_reader reader{net::codec_limits{64u << 20, 64u << 20, 0}};
  uint64_t bytes_read = 0;

  slow_socket(uint16_t port, int rcvbuf) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0)
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      ADD_FAILURE() << "connect failed";
  }
  ~slow_socket() { ::close(fd); }
  slow_socket(const slow_socket&) = delete;
  slow_socket& operator=(const slow_socket&) = delete;

  void send_all(const std::string& bytes) {
    size_t pos = 0;
    while (pos < bytes.size()) {
      auto n = ::send(fd, bytes.data() + pos, bytes.size() - pos, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send failed: " << std::strerror(errno);
      pos += static_cast<size_t>(n);
    }
  }

  /// The next frame, reading at most `chunk` bytes per recv; nullopt when the server
  /// closed, nothing came within 10 s, or the byte stream stopped being frames.
  std::optional<wire::Envelope> next(size_t chunk = 4096) {
    for (;;) {
      size_t pos = 0;
      while (pos < inbuf_.size() && !reader.error() && !reader.frame_ready())
        pos += reader.feed(reinterpret_cast<const uint8_t*>(inbuf_.data()) + pos,
                           inbuf_.size() - pos);
      inbuf_.erase(0, pos);
      if (reader.error()) {
        ADD_FAILURE() << "the byte stream is not frames at byte " << bytes_read << ": "
                      << reader.error()->to_string();
        return std::nullopt;
      }
      if (reader.frame_ready())
        return reader.take();
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10'000) <= 0)
        return std::nullopt;
      std::string buf(chunk, '\0');
      auto n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0)
        return std::nullopt;
      bytes_read += static_cast<uint64_t>(n);
      inbuf_.append(buf.data(), static_cast<size_t>(n));
    }
  }

  /// Hello both ways; this client advertises `max_frame` as what it accepts.
  void handshake(uint32_t max_frame = 16u << 20) {
    wire::Envelope env;
    env.mutable_hello()->set_protocol_version(net::protocol_version);
    env.mutable_hello()->mutable_limits()->set_max_frame_bytes(max_frame);
    env.mutable_hello()->mutable_limits()->set_max_decompressed_bytes(max_frame);
    send_all(frame_of(env));
    auto hello = next();
    ASSERT_TRUE(hello && hello->has_hello());
  }

  static std::string frame_of(const wire::Envelope& env) {
    std::string out;
    net::encode_frame(env, net::codec_limits{1u << 30, 1u << 30, 1u << 30}, out);
    return out;
  }

private:
  std::string inbuf_;  // read and not yet fed to the reader
};

struct BackpressureTest : ::testing::Test {
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::shared_ptr<net::server_context> ctx;
  net::listener lst;
  caf::actor echo;
  net::listener_config lcfg;

  void SetUp() override { set_log_sink([](std::string_view) {}); }

  void start() {
    cfg = std::make_unique<caf::actor_system_config>();
    cfg->load<caf::io::middleman>();
    cfg->set("scheduler.max-threads", 2);
    add_error_category(*cfg);
    sys = std::make_unique<caf::actor_system>(*cfg);
    limits_config lc;
    auto echo_limits = actor_limits::defaults();
    echo_limits.max_inflight_per_requester = 256;
    echo_limits.mailbox_capacity = 1024;
    lc.kinds.emplace("echo", echo_limits);
    rt = std::make_unique<runtime>(lc);
    ctx = std::make_shared<net::server_context>(lcfg);
    echo = spawn_limited<wire_service>(*sys, *rt, "echo");
    ctx->expose("echo", echo);
    auto l = net::start_listener(*sys, ctx, "127.0.0.1", 0);
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    lst = *l;
  }

  void TearDown() override {
    if (!sys)
      return;
    net::stop_listener(lst, *ctx);
    EXPECT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 0; }));
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
    echo = nullptr;
    lst.acceptor = nullptr;
    sys.reset();
  }
};

std::string request_frame(uint64_t id, const std::string& target, std::string payload,
                          bool stream = false) {
  wire::Envelope env;
  env.set_request_id(id);
  env.mutable_request()->set_target(target);
  env.mutable_request()->set_payload(std::move(payload));
  env.mutable_request()->set_stream(stream);
  return slow_socket::frame_of(env);
}

// Issue 12, defect 1: frames written while the connection handled input were flushed by
// CAF after the handler, and a later frame went straight to the socket ahead of them.
TEST_F(BackpressureTest, ASlowReaderGetsEveryFrameWholeAndInOrder) {
  lcfg.limits.max_msgs_per_sec = 0;
  lcfg.limits.max_bytes_per_sec = 0;
  lcfg.limits.max_write_buffer_bytes = 64u << 20;
  start();
  std::mt19937 rng{20261203};
  for (int round = 0; round < 3; ++round) {
    slow_socket s{lst.port, 4096};
    s.handshake();
    enum kind { echo_big, unknown, streamed };
    struct expected {
      kind k;
      size_t size = 0;    // echo: answer bytes; stream: batch bytes
      size_t batches = 0; // stream
      size_t seen = 0;    // stream: batches so far
      bool ended = false;
    };
    std::map<uint64_t, expected> sent;
    std::string burst;
    uint64_t id = 1;
    for (int i = 0; i < 120; ++i, ++id) {
      switch (rng() % 3) {
        case 0: {
          auto n = 20'000 + rng() % 200'000;
          burst += request_frame(id, "echo", "big:" + std::to_string(n));
          sent[id] = expected{echo_big, n};
          break;
        }
        case 1:
          burst += request_frame(id, "nobody-" + std::string(40 + rng() % 2000, 'x'), "x");
          sent[id] = expected{unknown};
          break;
        default: {
          auto batches = 1 + rng() % 8;
          auto size = 1'000 + rng() % 60'000;
          burst += request_frame(id, "echo",
                                 std::to_string(batches) + ":" + std::to_string(size), true);
          sent[id] = expected{streamed, size, batches};
        }
      }
    }
    s.send_all(burst);
    // Read in random small pieces with random pauses: the pauses ARE the slow reader
    // (nothing is waited for by them).
    std::vector<uint64_t> echo_order, unknown_order;
    size_t terminal = 0;
    while (terminal < sent.size()) {
      if (rng() % 24 == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
      auto env = s.next(512 + rng() % 8192);
      ASSERT_TRUE(env) << "round " << round << ": no frame after " << terminal
                       << " answers, " << s.bytes_read << " bytes";
      auto rid = env->request_id();
      auto it = sent.find(rid);
      ASSERT_NE(it, sent.end()) << "an answer to no request: " << env->ShortDebugString().substr(0, 200);
      auto& e = it->second;
      ASSERT_FALSE(e.ended) << "a second answer to request " << rid;
      switch (e.k) {
        case echo_big:
          ASSERT_TRUE(env->has_response()) << env->ShortDebugString().substr(0, 300);
          ASSERT_TRUE(env->response().payload() == noise(e.size, static_cast<uint32_t>(e.size)))
            << "request " << rid << ": the answer's bytes differ";
          echo_order.push_back(rid);
          e.ended = true;
          break;
        case unknown:
          ASSERT_TRUE(env->has_reject());
          ASSERT_EQ(env->reject().code(), static_cast<uint32_t>(code::not_found));
          unknown_order.push_back(rid);
          e.ended = true;
          break;
        case streamed:
          if (env->has_batch()) {
            ASSERT_EQ(env->batch().sequence(), e.seen);
            ASSERT_TRUE(env->batch().payload() == noise(e.size, static_cast<uint32_t>(e.seen)))
              << "request " << rid << ": batch " << e.seen << "'s bytes differ";
            ++e.seen;
            ASSERT_LE(e.seen, e.batches);
            continue;
          }
          ASSERT_TRUE(env->has_end_of_stream()) << env->ShortDebugString().substr(0, 300);
          ASSERT_EQ(e.seen, e.batches);
          e.ended = true;
          break;
      }
      ++terminal;
    }
    // One actor answers its requests in the order they came; the gate refuses in order.
    EXPECT_TRUE(std::is_sorted(echo_order.begin(), echo_order.end()));
    EXPECT_TRUE(std::is_sorted(unknown_order.begin(), unknown_order.end()));
  }
}

/// Sends requests to `target` with `payload` (ids 1, 2, ...) on `fd` (non-blocking) until
/// `max_bytes` went out, or the node took nothing for half a second (it stopped reading:
/// TCP pushes back). Returns the bytes sent.
uint64_t send_until_pushed_back(int fd, const std::string& target, const std::string& payload,
                                uint64_t max_bytes) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  uint64_t sent = 0, id = 0;
  std::string frame;
  size_t pos = 0;
  while (sent < max_bytes) {
    if (pos == frame.size()) {
      frame = request_frame(++id, target, payload);
      pos = 0;
    }
    auto n = ::send(fd, frame.data() + pos, frame.size() - pos, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<uint64_t>(n);
      pos += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      break;  // closed by the node
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 500) == 0)
      break;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return sent;
}

// Issue 12, defect 2: a peer that sends and never reads made the node buffer its Rejects
// without bound (128 MiB of requests to unknown 900 KB targets: RSS +116..222 MiB, never
// cut). A Reject now echoes a few dozen bytes of the target, not all of it: the flood
// costs the node next to nothing.
TEST_F(BackpressureTest, ARejectEchoesAFewDozenBytesOfWhatThePeerSent) {
  lcfg.limits.max_msgs_per_sec = 0;
  lcfg.limits.max_bytes_per_sec = 0;
  start();
  slow_socket s{lst.port, 4096};
  s.handshake();
  auto before = test::current_rss_bytes();
  auto sent =
    send_until_pushed_back(s.fd, "nobody-" + std::string(900'000, 'x'), "x", 128u << 20);
  auto after = test::current_rss_bytes();
  std::printf("requests to unknown 900 KB targets, never read: %llu MiB sent, RSS %llu -> "
              "%llu MiB\n",
              static_cast<unsigned long long>(sent >> 20),
              static_cast<unsigned long long>(before >> 20),
              static_cast<unsigned long long>(after >> 20));
  EXPECT_LT(after, before + (16u << 20));
  auto first = s.next(1 << 16);
  ASSERT_TRUE(first && first->has_reject());
  EXPECT_EQ(first->reject().code(), static_cast<uint32_t>(code::not_found));
  EXPECT_LT(first->reject().detail().size(), 200u) << first->reject().detail().substr(0, 300);
  EXPECT_NE(first->reject().detail().find("(900007 bytes)"), std::string::npos)
    << first->reject().detail();
}

// Issue 12, defect 2, the other half: Rejects did not count against the write bound, so a
// peer sending requests that are refused at once (100-byte unknown targets) and never
// reading made the node buffer 20 MiB per connection in 15 s, never cut. They count now:
// the node stops taking such a peer's requests once half the bound waits for it.
TEST_F(BackpressureTest, RefusalsCountAgainstTheWriteBound) {
  lcfg.limits.max_msgs_per_sec = 0;
  lcfg.limits.max_bytes_per_sec = 0;
  start();
  slow_socket s{lst.port, 4096};
  s.handshake();
  auto sent = send_until_pushed_back(s.fd, "nobody-" + std::string(93, 'x'), "x", 128u << 20);
  auto frames_read = ctx->stats.frames_in.load();
  std::printf("requests refused at once, never read: %llu KiB sent, %llu frames taken\n",
              static_cast<unsigned long long>(sent >> 10),
              static_cast<unsigned long long>(frames_read));
  // Half of 8 MiB of ~150-byte Rejects, and what the kernel's buffers took: ~50,000.
  EXPECT_LT(frames_read, 200'000u) << "the node kept reading a peer that reads nothing";
  EXPECT_LT(sent, 100u << 20);
  // Paused at least once. More than once is allowed: after the first pause the kernel may
  // still take queued bytes (its send buffer grows), which brings the wait below the mark
  // and lets a few more requests in before the next pause; each resume needs bytes the
  // kernel took, so a peer that reads nothing sees a handful at most.
  auto pauses = ctx->stats.input_paused_for_slow_reader.load();
  EXPECT_GE(pauses, 1u);
  EXPECT_LE(pauses, 8u);
}

// Every frame counts against net.max_write_buffer_bytes: a peer that asks for big answers
// and never reads them gets its input stopped at half the bound (its own socket fills),
// and is closed as a slow consumer once it has read nothing for
// net.write_stall_timeout_ms.
TEST_F(BackpressureTest, APeerThatNeverReadsIsHeldBackThenClosed) {
  lcfg.limits.max_msgs_per_sec = 0;
  lcfg.limits.max_bytes_per_sec = 0;
  lcfg.limits.write_stall_timeout_ms = 2000;  // well after the sender saw the pushback
  // Answers in flight are bounded by this, not by the write buffer: 32 x 200 KB at most.
  lcfg.limits.max_inflight_requests = 32;
  start();
  slow_socket s{lst.port, 4096};
  s.handshake();
  auto before = test::current_rss_bytes();
  auto sent = send_until_pushed_back(s.fd, "echo", "big:200000", 128u << 20);
  auto frames_read = ctx->stats.frames_in.load();
  auto after = test::current_rss_bytes();
  std::printf("requests for 200 KB answers, never read: %llu KiB sent, %llu frames taken, "
              "RSS %llu -> %llu MiB\n",
              static_cast<unsigned long long>(sent >> 10),
              static_cast<unsigned long long>(frames_read),
              static_cast<unsigned long long>(before >> 20),
              static_cast<unsigned long long>(after >> 20));
  // What was sent sits mostly in the two kernels' socket buffers (up to ~10 MiB on Linux,
  // depending on the machine); what the node took is what counts: a few thousand
  // requests, each answered or refused, until its answers filled half its write buffer.
  EXPECT_LT(frames_read, 50'000u) << "the node kept reading a peer that reads nothing ("
                                  << (sent >> 10) << " KiB sent)";
  // The 8 MiB write bound, the 6.4 MB of answers in flight, a frame being read, slack.
  EXPECT_LT(after, before + (24u << 20));
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.closed(code::slow_consumer) == 1; }));
  // The closing Reject waits behind everything the peer never read. If the peer reads
  // now, it comes last; a kernel may instead reset a connection closed with bytes in
  // flight both ways (a never-reading peer cannot count on it): then nothing is checked.
  std::optional<wire::Envelope> last;
  while (auto env = s.next(1 << 16))
    last = env;
  if (last && last->has_reject() && last->reject().closing()) {
    EXPECT_EQ(last->reject().code(), static_cast<uint32_t>(code::slow_consumer));
    EXPECT_EQ(last->reject().limit(), "net.write_stall_timeout_ms");
  }
}

// A stream target written before credit existed (it sends every batch at once and knows no
// credit_atom) answers the connection's credit with an error message. That is the
// target's problem: the connection keeps serving, and is counted closed when it closes.
TEST_F(BackpressureTest, ATargetThatKnowsNoCreditDoesNotBreakItsConnection) {
  start();
  auto old_style = sys->spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {
      [=](wire_stream_atom, const std::string&, uint64_t tag, uint64_t, uint64_t) {
        auto to = caf::actor_cast<caf::actor>(self->current_sender());
        for (int i = 0; i < 40; ++i)
          self->send(to, wire_batch_atom::value, tag, std::string(100, 'b'));
        return caf::make_message(stream_tail{}, std::string{"40 parts"});
      },
    };
  });
  ctx->expose("old", old_style);
  {
    client_options o;
    o.port = lst.port;
    client c{o};
    ASSERT_TRUE(c.connect().ok());
    for (int round = 0; round < 3; ++round) {
      uint64_t id = 0;
      ASSERT_FALSE(c.send_stream_request("old", "", id));
      size_t batches = 0;
      for (;;) {
        auto r = c.receive(10s);
        ASSERT_TRUE(r.ok()) << (r.rejected ? r.rejected->to_string() : "");
        if (r.end_of_stream)
          break;
        ++batches;
      }
      EXPECT_EQ(batches, 40u);
      ASSERT_TRUE(c.request("echo", "still there", 10s).ok());
    }
  }
  EXPECT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 0; }));
  caf::anon_send_exit(old_style, caf::exit_reason::user_shutdown);
}

// Issue 12, defect 3: every connection's broker stayed in memory after it closed (CAF
// 0.17.6 leaves a broker's mailbox open after it ends; its own timer tick, arriving
// late, held it). Connections of every kind: closed by the client before or after the
// handshake or a request, refused for the connection bound, closed by the server.
TEST_F(BackpressureTest, ConnectionsOpenedAndClosedLeaveNothingBehind) {
  lcfg.limits.max_connections = 4;
  lcfg.limits.reserved_connections = 1;
  start();
  auto before = net::connection_actors_alive();
  auto accepted = [&] { return ctx->stats.connections_accepted.load(); };
  for (int i = 0; i < 40; ++i) {
    { slow_socket bare{lst.port, 0}; }
    { slow_socket hello{lst.port, 0}; hello.handshake(); }
    {
      client_options o;
      o.port = lst.port;
      client c{o};
      ASSERT_TRUE(c.connect().ok());
      ASSERT_TRUE(c.request("echo", "hi", 10s).ok());
    }
    {
      slow_socket garbage{lst.port, 0};
      garbage.send_all(std::string("\xff\xff\xff\xff\x00garbage", 12));
      while (garbage.next()) {}  // the server's Reject, then its close
    }
  }
  {
    // Over the connection bound: refused with a Reject, and closed.
    std::vector<std::unique_ptr<slow_socket>> held;
    for (int i = 0; i < 4; ++i) {
      held.push_back(std::make_unique<slow_socket>(lst.port, 0));
      held.back()->handshake();
    }
    slow_socket refused{lst.port, 0};
    auto r = refused.next();
    ASSERT_TRUE(r && r->has_reject());
    EXPECT_EQ(r->reject().code(), static_cast<uint32_t>(code::too_many_connections));
  }
  ASSERT_TRUE(test::wait_until([&] { return accepted() >= 164; }));
  ASSERT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 0; }));
  EXPECT_TRUE(test::wait_until([&] { return net::connection_actors_alive() == before; }, 10s))
    << net::connection_actors_alive() - before << " connection actors of closed connections are alive";
}

// The same in memory: thousands of connections opened and closed leave the resident set
// where it was (a leak of the 2 KiB each used to leave would show as 20 MiB).
TEST_F(BackpressureTest, ResidentMemoryIsFlatAcrossTenThousandConnections) {
  lcfg.limits.max_msgs_per_sec = 0;
  start();
  client_options o;
  o.port = lst.port;
  auto churn = [&](int n) {
    for (int i = 0; i < n; ++i) {
      client c{o};
      ASSERT_TRUE(c.connect().ok());
      ASSERT_TRUE(c.request("echo", "hi", 10s).ok());
    }
    ASSERT_TRUE(test::wait_until([&] { return ctx->stats.connections_open.load() == 0; }));
    ASSERT_TRUE(test::wait_until([&] { return net::connection_actors_alive() == 0; }, 10s))
      << net::connection_actors_alive() << " alive";
  };
  churn(1000);  // allocator pools, CAF's caches: warm
  auto warm = test::current_rss_bytes();
  churn(10'000);
  auto after = test::current_rss_bytes();
  std::printf("RSS after 1,000 connections: %llu KiB; after 10,000 more: %llu KiB\n",
              static_cast<unsigned long long>(warm >> 10),
              static_cast<unsigned long long>(after >> 10));
  EXPECT_LT(after, warm + (4u << 20)) << "RSS grew from " << warm << " to " << after
                                      << " bytes across 10,000 connections";
}

} // namespace
} // namespace levee
