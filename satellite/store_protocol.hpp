#pragma once
// The store's interface (satellite/store.hpp): what the connection, the sources, the agent
// and the node may say to it, and what it says to itself. Inside the process messages
// carry structs; protobuf appears only where the wire does (a query's payload, its
// summary and batches, the StoreStats a heartbeat carries).

#include <cstdint>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"
#include "actors/wire_target.hpp"
#include "net/satellite.pb.h"
#include "persistence/source_positions.hpp"

namespace levee::satellite {

/// (append_atom, append_request) -> uint64_t events taken: a source's events.
using append_atom = caf::atom_constant<caf::atom("append")>;
/// (scan_atom): the store's own: one step of its queries.
using scan_atom = caf::atom_constant<caf::atom("scan")>;
/// (retention_atom): the store's own: a retention pass.
using retention_atom = caf::atom_constant<caf::atom("retention")>;
/// (scrub_atom): the store's own: one step of its background scrub.
using scrub_atom = caf::atom_constant<caf::atom("scrub")>;

/// Events of one source for the store. `positions`: none, or where each event's line
/// ended (a file_tail's), one per event; with no events, one position alone (lines that
/// made no event, or where the source starts).
struct append_request {
  std::vector<std::string> values;  // events::encode'd events
  std::vector<int64_t> timestamps;  // ms since the epoch, one per event
  std::string source;               // its configured name
  std::vector<persistence::file_position> positions;

  /// What the gate counts (actors/message_size.hpp): the events' bytes and the rest.
  uint64_t size_bytes() const noexcept {
    uint64_t n = source.size() + timestamps.size() * sizeof(int64_t)
                 + positions.size() * persistence::file_position_bytes;
    for (auto& v : values)
      n += v.size() + sizeof(std::string);
    return n;
  }
};

using store_actor = wire_stream_target::extend<
  caf::replies_to<append_atom, append_request>::with<uint64_t>,
  /// The store's counters, for Register and Heartbeat.
  caf::replies_to<caf::get_atom>::with<wire::StoreStats>,
  /// Ends the running queries with shutting_down, syncs, ends the store: true if the sync
  /// succeeded.
  caf::replies_to<stop_atom>::with<bool>,
  caf::reacts_to<scan_atom>, caf::reacts_to<scrub_atom>, caf::reacts_to<retention_atom>,
  /// Syncs the log and looks at the deadlines of queries waiting for credit.
  caf::reacts_to<tick_atom>>;

} // namespace levee::satellite

// Both stay inside the process (the wire carries StoreStats as protobuf bytes, built by
// the agent): CAF never serializes them.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::satellite::append_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(levee::wire::StoreStats)
