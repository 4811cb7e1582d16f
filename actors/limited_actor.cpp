#include "actors/limited_actor.hpp"

#include "actors/atoms.hpp"
#include "limits/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <typeinfo>

#include <caf/system_messages.hpp>
#include <caf/type_nr.hpp>

namespace levee::detail {

namespace {

thread_local std::unique_ptr<gate> pending_gate;

} // namespace

void set_pending_gate(std::unique_ptr<gate> g) {
  pending_gate = std::move(g);
}

std::unique_ptr<gate> take_pending_gate() {
  if (!pending_gate) {
    LEVEE_ERROR("actors", "a limited actor was spawned without levee::spawn_limited; "
                          "spawn it with levee::spawn_limited(system, runtime, kind, ...)");
    std::abort();
  }
  return std::move(pending_gate);
}

bool gated_ticket(const caf::mailbox_element& x, const caf::abstract_actor* self,
                  gate_ticket& ticket) noexcept {
  // One pass over the content: the bypass check and the size share their virtual calls
  // (this runs twice per message, at enqueue and when the actor takes it up).
  auto mid = x.mid;
  if (mid.is_response() || mid.is_stream_message())
    return false;
  if (x.sender && x.sender->get() == self)
    return false;
  auto& content = x.content();
  auto n = content.size();
  // Cancels, stops and dones end work the actor already accepted: refusing one would leave
  // that work running (a scan, a query) until its deadline, or its slot taken. Credit lets
  // such work go on: refusing it would stall a stream until its deadline.
  if (n >= 1 && content.type(0).first == caf::type_nr<caf::atom_value>::value) {
    auto a = content.get_as<caf::atom_value>(0);
    if (a == cancel_atom::value || a == stop_atom::value || a == done_atom::value
        || a == credit_atom::value)
      return false;
  }
  if (n == 1) {
    auto rtti = content.type(0);
    switch (rtti.first) {
      case caf::type_nr<caf::exit_msg>::value:
      case caf::type_nr<caf::down_msg>::value:
      case caf::type_nr<caf::group_down_msg>::value:
      case caf::type_nr<caf::timeout_msg>::value:
        return false;
      case 0:
        if (*rtti.second == typeid(rejection_notice))
          return false;
        break;
      default:
        break;
    }
  }
  ticket.bytes = message_bytes(content);
  ticket.requester = mid.is_request() ? requester_key(x.sender) : 0;
  return true;
}

uint64_t requester_key(const caf::strong_actor_ptr& sender) noexcept {
  return reinterpret_cast<uintptr_t>(sender.get());
}

bool admit(gate& g, caf::abstract_actor* self, caf::mailbox_element& x, const gate_ticket& ticket,
           caf::execution_unit* eu) {
  auto v = g.admit(ticket);
  if (v.accepted() || v.closed)
    return true;
  g.record_rejection(v);
  auto& sender = x.sender;
  if (!sender)
    return false;  // anonymous fire-and-forget: counted and logged, nobody to tell
  if (x.mid.is_request()) {
    sender->enqueue(caf::make_mailbox_element(self->ctrl(), x.mid.response_id(), {},
                                              to_error(g.explain(v))),
                    eu);
  } else if (auto tally = g.fold_into_notice(sender->id())) {
    sender->enqueue(caf::make_mailbox_element(self->ctrl(), caf::make_message_id(), {},
                                              rejection_notice{g.explain(v), std::move(tally)}),
                    eu);
  }
  return false;
}

} // namespace levee::detail
