#pragma once
// A proxyer's interface (server/proxy.hpp): the one query the router hands it, parsed
// once by the router; the client's credit (through the router until the proxyer sent a
// batch, then from the connection); the satellites' batches (it is the sink of their
// streams, actors/wire_target.hpp); and the router's cancel, stop and deadline for that
// query, each naming it by its id.

#include <cstdint>
#include <memory>
#include <string>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/wire_target.hpp"
#include "net/satellite.pb.h"
#include "query/query.hpp"

namespace levee::server {

/// A query the router checked, parsed once and handed to its proxyer whole.
struct prepared_query {
  wire::QueryRequest request;  // deadline and time filled in
  std::shared_ptr<const query::query> q;  // from the router's parse cache
  std::string forwarded;       // the request as the satellites get it (wire bytes)
};

using prepared_ptr = std::shared_ptr<const prepared_query>;

/// (run_query_atom, query, request id, query id, credit batches, credit bytes) ->
/// (stream_tail, QueryStats bytes): the router delegates the connection's streamed
/// request, so the answer and the batches go to the connection.
using run_query_atom = caf::atom_constant<caf::atom("run_query")>;

using proxyer_actor = wire_stream_sink::extend<
  caf::replies_to<run_query_atom, prepared_ptr, uint64_t, uint64_t, uint64_t, uint64_t>::with<
    stream_tail, std::string>,
  /// (credit_atom, id, batches, bytes): the client read; id is the request id from the
  /// connection, the query id from the router.
  caf::reacts_to<credit_atom, uint64_t, uint64_t, uint64_t>,
  /// From the router, naming the query id: the client cancelled, the server stops, the
  /// deadline passed.
  caf::reacts_to<cancel_atom, uint64_t>, caf::reacts_to<stop_atom, uint64_t>,
  caf::reacts_to<timeout_atom, uint64_t>>;

} // namespace levee::server

// Only ever sent between actors of one process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::server::prepared_ptr)
