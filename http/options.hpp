#pragma once
// [http]: the node's HTTP listener for /metrics, /healthz and /readyz (README.md). Off
// unless `listen` is set; every other key is a bound whose refusal the server counts.

#include <cstdint>
#include <string>
#include <vector>

#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/status.hpp"

namespace levee::http {

struct http_options {
  /// http.listen: host:port (port 0: any free port); empty or "none": no listener.
  std::string listen;
  /// http.max_connections: connections held at once; one more is answered 503.
  uint64_t max_connections = defaults::http_max_connections;
  /// http.max_request_bytes: one request's request line, headers and body together.
  uint64_t max_request_bytes = defaults::http_max_request_bytes;
  /// http.request_timeout_ms: to receive one whole request (from its first byte, or from
  /// the accept for a connection's first request) and to send its answer.
  uint64_t request_timeout_ms = defaults::http_request_timeout_ms;

  bool enabled() const noexcept { return !listen.empty(); }
};

/// Reads [http]: an unknown key, a bad number or a bad address is a bad_request naming
/// the key and what to write.
result<http_options> http_from_config(const flat_config& cfg);

/// Every [http] key (`levee config-keys`).
std::vector<std::string> config_keys();

} // namespace levee::http
