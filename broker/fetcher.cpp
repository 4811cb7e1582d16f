// The follower's fetcher (fetcher.hpp): blocking client requests on a thread of its own.

#include "broker/fetcher.hpp"

#include <chrono>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "base/host_port.hpp"
#include "levee/client.hpp"

namespace levee::broker {

namespace {

using namespace std::chrono;

caf::error refuse(code c, std::string detail) {
  return to_error(rejection::of(c).detail(std::move(detail)));
}

fetcher_actor::behavior_type fetcher(fetcher_actor::pointer self, std::string node_id,
                                     std::shared_ptr<std::atomic<bool>> stopping) {
  // One connection, to the leader last asked; a new one when the leader moves or the
  // connection failed.
  auto conn = std::make_shared<std::unique_ptr<client>>();
  auto at = std::make_shared<std::string>();
  return {
    [=](replica_call_atom, const std::string& address, std::string& payload,
        uint32_t timeout_ms) -> caf::result<std::string> {
      (void)self;
      if (stopping->load())
        return refuse(code::shutting_down, "the follower is stopping");
      base::host_port hp;
      std::string bad;
      if (!base::parse_host_port("leader address", address, hp, bad))
        return refuse(code::bad_request, bad);
      auto deadline = steady_clock::now() + milliseconds(timeout_ms);
      if (!*conn || *at != address || !(*conn)->connected()) {
        client_options o;
        o.host = hp.host;
        o.port = hp.port;
        o.node_id = node_id;
        o.connect_timeout = milliseconds(std::min<uint32_t>(timeout_ms, 2000));
        *conn = std::make_unique<client>(o);
        *at = address;
        if (auto st = (*conn)->connect(); !st) {
          conn->reset();
          return to_error(st.as_rejection());
        }
      }
      uint64_t id = 0;
      if (auto refused = (*conn)->send_request("broker", std::move(payload), id, timeout_ms)) {
        conn->reset();
        return to_error(*refused);
      }
      // Wait in slices, so a stop is noticed within fetcher_poll_ms.
      for (;;) {
        if (stopping->load()) {
          conn->reset();  // the answer would arrive on a connection no one reads
          return refuse(code::shutting_down, "the follower is stopping");
        }
        auto left = duration_cast<milliseconds>(deadline - steady_clock::now());
        if (left.count() <= 0) {
          conn->reset();
          return to_error(rejection::of(code::deadline_exceeded)
                            .detail("the leader at " + address + " did not answer within "
                                    + std::to_string(timeout_ms) + " ms"));
        }
        auto r = (*conn)->receive(std::min(left, milliseconds(fetcher_poll_ms)));
        if (r.request_id == id) {
          if (r.ok())
            return std::move(*r.payload);
          return to_error(r.rejected.value_or(rejection::of(code::unavailable)));
        }
        if (r.rejected && r.rejected->code == code::unavailable && r.request_id == 0) {
          conn->reset();
          return to_error(*r.rejected);
        }
        // A local deadline_exceeded (the slice ended): look at `stopping` and wait again.
      }
    },
  };
}

} // namespace

fetcher_actor spawn_fetcher(caf::actor_system& sys, std::string node_id,
                            std::shared_ptr<std::atomic<bool>> stopping) {
  return sys.spawn<caf::detached>(fetcher, std::move(node_id), std::move(stopping));
}

} // namespace levee::broker
