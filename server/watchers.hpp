#pragma once
// Requests that wait for a versioned answer to move on: `satellites` (the registry's list)
// and `stats` (the router's query counters). A request names the version it has seen and
// how long it may wait; it is answered when the version moves or the wait is over, with
// the answer rendered once for everyone answered together. Bounded overall and per
// client (the connection that asked). The owning actor keeps one timer, (watch_atom,
// armed_for), for the earliest wait and for answering a burst of changes (heartbeats,
// queries) once per `coalesce`, so a watcher never costs a render per change. A request
// may name a view (the registry's: one page or filter of its list): the held ones are
// answered with one render per distinct view.
//
//   (watch_atom, after_version, wait_ms): return watchers.hold(self, version, after, wait, render);
//   when the state moved:                 watchers.changed(self);
//   (watch_atom, int64_t armed_for):      watchers.on_timer(self, armed_for, version, render);

#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/atom.hpp>
#include <caf/response_promise.hpp>
#include <caf/result.hpp>

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "actors/earliest_timer.hpp"
#include "limits/clock.hpp"
#include "limits/rejection.hpp"

namespace levee::server {

/// (watch_atom, after_version, wait_ms): a request that may wait for a change (the
/// registry's list_atom, the router's stats); (watch_atom, int64_t armed_for): the owning
/// actor's own timer for the held ones.
using watch_atom = caf::atom_constant<caf::atom("watch")>;

class watcher_set {
public:
  struct bounds {
    uint64_t max_total;       // server.max_list_watchers
    uint64_t max_per_client;  // server.max_list_watchers_per_client
    uint64_t max_wait_ms;     // server.max_list_wait_ms
    int64_t coalesce_ns;      // changes within this are answered once
  };

  /// Waits are measured on `clock`, which must outlive the set.
  watcher_set(bounds b, const clock_source& clock) : bounds_(b), clock_(&clock) {}

  /// The current request of `self` (from a connection: its sender is the client) that
  /// has seen `after_version` and may wait `wait_ms`: answered now (`render()`) when it
  /// need not wait, refused when a bound is full, else held.
  template <class Self, class Render>
  caf::result<std::string> hold(Self* self, uint64_t version, uint64_t after_version,
                                uint32_t wait_ms, const Render& render) {
    return hold(self, version, after_version, wait_ms, std::string{},
                [&](const std::string&) { return render(); });
  }

  /// As hold, for a request that sees `view` of the state: `render(view)`.
  template <class Self, class Render>
  caf::result<std::string> hold(Self* self, uint64_t version, uint64_t after_version,
                                uint32_t wait_ms, std::string view, const Render& render) {
    if (wait_ms == 0 || after_version != version)
      return render(view);
    auto client = self->current_sender() ? self->current_sender()->id() : 0;
    // Before the promise: a request whose promise exists is answered only through it.
    if (auto refused = refusal(client))
      return to_error(*refused);
    park(self->make_response_promise(), client, after_version, wait_ms, now(), std::move(view));
    arm_earliest<watch_atom>(self, timer_, *earliest_due(), now());
    return caf::delegated<std::string>{};
  }

  /// The state moved: the held requests get it within `coalesce`. One empty() check when
  /// nobody waits.
  template <class Self>
  void changed(Self* self) {
    if (!held_.empty())
      arm_earliest<watch_atom>(self, timer_, now() + bounds_.coalesce_ns, now());
  }

  /// (watch_atom, armed_for) came: answers what is due, arms the timer for the rest.
  template <class Self, class Render>
  void on_timer(Self* self, int64_t armed_for, uint64_t version, const Render& render) {
    if (!timer_.fire(armed_for))
      return;  // superseded by an earlier one
    if constexpr (std::is_invocable_v<const Render&, const std::string&>)
      answer_due(version, now(), render);
    else
      answer_due(version, now(), [&](const std::string&) { return render(); });
    if (auto next = earliest_due())
      arm_earliest<watch_atom>(self, timer_, *next, now());
  }

  /// Answers every held request (the owner stops).
  void answer_all(const std::function<std::string()>& render);

  using view_render = std::function<std::string(const std::string& view)>;

  bool empty() const noexcept { return held_.empty(); }

private:
  int64_t now() const noexcept { return clock_->now_ns(); }
  std::optional<rejection> refusal(uint64_t client) const;
  void park(caf::response_promise answer, uint64_t client, uint64_t after_version,
            uint32_t wait_ms, int64_t now_ns, std::string view);
  /// Answers the held requests whose version moved or whose wait is over; `render` is
  /// called at most once per view.
  void answer_due(uint64_t version, int64_t now_ns, const view_render& render);
  std::optional<int64_t> earliest_due() const noexcept;

  struct held {
    caf::response_promise answer;
    uint64_t client;
    uint64_t after_version;
    int64_t due_ns;
    std::string view;
  };
  void release(uint64_t client);

  bounds bounds_;
  const clock_source* clock_;
  earliest_timer timer_;
  std::vector<held> held_;
  std::unordered_map<uint64_t, uint64_t> per_client_;
};

} // namespace levee::server
