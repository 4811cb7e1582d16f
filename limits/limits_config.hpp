#pragma once
// The limits of a node, read from config:
//
//   [limits]                 node-wide: memory_budget_bytes, rejection_log_*
//   [limits.default]         every actor kind inherits these
//   [limits.<kind>]          overrides for one actor kind (e.g. [limits.satellite])
//
// Resolution order for a kind's value: [limits.<kind>], then [limits.default], then
// defaults.hpp. Byte values accept the suffixes KiB, MiB and GiB ("16MiB").

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "limits/config_file.hpp"
#include "limits/status.hpp"

namespace levee {

/// The limits of one actor kind. Units in the member names' comments.
struct actor_limits {
  uint64_t mailbox_capacity;            // messages
  uint64_t mailbox_capacity_bytes;      // bytes
  uint64_t max_message_bytes;           // bytes
  uint64_t rate_msgs_per_sec;           // msgs/s, 0 = unlimited
  uint64_t rate_burst_msgs;             // messages, 0 = one second's worth
  uint64_t rate_bytes_per_sec;          // bytes/s, 0 = unlimited
  uint64_t rate_burst_bytes;            // bytes, 0 = one second's worth
  uint64_t max_inflight_per_requester;  // requests
  uint64_t overload_retry_after_ms;     // ms

  /// The values of defaults.hpp.
  static actor_limits defaults();
};

bool operator==(const actor_limits& a, const actor_limits& b);

struct limits_config {
  actor_limits default_limits = actor_limits::defaults();
  std::map<std::string, actor_limits, std::less<>> kinds;
  uint64_t memory_budget_bytes;          // bytes
  uint64_t rejection_log_lines_per_sec;  // lines/s per actor kind
  uint64_t rejection_log_burst_lines;    // lines

  limits_config();

  /// The limits of `kind`: its own section if it has one, else [limits.default].
  const actor_limits& for_kind(std::string_view kind) const;
};

/// Reads the [limits] and [limits.*] sections of `cfg` (other sections are not looked at).
/// Unknown keys in those sections, values that are not whole numbers, and values that
/// break a rule of `validate` are errors naming the key and the value.
result<limits_config> limits_from_config(const flat_config& cfg);

/// Checks every value against its range and the rules between values. The error names the
/// config key, the value and what would be accepted.
status validate(const limits_config& cfg);

/// Checks one kind's limits; `section` ("limits.default", "limits.service") prefixes keys.
status validate(const actor_limits& limits, const std::string& section);

/// The full config key of a per-kind limit, e.g. ("service", "mailbox_capacity") ->
/// "limits.service.mailbox_capacity"; used as the `limit` of rejections.
std::string limit_key(std::string_view kind, std::string_view field);

/// Parses a whole number with an optional suffix, chosen by the key's name: a key ending in
/// `_ms` or `_us` is a duration and takes us, ms, s, m, h or d ("30s", "7d"; a plain
/// number is in the key's unit, and a byte suffix is an error saying so); any other key
/// takes KiB, MiB or GiB (and a time unit there is an error saying it is no duration).
result<uint64_t> parse_quantity(const std::string& key, const std::string& text);

/// The names of the per-kind keys, in documentation order.
const std::vector<std::string>& actor_limit_keys();

/// Every key limits_from_config accepts: `limits.memory_budget_bytes`, ... and
/// `limits.<kind>.mailbox_capacity`, ..., where `<kind>` stands for any actor kind name
/// (`default` included).
std::vector<std::string> limits_config_keys();

} // namespace levee
