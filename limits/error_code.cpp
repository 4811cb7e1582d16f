#include "limits/error_code.hpp"

#include <array>

namespace levee {

namespace {

constexpr std::array<std::string_view, max_code_number + 1> names = {
  "unknown",               // 0 is "no error" in CAF and is never a Levee code
  "mailbox_full",          "message_too_large",  "rate_limited",
  "too_many_inflight",     "memory_budget_exhausted", "slow_consumer",
  "too_many_connections",  "deadline_exceeded",  "cancelled",
  "not_leader",            "not_found",          "unavailable",
  "unauthenticated",       "permission_denied",  "bad_request",
  "insufficient_replicas", "shutting_down",      "stream_full",
  "storage_error",         "unsupported_version", "precondition_failed",
};

} // namespace

std::string_view to_string(code c) noexcept {
  auto n = static_cast<size_t>(c);
  return n < names.size() ? names[n] : names[0];
}

std::optional<code> code_from_string(std::string_view name) noexcept {
  for (size_t n = 1; n < names.size(); ++n)
    if (names[n] == name)
      return static_cast<code>(n);
  return std::nullopt;
}

std::optional<code> code_from_number(uint32_t number) noexcept {
  if (number == 0 || number > max_code_number)
    return std::nullopt;
  return static_cast<code>(number);
}

} // namespace levee
