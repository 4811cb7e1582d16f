#pragma once
// The limits of one listener, read from the [net] section (defaults in
// limits/defaults.hpp). These are the limits of the connection gate (ARCHITECTURE.md "The three gates", gate 1),
// advertised to every client in the Hello.

#include <cstdint>
#include <string>
#include <vector>

#include "limits/config_file.hpp"
#include "limits/status.hpp"
#include "net/frame.hpp"

namespace levee::net {

struct listener_limits {
  uint64_t max_frame_bytes;            // bytes
  uint64_t max_decompressed_bytes;     // bytes
  uint64_t compress_above_bytes;       // bytes
  uint64_t max_msgs_per_sec;           // frames/s, 0 = unlimited
  uint64_t burst_msgs;                 // frames, 0 = one second's worth
  uint64_t max_bytes_per_sec;          // bytes/s, 0 = unlimited
  uint64_t burst_bytes;                // bytes, 0 = one second's worth
  uint64_t max_inflight_requests;      // requests per connection
  uint64_t max_write_buffer_bytes;     // bytes
  uint64_t max_connections;            // connections per node, every peer together
  uint64_t reserved_connections;       // of those, kept for peers that are not satellites
  uint64_t handshake_timeout_ms;       // ms
  uint64_t idle_timeout_ms;            // ms
  uint64_t read_timeout_ms;            // ms
  uint64_t permit_ceiling_bytes;       // bytes, 0 = no permits
  uint64_t permit_ttl_ms;              // ms
  uint64_t request_deadline_ms;        // ms
  uint64_t write_stall_timeout_ms;     // ms

  /// The values of defaults.hpp.
  static listener_limits defaults();

  /// What the frame codec enforces on received frames.
  codec_limits codec() const;
};

struct listener_config {
  listener_limits limits = listener_limits::defaults();
  /// The credential clients must present in their Hello; empty = none required.
  std::string token;
  /// This node's id, sent in the server's Hello.
  std::string node_id = "levee";
};

/// Reads [net] from `cfg`; unknown keys and bad values are errors naming the key.
result<listener_config> listener_from_config(const flat_config& cfg);

/// Every key listener_from_config accepts, `net.max_frame_bytes` ... `net.token`.
std::vector<std::string> config_keys();

/// Checks ranges and the rules between values.
status validate(const listener_limits& l);

} // namespace levee::net
