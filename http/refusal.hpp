#pragma once
// A refused HTTP request (README.md "Refusals"): the status, the Levee code and limit it
// stands for, and a sentence saying what to do next. The answer carries them in
// `Levee-Rejection`, `Levee-Limit` (absent when no limit refused, as a Reject's limit is
// empty), `Levee-Observed`/`Levee-Max` and a plain-text body.

#include <cstdint>
#include <string>

#include "limits/error_code.hpp"

namespace levee::http {

struct refusal {
  int status = 400;
  levee::code code = levee::code::bad_request;
  const char* limit = nullptr;  // the config key that refused, nullptr: none
  uint64_t observed = 0;        // with a limit: what was seen, in the limit's unit
  uint64_t max = 0;             // with a limit: what is allowed
  uint64_t retry_after_s = 0;   // 0: no Retry-After
  std::string detail;           // one sentence: what to do next
};

/// The statuses the server refuses with, in the order the counters list them.
constexpr int refusal_statuses[] = {400, 404, 405, 408, 413, 414, 431, 503};
constexpr size_t refusal_status_count = sizeof refusal_statuses / sizeof refusal_statuses[0];

/// The index of `status` in refusal_statuses (refusal_status_count when not one).
size_t refusal_index(int status) noexcept;

/// "Bad Request", "Not Found", ... for every status the server sends.
const char* reason_phrase(int status) noexcept;

} // namespace levee::http
