#pragma once
// Synthetic actors for demonstrations, benchmarks and load tests: a service that spends a
// fixed CPU time per message, and load generators that offer it fire-and-forget events at
// a paced rate or keep a window of requests in flight. Each generator counts what it
// offered and what it was told was refused, so a run can check that every message is
// accounted for.

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/limited_actor.hpp"

namespace levee {

/// (offered, refusals the generator was told of).
using load_report = std::pair<uint64_t, uint64_t>;

/// Spins for `d` (a stand-in for real work that keeps the CPU busy).
void busy_for(std::chrono::microseconds d) noexcept;

/// A limited service: `work` of CPU per message. Handles (event_atom, string) and
/// (query_atom, string) -> uint64_t (the payload size).
class busy_service : public limited_actor {
public:
  busy_service(caf::actor_config& cfg, std::chrono::microseconds work)
    : limited(cfg), work_(work) {}

  caf::behavior make_behavior() override;

private:
  std::chrono::microseconds work_;
};

struct generator_state {
  uint64_t offered = 0;
  uint64_t told = 0;
  bool stopped = false;
};

/// Sends `per_tick` events of `payload_bytes` to `target` every `interval`, counting the
/// refusals reported by rejection notices. Answers stop_atom and report_atom.
caf::behavior paced_flooder(caf::stateful_actor<generator_state>* self, caf::actor target,
                            uint64_t per_tick, size_t payload_bytes,
                            std::chrono::milliseconds interval);

/// Keeps `window` queries of `payload_bytes` in flight to `target`; a refused query is
/// retried after its retry_after_ms. Answers stop_atom and report_atom.
caf::behavior windowed_requester(caf::stateful_actor<generator_state>* self,
                                 caf::actor target, uint32_t window, size_t payload_bytes);

} // namespace levee
