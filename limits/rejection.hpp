#pragma once
// A `rejection` is the answer to a limit hit: which code, which limit, what was seen,
// what is allowed, and when a retry can succeed. Every gate in Levee produces these.
//
// Built with named fields, so a call site says what each number is:
//   rejection::of(code::too_many_inflight).limit("server.max_queries")
//       .observed(running + 1).max(cap).retry_after_ms(100).detail("...")
// There is no positional constructor: six fields in a row is how an observed value ends
// up in `max`.

#include <cstdint>
#include <string>

#include "limits/error_code.hpp"

namespace levee {

class rejection_builder;

struct rejection {
  rejection() noexcept {}  // user-provided: no positional aggregate initialization


  levee::code code = code::bad_request;
  /// The config key of the limit that refused, e.g. `service.mailbox_capacity`; empty when
  /// no limit refused (the request itself is wrong: malformed, unknown target, ...).
  std::string limit;
  /// What was seen and what is allowed, in the limit's unit (bytes, messages, msgs/s ...).
  uint64_t observed = 0;
  uint64_t max = 0;
  /// When a retry can succeed, in milliseconds; 0 means "do not retry this message".
  uint64_t retry_after_ms = 0;
  /// One human sentence.
  std::string detail;
  /// With not_leader: the leader's client address (host:port) when it is known, where a
  /// client retries (net/levee.proto Reject.leader_hint); empty otherwise.
  std::string leader_hint;

  /// One readable line, e.g.
  /// `mailbox_full (1): service.mailbox_capacity observed 1025 > max 1024, retry after 10 ms: ...`
  /// or, with no limit, `bad_request (15): do not retry: the first frame must be a Hello`.
  std::string to_string() const;

  static rejection_builder of(levee::code c);
};

bool operator==(const rejection& a, const rejection& b);

/// Named setters for a rejection; converts to one where a `rejection` is wanted.
class rejection_builder {
public:
  explicit rejection_builder(levee::code c) { r_.code = c; }

  rejection_builder& limit(std::string key) {
    r_.limit = std::move(key);
    return *this;
  }
  rejection_builder& observed(uint64_t v) {
    r_.observed = v;
    return *this;
  }
  rejection_builder& max(uint64_t v) {
    r_.max = v;
    return *this;
  }
  rejection_builder& retry_after_ms(uint64_t v) {
    r_.retry_after_ms = v;
    return *this;
  }
  rejection_builder& detail(std::string text) {
    r_.detail = std::move(text);
    return *this;
  }
  rejection_builder& leader_hint(std::string address) {
    r_.leader_hint = std::move(address);
    return *this;
  }

  operator rejection() const& { return r_; }  // NOLINT: implicit by design
  operator rejection() && { return std::move(r_); }  // NOLINT: implicit by design
  rejection build() && { return std::move(r_); }

private:
  rejection r_;
};

inline rejection_builder rejection::of(levee::code c) {
  return rejection_builder{c};
}

} // namespace levee
