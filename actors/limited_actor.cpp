#include "actors/limited_actor.hpp"

#include <cstdio>
#include <cstdlib>
#include <typeinfo>

#include <caf/system_messages.hpp>

namespace levee::detail {

namespace {

thread_local std::unique_ptr<gate> pending_gate;

/// A mailbox element that carries the gate's ticket of the message it wraps. The ticket is
/// given back when the actor starts handling the message (so a requester's in-flight slot
/// is free before its response leaves), taken again if the actor skips the message (a
/// stashed message still occupies the mailbox), and given back as "dropped" if the element
/// dies unhandled (the actor terminated first). The wrapped element keeps the content.
class gated_element final : public caf::mailbox_element {
public:
  gated_element(caf::mailbox_element_ptr inner, gate& g, gate_ticket t)
    : caf::mailbox_element(std::move(inner->sender), inner->mid, std::move(inner->stages)),
      inner_(std::move(inner)), gate_(g), ticket_(t) {
  }

  ~gated_element() override {
    if (held_)
      gate_.release(ticket_, false);
  }

  caf::type_erased_tuple& content() override { return inner_->content(); }
  const caf::type_erased_tuple& content() const override { return inner_->content(); }
  caf::message move_content_to_message() override { return inner_->move_content_to_message(); }
  caf::message copy_content_to_message() const override {
    return inner_->copy_content_to_message();
  }

  void on_handling() noexcept {
    if (held_) {
      gate_.release(ticket_, true);
      held_ = false;
    }
  }

  void on_skipped() noexcept {
    if (!held_) {
      gate_.reacquire(ticket_);
      held_ = true;
    }
  }

private:
  caf::mailbox_element_ptr inner_;
  gate& gate_;
  gate_ticket ticket_;
  bool held_ = true;  // the ticket counts against the gate
};

gated_element* as_gated(caf::mailbox_element& x) noexcept {
  // Cheaper than dynamic_cast: gated_element is final, so an exact type match suffices.
  return typeid(x) == typeid(gated_element) ? static_cast<gated_element*>(&x) : nullptr;
}

} // namespace

void set_pending_gate(std::unique_ptr<gate> g) {
  pending_gate = std::move(g);
}

std::unique_ptr<gate> take_pending_gate() {
  if (!pending_gate) {
    std::fprintf(stderr, "levee: a limited actor was spawned without levee::spawn_limited; "
                         "spawn it with levee::spawn_limited(system, runtime, kind, ...)\n");
    std::abort();
  }
  return std::move(pending_gate);
}

bool bypasses_gate(const caf::mailbox_element& x) noexcept {
  auto mid = x.mid;
  if (mid.is_response() || mid.is_stream_message())
    return true;
  auto& content = x.content();
  if (content.size() != 1)
    return false;
  return content.match_element<caf::exit_msg>(0) || content.match_element<caf::down_msg>(0)
         || content.match_element<caf::group_down_msg>(0)
         || content.match_element<caf::timeout_msg>(0)
         || content.match_element<rejection_notice>(0);
}

caf::mailbox_element_ptr admit(gate& g, caf::abstract_actor* self, caf::mailbox_element_ptr ptr,
                               caf::execution_unit* eu) {
  auto bytes = message_bytes(ptr->content());
  auto is_request = ptr->mid.is_request();
  uint64_t requester = is_request && ptr->sender ? ptr->sender->id() : 0;
  gate_ticket ticket;
  auto v = g.admit(bytes, requester, ticket);
  if (v.accepted())
    return caf::mailbox_element_ptr{new gated_element(std::move(ptr), g, ticket)};
  g.record_rejection(v);
  auto& sender = ptr->sender;
  if (!sender)
    return nullptr;  // anonymous fire-and-forget: counted and logged, nobody to tell
  if (is_request) {
    sender->enqueue(caf::make_mailbox_element(self->ctrl(), ptr->mid.response_id(), {},
                                              to_error(g.explain(v))),
                    eu);
  } else if (auto tally = g.fold_into_notice(sender->id())) {
    sender->enqueue(caf::make_mailbox_element(self->ctrl(), caf::make_message_id(), {},
                                              rejection_notice{g.explain(v), std::move(tally)}),
                    eu);
  }
  return nullptr;
}

void on_handling(caf::mailbox_element& x) noexcept {
  if (auto ge = as_gated(x))
    ge->on_handling();
}

void on_skipped(caf::mailbox_element& x) noexcept {
  if (auto ge = as_gated(x))
    ge->on_skipped();
}

} // namespace levee::detail
