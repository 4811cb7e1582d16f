// Request/response between two processes on 127.0.0.1, 1 KiB payloads: Levee's wire
// protocol (client library -> connection broker -> limited echo actor) against the floor
// (a raw TCP echo of the same frames) and against CAF BASP remote actors, in one run.
//
//   sequential: p50 / p99 round trip over 5,000 requests, one at a time
//   pipelined:  requests per second with 64 in flight, 50,000 requests
//
// Each server runs in a child process (fork) and is killed at the end.
// Run: scripts/bench-net (or build-release/bench/net_bench); figures in bench/RESULTS.md.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <atomic>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/atoms.hpp"
#include "actors/io_loop.hpp"
#include "bench/bench_support.hpp"
#include "actors/limited_actor.hpp"
#include "levee/client.hpp"
#include "net/listener.hpp"

namespace {

using namespace levee::bench;

using namespace std::chrono;
constexpr size_t payload_bytes = 1024;
constexpr int sequential_requests = 5000;
constexpr int pipelined_requests = 50000;
constexpr int window = 64;

struct child {
  pid_t pid = -1;
  uint16_t port = 0;
};

/// Runs `serve(report_port)` in a child process; returns its pid and the port it reported.
template <class F>
child spawn_child(F serve) {
  int fds[2];
  if (::pipe(fds) != 0)
    std::abort();
  auto pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    serve([&](uint16_t port) {
      ::write(fds[1], &port, sizeof port);
      ::close(fds[1]);
    });
    ::_exit(0);
  }
  ::close(fds[1]);
  child c;
  c.pid = pid;
  if (::read(fds[0], &c.port, sizeof c.port) != sizeof c.port) {
    std::fprintf(stderr, "net_bench: a server child did not start\n");
    std::exit(1);
  }
  ::close(fds[0]);
  return c;
}

void stop_child(const child& c) {
  ::kill(c.pid, SIGKILL);
  ::waitpid(c.pid, nullptr, 0);
}

// -- servers (child processes) ----------------------------------------------------------

class echo_service : public levee::limited_actor {
public:
  using limited::limited;
  caf::behavior make_behavior() override {
    return {[](levee::wire_request_atom, std::string& s) { return std::move(s); }};
  }
};

template <class Report>
void serve_levee(Report report) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  levee::add_error_category(cfg);
  caf::actor_system sys{cfg};
  levee::limits_config lc;
  levee::runtime rt{lc};
  levee::net::listener_config lcfg;
  lcfg.limits.max_msgs_per_sec = 0;   // measure the path, not the rate limit
  lcfg.limits.max_bytes_per_sec = 0;
  auto ctx = std::make_shared<levee::net::server_context>(lcfg);
  ctx->expose("echo", levee::spawn_limited<echo_service>(sys, rt, "echo"));
  // The same echo, placed on the multiplexer thread next to the connection brokers.
  ctx->expose("echo-mx", levee::spawn_limited_fun(
                           sys, rt, "echo", levee::io_thread_of(sys),
                           [](levee::limited_actor*) -> caf::behavior {
                             return {[](levee::wire_request_atom, std::string& s) {
                               return std::move(s);
                             }};
                           }));
  auto l = levee::net::start_listener(sys, ctx, "127.0.0.1", 0);
  if (!l)
    std::_Exit(1);
  report(l->port);
  for (;;)
    ::pause();
}

template <class Report>
void serve_basp(Report report) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([]() -> caf::behavior {
    return {[](std::string& s) { return std::move(s); }};
  });
  auto port = sys.middleman().publish(echo, 0, "127.0.0.1");
  if (!port)
    std::_Exit(1);
  report(*port);
  for (;;)
    ::pause();
}

/// The floor: length-prefixed frames echoed by a thread per connection, no framework
/// (bench_support.hpp, shared with load_bench).
template <class Report>
void serve_raw(Report report) {
  uint16_t port = 0;
  int lfd = listen_loopback(port);
  report(port);
  serve_raw_echo(lfd);
}

// -- clients (this process) -------------------------------------------------------------

struct figures {
  double p50_us = 0;
  double p99_us = 0;
  double per_sec = 0;
};

figures run_raw(uint16_t port) {
  int fd = connect_loopback(port);
  std::string frame(4 + payload_bytes, 'r');
  *reinterpret_cast<uint32_t*>(frame.data()) = htonl(payload_bytes);
  std::vector<char> back(frame.size());
  std::vector<double> rtts;
  for (int i = 0; i < sequential_requests; ++i) {
    auto t0 = steady_clock::now();
    write_all(fd, frame.data(), frame.size());
    read_exact(fd, back.data(), back.size());
    rtts.push_back(duration<double, std::micro>(steady_clock::now() - t0).count());
  }
  figures f{percentile(rtts, 0.5), percentile(rtts, 0.99), 0};
  auto t0 = steady_clock::now();
  run_window(fd, frame, frame.size(), window,
             [](uint64_t sent) { return sent < static_cast<uint64_t>(pipelined_requests); });
  f.per_sec = pipelined_requests / duration<double>(steady_clock::now() - t0).count();
  ::close(fd);
  return f;
}

figures run_levee(uint16_t port, const char* target) {
  levee::client_options o;
  o.port = port;
  levee::client c{o};
  if (auto st = c.connect(); !st) {
    std::fprintf(stderr, "net_bench: %s\n", st.to_string().c_str());
    std::exit(1);
  }
  std::string payload(payload_bytes, 'l');
  std::vector<double> rtts;
  for (int i = 0; i < sequential_requests; ++i) {
    auto t0 = steady_clock::now();
    auto r = c.request(target, payload, seconds(10));
    if (!r.ok())
      std::exit(1);
    rtts.push_back(duration<double, std::micro>(steady_clock::now() - t0).count());
  }
  figures f{percentile(rtts, 0.5), percentile(rtts, 0.99), 0};
  // 64 in flight; every answer that has arrived is replaced at once, in one write.
  auto t0 = steady_clock::now();
  int sent = 0, received = 0;
  std::vector<uint64_t> ids;
  std::vector<std::string> batch(window, payload);
  c.send_requests(target, batch, ids);
  sent = window;
  std::vector<levee::reply> answers;
  while (received < pipelined_requests) {
    answers.clear();
    c.receive_ready(answers, seconds(10));
    for (auto& a : answers)
      if (!a.ok()) {
        std::fprintf(stderr, "net_bench: %s\n", a.rejected->to_string().c_str());
        std::exit(1);
      }
    received += static_cast<int>(answers.size());
    auto more = std::min<int>(static_cast<int>(answers.size()), pipelined_requests - sent);
    if (more > 0) {
      batch.assign(static_cast<size_t>(more), payload);
      c.send_requests(target, batch, ids);
      sent += more;
    }
  }
  f.per_sec = pipelined_requests / duration<double>(steady_clock::now() - t0).count();
  return f;
}

figures run_basp(uint16_t port) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto remote = sys.middleman().remote_actor("127.0.0.1", port);
  if (!remote) {
    std::fprintf(stderr, "net_bench: BASP: %s\n", sys.render(remote.error()).c_str());
    std::exit(1);
  }
  std::string payload(payload_bytes, 'b');
  std::vector<double> rtts;
  caf::scoped_actor self{sys};
  for (int i = 0; i < sequential_requests; ++i) {
    auto t0 = steady_clock::now();
    self->request(*remote, caf::infinite, payload).receive([](const std::string&) {},
                                                           [](caf::error&) { std::exit(1); });
    rtts.push_back(duration<double, std::micro>(steady_clock::now() - t0).count());
  }
  figures f{percentile(rtts, 0.5), percentile(rtts, 0.99), 0};
  // Request/response with 64 in flight, as the Levee client does: an event-based driver
  // keeps the window full with request().then().
  std::promise<void> done;
  auto finished = done.get_future();
  auto t0 = steady_clock::now();
  sys.spawn([&, target = *remote](caf::event_based_actor* drv) {
    auto remaining = std::make_shared<int>(pipelined_requests);
    auto answered = std::make_shared<int>(0);
    auto issue = std::make_shared<std::function<void()>>();
    std::weak_ptr<std::function<void()>> weak = issue;
    *issue = [=, &done] {
      if (*remaining == 0)
        return;
      --*remaining;
      drv->request(target, caf::infinite, payload).then([=, &done](const std::string&) {
        if (++*answered == pipelined_requests) {
          done.set_value();
          drv->quit();
          return;
        }
        if (auto f = weak.lock())
          (*f)();
      });
    };
    for (int i = 0; i < window; ++i)
      (*issue)();
    drv->attach_functor([issue] {});  // keeps the function alive as long as the driver
  });
  finished.wait();
  f.per_sec = pipelined_requests / duration<double>(steady_clock::now() - t0).count();
  return f;
}

/// p50/p99 of sequential requests on one good connection while another thread opens
/// connections and sends garbage (a 4 GiB length, an HTTP request, invalid protobuf,
/// silence), bounded in count.
figures run_levee_under_attack(uint16_t port, const char* target, int& attacks) {
  std::atomic<bool> stop{false};
  std::atomic<int> count{0};
  std::thread attacker([&] {
    const std::string garbage[] = {
      std::string("\xff\xff\xff\xff\x00", 5),
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string("\x00\x00\x00\x03\x00\xff\xff\xff", 8),
    };
    for (int i = 0; i < 20000 && !stop.load(); ++i) {
      int fd = connect_loopback(port, false);
      if (fd >= 0) {
        auto& g = garbage[i % 3];
        ::send(fd, g.data(), g.size(), MSG_NOSIGNAL);
        char buf[256];
        ::recv(fd, buf, sizeof buf, 0);  // the Reject, then the close
        ::close(fd);
      }
      ++count;
    }
  });
  levee::client_options o;
  o.port = port;
  levee::client c{o};
  if (!c.connect())
    std::exit(1);
  std::string payload(payload_bytes, 'g');
  std::vector<double> rtts;
  for (int i = 0; i < sequential_requests; ++i) {
    auto t0 = steady_clock::now();
    if (!c.request(target, payload, seconds(10)).ok())
      std::exit(1);
    rtts.push_back(duration<double, std::micro>(steady_clock::now() - t0).count());
  }
  stop = true;
  attacker.join();
  attacks = count.load();
  return figures{percentile(rtts, 0.5), percentile(rtts, 0.99), 0};
}

void print(const char* name, const figures& f) {
  std::printf("  %-34s p50 %7.1f us   p99 %7.1f us   %9.0f req/s (64 in flight)\n", name,
              f.p50_us, f.p99_us, f.per_sec);
}

} // namespace

int main() {
  std::signal(SIGPIPE, SIG_IGN);
  std::printf("request/response between two processes, %zu-byte payloads, 127.0.0.1\n",
              payload_bytes);
  auto raw_child = spawn_child([](auto report) { serve_raw(report); });
  auto raw = run_raw(raw_child.port);
  stop_child(raw_child);
  auto levee_child = spawn_child([](auto report) { serve_levee(report); });
  auto lev = run_levee(levee_child.port, "echo");
  auto lev_mx = run_levee(levee_child.port, "echo-mx");
  int attacks = 0;
  auto lev_attacked = run_levee_under_attack(levee_child.port, "echo-mx", attacks);
  stop_child(levee_child);
  auto basp_child = spawn_child([](auto report) { serve_basp(report); });
  auto basp = run_basp(basp_child.port);
  stop_child(basp_child);
  print("raw TCP echo (floor)", raw);
  print("Levee -> limited actor (worker)", lev);
  print("Levee -> limited actor (multiplexer)", lev_mx);
  print("CAF BASP remote actor", basp);
  std::printf("  %-34s p50 %7.1f us   p99 %7.1f us   (%d bad connections meanwhile)\n",
              "Levee (multiplexer) under attack", lev_attacked.p50_us, lev_attacked.p99_us,
              attacks);
  std::printf("\nRatios (same run):\n");
  std::printf("  Levee (multiplexer) p50 / raw TCP p50          %6.2fx   (target <= 1.3)\n",
              lev_mx.p50_us / raw.p50_us);
  std::printf("  Levee (multiplexer) throughput / BASP (x64)    %6.2fx   (target >= 2)\n",
              lev_mx.per_sec / basp.per_sec);
  std::printf("  Levee (worker) p50 / raw TCP p50               %6.2fx\n", lev.p50_us / raw.p50_us);
  std::printf("  Levee p50 under attack / quiet                 %6.2fx\n",
              lev_attacked.p50_us / lev_mx.p50_us);
  std::printf("  Levee p99 under attack / quiet                 %6.2fx\n",
              lev_attacked.p99_us / lev_mx.p99_us);
  std::printf("  Levee (multiplexer) p99 / raw TCP p99          %6.2fx\n", lev_mx.p99_us / raw.p99_us);
  std::printf("  Levee (worker) throughput / BASP (x64)         %6.2fx\n", lev.per_sec / basp.per_sec);
  std::printf("  Levee (multiplexer) throughput / raw TCP (x64) %6.2fx\n", lev_mx.per_sec / raw.per_sec);
  return 0;
}
