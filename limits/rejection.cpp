#include "limits/rejection.hpp"

#include "limits/printable.hpp"

namespace levee {

std::string rejection::to_string() const {
  std::string out;
  out.reserve(96 + limit.size() + detail.size());
  out += levee::to_string(code);
  out += " (";
  out += std::to_string(static_cast<unsigned>(code));
  out += "): ";
  auto head = out.size();
  out += printable(limit);  // both may quote what a peer sent: shown, never obeyed
  if (observed != 0 || max != 0) {  // refusals that are not about a quantity have neither
    out += out.size() == head ? "observed " : " observed ";
    out += std::to_string(observed);
    out += " > max ";
    out += std::to_string(max);
  }
  // An empty limit (the request itself was refused) with no quantity leaves nothing to
  // separate the retry advice from.
  if (out.size() != head)
    out += ", ";
  if (retry_after_ms > 0) {
    out += "retry after ";
    out += std::to_string(retry_after_ms);
    out += " ms";
  } else {
    out += "do not retry";
  }
  if (!detail.empty()) {
    out += ": ";
    out += printable(detail);
  }
  if (!leader_hint.empty()) {
    out += " (leader at ";
    out += printable(leader_hint);
    out += ")";
  }
  return out;
}

bool operator==(const rejection& a, const rejection& b) {
  return a.code == b.code && a.limit == b.limit && a.observed == b.observed
         && a.max == b.max && a.retry_after_ms == b.retry_after_ms && a.detail == b.detail
         && a.leader_hint == b.leader_hint;
}

} // namespace levee
