#pragma once
// What a connection says to the actors it exposes (net/PROTOCOL.md, ARCHITECTURE.md "A
// query, end to end"), as typed-actor signatures: a typed actor that serves the wire
// includes them in its interface, so a handler that does not match what the connection
// sends is a compile error. The connection itself talks to its targets through
// caf::actor (actor_cast a typed handle to expose it).

#include <cstdint>
#include <string>
#include <vector>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"

namespace levee {

/// The batches that end a stream, sent with its summary in the answer rather than as
/// (wire_batch_atom, tag, part) messages of their own: in order, after every batch sent
/// before, within the same credit; often none. A point query's one batch so crosses each
/// actor on its way in the message that ends the query, not in one more before it.
using stream_tail = std::vector<std::string>;

/// A streamed Request: (wire_stream_atom, payload, tag, credit batches, credit bytes) ->
/// (stream_tail, summary). Before answering, the target sends (wire_batch_atom, tag, part)
/// to the connection (its sender) within the credit; the connection grants more with
/// (credit_atom, tag, batches, bytes) and stops the stream with (cancel_atom, tag).
using wire_stream_target = caf::typed_actor<
  caf::replies_to<wire_stream_atom, std::string, uint64_t, uint64_t, uint64_t>::with<
    stream_tail, std::string>,
  caf::reacts_to<credit_atom, uint64_t, uint64_t, uint64_t>,
  caf::reacts_to<cancel_atom, uint64_t>>;

/// What a stream's target sends the connection that carries it: (wire_batch_atom, tag,
/// part), within the credit it holds. A target actor_casts its requester to this.
using wire_stream_sink = caf::typed_actor<caf::reacts_to<wire_batch_atom, uint64_t, std::string>>;

/// What a connection offers an actor that streams a request to the connection's peer
/// (net/listener.hpp connection_for): (wire_stream_atom, target name, payload, tag, credit
/// batches, credit bytes) -> the peer's (stream_tail, summary), the batches before them
/// coming to the requester as a wire_stream_sink; (credit_atom, tag, batches, bytes)
/// grants the peer more and (cancel_atom, tag) cancels the stream. The server's proxyers speak it to their
/// satellites' connections, so tests can stand a fake satellite in a connection's place.
using wire_stream_outlet = caf::typed_actor<
  caf::replies_to<wire_stream_atom, std::string, std::string, uint64_t, uint64_t,
                  uint64_t>::with<stream_tail, std::string>,
  caf::reacts_to<credit_atom, uint64_t, uint64_t, uint64_t>,
  caf::reacts_to<cancel_atom, uint64_t>>;

/// A plain Request: (wire_request_atom, payload) -> answer payload.
using wire_request_target =
  caf::typed_actor<caf::replies_to<wire_request_atom, std::string>::with<std::string>>;

} // namespace levee
