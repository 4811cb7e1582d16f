// A query's round trip client -> server -> satellite -> client with a ~1 KiB answer
// (issue 5), against two baselines measured in the same run:
//
//   raw TCP relay (the floor)  three processes on 127.0.0.1: a client, a relay (the
//                              "server", one epoll thread) and a backend (the "satellite")
//                              that dials OUT to the relay and keeps that connection.
//                              Frames are `u32 length (big-endian) | u64 request id |
//                              payload`; the relay gives each request its own id towards
//                              the backend and maps the answer back to the client's id, so
//                              requests can be pipelined.
//   raw TCP relay, polling     the same, but the relay and the backend look for their next
//                              frame (non-blocking, yielding the CPU) for as long as
//                              Levee's I/O threads do by default (node.busy_poll_us)
//                              before they sleep: the floor for Levee's own loop, for
//                              context (the target is against the floor above).
//   NATS relay                 the same two hops through nats-server (started by the bench
//                              on a free loopback port): the client requests subject
//                              `query`; a proxy process subscribed to `query` forwards each
//                              message to `satellite.a` with a reply subject that carries
//                              the client's inbox, and relays the answer there; the
//                              backend subscribed to `satellite.a` answers 1 KiB.
//                              Built only when libnats is found (LEVEE_BENCH_NATS); skipped
//                              when nats-server is not installed.
//   Levee                      `levee node` as the server and `levee node` as satellite
//                              "a" (configs written to a temp dir); the client sends a
//                              streamed "query" request (QueryRequest "where seq == 7
//                              limit 1" to satellite "a") and reads Batches up to the
//                              EndOfStream. Skipped, with the reason, when the binary
//                              cannot run a node. Run twice: with the nodes' default
//                              node.busy_poll_us, and with 0 (the I/O threads sleep as
//                              soon as nothing is ready, CAF's own loop), for context.
//   Levee satellite scan       a second satellite "b" tails a file of 1 M JSON events; the
//                              filter query `where user == "nobody"` (no match) scans them
//                              all: events/s and MB/s of store, the fastest of 3 runs.
//
// For each: p50 / p99 round trip of sequential requests (after a warm-up), and requests
// per second with 64 in flight over a fixed time. Every child process is killed at exit,
// also on failure, a signal or the watchdog.
//
// Run: scripts/bench (or build-release/bench/query_bench [--levee PATH] [--cpu N]);
// figures in bench/RESULTS.md. `--cpu N` runs the bench and every process it starts on
// CPU N only: no wake-up crosses CPUs, so what remains is each path's own work (on this
// 2-vCPU VM the cross-CPU wake-ups are most of the two-CPU floor), and the runs repeat
// more closely; the targets are for the default run.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef LEVEE_BENCH_NATS
#include <nats/nats.h>
#endif

#include "bench/bench_support.hpp"
#include "levee/client.hpp"
#include "limits/defaults.hpp"
#include "net/satellite.pb.h"

namespace {

using namespace levee::bench;

using namespace std::chrono;
namespace fs = std::filesystem;

constexpr size_t request_bytes = 100;   // about a query's text
constexpr size_t answer_bytes = 1024;   // one ~1 KiB row
constexpr int warmup_requests = 500;
int sequential_requests = 5000;       // --requests N (to profile a longer run)
constexpr int window = 64;              // requests in flight for the throughput figure
constexpr auto throughput_time = milliseconds(2000);
constexpr auto watchdog_seconds = 150;  // the whole bench, whatever hangs

// -- child processes (bench_support.hpp tracks them and kills them at exit) ---------------

/// fork_child() for a body that writes one byte to the fd it is given once it is ready;
/// waits for that byte. `ready` is false when the child ended (or failed) before it.
template <class F>
pid_t fork_ready_child(F body, bool& ready) {
  int fds[2];
  if (::pipe(fds) != 0)
    std::abort();
  auto pid = fork_child([&] {
    ::close(fds[0]);
    body(fds[1]);
  });
  ::close(fds[1]);
  char byte;
  ready = ::read(fds[0], &byte, 1) == 1;
  ::close(fds[0]);
  return pid;
}

/// Runs `serve(report)` in a child; `report(port)` tells this process the child is ready.
template <class F>
std::pair<pid_t, uint16_t> spawn_server(F serve) {
  int fds[2];
  if (::pipe(fds) != 0)
    std::abort();
  auto pid = fork_child([&] {
    ::close(fds[0]);
    serve([&](uint16_t port) {
      ::write(fds[1], &port, sizeof port);
      ::close(fds[1]);
    });
  });
  ::close(fds[1]);
  uint16_t port = 0;
  if (::read(fds[0], &port, sizeof port) != sizeof port) {
    std::fprintf(stderr, "query_bench: a child process did not start\n");
    std::exit(1);
  }
  ::close(fds[0]);
  return {pid, port};
}

// -- figures -----------------------------------------------------------------------------

struct figures {
  double p50_us = 0;
  double p99_us = 0;
  double per_sec = 0;
};

/// `one()` makes one round trip (false: failed). Warm-up, then p50 / p99 in microseconds.
template <class F>
bool sequential(F one, figures& f) {
  for (int i = 0; i < warmup_requests; ++i)
    if (!one())
      return false;
  std::vector<double> rtts;
  rtts.reserve(sequential_requests);
  for (int i = 0; i < sequential_requests; ++i) {
    auto t0 = steady_clock::now();
    if (!one())
      return false;
    rtts.push_back(duration<double, std::micro>(steady_clock::now() - t0).count());
  }
  f.p50_us = percentile(rtts, 0.5);
  f.p99_us = percentile(rtts, 0.99);
  return true;
}

/// Counts the answers of a window kept full for `throughput_time`: answers that arrive
/// after the time are drained but not counted.
struct window_clock {
  steady_clock::time_point start = steady_clock::now();
  steady_clock::time_point deadline = start + throughput_time;
  steady_clock::time_point end{};
  uint64_t completed = 0;
  bool ended = false;

  /// `n` answers arrived; returns whether to send replacements.
  bool answered(uint64_t n) {
    if (ended)
      return false;
    completed += n;
    auto now = steady_clock::now();
    if (now < deadline)
      return true;
    end = now;
    ended = true;
    return false;
  }
  double per_sec() const {
    return static_cast<double>(completed) / duration<double>(end - start).count();
  }
};

// -- the raw two-hop relay (the floor) -----------------------------------------------------

constexpr size_t frame_header = 4 + 8;  // u32 length (of id + payload) | u64 request id

void append_frame(std::string& out, uint64_t id, const char* payload, size_t n) {
  uint32_t len = htonl(static_cast<uint32_t>(8 + n));
  out.append(reinterpret_cast<const char*>(&len), 4);
  out.append(reinterpret_cast<const char*>(&id), 8);  // host order: both ends are here
  out.append(payload, n);
}

/// Calls `on_frame(id, payload, size)` for each whole frame at the front of `in`, then
/// drops them from `in`. Returns false on a frame longer than `max_bytes`.
template <class F>
bool take_frames(std::string& in, size_t max_bytes, F on_frame) {
  size_t pos = 0;
  while (in.size() - pos >= 4) {
    uint32_t len;
    std::memcpy(&len, in.data() + pos, 4);
    len = ntohl(len);
    if (len < 8 || len > max_bytes)
      return false;
    if (in.size() - pos < 4 + len)
      break;
    uint64_t id;
    std::memcpy(&id, in.data() + pos + 4, 8);
    on_frame(id, in.data() + pos + frame_header, len - 8);
    pos += 4 + len;
  }
  in.erase(0, pos);
  return true;
}

/// How long the polling raw relay looks for its next frame before it sleeps: what Levee's
/// I/O threads do by default (net/multiplexer.hpp).
constexpr auto levee_poll_window = microseconds(levee::defaults::node_busy_poll_us);

/// Reads what a blocking socket has (waiting for at least one byte). False: closed.
/// With a `poll` window, first looks without blocking (yielding the CPU) until `poll` has
/// passed since `last` (the last frame), then blocks.
bool read_some(int fd, std::string& in, microseconds poll = {},
               steady_clock::time_point* last = nullptr) {
  char buf[64 * 1024];
  ssize_t r = -1;
  if (poll.count() > 0 && last != nullptr) {
    while ((r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) < 0 && errno == EAGAIN
           && steady_clock::now() - *last < poll)
      ::sched_yield();
  }
  if (r < 0 && (errno == EAGAIN || poll.count() == 0))
    r = ::recv(fd, buf, sizeof buf, 0);
  if (r <= 0)
    return false;
  if (last != nullptr)
    *last = steady_clock::now();
  in.append(buf, static_cast<size_t>(r));
  return true;
}

/// epoll_wait for up to 64 events; with a `poll` window, looks without blocking (yielding
/// the CPU) until `poll` has passed since the last event, then blocks.
int wait_events(int ep, epoll_event* events, microseconds poll, steady_clock::time_point& last) {
  if (poll.count() > 0)
    for (;;) {
      int n = ::epoll_wait(ep, events, 64, 0);
      if (n != 0) {
        last = steady_clock::now();
        return n;
      }
      if (steady_clock::now() - last >= poll)
        break;
      ::sched_yield();
    }
  int n = ::epoll_wait(ep, events, 64, -1);
  last = steady_clock::now();
  return n;
}

/// The relay ("server"): one epoll thread, non-blocking sockets. A connection's first byte
/// says what it is: 'S' the backend (which dialed out to us), 'C' a client. Requests from
/// clients get a relay id towards the backend; answers are mapped back to (client, id).
template <class Report>
void serve_relay(Report report, microseconds poll) {
  uint16_t port = 0;
  int lfd = listen_loopback(port);
  ::fcntl(lfd, F_SETFL, O_NONBLOCK);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  auto watch = [&](int fd, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    ::epoll_ctl(ep, op, fd, &ev);
  };
  watch(lfd, EPOLLIN, EPOLL_CTL_ADD);
  struct conn {
    char role = 0;  // 0 until the first byte
    std::string in, out;
    bool watching_out = false;
  };
  std::unordered_map<int, conn> conns;
  int backend = -1;
  std::string backlog;  // requests that came before the backend
  struct origin {
    int fd;
    uint64_t id;
  };
  std::unordered_map<uint64_t, origin> pending;
  uint64_t next_id = 1;
  std::vector<int> dirty;
  auto flush = [&](int fd, conn& c) {
    while (!c.out.empty()) {
      auto r = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (r < 0 && errno == EAGAIN)
        break;
      if (r <= 0)
        return;  // the read side sees the close
      c.out.erase(0, static_cast<size_t>(r));
    }
    bool want_out = !c.out.empty();
    if (want_out != c.watching_out) {
      watch(fd, want_out ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
      c.watching_out = want_out;
    }
  };
  auto drop = [&](int fd) {
    ::close(fd);
    conns.erase(fd);
    if (fd == backend)
      backend = -1;
  };
  report(port);
  epoll_event events[64];
  auto last = steady_clock::now();
  for (;;) {
    int n = wait_events(ep, events, poll, last);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (int a; (a = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          set_nodelay(a);
          conns[a];
          watch(a, EPOLLIN, EPOLL_CTL_ADD);
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end())
        continue;
      auto& c = it->second;
      if (events[i].events & EPOLLOUT)
        flush(fd, c);
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        continue;
      bool closed = false;
      for (;;) {
        char buf[64 * 1024];
        auto r = ::recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
          c.in.append(buf, static_cast<size_t>(r));
          if (static_cast<size_t>(r) < sizeof buf)
            break;
          continue;
        }
        closed = r == 0 || errno != EAGAIN;
        break;
      }
      if (c.role == 0 && !c.in.empty()) {
        c.role = c.in[0];
        c.in.erase(0, 1);
        if (c.role == 'S') {
          backend = fd;
          c.out += backlog;
          backlog.clear();
          dirty.push_back(fd);
        }
      }
      bool ok = take_frames(c.in, 1u << 20, [&](uint64_t id, const char* p, size_t len) {
        if (c.role == 'S') {
          auto o = pending.find(id);
          if (o == pending.end())
            return;
          if (auto to = conns.find(o->second.fd); to != conns.end()) {
            append_frame(to->second.out, o->second.id, p, len);
            dirty.push_back(o->second.fd);
          }
          pending.erase(o);
        } else {
          auto relay_id = next_id++;
          pending.emplace(relay_id, origin{fd, id});
          if (backend < 0) {
            append_frame(backlog, relay_id, p, len);
          } else {
            append_frame(conns[backend].out, relay_id, p, len);
            dirty.push_back(backend);
          }
        }
      });
      if (closed || !ok)
        drop(fd);
    }
    for (int fd : dirty)
      if (auto it = conns.find(fd); it != conns.end())
        flush(fd, it->second);
    dirty.clear();
  }
}

/// The backend ("satellite"): dials out to the relay, answers every request with
/// answer_bytes, all answers to what one read brought in one write.
void serve_backend(uint16_t relay_port, int ready_fd, microseconds poll) {
  int fd = connect_loopback(relay_port);
  if (fd < 0 || !write_all(fd, "S", 1))
    ::_exit(1);
  ::write(ready_fd, "r", 1);
  ::close(ready_fd);
  std::string answer(answer_bytes, 'a');
  std::string in, out;
  auto last = steady_clock::now();
  while (read_some(fd, in, poll, &last)) {
    out.clear();
    take_frames(in, 1u << 20, [&](uint64_t id, const char*, size_t) {
      append_frame(out, id, answer.data(), answer.size());
    });
    if (!out.empty() && !write_all(fd, out.data(), out.size()))
      break;
  }
  ::_exit(0);
}

/// `poll`: the relay's and the backend's polling window (0: they sleep at once).
std::optional<figures> run_raw(microseconds poll) {
  auto [relay, port] = spawn_server([poll](auto report) { serve_relay(report, poll); });
  bool started = false;
  auto backend = fork_ready_child(
    [port = port, poll](int ready) { serve_backend(port, ready, poll); }, started);
  int fd = started ? connect_loopback(port) : -1;
  if (fd < 0 || !write_all(fd, "C", 1)) {
    std::fprintf(stderr, "query_bench: raw relay did not start\n");
    stop(backend);
    stop(relay);
    return std::nullopt;
  }
  std::string request(request_bytes, 'q');
  std::string in, out;
  uint64_t next_id = 1;
  bool bad = false;
  uint64_t got = 0;  // the id of the last answer
  auto take = [&](uint64_t id, const char*, size_t len) {
    got = id;
    bad |= len != answer_bytes;
  };
  figures f;
  bool ok = sequential(
    [&] {
      out.clear();
      auto id = next_id++;
      append_frame(out, id, request.data(), request.size());
      if (!write_all(fd, out.data(), out.size()))
        return false;
      got = 0;
      while (got == 0)
        if (!read_some(fd, in) || !take_frames(in, 1u << 20, take))
          return false;
      return got == id && !bad;
    },
    f);
  if (ok) {
    // 64 in flight: every answer that has arrived is replaced at once, in one write.
    window_clock clock;
    out.clear();
    for (int i = 0; i < window; ++i)
      append_frame(out, next_id++, request.data(), request.size());
    ok = write_all(fd, out.data(), out.size());
    int inflight = window;
    while (ok && inflight > 0) {
      uint64_t n = 0;
      auto count = [&](uint64_t id, const char* p, size_t len) {
        ++n;
        take(id, p, len);
      };
      if (!read_some(fd, in) || !take_frames(in, 1u << 20, count)) {
        ok = false;
        break;
      }
      inflight -= static_cast<int>(n);
      if (n > 0 && clock.answered(n)) {
        out.clear();
        for (uint64_t i = 0; i < n; ++i)
          append_frame(out, next_id++, request.data(), request.size());
        ok = write_all(fd, out.data(), out.size());
        inflight += static_cast<int>(n);
      }
    }
    ok = ok && !bad;
    f.per_sec = clock.per_sec();
  }
  ::close(fd);
  stop(backend);
  stop(relay);
  if (!ok) {
    std::fprintf(stderr, "query_bench: raw relay: a round trip failed\n");
    return std::nullopt;
  }
  return f;
}

// -- the NATS relay ----------------------------------------------------------------------

#ifdef LEVEE_BENCH_NATS

// How NATS gets its best figures here (each measured on this machine, 2 vCPUs): every
// connection uses "send asap" (a publish is written at once instead of being handed to the
// library's flusher thread: ~3 ms vs ~0.3 ms p50 sequential, and ~25k vs ~19k req/s with
// 64 in flight); the client keeps 64 in flight with PublishRequest from one reply
// subscription's callback (64 threads each in natsConnection_Request: ~15k req/s); one
// delivery thread per subscription (the library's default; a shared pool was no faster).

constexpr const char* proxy_reply_prefix = "px.";  // px.<client inbox>: no state to keep

/// The proxy ("server"): `query` -> `satellite.a` with reply subject px.<client's reply>;
/// an answer on px.> goes to the client's reply subject. Stateless, so any number in flight.
void serve_nats_proxy(uint16_t port, int ready_fd) {
  auto nc = nats_connect(port);
  if (nc == nullptr)
    ::_exit(1);
  natsSubscription* queries = nullptr;
  natsSubscription* answers = nullptr;
  auto on_query = [](natsConnection* c, natsSubscription*, natsMsg* m, void*) {
    std::string reply = proxy_reply_prefix;
    reply += natsMsg_GetReply(m);
    natsConnection_PublishRequest(c, "satellite.a", reply.c_str(), natsMsg_GetData(m),
                                  natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
  };
  auto on_answer = [](natsConnection* c, natsSubscription*, natsMsg* m, void*) {
    natsConnection_Publish(c, natsMsg_GetSubject(m) + std::strlen(proxy_reply_prefix),
                           natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
  };
  auto answers_subject = std::string(proxy_reply_prefix) + ">";
  if (natsConnection_Subscribe(&queries, nc, "query", on_query, nullptr) != NATS_OK
      || natsConnection_Subscribe(&answers, nc, answers_subject.c_str(), on_answer, nullptr)
           != NATS_OK
      || natsConnection_Flush(nc) != NATS_OK)
    ::_exit(1);
  ::write(ready_fd, "r", 1);
  ::close(ready_fd);
  for (;;)
    ::pause();
}

/// The backend ("satellite"): answers every message on `satellite.a` with answer_bytes.
void serve_nats_backend(uint16_t port, int ready_fd) {
  auto nc = nats_connect(port);
  if (nc == nullptr)
    ::_exit(1);
  static const std::string answer(answer_bytes, 'a');
  natsSubscription* sub = nullptr;
  auto on_request = [](natsConnection* c, natsSubscription*, natsMsg* m, void*) {
    natsConnection_Publish(c, natsMsg_GetReply(m), answer.data(), static_cast<int>(answer.size()));
    natsMsg_Destroy(m);
  };
  if (natsConnection_Subscribe(&sub, nc, "satellite.a", on_request, nullptr) != NATS_OK
      || natsConnection_Flush(nc) != NATS_OK)
    ::_exit(1);
  ::write(ready_fd, "r", 1);
  ::close(ready_fd);
  for (;;)
    ::pause();
}

/// Starts the proxy and the backend (children, before this process touches libnats, so no
/// library thread is forked); false if either did not get ready.
bool start_nats_relay(uint16_t port, std::vector<pid_t>& pids) {
  for (auto serve : {serve_nats_proxy, serve_nats_backend}) {
    bool ok = false;
    pids.push_back(fork_ready_child([&](int ready) { serve(port, ready); }, ok));
    if (!ok)
      return false;
  }
  return true;
}

/// 64 in flight: one reply subscription (its own delivery thread) counts each answer and
/// publishes the replacement from the callback.
struct nats_window {
  natsConnection* nc = nullptr;
  std::string inbox;
  std::string request;
  window_clock clock;
  int inflight = 0;  // touched by the main thread only before the first publish
  bool size_ok = true;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
};

bool nats_sequential(uint16_t port, figures& f) {
  auto nc = nats_connect(port);
  if (nc == nullptr)
    return false;
  std::string request(request_bytes, 'q');
  bool ok = sequential(
    [&] {
      natsMsg* reply = nullptr;
      if (natsConnection_Request(&reply, nc, "query", request.data(),
                                 static_cast<int>(request.size()), 5000)
          != NATS_OK)
        return false;
      bool right = natsMsg_GetDataLength(reply) == static_cast<int>(answer_bytes);
      natsMsg_Destroy(reply);
      return right;
    },
    f);
  natsConnection_Destroy(nc);
  return ok;
}

bool nats_throughput(uint16_t port, figures& f) {
  auto nc = nats_connect(port);
  if (nc == nullptr)
    return false;
  // On the heap: if the window never drains, a late callback may still use it (leaked then).
  auto w = new nats_window;
  w->nc = nc;
  w->request.assign(request_bytes, 'q');
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  w->inbox = inbox;
  natsInbox_Destroy(inbox);
  auto on_answer = [](natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    auto& w = *static_cast<nats_window*>(closure);
    w.size_ok &= natsMsg_GetDataLength(m) == static_cast<int>(answer_bytes);
    natsMsg_Destroy(m);
    if (w.clock.answered(1)) {
      natsConnection_PublishRequest(w.nc, "query", w.inbox.c_str(), w.request.data(),
                                    static_cast<int>(w.request.size()));
      return;
    }
    if (--w.inflight == 0) {
      std::lock_guard<std::mutex> lock{w.m};
      w.done = true;
      w.cv.notify_one();
    }
  };
  natsSubscription* sub = nullptr;
  if (natsConnection_Subscribe(&sub, nc, w->inbox.c_str(), on_answer, w) != NATS_OK
      || natsConnection_Flush(nc) != NATS_OK) {
    natsConnection_Destroy(nc);
    delete w;
    return false;
  }
  w->inflight = window;
  w->clock = window_clock{};
  for (int i = 0; i < window; ++i)
    natsConnection_PublishRequest(nc, "query", w->inbox.c_str(), w->request.data(),
                                  static_cast<int>(w->request.size()));
  natsConnection_Flush(nc);
  bool finished;
  {
    std::unique_lock<std::mutex> lock{w->m};
    finished = w->cv.wait_for(lock, throughput_time + seconds(10), [&] { return w->done; });
  }
  bool ok = finished && w->size_ok;
  if (finished)
    f.per_sec = w->clock.per_sec();
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Close(nc);
  natsConnection_Destroy(nc);
  if (finished)
    delete w;  // every answer is in: no callback is left to run
  return ok;
}

#endif  // LEVEE_BENCH_NATS

/// Starts nats-server and the relay; runs both measurements; stops everything. Prints the
/// reason and returns nothing when NATS is not available.
std::optional<figures> run_nats() {
#ifndef LEVEE_BENCH_NATS
  std::printf("NATS relay: skipped (built without libnats: install libnats-dev, "
              "scripts/install-deps bench, and reconfigure)\n");
  return std::nullopt;
#else
  std::string why;
  auto started = start_nats_server({}, why);
  if (!started) {
    std::printf("NATS relay: skipped (%s)\n", why.c_str());
    return std::nullopt;
  }
  auto [pid, port] = *started;
  figures f;
  std::vector<pid_t> relay;
  bool ok = start_nats_relay(port, relay) && nats_sequential(port, f) && nats_throughput(port, f);
  for (auto p : relay)
    stop(p);
  nats_Close();
  stop(pid);
  if (!ok) {
    std::printf("NATS relay: failed (a request did not complete; see %s/nats-server.log)\n",
                temp_dir.c_str());
    return std::nullopt;
  }
  return f;
#endif
}

// -- Levee: server and satellite as `levee node` processes -------------------------------

/// The node configs, in one place so they are easy to adjust as `levee node` settles.
/// Raised to measure the path rather than a bound: the concurrent-query limits to the window
/// (the default per client, 16, would refuse most of 64 in flight), and the per-connection
/// rate limits are off (the satellite's one connection carries two frames per query).
void write_levee_configs(const std::string& dir, uint16_t server_port) {
  auto addr = "127.0.0.1:" + std::to_string(server_port);
  const std::string no_rate_limits = "[net]\n"
                                     "max_msgs_per_sec = 0\n"
                                     "max_bytes_per_sec = 0\n";
  std::ofstream(dir + "/S.ini") << "[node]\n"
                                << "roles = server\n"
                                << "[server]\n"
                                << "listen = " << addr << "\n"
                                << "max_queries_per_client = " << window << "\n"
                                << no_rate_limits;
  fs::create_directories(dir + "/a");
  std::ofstream(dir + "/A.ini") << "[node]\n"
                                << "roles = satellite\n"
                                << "[satellite]\n"
                                << "id = a\n"
                                << "server = " << addr << "\n"
                                << "data_dir = " << dir << "/a\n"
                                << "max_concurrent_queries = " << window << "\n"
                                << no_rate_limits
                                << "[source.gen]\n"
                                << "type = synthetic\n"
                                // load_levee_data(): ~1 KiB events, a few hundred a second
                                << "rate = 500\n"
                                << "msg_bytes = 1000\n";
}

/// Satellite "b" for the scan rate: it tails the file run_scan() writes.
void write_scan_config(const std::string& dir, uint16_t server_port) {
  fs::create_directories(dir + "/b");
  std::ofstream(dir + "/B.ini") << "[node]\n"
                                << "roles = satellite\n"
                                << "[satellite]\n"
                                << "id = b\n"
                                << "server = 127.0.0.1:" << server_port << "\n"
                                << "data_dir = " << dir << "/b\n"
                                << "poll_max_events = 100000\n"
                                << "[net]\n"
                                << "max_msgs_per_sec = 0\n"
                                << "max_bytes_per_sec = 0\n"
                                << "[source.file]\n"
                                << "type = file_tail\n"
                                << "path = " << dir << "/scan.jsonl\n"
                                << "start_at_end = false\n"
                                << "poll_interval_ms = 5\n"
                                << "read_chunk_bytes = 1MiB\n"
                                << "max_read_bytes_per_poll = 16MiB\n";
}

const char* const levee_query_text = "where seq == 7 limit 1";  // one ~1 KiB row

std::string query_payload() {
  levee::wire::QueryRequest q;
  q.set_text(levee_query_text);
  q.set_satellite_id("a");
  return q.SerializeAsString();
}

struct query_answer {
  bool ok = false;
  uint64_t rows = 0;
  uint64_t row_bytes = 0;
  levee::wire::QueryStats stats;  // from the EndOfStream
  std::string error;
};

/// One streamed query, its batches decoded; for checks, not for the timed loops.
query_answer run_query(levee::client& c, const std::string& payload) {
  query_answer a;
  uint64_t id = 0;
  if (auto refused = c.send_stream_request("query", payload, id)) {
    a.error = refused->to_string();
    return a;
  }
  for (;;) {
    auto r = c.receive(seconds(10));
    if (r.request_id == 0 && !r.ok()) {
      a.error = r.rejected->to_string();
      return a;
    }
    if (r.request_id != id)
      continue;
    if (r.rejected) {
      a.error = r.rejected->to_string();
      return a;
    }
    if (r.batch) {
      levee::wire::ResultBatch b;
      if (!b.ParseFromString(*r.payload)) {
        a.error = "a Batch that is not a ResultBatch";
        return a;
      }
      for (auto& e : b.events()) {
        ++a.rows;
        a.row_bytes += e.size();
      }
    }
    if (r.end_of_stream) {
      a.ok = a.stats.ParseFromString(*r.payload);
      if (!a.ok)
        a.error = "an EndOfStream summary that is not a QueryStats";
      return a;
    }
  }
}

/// Polls "satellites" until `id` is healthy; false with the reason if it is not in `bound`.
bool wait_until_healthy(levee::client& c, const std::string& id, pid_t server, pid_t satellite,
                        milliseconds bound, std::string& why) {
  auto deadline = steady_clock::now() + bound;
  std::string last = "never listed";
  std::string payload = levee::wire::SatellitesRequest{}.SerializeAsString();
  while (steady_clock::now() < deadline) {
    for (auto [pid, name] : {std::pair{server, "server"}, std::pair{satellite, "satellite"}})
      if (auto code = exited(pid)) {
        why = std::string("the ") + name + " node exited with code " + std::to_string(*code);
        return false;
      }
    auto r = c.request("satellites", payload, seconds(2));
    if (r.ok()) {
      levee::wire::SatelliteList list;
      if (list.ParseFromString(*r.payload))
        for (auto& s : list.satellites())
          if (s.satellite_id() == id) {
            last = "state " + levee::wire::SatelliteInfo::State_Name(s.state());
            if (s.state() == levee::wire::SatelliteInfo::healthy)
              return true;
          }
    } else if (r.rejected) {
      last = r.rejected->to_string();
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  why = "satellite '" + id + "' not healthy within " + std::to_string(bound.count()) + " ms ("
        + last + ")";
  return false;
}

/// DATA LOADING — to be adjusted when the satellite's store lands. Today the satellite's
/// synthetic source (write_levee_configs: msg_bytes 1000, 500 events/s) fills the store;
/// this waits until the query finds its row (seq 7) and a few hundred events exist.
/// Note: the source keeps generating during the measurement (~1 MB/s of appends).
bool load_levee_data(levee::client& c, const std::string& payload, std::string& why) {
  constexpr uint64_t want_events = 300;
  auto deadline = steady_clock::now() + seconds(20);
  query_answer a;
  while (steady_clock::now() < deadline) {
    a = run_query(c, payload);
    if (a.ok && a.rows == 1)
      break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  if (!a.ok || a.rows != 1) {
    why = a.ok ? "the query returned " + std::to_string(a.rows) + " rows, not 1, within 20 s"
               : "the query failed: " + a.error;
    return false;
  }
  // A few hundred events in the store, when the heartbeat reports them (bounded; the row
  // is there either way).
  uint64_t events = 0;
  auto enough = steady_clock::now() + seconds(3);
  std::string satellites = levee::wire::SatellitesRequest{}.SerializeAsString();
  while (steady_clock::now() < enough && events < want_events) {
    auto r = c.request("satellites", satellites, seconds(2));
    levee::wire::SatelliteList list;
    if (r.ok() && list.ParseFromString(*r.payload))
      for (auto& s : list.satellites())
        if (s.satellite_id() == "a")
          events = s.store().events();
    if (events < want_events)
      std::this_thread::sleep_for(milliseconds(100));
  }
  std::printf("Levee path: the answer is 1 row of %llu bytes; satellite a stores %llu events; "
              "the server's QueryStats: events_scanned %llu, elapsed_us %llu\n",
              static_cast<unsigned long long>(a.row_bytes),
              static_cast<unsigned long long>(events),
              static_cast<unsigned long long>(a.stats.events_scanned()),
              static_cast<unsigned long long>(a.stats.elapsed_us()));
  return true;
}

/// SCAN RATE: satellite "b" tails a JSON-lines file of scan_events events (written before
/// it starts), then a filter query that matches none of them scans them all.
constexpr uint64_t scan_events = 1'000'000;
constexpr auto scan_load_bound = seconds(40);
const char* const scan_query_text = "where user == \"nobody\"";

struct scan_figures {
  uint64_t events = 0;       // events_scanned of the fastest run
  uint64_t store_bytes = 0;  // the store's segment bytes, as the heartbeat reports them
  double seconds = 0;        // the fastest of the runs, as the client saw it
  double load_seconds = 0;   // from the satellite's start to scan_events stored
};

std::string write_scan_events(const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  std::string line, batch;
  static const char* const levels[] = {"INFO", "INFO", "INFO", "WARN", "ERROR"};
  for (uint64_t i = 0; i < scan_events; ++i) {
    line = "{\"ts\":" + std::to_string(1'700'000'000'000 + i) + ",\"seq\":" + std::to_string(i)
           + ",\"level\":\"" + levels[i % 5] + "\",\"user\":\"user-" + std::to_string(i % 1000)
           + "\",\"status\":200,\"msg\":\"a short message about request " + std::to_string(i)
           + "\"}\n";
    batch += line;
    if (batch.size() > (1 << 20)) {
      out << batch;
      batch.clear();
    }
  }
  out << batch;
  return out ? std::string{} : "cannot write " + path;
}

/// Starts satellite "b" against the running server, waits until it stores scan_events,
/// runs the filter query three times. Stops "b" before returning.
std::optional<scan_figures> run_scan(levee::client& c, const std::string& binary, pid_t server,
                                     uint16_t port, std::string& why) {
  if (why = write_scan_events(temp_dir + "/scan.jsonl"); !why.empty())
    return std::nullopt;
  write_scan_config(temp_dir, port);
  auto log = temp_dir + "/satellite-b.log";
  auto started = steady_clock::now();
  auto satellite = spawn_program({binary, "node", "--config", temp_dir + "/B.ini"}, log);
  scan_figures sf;
  std::string satellites = levee::wire::SatellitesRequest{}.SerializeAsString();
  auto deadline = started + scan_load_bound;
  uint64_t stored = 0;
  while (stored < scan_events) {
    if (steady_clock::now() > deadline || exited(satellite) || exited(server)) {
      why = "satellite b stored " + std::to_string(stored) + " of " + std::to_string(scan_events)
            + " events in " + std::to_string(scan_load_bound.count()) + " s; its log: "
            + last_line(log);
      stop(satellite);
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(200));
    auto r = c.request("satellites", satellites, seconds(2));
    levee::wire::SatelliteList list;
    if (r.ok() && list.ParseFromString(*r.payload))
      for (auto& s : list.satellites())
        if (s.satellite_id() == "b" && s.state() == levee::wire::SatelliteInfo::healthy) {
          stored = s.store().events();
          sf.store_bytes = s.store().bytes();
        }
  }
  sf.load_seconds = duration<double>(steady_clock::now() - started).count();
  levee::wire::QueryRequest q;
  q.set_text(scan_query_text);
  q.set_satellite_id("b");
  auto payload = q.SerializeAsString();
  for (int i = 0; i < 3; ++i) {
    auto t0 = steady_clock::now();
    auto a = run_query(c, payload);
    auto took = duration<double>(steady_clock::now() - t0).count();
    if (!a.ok) {
      why = "the scan query failed: " + a.error;
      stop(satellite);
      return std::nullopt;
    }
    if (sf.seconds == 0 || took < sf.seconds) {
      sf.seconds = took;
      sf.events = a.stats.events_scanned();
    }
  }
  stop(satellite);
  return sf;
}

/// `sleeping_io`: the nodes run with node.busy_poll_us = 0 (and the scan is left out).
std::optional<figures> run_levee(const std::string& binary, std::optional<scan_figures>* scan,
                                 bool sleeping_io) {
  bool measuring = false;  // setup problems skip the path, measurement problems fail it
  auto skip = [&](const std::string& why) {
    std::printf("Levee path: %s (%s)\n", measuring ? "failed" : "skipped", why.c_str());
    return std::nullopt;
  };
  if (::access(binary.c_str(), X_OK) != 0)
    return skip(binary + " not found; pass --levee PATH");
  auto port = free_port();
  // Each run its own configs, store and logs (--rounds runs each path again: from an
  // empty store, not the one the last run's killed satellite left).
  auto dir = temp_dir + (sleeping_io ? "/levee-sleeping-io" : "/levee");
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  write_levee_configs(dir, port);
  auto server_log = dir + "/server.log";
  auto satellite_log = dir + "/satellite.log";
  std::vector<std::string> server_args{binary, "node", "--config", dir + "/S.ini"};
  std::vector<std::string> satellite_args{binary, "node", "--config", dir + "/A.ini"};
  for (auto* args : {&server_args, &satellite_args})
    if (sleeping_io)
      args->insert(args->end(), {"--set", "node.busy_poll_us=0"});
  auto server = spawn_program(server_args, server_log);
  std::optional<int> code;
  if (!wait_for_port(port, server, seconds(10), code)) {
    stop(server);
    return skip(code ? "`levee node` (server) exited with code " + std::to_string(*code) + ": "
                         + last_line(server_log)
                     : "`levee node` (server) did not listen within 10 s");
  }
  auto satellite = spawn_program(satellite_args, satellite_log);
  levee::client_options o;
  o.port = port;
  o.node_id = "query-bench";
  levee::client c{o};
  std::string why;
  figures f;
  bool ok = false;
  auto payload = query_payload();
  uint64_t rejections = 0;
  std::string first_rejection;
  if (auto st = c.connect_with_backoff(seconds(5)); !st) {
    why = "cannot connect to the server: " + st.to_string();
  } else if (!wait_until_healthy(c, "a", server, satellite, seconds(30), why)) {
    why += "; server log: " + last_line(server_log) + "; satellite log: "
           + last_line(satellite_log);
  } else if (!load_levee_data(c, payload, why)) {
    // why is set
  } else {
    measuring = true;
    ok = sequential(
      [&] {
        uint64_t id = 0;
        if (auto refused = c.send_stream_request("query", payload, id)) {
          why = refused->to_string();
          return false;
        }
        for (;;) {
          auto r = c.receive(seconds(10));
          if (r.rejected) {
            why = r.rejected->to_string();
            return false;
          }
          if (r.request_id == id && r.end_of_stream)
            return true;
        }
      },
      f);
    if (ok) {
      // 64 in flight; each finished query (EndOfStream or Reject) is replaced at once.
      window_clock clock;
      int inflight = 0;
      uint64_t id = 0;
      for (; inflight < window && ok; ++inflight)
        if (auto refused = c.send_stream_request("query", payload, id)) {
          why = refused->to_string();
          ok = false;
        }
      std::vector<levee::reply> answers;
      while (ok && inflight > 0) {
        answers.clear();
        c.receive_ready(answers, seconds(10));
        uint64_t finished = 0, good = 0;
        for (auto& a : answers) {
          if (a.request_id == 0 && a.rejected) {  // local: timeout or connection lost
            why = a.rejected->to_string();
            ok = false;
            break;
          }
          if (a.rejected) {
            ++finished;
            if (rejections++ == 0)
              first_rejection = a.rejected->to_string();
          } else if (a.end_of_stream) {
            ++finished;
            ++good;
          }
        }
        inflight -= static_cast<int>(finished);
        if (!ok)
          break;
        // Only answered queries count; a refusal frees its slot for a replacement too.
        bool more = finished > 0 && clock.answered(good);
        for (uint64_t i = 0; more && i < finished; ++i) {
          if (auto refused = c.send_stream_request("query", payload, id)) {
            why = refused->to_string();
            ok = false;
            break;
          }
          ++inflight;
        }
      }
      f.per_sec = clock.per_sec();
    }
    if (ok && scan != nullptr) {
      std::string scan_why;
      *scan = run_scan(c, binary, server, port, scan_why);
      if (!*scan)
        std::printf("Levee scan rate: skipped (%s)\n", scan_why.c_str());
    }
  }
  c.close();
  stop(satellite);
  stop(server);
  if (!ok)
    return skip(why);
  if (rejections > 0)
    std::printf("Levee path: %llu queries refused with 64 in flight (first: %s)\n",
                static_cast<unsigned long long>(rejections), first_rejection.c_str());
  return f;
}

// -- main --------------------------------------------------------------------------------

/// Issue 13's two ratios, each round's baseline measured right before its Levee run: on a
/// shared host one run's figures move by half between minutes, the raw relay's as much as
/// Levee's, so one pair of runs says little and the median of many interleaved pairs more.
int interleaved_rounds(const std::string& binary, int rounds) {
  std::vector<double> polling, sleeping;
  std::printf("round  polling relay p50  Levee p50   ratio  |  raw relay p99  Levee (busy_poll_us = 0) p99   ratio\n");
  for (int r = 1; r <= rounds; ++r) {
    auto relay = run_raw(levee_poll_window);
    auto lev = run_levee(binary, nullptr, false);
    auto raw = run_raw(microseconds{0});
    auto lev_sleeping = run_levee(binary, nullptr, true);
    if (!relay || !lev || !raw || !lev_sleeping) {
      std::printf("round %d: a path did not run (above); stopping\n", r);
      return 1;
    }
    polling.push_back(lev->p50_us / relay->p50_us);
    sleeping.push_back(lev_sleeping->p99_us / raw->p99_us);
    std::printf("%5d  %14.1f us  %6.1f us  %5.2fx  |  %10.1f us  %24.1f us   %5.2fx\n", r,
                relay->p50_us, lev->p50_us, polling.back(), raw->p99_us, lev_sleeping->p99_us,
                sleeping.back());
    std::fflush(stdout);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  std::printf("\nMedians over %d rounds:\n"
              "  Levee p50 / polling raw relay p50        %6.2fx   (target <= 1.5; rounds from "
              "%.2fx to %.2fx)\n"
              "  Levee (busy_poll_us = 0) p99 / raw p99   %6.2fx   (target <= 3; rounds from "
              "%.2fx to %.2fx)\n",
              rounds, median(polling), *std::min_element(polling.begin(), polling.end()),
              *std::max_element(polling.begin(), polling.end()), median(sleeping),
              *std::min_element(sleeping.begin(), sleeping.end()),
              *std::max_element(sleeping.begin(), sleeping.end()));
  return 0;
}

void print(const char* name, const std::optional<figures>& f) {
  if (!f) {
    std::printf("  %-30s %s\n", name, "(skipped)");
    return;
  }
  std::printf("  %-30s p50 %7.1f us   p99 %7.1f us   %9.0f req/s (64 in flight)\n", name,
              f->p50_us, f->p99_us, f->per_sec);
}

} // namespace

int main(int argc, char** argv) {
  std::string levee_binary = default_levee_binary();
  int cpu = -1;
  // One path only, to profile or trace it: levee, levee-sleeping, raw, raw-polling; no ratios.
  std::string only;
  // Issue 13's ratios only, over this many interleaved rounds (0: the full run).
  int rounds = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--levee" && i + 1 < argc) {
      levee_binary = argv[++i];
    } else if (a.rfind("--levee=", 0) == 0) {
      levee_binary = a.substr(8);
    } else if (a == "--cpu" && i + 1 < argc && std::isdigit(static_cast<unsigned char>(argv[i + 1][0]))) {
      cpu = std::atoi(argv[++i]);
    } else if (a == "--only" && i + 1 < argc
               && std::string{" levee levee-sleeping raw raw-polling "}.find(
                    " " + std::string{argv[i + 1]} + " ") != std::string::npos) {
      only = argv[++i];
    } else if (a == "--requests" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      sequential_requests = std::atoi(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: query_bench [--levee PATH] [--cpu N] [--only levee|levee-sleeping|raw|raw-polling] [--requests N] [--rounds N]   "
                   "(default: %s, all CPUs, every path; --rounds: issue 13's two ratios over N "
                   "interleaved rounds, and their medians)\n",
                   levee_binary.c_str());
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  // Pinning is inherited by every process the bench starts (relay, backend, nats-server,
  // nodes).
  if (!guard_children("query_bench", watchdog_seconds))
    return 1;
  if (cpu >= 0 && !pin_to_cpu(cpu))
    return 2;

  std::printf("query round trip client -> server -> satellite -> client, %zu-byte request, "
              "%zu-byte answer, 127.0.0.1%s\n"
              "  raw TCP relay (floor): client -> relay process (epoll) -> backend that dialed "
              "out to it; u32-framed, request ids mapped; both sleep in epoll_wait/recv\n"
              "  raw relay, polls:      the same; relay and backend look for the next frame for "
              "Levee's default node.busy_poll_us before they sleep (context)\n"
              "  NATS relay:            client -> nats-server -> proxy subscriber -> "
              "nats-server -> backend subscriber, and back\n"
              "  Levee:                 levee::client -> `levee node` server (proxyer) -> "
              "`levee node` satellite, query \"%s\"; default node.busy_poll_us, "
              "then 0 (context)\n"
              "  p50/p99: %d sequential after %d warm-up; throughput: 64 in flight for %lld ms\n\n",
              request_bytes, answer_bytes,
              cpu >= 0 ? (", every process on CPU " + std::to_string(cpu)).c_str() : "",
              levee_query_text, sequential_requests, warmup_requests,
              static_cast<long long>(throughput_time.count()));
  std::fflush(stdout);
  if (!only.empty()) {
    std::optional<figures> f;
    if (only == "raw" || only == "raw-polling")
      f = run_raw(only == "raw" ? microseconds{0} : levee_poll_window);
    else
      f = run_levee(levee_binary, nullptr, only == "levee-sleeping");
    print(only.c_str(), f);
    return f ? 0 : 1;
  }
  if (rounds > 0)
    return interleaved_rounds(levee_binary, rounds);
  auto raw = run_raw(microseconds{0});
  auto raw_polling = run_raw(levee_poll_window);
  auto nats = run_nats();
  std::optional<scan_figures> scan;
  auto lev = run_levee(levee_binary, &scan, false);
  auto lev_sleeping = run_levee(levee_binary, nullptr, true);
  std::printf("\n");
  auto window_us = static_cast<unsigned long long>(levee_poll_window.count());
  auto polling_name = "raw relay, polls " + std::to_string(window_us) + " us";
  print("raw TCP relay (floor)", raw);
  print(polling_name.c_str(), raw_polling);
  print("NATS relay", nats);
  print("Levee", lev);
  print("Levee, busy_poll_us = 0", lev_sleeping);
  if (scan)
    std::printf("  %-30s %.2f M events/s, %.0f MB/s of store   (query '%s': %llu events, "
                "%.1f MB stored, fastest of 3 %.0f ms; stored in %.1f s)\n",
                "Levee satellite scan", static_cast<double>(scan->events) / 1e6 / scan->seconds,
                static_cast<double>(scan->store_bytes) / 1e6 / scan->seconds, scan_query_text,
                static_cast<unsigned long long>(scan->events),
                static_cast<double>(scan->store_bytes) / 1e6, scan->seconds * 1e3,
                scan->load_seconds);
  else
    std::printf("  %-30s (skipped)\n", "Levee satellite scan");
  std::printf("\nRatios (same run):\n");
  auto ratio = [](const char* what, bool have, double x, const char* target) {
    if (have)
      std::printf("  %-40s %6.2fx   (target %s)\n", what, x, target);
    else
      std::printf("  %-40s      -    (target %s)\n", what, target);
  };
  ratio("Levee p50 / raw TCP relay p50", lev && raw, lev && raw ? lev->p50_us / raw->p50_us : 0,
        "<= 1.3");
  ratio("Levee throughput / NATS relay (x64)", lev && nats,
        lev && nats ? lev->per_sec / nats->per_sec : 0, ">= 2");
  // Issue 13: like against like. A polling Levee against a relay that polls as long; a
  // Levee that sleeps at once against the relay that does, at the tail too.
  ratio("Levee p50 / polling raw relay p50", lev && raw_polling,
        lev && raw_polling ? lev->p50_us / raw_polling->p50_us : 0, "<= 1.5");
  ratio("Levee p99 / polling raw relay p99", lev && raw_polling,
        lev && raw_polling ? lev->p99_us / raw_polling->p99_us : 0, "-, for context");
  ratio("Levee (busy_poll_us = 0) p50 / raw p50", lev_sleeping && raw,
        lev_sleeping && raw ? lev_sleeping->p50_us / raw->p50_us : 0, "-, for context");
  ratio("Levee (busy_poll_us = 0) p99 / raw p99", lev_sleeping && raw,
        lev_sleeping && raw ? lev_sleeping->p99_us / raw->p99_us : 0, "<= 3");
  ratio("NATS relay p50 / raw TCP relay p50", nats && raw,
        nats && raw ? nats->p50_us / raw->p50_us : 0, "-, for context");
  ratio("raw TCP relay / NATS relay throughput", nats && raw,
        nats && raw ? raw->per_sec / nats->per_sec : 0, "-, for context");
  return raw ? 0 : 1;
}
