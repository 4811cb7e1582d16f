#pragma once
// Requests that wait for a versioned answer to move on: `satellites` (the registry's list)
// and `stats` (the router's query counters). A request names the version it has seen and
// how long it may wait; it is answered when the version moves or the wait is over, with
// the answer rendered once for everyone answered together. Bounded overall and per
// client (the connection that asked); the owner arms one timer (flush_due()) to answer
// what is due, coalescing a burst of changes (heartbeats, queries) into one answer.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/response_promise.hpp>

#include "limits/rejection.hpp"

namespace levee::server {

class watcher_set {
public:
  struct bounds {
    uint64_t max_total;       // server.max_list_watchers
    uint64_t max_per_client;  // server.max_list_watchers_per_client
    uint64_t max_wait_ms;     // server.max_list_wait_ms
  };

  explicit watcher_set(bounds b) : bounds_(b) {}

  /// Why another request from `client` may not wait now (a bound is full), if it may not.
  /// Ask before making the request's response promise: a request whose promise is made is
  /// answered only through it.
  std::optional<rejection> refusal(uint64_t client) const;

  /// Holds `answer` until the version moves past `after_version` or `wait_ms` (at most
  /// max_wait_ms) passes. Call only when refusal(client) is empty.
  void park(caf::response_promise answer, uint64_t client, uint64_t after_version,
            uint32_t wait_ms, int64_t now_ns);

  /// Answers the held requests whose version moved or whose wait is over; `render` is
  /// called at most once. Returns how many were answered.
  size_t answer_due(uint64_t version, int64_t now_ns, const std::function<std::string()>& render);

  /// Answers every held request (the owner stops).
  void answer_all(const std::function<std::string()>& render);

  /// The earliest time a held request's wait ends; nullopt when none is held.
  std::optional<int64_t> earliest_due() const noexcept;

  bool empty() const noexcept { return held_.empty(); }
  size_t size() const noexcept { return held_.size(); }

private:
  struct held {
    caf::response_promise answer;
    uint64_t client;
    uint64_t after_version;
    int64_t due_ns;
  };
  void release(uint64_t client);

  bounds bounds_;
  std::vector<held> held_;
  std::unordered_map<uint64_t, uint64_t> per_client_;
};

} // namespace levee::server
