#pragma once
// The atoms more than one protocol shares: the wire bridge a connection speaks to its
// targets (wire_target.hpp), credit, cancel, stop, done, tick, timeout, and those of
// roles not yet given a typed protocol of their own. A protocol's own atoms live with it,
// next to its actor (satellite/store_protocol.hpp, server/registry_protocol.hpp, ...). CAF 0.17 has no type-ID blocks; atoms
// play that part here.

#include <caf/atom.hpp>

namespace levee {

/// (event_atom, std::string payload): a fire-and-forget event.
using event_atom = caf::atom_constant<caf::atom("event")>;
/// (query_atom, std::string payload) -> uint64_t: a request answered with the payload size.
using query_atom = caf::atom_constant<caf::atom("query")>;
/// (tick_atom): a self-message that paces periodic work.
using tick_atom = caf::atom_constant<caf::atom("tick")>;
/// (stop_atom) -> stop_atom: stop generating load; answered once stopped.
using stop_atom = caf::atom_constant<caf::atom("stop")>;
/// (report_atom) -> load_report: what a load generator did.
using report_atom = caf::atom_constant<caf::atom("report")>;
/// (wire_request_atom, std::string payload) -> std::string: a Request that arrived over the
/// wire protocol, bridged to the actor exposed under its target name.
using wire_request_atom = caf::atom_constant<caf::atom("wire_req")>;
/// (wire_stream_atom, std::string payload, uint64_t request_id) -> (stream_tail, summary):
/// a streamed Request (actors/wire_target.hpp). Before answering, the actor sends any
/// number of (wire_batch_atom, uint64_t request_id, std::string part) to the requester
/// (its current sender); they reach the client in the order sent, then the tail's
/// batches, then EndOfStream.
using wire_stream_atom = caf::atom_constant<caf::atom("wire_strm")>;
using wire_batch_atom = caf::atom_constant<caf::atom("wire_batch")>;
/// (credit_atom, uint64_t id, uint64_t batches, uint64_t bytes): the consumer of a
/// streamed answer grants its producer more (limits/stream_credit.hpp): a connection to
/// the actor that sends a stream's batches, a requester to the connection that carries
/// its stream (which sends the peer a Credit frame). Passes every gate, as cancels do:
/// refusing one would stall a stream its actor already accepted.
using credit_atom = caf::atom_constant<caf::atom("credit")>;
/// (drained_atom): a connection's self-message: its peer took bytes it was waiting for.
using drained_atom = caf::atom_constant<caf::atom("drained")>;
/// (sync_read_atom): a connection's self-message, a multiplexer round later: read the
/// socket or stop, as its state wants (net/server.cpp sync_reading).
using sync_read_atom = caf::atom_constant<caf::atom("sync_read")>;
/// (cancel_atom, uint64_t request_id): from a connection to the target of a streamed
/// request it carries, when the peer cancels it or the connection closes: stop the work
/// and answer the request with the error `cancelled`. And from the requester of an
/// outgoing stream to the connection: (cancel_atom, uint64_t tag) cancels it.
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
/// Connection actors' own timers and controls.
using resume_atom = caf::atom_constant<caf::atom("resume")>;
/// (connected_atom, std::string peer_node_id): a dialed connection completed its handshake.
using connected_atom = caf::atom_constant<caf::atom("connected")>;
/// (refused_atom, caf::error): the peer refused a dialed connection (e.g. unauthenticated).
using refused_atom = caf::atom_constant<caf::atom("refused")>;
/// (connect_atom): an uplink's (re)connection attempt.
using connect_atom = caf::atom_constant<caf::atom("connect")>;
/// (dialing_atom): an uplink looks at its connection attempt in progress again.
using dialing_atom = caf::atom_constant<caf::atom("dialing")>;

/// (done_atom, uint64_t id): work an actor was handed has ended (a proxyer's query), told
/// to the actor that handed it out. Like cancel_atom and stop_atom it passes every gate
/// (actors/limited_actor.cpp knows it, so it lives here).
using done_atom = caf::atom_constant<caf::atom("done")>;
/// (timeout_atom): a deadline's self-message.
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;

} // namespace levee
