#pragma once
// A `rejection` is the answer to a limit hit: which code, which limit, what was seen,
// what is allowed, and when a retry can succeed. Every gate in Levee produces these.

#include <cstdint>
#include <string>

#include "limits/error_code.hpp"

namespace levee {

struct rejection {
  levee::code code = code::bad_request;
  /// The limit's name as it appears in config, e.g. `service.mailbox_capacity`.
  std::string limit;
  /// What was seen and what is allowed, in the limit's unit (bytes, messages, msgs/s ...).
  uint64_t observed = 0;
  uint64_t max = 0;
  /// When a retry can succeed, in milliseconds; 0 means "do not retry this message".
  uint64_t retry_after_ms = 0;
  /// One human sentence.
  std::string detail;

  /// One readable line, e.g.
  /// `mailbox_full (1): service.mailbox_capacity observed 1025 > max 1024, retry after 10 ms: ...`
  std::string to_string() const;
};

bool operator==(const rejection& a, const rejection& b);

} // namespace levee
