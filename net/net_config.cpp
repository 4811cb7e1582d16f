#include "net/net_config.hpp"

#include "limits/config_fields.hpp"
#include "limits/defaults.hpp"
#include "limits/printable.hpp"

namespace levee::net {

namespace {

using L = listener_limits;
namespace d = defaults;

// Frame sizes stay below 2 GiB: the frame header holds 32 bits and protobuf parses int.
constexpr uint64_t max_frame_ceiling = 1 * d::GiB;

const field_spec<L> fields[] = {
  {"max_frame_bytes", &L::max_frame_bytes, 64, max_frame_ceiling, "bytes"},
  {"max_decompressed_bytes", &L::max_decompressed_bytes, 64, max_frame_ceiling, "bytes"},
  {"compress_above_bytes", &L::compress_above_bytes, 0, max_frame_ceiling, "bytes"},
  {"max_msgs_per_sec", &L::max_msgs_per_sec, 0, d::rate_ceiling, "frames/s"},
  {"burst_msgs", &L::burst_msgs, 0, d::rate_ceiling, "frames"},
  {"max_bytes_per_sec", &L::max_bytes_per_sec, 0, d::rate_ceiling, "bytes/s"},
  {"burst_bytes", &L::burst_bytes, 0, d::rate_ceiling, "bytes"},
  {"max_inflight_requests", &L::max_inflight_requests, 1, 1u << 20, "requests"},
  {"max_write_buffer_bytes", &L::max_write_buffer_bytes, 4096, 64 * d::GiB, "bytes"},
  {"max_connections", &L::max_connections, 1, 1u << 20, "connections"},
  {"reserved_connections", &L::reserved_connections, 0, 1u << 20, "connections"},
  {"handshake_timeout_ms", &L::handshake_timeout_ms, 10, 3'600'000, "ms"},
  {"idle_timeout_ms", &L::idle_timeout_ms, 10, 86'400'000, "ms"},
  {"read_timeout_ms", &L::read_timeout_ms, 10, 3'600'000, "ms"},
  {"permit_ceiling_bytes", &L::permit_ceiling_bytes, 0, max_frame_ceiling, "bytes"},
  {"permit_ttl_ms", &L::permit_ttl_ms, 1, 3'600'000, "ms"},
  {"request_deadline_ms", &L::request_deadline_ms, 1, 3'600'000, "ms"},
  {"write_stall_timeout_ms", &L::write_stall_timeout_ms, 10, 3'600'000, "ms"},
};

/// [net] keys that are text, read by listener_from_config itself.
const std::initializer_list<const char*> text_keys = {"token", "node_id"};

} // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  append_keys(out, "net", fields, text_keys);
  return out;
}

listener_limits listener_limits::defaults() {
  return listener_limits{d::net_max_frame_bytes,      d::net_max_decompressed_bytes,
                         d::net_compress_above_bytes, d::net_max_msgs_per_sec,
                         d::net_burst_msgs,           d::net_max_bytes_per_sec,
                         d::net_burst_bytes,          d::net_max_inflight_requests,
                         d::net_max_write_buffer_bytes, d::net_max_connections,
                         d::net_reserved_connections,
                         d::net_handshake_timeout_ms, d::net_idle_timeout_ms,
                         d::net_read_timeout_ms,      d::net_permit_ceiling_bytes,
                         d::net_permit_ttl_ms,        d::net_request_deadline_ms,
                         d::net_write_stall_timeout_ms};
}

codec_limits listener_limits::codec() const {
  return codec_limits{static_cast<uint32_t>(max_frame_bytes),
                      static_cast<uint32_t>(max_decompressed_bytes),
                      static_cast<uint32_t>(compress_above_bytes)};
}

status validate(const listener_limits& l) {
  if (auto st = check_fields(l, "net", fields); !st)
    return st;
  if (l.max_decompressed_bytes < l.max_frame_bytes)
    return status::error(code::bad_request,
                         "net.max_decompressed_bytes = " + std::to_string(l.max_decompressed_bytes)
                           + ": must be at least net.max_frame_bytes ("
                           + std::to_string(l.max_frame_bytes) + ")");
  if (l.reserved_connections >= l.max_connections)
    return status::error(code::bad_request,
                         "net.reserved_connections = " + std::to_string(l.reserved_connections)
                           + ": must be below net.max_connections ("
                           + std::to_string(l.max_connections)
                           + "), or no satellite could connect; raise net.max_connections");
  if (l.permit_ceiling_bytes != 0 && l.permit_ceiling_bytes < l.max_frame_bytes)
    return status::error(code::bad_request,
                         "net.permit_ceiling_bytes = " + std::to_string(l.permit_ceiling_bytes)
                           + ": must be 0 (no permits) or at least net.max_frame_bytes ("
                           + std::to_string(l.max_frame_bytes) + ")");
  if (l.max_bytes_per_sec != 0) {
    auto burst = l.burst_bytes == 0 ? l.max_bytes_per_sec : l.burst_bytes;
    if (burst < l.max_frame_bytes + frame_header_bytes)
      return status::error(code::bad_request,
                           "net.burst_bytes = " + std::to_string(l.burst_bytes)
                             + ": the byte-rate burst (" + std::to_string(burst)
                             + ") must admit one frame of net.max_frame_bytes");
  }
  return {};
}

result<listener_config> listener_from_config(const flat_config& cfg) {
  listener_config out;
  if (auto st = read_fields(out.limits, cfg, "net", fields, text_keys); !st)
    return st;
  if (auto i = cfg.find("net.token"); i != cfg.end())
    out.token = i->second;
  if (auto i = cfg.find("net.node_id"); i != cfg.end()) {
    if (!is_valid_utf8(i->second))  // a peer refuses a Hello with such a node id
      return status::error(code::bad_request,
                           "net.node_id = " + i->second
                             + ": must be UTF-8 text: peers refuse anything else");
    out.node_id = i->second;
  }
  if (auto st = validate(out.limits); !st)
    return st;
  return out;
}

} // namespace levee::net
