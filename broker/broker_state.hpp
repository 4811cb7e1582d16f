#pragma once
// The broker actor's state and the handlers split over broker.cpp (the table: create,
// delete, list, info, stop) and broker_calls.cpp (publish, subscribe, cursors). Internal
// to broker/.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/stateful_actor.hpp>

#include "actors/limited_actor.hpp"
#include "broker/broker.hpp"
#include "broker/cursors.hpp"
#include "limits/log_limiter.hpp"
#include "net/streams.pb.h"

namespace levee::broker {

struct partition_entry {
  leader_actor leader;                       // null when the partition did not open
  std::shared_ptr<partition_gauges> gauges;
  /// For check_message_bytes only (reads the stream's fixed config): the leader owns it.
  const streams::partition_log* log = nullptr;
  std::string problem;                       // why it did not open
};

struct stream_entry {
  streams::stream* stream = nullptr;         // the catalog's
  std::vector<partition_entry> partitions;
  bool deleting = false;                     // its leaders are stopping
};

struct broker_state {
  broker_setup setup;
  runtime* rt = nullptr;
  std::map<std::string, stream_entry, std::less<>> streams;
  std::optional<cursor_table> cursors;
  std::optional<publisher_rates> publishers;
  /// Where a connection's credit and cancel for a subscription go: (connection, tag) ->
  /// the partition's leader, until the subscription ends.
  std::map<std::pair<caf::actor_addr, uint64_t>, leader_actor> subscriptions;
  std::optional<log_limiter> log;            // refusals of ack = none publishes
  bool stopping = false;
  const char* name = "levee.broker";
};

using broker_self = caf::stateful_actor<broker_state, limited<broker_actor::base>>;

/// Counts `r` and makes it the error the connection turns into a Reject.
caf::error refuse(broker_self* self, const rejection& r);
caf::error refuse(broker_self* self, code c, std::string detail);

/// The stream's entry, or the not_found naming what exists (internal streams included
/// only when `internal`).
stream_entry* find_stream(broker_self* self, const std::string& name, bool internal = false);

caf::result<std::string> publish(broker_self* self, wire::Publish& req);
caf::result<std::string> subscribe(broker_self* self, const wire::Subscribe& req, uint64_t tag,
                                   uint64_t credit_batches, uint64_t credit_bytes);
caf::result<std::string> commit_cursor(broker_self* self, const wire::CommitCursor& req);
caf::result<std::string> fetch_cursor(broker_self* self, const wire::FetchCursor& req);

} // namespace levee::broker
