#include "net/reject_frame.hpp"

namespace levee::net {

wire::Reject to_wire(const rejection& r, bool closing) {
  wire::Reject out;
  out.set_code(static_cast<uint32_t>(r.code));
  out.set_limit(r.limit);
  out.set_observed(r.observed);
  out.set_max(r.max);
  out.set_retry_after_ms(r.retry_after_ms);
  out.set_detail(r.detail);
  out.set_leader_hint(r.leader_hint);
  out.set_closing(closing);
  return out;
}

rejection from_wire(const wire::Reject& r) {
  rejection out;
  auto c = code_from_number(r.code());
  out.code = c ? *c : code::bad_request;
  out.limit = r.limit();
  out.observed = r.observed();
  out.max = r.max();
  out.retry_after_ms = r.retry_after_ms();
  out.leader_hint = r.leader_hint();
  out.detail = c ? r.detail() : "unknown code " + std::to_string(r.code()) + ": " + r.detail();
  return out;
}

} // namespace levee::net
