#pragma once
// The replication calls of the "broker" target (wire::BrokerCall fetch = 58,
// epoch_end_offset = 59; README.md "Replicas"): which partition's actor answers them and
// the request it takes. The broker's dispatch delegates them to that actor; tests that
// expose partition actors without a broker use the same functions.

#include <cstdint>
#include <optional>
#include <string>

#include "broker/broker_protocol.hpp"
#include "net/streams.pb.h"

namespace levee::broker {

/// True for the calls that go to a partition's actor as replication.
inline bool is_replica_call(const wire::BrokerCall& call) {
  return call.call_case() == wire::BrokerCall::kFetch
         || call.call_case() == wire::BrokerCall::kEpochEndOffset;
}

/// (stream, partition) a replication call names.
inline std::pair<std::string, uint32_t> replica_call_partition(const wire::BrokerCall& call) {
  if (call.call_case() == wire::BrokerCall::kFetch)
    return {call.fetch().stream(), call.fetch().partition()};
  return {call.epoch_end_offset().stream(), call.epoch_end_offset().partition()};
}

/// Delegates `call` (is_replica_call) to `partition`: its answer goes to the requester.
template <class Self>
caf::result<std::string> forward_replica_call(Self* self, const leader_actor& partition,
                                              const wire::BrokerCall& call) {
  if (call.call_case() == wire::BrokerCall::kFetch) {
    auto& f = call.fetch();
    fetch_request req;
    req.replica = f.replica();
    req.fetch_offset = f.fetch_offset();
    req.leader_epoch = f.leader_epoch();
    req.max_bytes = f.max_bytes();
    req.max_wait_ms = f.max_wait_ms();
    return self->delegate(partition, fetch_atom::value, req);
  }
  auto& e = call.epoch_end_offset();
  epoch_end_request req;
  req.replica = e.replica();
  req.leader_epoch = e.leader_epoch();
  req.epoch = e.epoch();
  return self->delegate(partition, epoch_end_atom::value, req);
}

} // namespace levee::broker
