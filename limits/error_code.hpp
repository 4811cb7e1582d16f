#pragma once
// The stable, numbered error codes of Levee (ARCHITECTURE.md "Refusals"). Numbers never change;
// new codes are appended. Plain C++: the CAF integration lives in actors/caf_error.hpp.

#include <cstdint>
#include <optional>
#include <string_view>

namespace levee {

enum class code : uint8_t {
  /// An actor's mailbox bound (messages or bytes) is reached. Retry later.
  mailbox_full = 1,
  /// A message or frame exceeds its size cap. Do not retry the same message.
  message_too_large = 2,
  /// A token bucket (msgs/s or bytes/s) is empty; retry_after_ms says when one can pass.
  rate_limited = 3,
  /// The per-requester bound on requests in flight is reached.
  too_many_inflight = 4,
  /// The node-wide budget of queued bytes is reached.
  memory_budget_exhausted = 5,
  /// A peer does not read fast enough; its write buffer hit its bound.
  slow_consumer = 6,
  /// The node or per-source connection bound is reached.
  too_many_connections = 7,
  /// A request's deadline passed.
  deadline_exceeded = 8,
  /// The requester cancelled.
  cancelled = 9,
  /// Sent to a replica that is not the leader; carries the leader hint.
  not_leader = 10,
  /// Unknown stream, satellite, subject or query.
  not_found = 11,
  /// Target satellite or broker is disconnected or unhealthy.
  unavailable = 12,
  /// Missing or wrong credentials.
  unauthenticated = 13,
  /// Authenticated but not allowed.
  permission_denied = 14,
  /// Malformed frame, protobuf, query text or config value.
  bad_request = 15,
  /// The ISR is below min_insync_replicas.
  insufficient_replicas = 16,
  /// The node is draining.
  shutting_down = 17,
  /// A stream's retention limit is reached and its policy is `reject`.
  stream_full = 18,
  /// Disk full, I/O error or detected corruption.
  storage_error = 19,
  /// Protocol or format version mismatch.
  unsupported_version = 20,
  /// A compare-and-set's expectation did not hold: a publish's expected last offset is
  /// not the partition's last offset (another publisher got there first). Read the
  /// current value and decide again; retrying the same request unchanged fails the same way.
  precondition_failed = 21,
};

/// The highest code number in use; arrays indexed by code have `max_code_number + 1` slots.
constexpr uint8_t max_code_number = 21;

/// The code's name (`mailbox_full`, ARCHITECTURE.md "Refusals"), or "unknown" for a number not in use.
std::string_view to_string(code c) noexcept;

/// Parses a name (`rate_limited`) back into a code.
std::optional<code> code_from_string(std::string_view name) noexcept;

/// Converts a wire or CAF number into a code; nullopt when the number is not in use.
std::optional<code> code_from_number(uint32_t number) noexcept;

} // namespace levee
