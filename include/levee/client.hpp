#pragma once
// The C++ client of the Levee wire protocol (net/PROTOCOL.md): connect with a timeout and
// reconnect with backoff, Hello with a token, requests to named actors (pipelined or one at
// a time), answers or typed rejections with retry_after_ms, overweight permits.
//
// The client respects what the server advertised in its Hello before it sends: a frame
// above the server's max_frame_bytes or a request beyond its max_inflight_requests is
// refused locally (nothing is sent), and sending is paced to the advertised rates.
//
// Blocking and single-threaded: use one client per thread. Plain POSIX sockets, no actor
// system needed: link the library levee_client, which brings the wire codec (protobuf,
// LZ4) and no CAF; this header includes no CAF header (tests/check_client_links_no_caf.sh
// keeps both so). examples/client_hello.cpp is a whole program.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "limits/rejection.hpp"
#include "limits/status.hpp"

namespace levee::wire {
class BrokerCall;
class Envelope;
} // namespace levee::wire

namespace levee {

struct client_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string token;                      // the server's net.token, if it has one
  std::string node_id = "levee-client";
  /// Says in the Hello that this peer is a satellite (as `levee node` satellites do): the
  /// server counts the connection among its satellites' share of net.max_connections, not
  /// in the reserve kept for operators and clients. For programs that speak for
  /// satellites (a fleet simulator); a client that only queries leaves it false.
  bool satellite = false;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds backoff_initial{20};   // reconnect: first wait, doubled each try
  std::chrono::milliseconds backoff_max{1000};
  uint32_t max_frame_bytes = 16u << 20;            // what this client accepts
  uint32_t max_decompressed_bytes = 64u << 20;
  uint32_t compress_above_bytes = 4096;
  /// The credit window of a streamed request (flow control, net/PROTOCOL.md "Credit"):
  /// the server sends at most this much ahead of what receive() has handed over, and the
  /// client grants more as it hands batches over (half a window at a time). A caller that
  /// stops calling receive() slows its stream, and the work behind it, to a halt.
  uint32_t stream_credit_batches = 16;
  uint64_t stream_credit_bytes = 4u << 20;
};

/// What the server advertised in its Hello.
struct server_limits {
  uint32_t max_frame_bytes = 0;
  uint32_t max_decompressed_bytes = 0;
  uint64_t max_msgs_per_sec = 0;
  uint64_t max_bytes_per_sec = 0;
  uint32_t max_inflight_requests = 0;
  uint32_t permit_ceiling_bytes = 0;
  uint32_t idle_timeout_ms = 0;
  std::string node_id;
};

/// The answer to one request: a payload, or the rejection (from the server, or a local one
/// such as unavailable when the connection is gone).
struct reply {
  uint64_t request_id = 0;
  std::optional<std::string> payload;   // the answer; for streams a batch or the summary
  std::optional<rejection> rejected;
  /// Streamed requests: a batch (more follow), or the end of the stream.
  bool batch = false;
  bool end_of_stream = false;
  uint64_t sequence = 0;                // a batch's position in its stream, from 0
  bool ok() const noexcept { return payload.has_value(); }
};

class client {
public:
  explicit client(client_options opts);
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  /// Connects and exchanges Hellos, once. Errors: unavailable (no connection),
  /// deadline_exceeded (timeout), unauthenticated / unsupported_version (the server's
  /// Reject), bad_request (not a Levee server).
  status connect();

  /// connect(), retried with exponential backoff until it succeeds or `total` has passed.
  status connect_with_backoff(std::chrono::milliseconds total);

  bool connected() const noexcept;
  void close() noexcept;

  /// Sends one request without waiting; its answer comes from receive(). Refuses locally
  /// (nothing sent) what the server would refuse: message_too_large, too_many_inflight.
  /// Paces to the server's advertised rates. Sets `request_id` on success.
  std::optional<rejection> send_request(std::string_view target, std::string payload,
                                        uint64_t& request_id, uint32_t deadline_ms = 0);

  /// Sends several requests to one target in one write (pipelining without a system call
  /// per request). All or nothing: a local refusal sends none. Appends their ids.
  std::optional<rejection> send_requests(std::string_view target,
                                         const std::vector<std::string>& payloads,
                                         std::vector<uint64_t>& request_ids,
                                         uint32_t deadline_ms = 0);

  /// The next answer to any request in flight. Pings are answered in passing. A timeout is
  /// a local deadline_exceeded with request_id 0; a lost connection a local unavailable.
  reply receive(std::chrono::milliseconds timeout);

  /// Waits for one answer like receive(), then appends it and every further answer that
  /// has already arrived (no more waiting) to `out`. Returns how many were appended.
  size_t receive_ready(std::vector<reply>& out, std::chrono::milliseconds timeout);

  /// Sends a streamed request: receive() then returns its batches (reply.batch) in order,
  /// then its end (reply.end_of_stream, payload = summary) or a rejection. The request
  /// grants the options' credit window; receive() grants more as it returns batches.
  std::optional<rejection> send_stream_request(std::string_view target, std::string payload,
                                               uint64_t& request_id, uint32_t deadline_ms = 0);

  /// Sends one of the typed stream requests (net/streams.proto; include/levee/streams.hpp
  /// wraps them): the call's member moves into the frame. A Subscribe is streamed (its
  /// credit, unless it names one, is the options' window); its answers come from
  /// receive() as those of send_stream_request do.
  std::optional<rejection> send_call(wire::BrokerCall& call, uint64_t& request_id);

  /// With `on`, requests are not written one system call each: they wait in a 64 KiB
  /// buffer, written when it fills, when anything else is written, when receive() (or
  /// anything that waits for the server) begins to wait, or by flush_writes(). Turning
  /// it off writes nothing by itself. For pipelined senders (stream_client::publish_async
  /// uses it); off by default.
  void coalesce_writes(bool on);
  /// Writes what coalescing holds now.
  status flush_writes();

  /// Cancels a streamed request in flight: the server stops its work and ends it with a
  /// Reject `cancelled` (batches already on their way may come first).
  status cancel(uint64_t request_id);

  /// One request and its answer. Reconnects (with backoff, within `timeout`) first if the
  /// connection is gone.
  reply request(std::string_view target, std::string payload, std::chrono::milliseconds timeout);

  /// Asks for an overweight permit: the next frame may be up to `frame_bytes`, once.
  std::optional<rejection> request_permit(uint32_t frame_bytes, std::chrono::milliseconds timeout);

  /// Sends a Ping and waits for the Pong; the round-trip time, or the rejection.
  result<std::chrono::microseconds> ping(std::chrono::milliseconds timeout);

  const server_limits& limits() const noexcept;
  uint64_t in_flight() const noexcept;

  /// Writes bytes as they are (tests use it to send malformed frames).
  status send_raw(std::string_view bytes);
  /// Waits until the server closes the connection; returns the Reject that came last, if
  /// any. For tests of refusals that close.
  std::optional<rejection> wait_for_close(std::chrono::milliseconds timeout);

private:
  std::optional<rejection> send_one(wire::Envelope& env, uint64_t& request_id, bool stream);
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace levee
