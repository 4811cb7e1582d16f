#pragma once
// What the controller (README.md "Controller") is told: the wire's "cluster" requests
// (a ClusterCall: cluster info, or a broker's heartbeat when this broker leads the
// metadata), the raft_node's hand-offs and its own timer. Inside the process messages
// carry plain values; ClusterCall/ClusterInfo (broker/cluster.proto) are the wire's.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "broker/broker_protocol.hpp"

namespace levee::broker {

/// (applied_atom): the raft_node's applied queue went from empty to not empty (sent from
/// its loop thread: the only thing that thread does to the controller).
using applied_atom = caf::atom_constant<caf::atom("c_applied")>;
/// (proposed_atom, key, outcome, detail): a command this controller submitted was
/// answered (sent from the loop thread). `key` names what it was for ("register 2",
/// "mark 3"); outcome is command_outcome::kind as a number.
using proposed_atom = caf::atom_constant<caf::atom("c_propsd")>;
/// (forward_atom, host:port, payload) -> answer payload: the forwarder's one request.
using forward_atom = caf::atom_constant<caf::atom("c_forward")>;

/// (isr_atom, isr_change): a partition's leader asks for its ISR to shrink (a replica
/// lagging more than replica_max_lag_ms or no longer fetching) or grow (caught up again).
/// The controller forwards it to the metadata leader, which proposes it as a
/// change_partition at `expected_partition_epoch` (compare-and-set: a change decided on an
/// older view is refused). The outcome reaches the leader as its next partition_role.
using isr_atom = caf::atom_constant<caf::atom("c_isr")>;

/// (propose_atom, command bytes) -> the entry's sequence: the broker's stream metadata
/// commands (create, delete: metadata.proto Command bytes). Proposed here when this broker
/// serves as the metadata leader, else forwarded to the leader's "cluster" (Propose);
/// answered once this broker's own state applied it (so the broker was told it first), or
/// with the state machine's refusal.
using propose_atom = caf::atom_constant<caf::atom("c_propose")>;
/// (answered_atom, ticket, sequence, error): a proposal's outcome (from the loop thread,
/// or the forwarder's answer); sequence 0 with the error.
using answered_atom = caf::atom_constant<caf::atom("c_answer")>;
/// (member_changed_atom, ticket, error): a membership change (add, remove) of the Raft
/// group ended (from the loop thread); an empty error when it succeeded.
using member_changed_atom = caf::atom_constant<caf::atom("c_member")>;
/// (watch_atom, broker): the broker to tell the applied metadata (metadata_atom).
using watch_atom = caf::atom_constant<caf::atom("c_watch")>;

struct isr_change {
  std::string stream;
  uint32_t partition = 0;
  uint64_t expected_partition_epoch = 0;
  uint64_t leader = 0;
  std::vector<uint64_t> isr;
};

using controller_actor = caf::typed_actor<
  caf::replies_to<wire_request_atom, std::string>::with<std::string>,  // exposed as "cluster"
  caf::reacts_to<applied_atom>,
  caf::reacts_to<proposed_atom, std::string, int32_t, std::string>,
  caf::reacts_to<tick_atom>,
  caf::reacts_to<isr_atom, isr_change>,
  caf::replies_to<propose_atom, std::string>::with<uint64_t>,
  caf::reacts_to<answered_atom, uint64_t, uint64_t, caf::error>,
  caf::reacts_to<watch_atom, broker_actor>,
  caf::reacts_to<member_changed_atom, uint64_t, caf::error>,
  caf::replies_to<stop_atom>::with<bool>>;

/// The controller's forwarder (a detached actor: its thread blocks in the client): sends a
/// heartbeat to the metadata leader's broker and returns its answer.
using forwarder_actor =
  caf::typed_actor<caf::replies_to<forward_atom, std::string, std::string>::with<std::string>>;

} // namespace levee::broker

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::broker::isr_change)
