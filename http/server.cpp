// The HTTP listener's loop (server.hpp): one thread, one epoll set, connections in a map
// bounded by http.max_connections. Level-triggered: what a turn leaves unread is read next
// turn. Deadlines are checked by a scan each turn: at most max_connections (16 by default,
// 1024 at most) connections, so the scan costs less than the system call.

#include "http/server.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <unordered_map>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/host_port.hpp"
#include "http/request_parser.hpp"

namespace levee::http {

namespace {

using clock_type = std::chrono::steady_clock;

/// How long a connection the server is done with is read (and its bytes dropped) after
/// the answer, before it is closed: closing a socket with unread bytes sends a reset,
/// which can destroy the answer before the client reads it.
constexpr auto linger_for = std::chrono::milliseconds{500};

struct connection {
  int fd = -1;
  std::string in;           // unanswered request bytes, at most max_request_bytes
  std::string out;          // answer bytes not yet written
  size_t out_at = 0;
  bool first_request = true;
  bool request_started = false;  // bytes of the current request have arrived
  bool close_after_write = false;
  bool lingering = false;   // answered for the last time: reading only to drop bytes
  bool counted = true;      // holds one of max_connections (not a refused extra)
  clock_type::time_point deadline;
};

std::string head(int status, const std::string& content_type, size_t length, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += "Content-Type: " + content_type + "\r\n";
  out += "Content-Length: " + std::to_string(length) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  return out;
}

std::string refusal_answer(const refusal& r, bool keep_alive, bool head_only) {
  std::string body = std::string{reason_phrase(r.status)} + ": " + r.detail + "\n";
  auto out = head(r.status, "text/plain; charset=utf-8", body.size(), keep_alive);
  out += "Levee-Rejection: " + std::string{to_string(r.code)} + "\r\n";
  if (r.limit != nullptr) {
    out += "Levee-Limit: " + std::string{r.limit} + "\r\n";
    out += "Levee-Observed: " + std::to_string(r.observed) + "\r\n";
    out += "Levee-Max: " + std::to_string(r.max) + "\r\n";
  }
  if (r.retry_after_s > 0)
    out += "Retry-After: " + std::to_string(r.retry_after_s) + "\r\n";
  if (r.status == 405)
    out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!head_only)
    out += body;
  return out;
}

} // namespace

struct server::impl {
  http_options opts;
  handlers h;
  std::shared_ptr<http_stats> stats;
  int listen_fd = -1;
  int epoll_fd = -1;
  int stop_fd = -1;
  std::unordered_map<int, connection> conns;
  size_t counted_open = 0;   // connections holding a slot of max_connections
  size_t extra_open = 0;     // refused extras lingering (at most max_connections)

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds{opts.request_timeout_ms};
  }

  void watch(connection& c, bool for_write) {
    epoll_event ev{};
    ev.events = for_write ? EPOLLOUT : EPOLLIN;
    ev.data.fd = c.fd;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void close_connection(int fd) {
    auto it = conns.find(fd);
    if (it == conns.end())
      return;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    if (it->second.counted)
      --counted_open;
    else
      --extra_open;
    conns.erase(it);
    stats->connections_open.store(counted_open, std::memory_order_relaxed);
  }

  /// Done with `c`: no more requests; its bytes are dropped until EOF or linger_for.
  void start_lingering(connection& c) {
    ::shutdown(c.fd, SHUT_WR);
    c.lingering = true;
    c.in.clear();
    c.deadline = clock_type::now() + linger_for;
    watch(c, false);
  }

  void count_refusal(int status) {
    auto i = refusal_index(status);
    if (i < refusal_status_count)
      stats->refusals[i].fetch_add(1, std::memory_order_relaxed);
  }

  /// Queues `bytes` and writes what the socket takes now. False when the connection was
  /// closed (a write error).
  bool send(connection& c, std::string bytes) {
    c.out = std::move(bytes);
    c.out_at = 0;
    c.deadline = clock_type::now() + timeout();
    return flush(c);
  }

  bool flush(connection& c) {
    while (c.out_at < c.out.size()) {
      auto n = ::send(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at,
                      MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        watch(c, true);
        return true;
      }
      if (n <= 0) {
        close_connection(c.fd);
        return false;
      }
      c.out_at += static_cast<size_t>(n);
    }
    c.out.clear();
    c.out_at = 0;
    if (c.close_after_write) {
      start_lingering(c);
      return true;
    }
    // Ready for the next request: its time counts from now, or from its first byte.
    c.first_request = false;
    c.request_started = !c.in.empty();
    c.deadline = clock_type::now() + timeout();
    watch(c, false);
    return true;
  }

  void refuse(connection& c, const refusal& r, bool keep_alive = false, bool head_only = false) {
    count_refusal(r.status);
    c.close_after_write = !keep_alive;
    send(c, refusal_answer(r, keep_alive, head_only));
  }

  /// Answers the requests in c.in, one at a time, while nothing is waiting to be written.
  void process(int fd) {
    for (;;) {
      auto it = conns.find(fd);
      if (it == conns.end())
        return;
      auto& c = it->second;
      if (c.lingering || !c.out.empty() || c.close_after_write)
        return;
      auto parsed = parse_request(c.in, opts.max_request_bytes);
      if (parsed.state == parse_state::incomplete)
        return;
      if (parsed.state == parse_state::refused) {
        refuse(c, parsed.why);
        return;
      }
      auto& req = parsed.req;
      c.in.erase(0, req.bytes);
      bool head_only = req.method == "HEAD";
      size_t path = counted_path_count;
      for (size_t i = 0; i < counted_path_count; ++i)
        if (req.path == counted_paths[i])
          path = i;
      if (path == counted_path_count) {
        refusal r;
        r.status = 404;
        r.code = code::not_found;
        r.detail = "this node serves GET /metrics (Prometheus), /healthz (live) and /readyz "
                   "(ready to take work)";
        refuse(c, r, req.keep_alive, head_only);
        if (!req.keep_alive)
          return;
        continue;
      }
      if (req.method != "GET" && !head_only) {
        refusal r;
        r.status = 405;
        r.code = code::bad_request;
        r.detail = std::string{counted_paths[path]} + " answers GET and HEAD only";
        refuse(c, r, req.keep_alive, head_only);
        if (!req.keep_alive)
          return;
        continue;
      }
      stats->requests[path].fetch_add(1, std::memory_order_relaxed);
      int status = 200;
      std::string body;
      std::string type = "text/plain; charset=utf-8";
      std::string extra;
      if (path == 0) {
        exposition e;
        if (h.metrics)
          h.metrics(e);
        write_http_metrics(*stats, opts, e);
        write_process_metrics(e);
        body = e.take();
        type = "text/plain; version=0.0.4; charset=utf-8";
      } else if (path == 1) {
        body = "ok\n";
      } else {
        auto r = h.ready ? h.ready() : readiness{true, {}};
        if (r.ready) {
          body = "ready\n";
        } else {
          status = 503;
          body = "not ready: " + r.reason + "\n";
          extra = "Retry-After: 1\r\n";
        }
      }
      if (status == 200)
        stats->ok.fetch_add(1, std::memory_order_relaxed);
      else
        stats->not_ready.fetch_add(1, std::memory_order_relaxed);
      auto out = head(status, type, body.size(), req.keep_alive) + extra + "\r\n";
      if (!head_only)
        out += body;
      c.close_after_write = !req.keep_alive;
      if (!send(c, std::move(out)))
        return;
    }
  }

  void on_readable(int fd) {
    auto it = conns.find(fd);
    if (it == conns.end())
      return;
    auto& c = it->second;
    char buf[16384];
    if (c.lingering) {
      auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        close_connection(fd);
      return;
    }
    auto room = opts.max_request_bytes - std::min<uint64_t>(opts.max_request_bytes, c.in.size());
    if (room == 0) {
      process(fd);  // a full buffer is refused by the parser
      return;
    }
    auto n = ::recv(fd, buf, std::min<uint64_t>(room, sizeof buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    if (n <= 0) {
      close_connection(fd);  // the peer closed (or failed) before a whole request
      return;
    }
    if (!c.request_started) {
      c.request_started = true;
      if (!c.first_request)
        c.deadline = clock_type::now() + timeout();
    }
    c.in.append(buf, static_cast<size_t>(n));
    process(fd);
  }

  void on_writable(int fd) {
    auto it = conns.find(fd);
    if (it == conns.end())
      return;
    if (flush(it->second))
      process(fd);
  }

  void accept_all() {
    for (;;) {
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED)
          continue;
        return;  // EAGAIN, or out of descriptors: the rest wait in the backlog
      }
      stats->connections_accepted.fetch_add(1, std::memory_order_relaxed);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      connection c;
      c.fd = fd;
      c.deadline = clock_type::now() + timeout();
      bool over = counted_open >= opts.max_connections;
      if (over && extra_open >= opts.max_connections) {
        // Refused extras linger too, up to as many again; past that the answer is written
        // and the socket closed at once.
        count_refusal(503);
        auto answer = refusal_answer(over_connections(), false, false);
        (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::close(fd);
        continue;
      }
      c.counted = !over;
      (over ? extra_open : counted_open) += 1;
      stats->connections_open.store(counted_open, std::memory_order_relaxed);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
      auto& stored = conns[fd] = std::move(c);
      if (over) {
        count_refusal(503);
        stored.close_after_write = true;
        send(stored, refusal_answer(over_connections(), false, false));
      }
    }
  }

  refusal over_connections() const {
    refusal r;
    r.status = 503;
    r.code = code::too_many_connections;
    r.limit = "http.max_connections";
    r.observed = counted_open + 1;
    r.max = opts.max_connections;
    r.retry_after_s = 1;
    r.detail = "this node's HTTP listener holds http.max_connections connections already: "
               "retry after a second, close idle keep-alive connections, or raise "
               "http.max_connections";
    return r;
  }

  /// Deadlines: a request not whole in time (408), an idle keep-alive connection (closed
  /// quietly), an answer not taken (closed), a lingering socket (closed).
  int check_deadlines() {
    auto now = clock_type::now();
    auto next = now + std::chrono::hours{1};
    std::vector<int> due;
    for (auto& [fd, c] : conns) {
      if (c.deadline <= now)
        due.push_back(fd);
      else
        next = std::min(next, c.deadline);
    }
    for (int fd : due) {
      auto it = conns.find(fd);
      if (it == conns.end())
        continue;
      auto& c = it->second;
      if (c.lingering) {
        close_connection(fd);
      } else if (!c.out.empty()) {
        // Closed before counted (release): a reader that sees the count sees the close.
        close_connection(fd);
        stats->write_stalls.fetch_add(1, std::memory_order_release);
      } else if (c.request_started || c.first_request) {
        refusal r;
        r.status = 408;
        r.code = code::deadline_exceeded;
        r.limit = "http.request_timeout_ms";
        r.observed = opts.request_timeout_ms;
        r.max = opts.request_timeout_ms;
        r.detail = "the request did not arrive whole within http.request_timeout_ms: send "
                   "it at once (a scraper's whole request is a few hundred bytes)";
        refuse(c, r);
        if (conns.count(fd))
          next = std::min(next, conns[fd].deadline);
      } else {
        close_connection(fd);
        stats->idle_closed.fetch_add(1, std::memory_order_release);
      }
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock_type::now());
    return static_cast<int>(std::clamp<int64_t>(wait.count() + 1, 0, 1000));
  }

  void run() {
    epoll_event events[64];
    int wait_ms = 1000;
    for (;;) {
      int n = ::epoll_wait(epoll_fd, events, 64, wait_ms);
      if (n < 0 && errno != EINTR)
        return;
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == stop_fd)
          return;
        if (fd == listen_fd) {
          accept_all();
          continue;
        }
        if (events[i].events & EPOLLOUT)
          on_writable(fd);
        else if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
          on_readable(fd);
      }
      wait_ms = check_deadlines();
    }
  }

  ~impl() {
    for (auto& [fd, c] : conns)
      ::close(fd);
    for (int fd : {listen_fd, epoll_fd, stop_fd})
      if (fd >= 0)
        ::close(fd);
  }
};

result<std::unique_ptr<server>> server::start(const http_options& opts, handlers h) {
  base::host_port hp;
  std::string bad;
  if (!base::parse_host_port("http.listen", opts.listen, hp, bad, base::port_zero::any_free_port))
    return status::error(code::bad_request, bad);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto port_text = std::to_string(hp.port);
  if (int rc = ::getaddrinfo(hp.host.c_str(), port_text.c_str(), &hints, &found); rc != 0)
    return status::error(code::bad_request, "http.listen = " + opts.listen + ": cannot resolve '"
                                              + hp.host + "': " + ::gai_strerror(rc));
  auto p = std::make_unique<impl>();
  p->opts = opts;
  p->h = std::move(h);
  p->stats = std::make_shared<http_stats>();
  std::string why;
  for (auto* a = found; a != nullptr && p->listen_fd < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      p->listen_fd = fd;
      sockaddr_storage bound{};
      socklen_t len = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      auto port = bound.ss_family == AF_INET6
                    ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&bound)->sin_port;
      hp.port = ntohs(port);
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (p->listen_fd < 0)
    return status::error(code::unavailable, "http.listen = " + opts.listen + ": cannot listen: "
                                              + why + "; choose another port or stop what holds it");
  p->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  p->stop_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->epoll_fd < 0 || p->stop_fd < 0)
    return status::error(code::unavailable, std::string{"http: cannot create its epoll set: "}
                                              + std::strerror(errno));
  for (int fd : {p->listen_fd, p->stop_fd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }
  std::unique_ptr<server> s{new server};
  s->stats_ = p->stats;
  s->port_ = hp.port;
  s->impl_ = std::move(p);
  s->thread_ = std::thread{[raw = s->impl_.get()] {
    ::pthread_setname_np(::pthread_self(), "levee-http");  // for top -H and gdb
    raw->run();
  }};
  return s;
}

void server::stop() {
  if (!impl_)
    return;
  uint64_t one = 1;
  (void)::write(impl_->stop_fd, &one, sizeof one);
  if (thread_.joinable())
    thread_.join();
  impl_.reset();
}

server::~server() {
  stop();
}

void write_http_metrics(const http_stats& s, const http_options& opts, exposition& out) {
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  out.gauge("levee_http_connections_open",
            "HTTP connections open now, of http.max_connections.", get(s.connections_open));
  out.gauge("levee_http_max_connections", "http.max_connections: the bound on HTTP connections.",
            opts.max_connections);
  out.counter("levee_http_connections_accepted_total",
              "HTTP connections accepted, refused ones included.", get(s.connections_accepted));
  out.counter("levee_http_idle_closed_total",
              "Keep-alive HTTP connections closed after http.request_timeout_ms without a request.",
              get(s.idle_closed));
  out.counter("levee_http_write_stalls_total",
              "HTTP connections closed because the client did not take an answer within "
              "http.request_timeout_ms.",
              get(s.write_stalls));
  out.family("levee_http_requests_total", "counter",
             "HTTP requests answered, by path (other paths are 404 refusals).");
  for (size_t i = 0; i < counted_path_count; ++i)
    out.sample("levee_http_requests_total", {{"path", counted_paths[i]}}, get(s.requests[i]));
  out.family("levee_http_responses_total", "counter",
             "HTTP answers by status: 200, 503 from /readyz while not ready, and every refusal.");
  out.sample("levee_http_responses_total", {{"status", "200"}}, get(s.ok));
  for (size_t i = 0; i < refusal_status_count; ++i) {
    auto status = std::to_string(refusal_statuses[i]);
    auto n = get(s.refusals[i]) + (refusal_statuses[i] == 503 ? get(s.not_ready) : 0);
    out.sample("levee_http_responses_total", {{"status", status}}, n);
  }
  out.family("levee_http_refusals_total", "counter",
             "HTTP requests and connections refused, by status, Levee code and the limit that "
             "refused (empty: none did, the request itself was wrong).");
  struct row {
    int status;
    const char* code;
    const char* limit;
  };
  static constexpr row rows[] = {
    {400, "bad_request", ""},
    {404, "not_found", ""},
    {405, "bad_request", ""},
    {408, "deadline_exceeded", "http.request_timeout_ms"},
    {413, "message_too_large", "http.max_request_bytes"},
    {414, "message_too_large", "http.max_request_bytes"},
    {431, "message_too_large", "http.max_request_bytes"},
    {503, "too_many_connections", "http.max_connections"},
  };
  static_assert(sizeof rows / sizeof rows[0] == refusal_status_count);
  for (size_t i = 0; i < refusal_status_count; ++i) {
    auto status = std::to_string(rows[i].status);
    out.sample("levee_http_refusals_total",
               {{"status", status}, {"code", rows[i].code}, {"limit", rows[i].limit}},
               get(s.refusals[i]));
  }
}

} // namespace levee::http
