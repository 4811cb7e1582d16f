#pragma once
// A follower's fetcher (README.md "Replicas"): a detached actor whose thread blocks in the
// C++ client (include/levee/client.hpp) on one request at a time to the leader's broker
// (target "broker", a BrokerCall: Fetch or EpochEndOffset), as the controller's forwarder
// does for heartbeats. Its partition's actor keeps at most one request in flight, so the
// mailbox holds at most one message.
//
// Stopping is bounded: the fetcher waits for an answer in slices of fetcher_poll_ms and
// gives up as soon as `stopping` is set (the partition's actor sets it when it stops or
// stops following), so a broker's shutdown never waits out a held fetch.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace levee::broker {

/// (replica_call_atom, leader host:port, BrokerCall bytes, timeout ms) -> answer bytes, or
/// the leader's refusal, or a local unavailable / deadline_exceeded / shutting_down.
using replica_call_atom = caf::atom_constant<caf::atom("b_repcall")>;

using fetcher_actor = caf::typed_actor<
  caf::replies_to<replica_call_atom, std::string, std::string, uint32_t>::with<std::string>>;

/// How long the fetcher waits in one go before it looks at `stopping` again, in ms.
constexpr uint32_t fetcher_poll_ms = 50;

/// Spawns a fetcher (detached: a thread of its own) that names itself `node_id` to the
/// leader. `stopping` is shared with the partition's actor.
fetcher_actor spawn_fetcher(caf::actor_system& sys, std::string node_id,
                            std::shared_ptr<std::atomic<bool>> stopping);

} // namespace levee::broker
