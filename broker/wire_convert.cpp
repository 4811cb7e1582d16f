// The wire's stream messages to the streams layer's structs and back (wire_convert.hpp).

#include "broker/wire_convert.hpp"

namespace levee::broker {

result<streams::stream_config> config_from_wire(const wire::CreateStream& req,
                                                const streams::stream_config& defaults) {
  auto cfg = defaults;
  cfg.name = req.name();
  cfg.subject = req.subject();
  cfg.limits.clear();
  if (req.has_partitions())
    cfg.partitions = req.partitions();
  if (req.has_retention_max_age_ms())
    cfg.retention_max_age_ms = req.retention_max_age_ms();
  if (req.has_retention_max_bytes())
    cfg.retention_max_bytes = req.retention_max_bytes();
  if (req.has_retention_max_messages())
    cfg.retention_max_messages = req.retention_max_messages();
  if (req.has_compact_by_key())
    cfg.compact_by_key = req.compact_by_key();
  if (req.has_max_message_bytes())
    cfg.max_message_bytes = req.max_message_bytes();
  if (req.has_max_segment_bytes())
    cfg.max_segment_bytes = req.max_segment_bytes();
  if (req.has_dedupe_window_ms())
    cfg.dedupe_window_ms = req.dedupe_window_ms();
  if (req.has_dedupe_max_entries())
    cfg.dedupe_max_entries = req.dedupe_max_entries();
  if (req.has_fsync_interval_ms())
    cfg.fsync_interval_ms = req.fsync_interval_ms();
  switch (req.on_full()) {
    case wire::ON_FULL_DROP_OLDEST: cfg.on_full = streams::on_full_policy::drop_oldest; break;
    case wire::ON_FULL_REJECT: cfg.on_full = streams::on_full_policy::reject; break;
    default: break;
  }
  switch (req.fsync()) {
    case wire::FSYNC_NONE: cfg.fsync = persistence::fsync_policy::none; break;
    case wire::FSYNC_INTERVAL: cfg.fsync = persistence::fsync_policy::interval; break;
    case wire::FSYNC_EVERY_BATCH: cfg.fsync = persistence::fsync_policy::every_batch; break;
    default: break;
  }
  for (auto& [key, value] : req.limits())
    cfg.limits[key] = value;
  return cfg;
}

void config_to_wire(const streams::stream_config& cfg, wire::CreateStream& out,
                    uint32_t replication_factor, uint32_t min_insync_replicas) {
  out.set_name(cfg.name);
  out.set_subject(cfg.subject);
  out.set_partitions(static_cast<uint32_t>(cfg.partitions));
  out.set_replication_factor(replication_factor);
  out.set_min_insync_replicas(min_insync_replicas);
  out.set_retention_max_age_ms(cfg.retention_max_age_ms);
  out.set_retention_max_bytes(cfg.retention_max_bytes);
  out.set_retention_max_messages(cfg.retention_max_messages);
  out.set_on_full(cfg.on_full == streams::on_full_policy::reject ? wire::ON_FULL_REJECT
                                                                  : wire::ON_FULL_DROP_OLDEST);
  out.set_compact_by_key(cfg.compact_by_key);
  out.set_max_message_bytes(cfg.max_message_bytes);
  out.set_max_segment_bytes(cfg.max_segment_bytes);
  out.set_dedupe_window_ms(cfg.dedupe_window_ms);
  out.set_dedupe_max_entries(cfg.dedupe_max_entries);
  switch (cfg.fsync) {
    case persistence::fsync_policy::none: out.set_fsync(wire::FSYNC_NONE); break;
    case persistence::fsync_policy::interval: out.set_fsync(wire::FSYNC_INTERVAL); break;
    default: out.set_fsync(wire::FSYNC_EVERY_BATCH); break;
  }
  out.set_fsync_interval_ms(cfg.fsync_interval_ms);
  for (auto& [key, value] : cfg.limits)
    (*out.mutable_limits())[key] = value;
}

void partition_to_wire(uint32_t partition, const partition_gauges* g, const std::string& problem,
                       wire::PartitionInfo& out) {
  out.set_partition(partition);
  if (!problem.empty())
    out.set_problem(problem);
  if (g == nullptr)
    return;
  out.set_start_offset(g->start_offset.load());
  out.set_next_offset(g->next_offset.load());
  out.set_high_water(g->high_water.load());
  out.set_size_bytes(g->size_bytes.load());
  out.set_appended(g->appended.load());
  out.set_duplicates(g->duplicates.load());
  out.set_rejected(g->rejected.load());
  out.set_dropped_messages(g->dropped_messages.load());
  out.set_dropped_segments(g->dropped_segments.load());
  out.set_compacted(g->compacted.load());
  out.set_subscribers(g->subscribers.load());
}

} // namespace levee::broker
