#pragma once
// Between the wire's stream messages (net/streams.proto) and the streams layer's structs:
// a CreateStream with the broker's [stream] defaults filled in, and a stream's config
// and partitions as a StreamInfo. The broker's only protobuf <-> struct seam.

#include <vector>

#include "broker/broker_protocol.hpp"
#include "limits/status.hpp"
#include "net/streams.pb.h"
#include "streams/stream_config.hpp"

namespace levee::broker {

/// The config a CreateStream asks for: every absent setting from `defaults`. Values are
/// not checked here (streams::validate does, at create), nor the replication factor and
/// min_insync_replicas (the broker does: a broker alone takes 0 or 1 only).
result<streams::stream_config> config_from_wire(const wire::CreateStream& req,
                                                const streams::stream_config& defaults);

/// Every setting of `cfg` (deadline_ms 0), with the stream's replication (1 and 1 on a
/// broker alone; the metadata's in a cluster).
void config_to_wire(const streams::stream_config& cfg, wire::CreateStream& out,
                    uint32_t replication_factor = 1, uint32_t min_insync_replicas = 1);

/// A partition's PartitionInfo from its leader's gauges; `problem` non-empty when the
/// partition did not open.
void partition_to_wire(uint32_t partition, const partition_gauges* gauges,
                       const std::string& problem, wire::PartitionInfo& out);

} // namespace levee::broker
