#pragma once
// The node's HTTP listener (README.md): GET /metrics, /healthz and /readyz on a thread and
// an epoll loop of its own, so a scrape never waits behind the node's traffic and the
// node's actors never wait behind a scrape. Every bound refuses with a typed, counted
// answer (refusal.hpp): 503 over http.max_connections, 414/431/413 past
// http.max_request_bytes, 408 past http.request_timeout_ms, 400, 404, 405.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "http/exposition.hpp"
#include "http/options.hpp"
#include "http/refusal.hpp"
#include "limits/status.hpp"

namespace levee::http {

/// Whether the node takes work (/readyz): ready, or why not ("starting", "stopping",
/// "satellite a: not registered with 127.0.0.1:7400 yet").
struct readiness {
  bool ready = false;
  std::string reason;
};

/// What the node answers. Both run on the HTTP thread, one request at a time, and must
/// only read counters (atomics, snapshots under short locks), never wait on an actor.
struct handlers {
  /// The node's families in the text format (the HTTP server appends its own and the
  /// process's).
  std::function<void(exposition&)> metrics;
  std::function<readiness()> ready;
};

/// The paths requests are counted by (levee_http_requests_total{path}); any other path is
/// a 404 refusal, so a scanner cannot grow the label set.
constexpr const char* counted_paths[] = {"/metrics", "/healthz", "/readyz"};
constexpr size_t counted_path_count = 3;

/// Written by the HTTP thread, read by any (relaxed: figures, not synchronization).
struct http_stats {
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_accepted{0};  // every accepted socket, refused ones too
  std::atomic<uint64_t> idle_closed{0};     // keep-alive connections closed after their timeout
  std::atomic<uint64_t> write_stalls{0};    // answers not taken within request_timeout_ms
  std::array<std::atomic<uint64_t>, counted_path_count> requests{};  // by counted_paths
  std::atomic<uint64_t> ok{0};              // 200 answers
  std::atomic<uint64_t> not_ready{0};       // 503 answers of /readyz (not refusals)
  std::array<std::atomic<uint64_t>, refusal_status_count> refusals{};  // by refusal_statuses
};

class server {
public:
  /// Binds opts.listen and starts the thread. Errors: the address (bad_request), the bind
  /// (unavailable, naming the address and the reason).
  static result<std::unique_ptr<server>> start(const http_options& opts, handlers h);

  /// Stops the thread and closes every connection (as stop()).
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Closes the listener and every connection and joins the thread. Idempotent.
  void stop();

  uint16_t port() const noexcept { return port_; }
  const http_stats& stats() const noexcept { return *stats_; }

  struct impl;

private:
  server() = default;
  std::unique_ptr<impl> impl_;
  std::shared_ptr<http_stats> stats_;
  std::thread thread_;
  uint16_t port_ = 0;
};

/// The HTTP server's own families (levee_http_*), from its stats.
void write_http_metrics(const http_stats& s, const http_options& opts, exposition& out);

} // namespace levee::http
