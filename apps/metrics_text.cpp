// /metrics from a StatsReply (metrics_text.hpp). Names follow Prometheus' conventions:
// base units (seconds, bytes) in the name, `_total` on counters, one family per figure
// with labels for what varies (listener, kind, code, limit, state, satellite).

#include "apps/metrics_text.hpp"

namespace levee::apps {

namespace {

using http::exposition;

constexpr double us_per_s = 1e6;
constexpr double ns_per_s = 1e9;

/// One family read from a message's field, for every message of a labelled set.
template <class Message>
struct figure {
  const char* name;
  const char* type;
  const char* help;
  uint64_t (Message::*get)() const;
};

/// Each family of `figures`, a sample per (label value, message) of `rows`.
template <class Message, size_t N>
void labelled_families(const figure<Message> (&figures)[N], std::string_view label,
                       const std::vector<std::pair<std::string, const Message*>>& rows,
                       exposition& out) {
  for (auto& f : figures) {
    out.family(f.name, f.type, f.help);
    for (auto& [value, message] : rows)
      out.sample(f.name, {{label, value}}, (message->*f.get)());
  }
}

/// The rows of a repeated field, labelled by `key`.
template <class Message, class Key>
std::vector<std::pair<std::string, const Message*>> rows_of(
  const google::protobuf::RepeatedPtrField<Message>& messages, Key key) {
  std::vector<std::pair<std::string, const Message*>> out;
  for (auto& m : messages)
    out.emplace_back((m.*key)(), &m);
  return out;
}

void listener_families(const node_metrics& m, exposition& out) {
  if (m.listeners.empty())
    return;
  using L = wire::ListenerStats;
  static const figure<L> figures[] = {
    {"levee_connections_open", "gauge", "Wire connections open now.", &L::connections_open},
    {"levee_satellite_connections_open", "gauge",
     "Of the open connections, those whose peer is a satellite.", &L::satellite_connections},
    {"levee_connections_accepted_total", "counter", "Wire connections accepted.",
     &L::connections_accepted},
    {"levee_connections_refused_total", "counter",
     "Wire connections refused over net.max_connections.", &L::connections_refused},
    {"levee_frames_received_total", "counter", "Frames read, every kind.", &L::frames_in},
    {"levee_frames_sent_total", "counter", "Frames written, every kind.", &L::frames_out},
    {"levee_requests_answered_total", "counter", "Requests answered.", &L::requests_answered},
    {"levee_requests_abandoned_total", "counter",
     "Requests whose actor had not answered by twice their deadline.", &L::requests_abandoned},
    {"levee_credit_frames_received_total", "counter", "Credit frames read (flow control).",
     &L::credit_frames_in},
    {"levee_input_paused_for_slow_reader_total", "counter",
     "Times a connection stopped reading a peer that was behind on reading its answers.",
     &L::input_paused_for_slow_reader},
  };
  std::vector<std::pair<std::string, const L*>> rows;
  for (auto& [name, l] : m.listeners)
    rows.emplace_back(name, &l);
  labelled_families(figures, "listener", rows, out);
  out.family("levee_rejects_sent_total", "counter",
             "Reject frames sent, by listener and Levee code.");
  for (auto& [name, l] : m.listeners)
    for (auto& [code, n] : l.rejects_sent())
      out.sample("levee_rejects_sent_total", {{"listener", name}, {"code", code}}, n);
  out.family("levee_connections_closed_total", "counter",
             "Connections this side closed, by listener and the code of the Reject that closed them.");
  for (auto& [name, l] : m.listeners)
    for (auto& [code, n] : l.connections_closed())
      out.sample("levee_connections_closed_total", {{"listener", name}, {"code", code}}, n);
}

void io_loop_families(const wire::IoLoopStats& io, exposition& out) {
  out.gauge("levee_io_loop_busy_poll_seconds",
            "node.busy_poll_us: how long the I/O thread looks for work before it sleeps.",
            io.busy_poll_us() / us_per_s);
  out.counter("levee_io_loop_sleeps_total", "Times the I/O thread slept.", io.sleeps());
  out.counter("levee_io_loop_empty_polls_total", "Looks for work that found none.",
              io.empty_polls());
  out.family("levee_io_loop_looked_seconds_total", "counter",
             "Time the I/O thread spent looking for work without finding any.");
  out.sample("levee_io_loop_looked_seconds_total", io.looked_ns() / ns_per_s);
  out.gauge("levee_io_loop_asleep_seconds", "How long the I/O thread's current sleep has lasted.",
            io.asleep_ns() / ns_per_s);
  out.gauge("levee_io_loop_wakeup_slots",
            "Actors that may wait for a wake-up from another thread at once without blocking it.",
            io.wakeup_slots());
  out.counter("levee_io_loop_posted_rounds_total",
              "Rounds of the I/O thread's own actors run back to back (actor hops on it).",
              io.posted_rounds());
  out.gauge("levee_io_loop_longest_posted_run",
            "The most rounds of its actors the I/O thread ran in a row before looking at its "
            "sockets.",
            io.longest_posted_run());
}

void query_families(const wire::QueryCounters& q, exposition& out) {
  out.counter("levee_queries_started_total", "Queries the router started.", q.started());
  out.gauge("levee_queries_running", "Queries running now.", q.running());
  out.counter("levee_queries_completed_total", "Queries answered to their end.", q.completed());
  out.counter("levee_queries_failed_total", "Queries ended by a refusal other than cancelled.",
              q.failed());
  out.counter("levee_queries_cancelled_total", "Queries their client cancelled.", q.cancelled());
  out.counter("levee_queries_refused_total",
              "Queries refused before any satellite was asked (text, limits).", q.refused());
  out.counter("levee_query_rows_returned_total", "Rows sent to clients.", q.rows_returned());
  out.counter("levee_query_returned_bytes_total", "Bytes of result batches sent to clients.",
              q.bytes_returned());
  out.counter("levee_queries_partial_total",
              "Completed queries whose answer was cut at server.max_result_bytes.", q.partial());
  out.counter("levee_queries_skipping_satellites_total",
              "Completed fan-outs that skipped matching satellites that were not healthy.",
              q.skipping_satellites());
  out.counter("levee_query_satellites_skipped_total",
              "Matching satellites those fan-outs skipped, summed over the fan-outs.",
              q.satellites_skipped());
  auto& d = q.duration_us();
  out.family("levee_query_duration_seconds", "histogram",
             "How long each query that ended took on the router, from taking it to its end.");
  uint64_t running = 0;
  for (int i = 0; i < d.counts_size(); ++i) {
    running += d.counts(i);
    auto le = i < d.upper_bounds_size() ? http::format_value(d.upper_bounds(i) / us_per_s)
                                        : std::string{"+Inf"};
    out.sample("levee_query_duration_seconds_bucket", {{"le", le}}, running);
  }
  if (d.counts_size() <= d.upper_bounds_size())  // no overflow bucket sent: +Inf is all
    out.sample("levee_query_duration_seconds_bucket", {{"le", "+Inf"}}, running);
  out.sample("levee_query_duration_seconds_sum", d.sum() / us_per_s);
  out.sample("levee_query_duration_seconds_count", running);
}

void budget_families(const wire::NodeBudgetStats& b, exposition& out) {
  out.gauge("levee_node_budget_used_bytes", "Bytes queued in every limited mailbox of the node.",
            b.bytes_in_use());
  out.gauge("levee_node_budget_max_bytes", "limits.memory_budget_bytes: the node budget.",
            b.max_bytes());
  out.gauge("levee_node_budget_high_water_bytes", "The most bytes the node budget has held.",
            b.high_water_bytes());
  out.counter("levee_node_budget_refusals_total",
              "Messages refused because the node budget was used up.", b.refusals());
}

void kind_families(const wire::StatsReply& s, exposition& out) {
  using K = wire::ActorKindStats;
  static const figure<K> figures[] = {
    {"levee_actors", "gauge", "Live limited actors, by kind.", &K::actors},
    {"levee_actor_messages_accepted_total", "counter",
     "Messages the actor gate let into a mailbox, by kind.", &K::accepted},
    {"levee_actor_messages_processed_total", "counter", "Messages processed, by kind.",
     &K::processed},
    {"levee_actor_messages_dropped_on_exit_total", "counter",
     "Messages accepted and unprocessed when their actor ended, by kind.", &K::dropped_on_exit},
    {"levee_actor_queued_messages", "gauge", "Messages in the kind's mailboxes now.",
     &K::queued_messages},
    {"levee_actor_queued_bytes", "gauge", "Bytes in the kind's mailboxes now.", &K::queued_bytes},
    {"levee_actor_mailbox_high_water_messages", "gauge",
     "The deepest one actor's mailbox of the kind has been, in messages.", &K::max_actor_depth},
    {"levee_actor_mailbox_high_water_bytes", "gauge",
     "The most bytes one actor's mailbox of the kind has held.", &K::max_actor_bytes},
    {"levee_actor_notices_sent_total", "counter", "Rejection notices sent to senders, by kind.",
     &K::notices_sent},
    {"levee_actor_notices_coalesced_total", "counter",
     "Rejections folded into a notice already on its way, by kind.", &K::notices_coalesced},
  };
  if (s.kinds().empty())
    return;
  labelled_families(figures, "kind", rows_of(s.kinds(), &K::kind), out);
  out.family("levee_actor_rejections_total", "counter",
             "Messages the actor gate refused, by kind and Levee code.");
  for (auto& k : s.kinds())
    for (auto& [code, n] : k.rejected())
      out.sample("levee_actor_rejections_total", {{"kind", k.kind()}, {"code", code}}, n);
  // The same refusals by the limit that refused, as the broker's: a family of its own, so
  // that the {kind, code} series above (and what dashboards and alerts built on them)
  // stay as they were. Each limit has one code, so {kind, limit} splits {kind, code}.
  out.family("levee_actor_rejections_by_limit_total", "counter",
             "Messages the actor gate refused, by kind and the limit (config key) that refused.");
  for (auto& k : s.kinds())
    for (auto& [limit, n] : k.rejected_by_limit())
      out.sample("levee_actor_rejections_by_limit_total", {{"kind", k.kind()}, {"limit", limit}},
                 n);
}

void replication_families(const wire::BrokerStats& b, exposition& out) {
  out.counter("levee_broker_fetches_served_total",
              "Replica Fetch answers this broker gave its followers, as a leader.",
              b.fetches_served());
  out.counter("levee_broker_fetch_served_bytes_total", "Batch bytes in those answers.",
              b.fetch_bytes_served());
  out.counter("levee_broker_fetches_applied_total",
              "Fetch answers this broker applied, as a follower.", b.fetches_made());
  out.counter("levee_broker_copied_bytes_total", "Batch bytes it appended from them.",
              b.bytes_copied());
  out.counter("levee_broker_truncations_total", "Follower logs cut back by leader epoch.",
              b.truncations());
  out.counter("levee_broker_isr_shrinks_total", "ISR shrinks this broker asked for, as a leader.",
              b.isr_shrinks());
  out.counter("levee_broker_isr_expands_total", "ISR grows this broker asked for, as a leader.",
              b.isr_expands());
  out.counter("levee_broker_acks_waited_total",
              "ack = all publishes held until the high-water mark passed them.", b.acks_waited());
}

/// One sample per local replica, labelled by stream and partition: the offsets, and the
/// replication state as the partition's actor last applied it.
void partition_families(const wire::BrokerStats& b, exposition& out) {
  using P = wire::PartitionGauges;
  static const figure<P> figures[] = {
    {"levee_partition_start_offset", "gauge", "The first offset the replica keeps.",
     &P::start_offset},
    {"levee_partition_log_end_offset", "gauge", "The offset the replica's next message gets.",
     &P::log_end},
    {"levee_partition_high_water_offset", "gauge", "Consumers see offsets below this.",
     &P::high_water},
    {"levee_partition_size_bytes", "gauge", "Bytes of the replica's segments.", &P::size_bytes},
    {"levee_partition_subscribers", "gauge", "Subscriptions the replica serves now.",
     &P::subscribers},
    {"levee_partition_leader_epoch", "gauge", "The leader epoch of the replica's role (0: none).",
     &P::leader_epoch},
    {"levee_partition_replicas", "gauge", "The partition's replicas (0: not replicated).",
     &P::replicas},
    {"levee_partition_isr_size", "gauge",
     "The partition's in-sync replicas, as the metadata has them.", &P::isr_size},
    {"levee_partition_follower_lag_max_messages", "gauge",
     "On the leader: messages the furthest replica is behind its log end.",
     &P::max_follower_lag},
  };
  if (b.partition_gauges().empty())
    return;
  auto sample = [&](const char* name, const P& p, uint64_t value) {
    out.sample(name, {{"stream", p.stream()}, {"partition", std::to_string(p.partition())}}, value);
  };
  for (auto& f : figures) {
    out.family(f.name, f.type, f.help);
    for (auto& p : b.partition_gauges())
      sample(f.name, p, (p.*f.get)());
  }
  out.family("levee_partition_leader", "gauge",
             "1 while this broker's replica leads the partition, else 0.");
  for (auto& p : b.partition_gauges())
    sample("levee_partition_leader", p, uint64_t{p.leading() ? 1u : 0u});
}

void broker_families(const wire::BrokerStats& b, exposition& out) {
  out.gauge("levee_broker_streams", "Streams in the broker's catalog.", b.streams());
  out.gauge("levee_broker_partitions", "Partitions of those streams (one leader each).",
            b.partitions());
  out.counter("levee_broker_publishes_total", "Publish requests taken (frames, not messages).",
              b.publishes());
  out.counter("levee_broker_messages_stored_total",
              "Message copies stored, one per message and stream.", b.messages_stored());
  out.counter("levee_broker_acks_total", "Message acks answered.", b.acks());
  out.counter("levee_broker_duplicates_total", "Acks marked duplicate (not stored again).",
              b.duplicates());
  out.counter("levee_broker_subscriptions_total", "Subscribe requests started.",
              b.subscriptions());
  out.counter("levee_broker_batches_sent_total", "Message batches sent to subscribers.",
              b.batches_sent());
  out.counter("levee_broker_unacked_refusals_total",
              "Refusals of ack = none publishes (logged, not answered).", b.unacked_refusals());
  out.counter("levee_broker_subscriptions_paced_total",
              "Times a subscription was held back by [limits.consumer]'s rates.",
              b.subscriptions_paced());
  out.family("levee_broker_rejections_total", "counter", "The broker's refusals, by Levee code.");
  for (auto& [code, n] : b.rejections())
    out.sample("levee_broker_rejections_total", {{"code", code}}, n);
  out.family("levee_broker_rejections_by_limit_total", "counter",
             "The broker's refusals, by the limit (config key) that refused.");
  for (auto& [limit, n] : b.rejections_by_limit())
    out.sample("levee_broker_rejections_by_limit_total", {{"limit", limit}}, n);
  replication_families(b, out);
  partition_families(b, out);
}

void satellite_count_families(const wire::SatelliteCounts& c, exposition& out) {
  out.family("levee_satellites", "gauge", "Satellites the server's registry knows, by state.");
  out.sample("levee_satellites", {{"state", "healthy"}}, c.healthy());
  out.sample("levee_satellites", {{"state", "unhealthy"}}, c.unhealthy());
  out.sample("levee_satellites", {{"state", "disconnected"}}, c.disconnected());
}

void local_satellite_families(const wire::StatsReply& s, exposition& out) {
  if (s.local_satellites().empty())
    return;
  using S = wire::LocalSatelliteStats;
  static const figure<S> figures[] = {
    {"levee_satellite_registrations_total", "counter",
     "Registrations the server accepted from this satellite.", &S::registrations},
    {"levee_satellite_events_stored_total", "counter",
     "Events the satellite's sources handed to its store.", &S::events_stored},
    {"levee_satellite_bad_lines_total", "counter", "Input lines the sources skipped.",
     &S::bad_lines},
    {"levee_satellite_store_refusals_total", "counter",
     "Appends the store refused (retried later).", &S::store_refusals},
    {"levee_satellite_events_dropped_total", "counter",
     "Single events too large for the store's bound.", &S::events_dropped},
    {"levee_satellite_queries_total", "counter", "Queries the satellite ran.", &S::queries},
    {"levee_satellite_queries_refused_total", "counter", "Queries the satellite refused.",
     &S::queries_refused},
    {"levee_satellite_queries_running", "gauge", "Queries running on the satellite now.",
     &S::queries_running},
  };
  out.family("levee_satellite_registered", "gauge",
             "1 while the satellite is registered with its server, else 0.");
  for (auto& sat : s.local_satellites())
    out.sample("levee_satellite_registered", {{"satellite", sat.satellite_id()}},
               uint64_t{sat.registered() ? 1u : 0u});
  labelled_families(figures, "satellite", rows_of(s.local_satellites(), &S::satellite_id), out);
}

} // namespace

void write_node_metrics(const node_metrics& m, exposition& out) {
  auto& s = m.stats;
  out.family("levee_node_info", "gauge", "Always 1; its label names the node's roles.");
  out.sample("levee_node_info", {{"roles", m.roles}}, uint64_t{1});
  listener_families(m, out);
  if (s.has_io_loop())
    io_loop_families(s.io_loop(), out);
  if (s.has_queries())
    query_families(s.queries(), out);
  if (s.has_satellites())
    satellite_count_families(s.satellites(), out);
  local_satellite_families(s, out);
  if (s.has_broker())
    broker_families(s.broker(), out);
  budget_families(s.node_budget(), out);
  kind_families(s, out);
}

std::string node_metrics_text(const node_metrics& m) {
  exposition out;
  write_node_metrics(m, out);
  return out.take();
}

} // namespace levee::apps
