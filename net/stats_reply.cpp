// The parts of a StatsReply every node kind fills the same way (stats_reply.hpp).

#include "net/stats_reply.hpp"

#include "net/multiplexer.hpp"

namespace levee::net {

void fill_listener_stats(const net::net_stats& n, wire::ListenerStats& out) {
  out.set_connections_open(n.connections_open.load());
  out.set_satellite_connections(n.satellite_connections.load());
  out.set_connections_accepted(n.connections_accepted.load());
  out.set_connections_refused(n.connections_refused.load());
  out.set_frames_in(n.frames_in.load());
  out.set_frames_out(n.frames_out.load());
  out.set_requests_answered(n.requests_answered.load());
  out.set_requests_abandoned(n.requests_abandoned.load());
  out.set_credit_frames_in(n.credit_frames_in.load());
  out.set_input_paused_for_slow_reader(n.input_paused_for_slow_reader.load());
  fill_by_code(*out.mutable_rejects_sent(), n.rejects);
  fill_by_code(*out.mutable_connections_closed(), n.closes);
}

void fill_io_loop_stats(caf::actor_system& sys, wire::StatsReply& out) {
  if (auto io = io_loop_stats_of(sys)) {
    auto& loop = *out.mutable_io_loop();
    loop.set_busy_poll_us(io->window_us);
    loop.set_sleeps(io->sleeps);
    loop.set_empty_polls(io->empty_polls);
    loop.set_looked_ns(io->looked_ns);
    loop.set_asleep_ns(io->asleep_ns);
    loop.set_wakeup_slots(io->wakeup_slots);
    loop.set_posted_rounds(io->posted_rounds);
    loop.set_longest_posted_run(io->longest_posted_run);
  }
}

void fill_runtime_stats(const node_stats_snapshot& s, wire::StatsReply& out) {
  auto& budget = *out.mutable_node_budget();
  budget.set_bytes_in_use(s.budget_in_use);
  budget.set_max_bytes(s.budget_max);
  budget.set_high_water_bytes(s.budget_high_water);
  budget.set_refusals(s.budget_rejections);
  for (auto& k : s.kinds) {
    auto& kind = *out.add_kinds();
    kind.set_kind(k.kind);
    kind.set_actors(k.actors);
    kind.set_accepted(k.accepted);
    kind.set_processed(k.processed);
    kind.set_dropped_on_exit(k.dropped_on_exit);
    fill_by_code(*kind.mutable_rejected(), k.rejected);
    for (size_t l = 1; l < k.rejected_by_limit.size(); ++l)
      if (k.rejected_by_limit[l] > 0)
        (*kind.mutable_rejected_by_limit())[gate_limit_key(k.kind, static_cast<gate_limit>(l))] =
          k.rejected_by_limit[l];
    kind.set_queued_messages(k.queued_messages);
    kind.set_queued_bytes(k.queued_bytes);
    kind.set_max_actor_depth(k.max_actor_depth);
    kind.set_max_actor_bytes(k.max_actor_bytes);
    kind.set_notices_sent(k.notices_sent);
    kind.set_notices_coalesced(k.notices_coalesced);
  }
}

} // namespace levee::net
