#include "actors/synthetic.hpp"

#include <functional>
#include <memory>

#include "actors/caf_error.hpp"

namespace levee {

using namespace std::chrono;

void busy_for(microseconds d) noexcept {
  auto until = steady_clock::now() + d;
  while (steady_clock::now() < until)
    ;
}

caf::behavior busy_service::make_behavior() {
  return {
    [this](event_atom, const std::string&) { busy_for(work_); },
    [this](query_atom, const std::string& q) -> uint64_t {
      busy_for(work_);
      return q.size();
    },
  };
}

caf::behavior paced_flooder(caf::stateful_actor<generator_state>* self, caf::actor target,
                            uint64_t per_tick, size_t payload_bytes, milliseconds interval) {
  auto payload = std::make_shared<std::string>(payload_bytes, 'e');
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      if (self->state.stopped)
        return;
      for (uint64_t i = 0; i < per_tick; ++i)
        self->send(target, event_atom::value, *payload);
      self->state.offered += per_tick;
      self->delayed_send(self, interval, tick_atom::value);
    },
    [=](rejection_notice& n) { self->state.told += n.take(); },
    [=](stop_atom x) {
      self->state.stopped = true;
      return x;
    },
    [=](report_atom) { return load_report{self->state.offered, self->state.told}; },
  };
}

caf::behavior windowed_requester(caf::stateful_actor<generator_state>* self,
                                 caf::actor target, uint32_t window, size_t payload_bytes) {
  auto payload = std::make_shared<std::string>(payload_bytes, 'q');
  auto send_one = std::make_shared<std::function<void()>>();
  // The function refers to itself through a weak pointer so that it does not keep itself
  // alive after the behavior is gone.
  std::weak_ptr<std::function<void()>> weak_send = send_one;
  *send_one = [=] {
    if (self->state.stopped)
      return;
    ++self->state.offered;
    self->request(target, seconds(30), query_atom::value, *payload)
      .then(
        [=](uint64_t) {
          if (auto f = weak_send.lock())
            (*f)();
        },
        [=](caf::error& err) {
          auto r = rejection_from(err);
          if (!r) {
            self->quit(err);
            return;
          }
          ++self->state.told;
          auto wait = milliseconds(r->retry_after_ms > 0 ? r->retry_after_ms : 10);
          self->delayed_send(self, wait, tick_atom::value);
        });
  };
  for (uint32_t i = 0; i < window; ++i)
    (*send_one)();
  return {
    [=](tick_atom) { (*send_one)(); },
    [=](stop_atom x) {
      self->state.stopped = true;
      return x;
    },
    [=](report_atom) { return load_report{self->state.offered, self->state.told}; },
  };
}

} // namespace levee
