// The controller (controller.hpp, README.md "Controller").

#include "broker/controller.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "base/host_port.hpp"
#include "broker/cluster.pb.h"
#include "levee/client.hpp"
#include "limits/defaults.hpp"
#include "limits/log.hpp"
#include "net/wire_text.hpp"

namespace levee::broker {

namespace {

using metadata::command_outcome;

struct controller_state {
  controller_options opts;
  const clock_source* clock = nullptr;
  std::unique_ptr<metadata::raft_node> node;
  forwarder_actor forwarder;
  metadata::metadata_state cache;  // this broker's replica, refreshed at every hand-off
  // Commands submitted and not answered, by what they are for ("register 2"): one at a
  // time each, so a slow commit does not pile up copies. Dropped after a session timeout
  // (an answer lost to a full mailbox must not block that key forever).
  std::map<std::string, int64_t> proposing;
  // Leader only: when each broker's heartbeat last came (ns, the clock's), and since when
  // this broker serves as leader (0: not serving). Brokers not heard from since the
  // leadership began count from its start, so a new leader gives everyone a full session.
  std::map<uint64_t, int64_t> last_heard;
  int64_t serving_since = 0;
  // Follower: the leader's view from its last heartbeat reply, and when that came.
  std::map<uint64_t, uint64_t> leader_view_ms;
  int64_t leader_view_at = 0;
  bool heartbeat_in_flight = false;
  bool registered = false;  // this broker is alive at its address in the metadata
  bool stopping = false;
  // Stream metadata proposals (the broker's, the ISR changes, forwarded ones): each waits
  // for its outcome under a ticket, then (when `local_apply`) until this broker's own state
  // applied it. Bounded by max_pending_commands; dropped with unavailable after a session.
  struct proposal {
    std::function<void(uint64_t, const caf::error&)> done;
    int64_t since = 0;
    uint64_t applied_at = 0;  // set: waiting for the local state to reach it
  };
  std::map<uint64_t, proposal> proposals;
  uint64_t next_ticket = 1;
  forwarder_actor proposal_forwarder;  // a second one: a create must not wait behind heartbeats
  broker_actor watcher;               // told every applied state (metadata_atom)
  uint64_t told_applied = 0;
  bool told = false;
  // The cursors (README.md "Cursors in the metadata") are not in `cache` (a copy per
  // hand-off would cost O(cursors)): the watcher's table is told the applied commits and
  // deletes, in order, through entry `cursors_at`; the whole table once at first and after
  // a resync.
  uint64_t cursors_at = 0;
  bool cursors_told = false;
  forwarder_actor cursor_forwarder;  // a third one: commits must not delay creates or ISR changes
  // Membership (README.md "Adding and removing brokers"), leader only: one change at a
  // time ("adding broker 4"; "" when none), answered by member_changed_atom under a ticket.
  std::string changing;
  int64_t changing_since = 0;
  std::map<uint64_t, std::function<void(const caf::error&)>> member_changes;
  uint64_t next_change = 1;
  bool said_removed = false;  // this broker saw itself removed (said once)

  int64_t now() const { return clock->now_ns(); }
  int64_t session_ns() const { return static_cast<int64_t>(opts.session_timeout_ms) * 1'000'000; }
};

using controller_self = caf::stateful_actor<controller_state, limited<controller_actor::base>>;

/// Heartbeats go out four times per session: three may be lost or late before a broker
/// is marked.
std::chrono::milliseconds tick_interval(const controller_options& o) {
  return std::chrono::milliseconds{std::max<uint64_t>(50, o.session_timeout_ms / 4)};
}

void run_failover(controller_self* self);
std::optional<metadata::member_info> raft_member_of(controller_self* self, uint64_t id);

/// The entries the broker has been told all of: the metadata view (`cache`) and, once it
/// watches, its cursor table (cursors_at, which may lag the cache until the next drain).
uint64_t told_through(const controller_state& st) {
  return st.cursors_told ? std::min(st.cache.applied_count(), st.cursors_at) : st.cache.applied_count();
}

/// Answers the proposals whose entry this broker's state has applied by now (after the
/// broker was told that state: both go by message, in order).
void answer_applied(controller_self* self) {
  auto& st = self->state;
  for (auto it = st.proposals.begin(); it != st.proposals.end();) {
    auto& p = it->second;
    if (p.applied_at != 0 && told_through(st) >= p.applied_at) {
      auto done = std::move(p.done);
      auto at = p.applied_at;
      it = st.proposals.erase(it);
      done(at, caf::error{});
    } else if (st.now() - p.since > 2 * st.session_ns()) {
      // An outcome lost to a full mailbox, or an entry this node never applies (it
      // stopped): the asker hears so instead of waiting for ever.
      auto done = std::move(p.done);
      it = st.proposals.erase(it);
      done(0, to_error(rejection::of(code::unavailable)
                         .retry_after_ms(static_cast<uint64_t>(st.session_ns() / 1'000'000))
                         .detail("the metadata command's outcome did not come within two "
                                 "sessions; read the metadata (levee cluster) and retry")));
    } else {
      ++it;
    }
  }
}

/// Tells the watcher the cursor commits and stream deletes applied since it was last
/// told, in order (entries at or below cursors_at were told already), or the whole table
/// at first and after a resync (entries the node dropped, a snapshot restored). Sent
/// before the proposals are answered: a commit is answered once this broker's table has it.
void tell_cursors(controller_self* self, const metadata::applied_batch& batch) {
  auto& st = self->state;
  if (!st.watcher)
    return;
  cursor_update u;
  if (batch.resync || !st.cursors_told) {
    auto full = st.node->state_copy();
    u.replace = true;
    for (auto& [k, offset] : full.cursors())
      u.ops.push_back(cursor_op{k.stream, k.partition, k.group, offset, full.applied_count()});
    st.cursors_at = full.applied_count();
    st.cursors_told = true;
  }
  for (auto& e : batch.entries) {
    auto& out = e.outcome;
    if (out.sequence <= st.cursors_at)
      continue;
    st.cursors_at = out.sequence;
    if (out.refusal)
      continue;
    if (auto* c = std::get_if<metadata::commit_cursor>(&out.cmd))
      u.ops.push_back(cursor_op{c->key.stream, c->key.partition, c->key.group, c->offset, out.sequence});
    else if (auto* d = std::get_if<metadata::delete_stream>(&out.cmd))
      u.ops.push_back(cursor_op{d->name, 0, {}, 0, out.sequence});
  }
  if (u.replace || !u.ops.empty())
    self->send(st.watcher, cursors_atom::value, std::move(u));
}

void refresh(controller_self* self) {
  auto& st = self->state;
  // The applied entries say what changed; the cache is small (brokers and streams), so a
  // copy of the whole state keeps the replica exact without re-applying entries here. The
  // cursors are the exception (up to broker.max_cursors of them): taken from the entries.
  auto batch = st.node->drain_applied();
  st.cache = st.node->state_copy_without_cursors();
  tell_cursors(self, batch);
  if (st.watcher && (!st.told || st.told_applied != st.cache.applied_count())) {
    st.told = true;
    st.told_applied = st.cache.applied_count();
    self->send(st.watcher, metadata_atom::value,
               metadata_view{std::make_shared<metadata::metadata_state>(st.cache)});
  }
  answer_applied(self);
  if (st.serving_since != 0)
    run_failover(self);
  auto b = st.cache.brokers().find(st.opts.id);
  bool now_registered = b != st.cache.brokers().end() && b->second.address == st.opts.advertise
                        && b->second.state == metadata::broker_state::alive;
  if (now_registered && !st.registered) {
    std::printf("levee broker: broker %llu registered in the metadata cluster as %s\n",
                static_cast<unsigned long long>(st.opts.id), st.opts.advertise.c_str());
    std::fflush(stdout);
  }
  st.registered = now_registered;
  if (!st.said_removed && st.cache.removed_brokers().count(st.opts.id) != 0) {
    st.said_removed = true;
    LEVEE_ERROR("controller", "broker %llu was removed from the metadata cluster (levee cluster "
                              "remove): it serves no partition and is no longer heard; stop this process",
                static_cast<unsigned long long>(st.opts.id));
  }
}

/// Submits `cmd` unless one for `key` is on its way; the answer comes back as a message.
/// Retries are the caller's next look (a heartbeat, a tick) finding the same need: every
/// command is safe to apply twice (register) or compare-and-set (mark), so a retry after
/// an indeterminate answer cannot apply twice.
bool propose(controller_self* self, const std::string& key, metadata::command cmd) {
  auto& st = self->state;
  auto busy = st.proposing.find(key);
  if (busy != st.proposing.end() && st.now() - busy->second < st.session_ns())
    return false;
  st.proposing[key] = st.now();
  caf::actor_addr me = self->address();
  auto submitted = st.node->submit(std::move(cmd), [me, key](const command_outcome& out) {
    // The loop thread: hand off and return.
    if (auto to = caf::actor_cast<caf::actor>(me))
      caf::anon_send(to, proposed_atom::value, key, static_cast<int32_t>(out.what),
                     out.what == command_outcome::kind::applied
                       ? (out.applied.refusal ? out.applied.refusal->to_string() : std::string{})
                       : out.refusal.to_string());
  });
  if (!submitted.ok()) {
    st.proposing.erase(key);
    LEVEE_WARN("controller", "metadata command (%s): %s", key.c_str(),
               submitted.to_string().c_str());
    return false;
  }
  return true;
}

/// The leader's side of a heartbeat (a forwarded one, or its own): note the time, and
/// register the broker when the metadata does not hold it alive at that address.
void heard_from(controller_self* self, uint64_t id, const std::string& address) {
  auto& st = self->state;
  st.last_heard[id] = st.now();
  auto b = st.cache.brokers().find(id);
  if (b == st.cache.brokers().end() || b->second.address != address
      || b->second.state != metadata::broker_state::alive)
    propose(self, "register " + std::to_string(id), metadata::register_broker{id, address});
}

/// The metadata leader's broker to ask, or why there is none.
std::optional<std::string> leader_client_address(controller_self* self) {
  auto& st = self->state;
  auto leader = st.node->leader();
  if (leader.id == 0 || leader.id == st.opts.id)
    return std::nullopt;  // none yet, or this one before its barrier
  auto b = st.cache.brokers().find(leader.id);
  if (b == st.cache.brokers().end())
    return std::nullopt;  // not registered yet: its client address is unknown
  return b->second.address;
}

caf::error no_leader_yet(const controller_state& st) {
  return to_error(rejection::of(code::unavailable)
                    .retry_after_ms(st.opts.election_timeout_ms)
                    .detail("the metadata cluster has no serving leader yet (an election, or "
                            "too few brokers up for a majority); retry"));
}

/// A stream metadata command (create, delete, change partition): proposed here when this
/// broker serves as the metadata leader, else forwarded to the leader's "cluster". `done`
/// gets the entry's sequence once applied (and, with `local_apply`, once this broker's
/// state applied it too), or the refusal.
void propose_command(controller_self* self, const metadata::command& cmd, bool local_apply,
                     std::function<void(uint64_t, const caf::error&)> done) {
  auto& st = self->state;
  if (st.proposals.size() >= st.opts.max_pending_commands) {
    done(0, to_error(rejection::of(code::too_many_inflight)
                       .limit("metadata.max_pending_commands")
                       .observed(st.proposals.size() + 1)
                       .max(st.opts.max_pending_commands)
                       .retry_after_ms(st.opts.election_timeout_ms / 10 + 1)
                       .detail("metadata commands waiting for their outcome at this broker")));
    return;
  }
  uint64_t ticket = st.next_ticket++;
  std::optional<cursor_op> commit;
  if (auto* c = std::get_if<metadata::commit_cursor>(&cmd); c && local_apply)
    commit = cursor_op{c->key.stream, c->key.partition, c->key.group, c->offset, 0};
  st.proposals[ticket] = controller_state::proposal{
    [local_apply, self, ticket, commit, done = std::move(done)](uint64_t at, const caf::error& err) mutable {
      if (err || !local_apply || at == 0)
        return done(at, err);
      auto& st = self->state;
      if (commit && st.watcher && told_through(st) < at) {
        // Committed: the broker's table takes it now (marked with its entry, so the
        // older entries this node applies later do not undo it). A follower learns the
        // commit index only with the leader's next append or heartbeat, which a commit
        // answered after the local apply would wait for.
        commit->sequence = at;
        cursor_update u;
        u.early = true;
        u.ops.push_back(std::move(*commit));
        self->send(st.watcher, cursors_atom::value, std::move(u));
        return done(at, err);
      }
      // Applied on the leader: wait for this broker's own state (answer_applied).
      st.proposals[ticket] = controller_state::proposal{done, st.now(), at};
      refresh(self);
    },
    st.now(), 0};
  caf::actor_addr me = self->address();
  if (st.node->serving_as_leader()) {
    auto submitted = st.node->submit(cmd, [me, ticket](const command_outcome& out) {
      // The loop thread: hand off and return.
      auto to = caf::actor_cast<caf::actor>(me);
      if (!to)
        return;
      if (out.what == command_outcome::kind::applied && !out.applied.refusal)
        caf::anon_send(to, answered_atom::value, ticket, out.applied.sequence, caf::error{});
      else if (out.what == command_outcome::kind::applied)
        caf::anon_send(to, answered_atom::value, ticket, uint64_t{0}, to_error(*out.applied.refusal));
      else
        caf::anon_send(to, answered_atom::value, ticket, uint64_t{0}, to_error(out.refusal));
    });
    if (!submitted.ok())
      self->send(self, answered_atom::value, ticket, uint64_t{0},
                 to_error(submitted.as_rejection()));
    return;
  }
  auto address = leader_client_address(self);
  if (!address) {
    self->send(self, answered_atom::value, ticket, uint64_t{0}, no_leader_yet(st));
    return;
  }
  cluster::ClusterCall call;
  call.mutable_propose()->set_command(metadata::encode_command(cmd));
  auto& via = std::holds_alternative<metadata::commit_cursor>(cmd) ? st.cursor_forwarder
                                                                     : st.proposal_forwarder;
  self->request(via, tick_interval(st.opts) * 4, forward_atom::value, *address,
                call.SerializeAsString())
    .then(
      [self, ticket](const std::string& answer) {
        cluster::ProposeReply reply;
        if (!reply.ParseFromString(answer) || reply.applied_at() == 0)
          return self->send(self, answered_atom::value, ticket, uint64_t{0},
                            to_error(rejection::of(code::bad_request)
                                       .detail("the metadata leader's ProposeReply does not "
                                               "parse; run one Levee version in the cluster")));
        self->send(self, answered_atom::value, ticket, reply.applied_at(), caf::error{});
      },
      [self, ticket](caf::error& err) {
        self->send(self, answered_atom::value, ticket, uint64_t{0}, err);
      });
}

/// Leader only: elects a new leader from the ISR for every partition whose leader is not
/// alive, and drops brokers that are not alive from ISRs (metadata::failover_changes): one
/// compare-and-set change each, at most one in flight per partition.
void run_failover(controller_self* self) {
  for (auto& change : metadata::failover_changes(self->state.cache)) {
    auto key = "partition " + change.stream + "/" + std::to_string(change.partition);
    auto leader = change.leader;
    auto isr = change.isr.size();
    if (propose(self, key, std::move(change))) {
      LEVEE_INFO("controller", "failover of %s: leader %llu%s, ISR of %zu",
                 key.c_str(), static_cast<unsigned long long>(leader), leader == 0 ? " (offline)" : "",
                 isr);
    }
  }
}

cluster::HeartbeatReply leader_view(controller_self* self) {
  auto& st = self->state;
  cluster::HeartbeatReply out;
  for (auto& [id, at] : st.last_heard) {
    auto* s = out.add_seen();
    s->set_id(id);
    s->set_ms_ago(static_cast<uint64_t>(std::max<int64_t>(0, st.now() - at) / 1'000'000));
  }
  return out;
}

/// Leader only: marks every alive broker not heard from for a whole session.
void expire_sessions(controller_self* self) {
  auto& st = self->state;
  if (st.now() - st.serving_since < st.session_ns())
    return;  // a new leader waits one session before judging anybody
  for (auto& [id, b] : st.cache.brokers()) {
    if (id == st.opts.id || b.state != metadata::broker_state::alive)
      continue;
    auto heard = st.last_heard.find(id);
    int64_t since = heard == st.last_heard.end() ? st.serving_since : heard->second;
    if (st.now() - since >= st.session_ns())
      propose(self, "mark " + std::to_string(id),
              metadata::mark_broker{id, b.epoch, metadata::broker_state::unreachable});
  }
}

void send_heartbeat(controller_self* self) {
  auto& st = self->state;
  if (st.serving_since != 0) {
    heard_from(self, st.opts.id, st.opts.advertise);
    return;
  }
  if (st.heartbeat_in_flight)
    return;
  // No leader yet, or this one before its barrier, or the leader not registered: the next
  // tick tries again.
  auto address = leader_client_address(self);
  if (!address)
    return;
  cluster::ClusterCall call;
  call.mutable_heartbeat()->set_broker_id(st.opts.id);
  call.mutable_heartbeat()->set_address(st.opts.advertise);
  st.heartbeat_in_flight = true;
  // The forwarder waits session/2 for the answer (a loaded machine answers late, and a
  // heartbeat given up on too soon expires a live broker's session); this bound is longer.
  self->request(st.forwarder, tick_interval(st.opts) * 3, forward_atom::value, *address,
                call.SerializeAsString())
    .then(
      [self](const std::string& answer) {
        auto& st = self->state;
        st.heartbeat_in_flight = false;
        cluster::HeartbeatReply reply;
        if (!reply.ParseFromString(answer))
          return;
        st.leader_view_ms.clear();
        // Clamped to a day: ms_ago comes off the wire and is added to below.
        for (auto& s : reply.seen())
          st.leader_view_ms[s.id()] = std::min<uint64_t>(s.ms_ago(), 86'400'000);
        st.leader_view_at = st.now();
      },
      [self](caf::error&) {
        // Not the leader any more, or unreachable: the next tick asks the leader it knows
        // then. Not logged: during an election every follower would say so each tick.
        self->state.heartbeat_in_flight = false;
      });
}

void on_tick(controller_self* self) {
  auto& st = self->state;
  refresh(self);
  bool serving = st.node->serving_as_leader();
  if (serving && st.serving_since == 0) {
    st.serving_since = st.now();
    st.last_heard.clear();
  } else if (!serving) {
    st.serving_since = 0;
  }
  send_heartbeat(self);
  if (serving)
    expire_sessions(self);
}

std::string cluster_info(controller_self* self) {
  auto& st = self->state;
  refresh(self);
  cluster::ClusterInfo out;
  out.set_clustered(true);
  out.set_broker_id(st.opts.id);
  auto leader = st.node->leader();
  out.set_leader_id(leader.id);
  out.set_leader_raft_address(leader.address);
  if (auto b = st.cache.brokers().find(leader.id); b != st.cache.brokers().end())
    out.set_leader_address(b->second.address);
  out.set_serving_as_leader(st.node->serving_as_leader());
  out.set_applied_index(st.cache.applied_count());
  out.set_term(st.node->term());
  out.set_chain_head(metadata::short_hex(st.cache.chain_head()));
  if (auto h = st.node->health(); !h.ok())
    out.set_health(h.to_string());
  for (auto& [id, b] : st.cache.brokers()) {
    auto* m = out.add_brokers();
    m->set_id(id);
    m->set_address(b.address);
    m->set_state(metadata::to_string(b.state));
    m->set_epoch(b.epoch);
    int64_t ago = -1;
    if (st.serving_since != 0) {
      auto h = st.last_heard.find(id);
      if (h != st.last_heard.end())
        ago = (st.now() - h->second) / 1'000'000;
    } else if (auto v = st.leader_view_ms.find(id); v != st.leader_view_ms.end()) {
      ago = static_cast<int64_t>(v->second) + (st.now() - st.leader_view_at) / 1'000'000;
    }
    m->set_last_seen_ms_ago(ago);
    if (auto rm = raft_member_of(self, id)) {
      m->set_raft_role(metadata::to_string(rm->role));
      m->set_raft_address(rm->address);
    }
  }
  for (auto& rm : st.node->members()) {
    auto* m = out.add_members();
    m->set_id(rm.id);
    m->set_raft_address(rm.address);
    m->set_role(metadata::to_string(rm.role));
    m->set_registered(st.cache.brokers().count(rm.id) != 0);
  }
  for (auto& [name, s] : st.cache.streams()) {
    auto* m = out.add_streams();
    m->set_name(name);
    m->set_replication_factor(s.replication_factor);
    m->set_min_insync_replicas(s.min_insync_replicas);
    for (size_t i = 0; i < s.partitions.size(); ++i) {
      auto& p = s.partitions[i];
      auto* pm = m->add_partitions();
      pm->set_partition(static_cast<uint32_t>(i));
      pm->set_leader(p.leader);
      for (auto r : p.replicas)
        pm->add_replicas(r);
      for (auto r : p.isr)
        pm->add_isr(r);
      pm->set_leader_epoch(p.leader_epoch);
      pm->set_partition_epoch(p.partition_epoch);
      if (st.opts.gauges) {
        std::lock_guard<std::mutex> guard{st.opts.gauges->mu};
        auto g = st.opts.gauges->partitions.find({name, static_cast<uint32_t>(i)});
        if (g != st.opts.gauges->partitions.end() && g->second) {
          pm->set_local_replica(true);
          pm->set_high_water(g->second->high_water.load());
          pm->set_log_end_offset(g->second->next_offset.load());
        }
      }
    }
  }
  return out.SerializeAsString();
}

caf::result<std::string> parse_call(const std::string& payload, cluster::ClusterCall& call) {
  if (auto refused = net::check_text_fields(*cluster::ClusterCall::descriptor(), payload))
    return to_error(*refused);
  if (!call.ParseFromString(payload) || call.kind_case() == cluster::ClusterCall::KIND_NOT_SET)
    return to_error(rejection::of(code::bad_request)
                      .detail("a ClusterCall that does not parse or names no call; send one "
                              "built from broker/cluster.proto"));
  return std::string{};
}

/// Another broker's stream metadata command (ClusterCall.propose): only the kinds a broker
/// decides (create, delete, change partition), only on the serving leader.
caf::result<std::string> propose_from_wire(controller_self* self, const cluster::Propose& p) {
  auto& st = self->state;
  auto cmd = metadata::decode_command(p.command(), "the proposed command");
  if (!cmd)
    return to_error(rejection::of(code::bad_request).detail(cmd.error().message()));
  // remove_broker too: it goes with the Raft group's change (ClusterCall.remove_broker).
  if (std::holds_alternative<metadata::register_broker>(cmd.value())
      || std::holds_alternative<metadata::mark_broker>(cmd.value())
      || std::holds_alternative<metadata::remove_broker>(cmd.value()))
    return to_error(rejection::of(code::bad_request)
                      .detail("brokers are registered, marked and removed by the metadata leader "
                              "itself (heartbeats, ClusterCall.remove_broker); propose create_stream, "
                              "delete_stream, change_partition or commit_cursor"));
  if (!st.node->serving_as_leader())
    return to_error(rejection::of(code::not_leader)
                      .retry_after_ms(st.opts.election_timeout_ms)
                      .detail("broker " + std::to_string(st.opts.id)
                              + " does not serve as the metadata leader (any more); ask the "
                                "leader the metadata names"));
  auto rp = self->make_response_promise<std::string>();
  propose_command(self, cmd.value(), false, [rp](uint64_t at, const caf::error& err) mutable {
    if (err) {
      rp.deliver(err);
      return;
    }
    cluster::ProposeReply reply;
    reply.set_applied_at(at);
    rp.deliver(reply.SerializeAsString());
  });
  return rp;
}

// -- membership (README.md "Adding and removing brokers") --------------------------------

/// This broker's member entry of the Raft group for `id`, as its raft_node knows it.
std::optional<metadata::member_info> raft_member_of(controller_self* self, uint64_t id) {
  for (auto& m : self->state.node->members())
    if (m.id == id)
      return m;
  return std::nullopt;
}

/// A membership change not answered within this is forgotten (an answer lost to a full
/// mailbox must not block every later change): the join's own bound.
int64_t membership_change_ns() {
  return static_cast<int64_t>(defaults::broker_join_timeout_ms) * 1'000'000;
}

/// Refused on a broker that does not serve as the metadata leader: not_leader with the
/// leader's client address as the hint (the CLI and a joining broker follow it), or
/// unavailable while there is none.
caf::error not_the_leader(controller_self* self, const std::string& what) {
  auto& st = self->state;
  auto address = leader_client_address(self);
  if (!address)
    return no_leader_yet(st);
  return to_error(rejection::of(code::not_leader)
                    .leader_hint(*address)
                    .detail("broker " + std::to_string(st.opts.id) + " does not lead the metadata; "
                            + what + " at the leader, broker " + std::to_string(st.node->leader().id)
                            + " at " + *address));
}

/// Starts one membership change (`what`, for the log and a refusal) unless one runs;
/// `done` gets its end. Refused with unavailable and a retry while another runs: libraft
/// takes one configuration change at a time, and a removal is two steps (the metadata,
/// then the group) that must not interleave with another change.
std::optional<caf::error> begin_change(controller_self* self, const std::string& what) {
  auto& st = self->state;
  if (!st.changing.empty() && st.now() - st.changing_since < membership_change_ns())
    return to_error(rejection::of(code::unavailable)
                      .retry_after_ms(st.opts.election_timeout_ms)
                      .detail("another membership change (" + st.changing + ") is in progress; "
                              "one runs at a time: retry once it ended"));
  st.changing = what;
  st.changing_since = st.now();
  return std::nullopt;
}

void end_change(controller_self* self, const caf::error& err) {
  auto& st = self->state;
  if (err) {
    auto r = rejection_from(err);
    LEVEE_ERROR("controller", "%s failed: %s", st.changing.c_str(),
                r ? r->to_string().c_str() : self->system().render(err).c_str());
  } else {
    std::printf("levee broker: %s: done\n", st.changing.c_str());
    std::fflush(stdout);
  }
  st.changing.clear();
}

/// Hands one Raft membership change to the raft_node; `done` gets its end on this actor.
void change_members(controller_self* self, bool add, metadata::raft_member m,
                    std::function<void(const caf::error&)> done) {
  auto& st = self->state;
  uint64_t ticket = st.next_change++;
  st.member_changes[ticket] = std::move(done);
  caf::actor_addr me = self->address();
  auto answer = [me, ticket](const status& s) {
    // The loop thread: hand off and return.
    if (auto to = caf::actor_cast<caf::actor>(me))
      caf::anon_send(to, member_changed_atom::value, ticket,
                     s.ok() ? caf::error{} : to_error(s.as_rejection()));
  };
  auto submitted = add ? st.node->add_member(std::move(m), answer) : st.node->remove_member(m.id, answer);
  if (!submitted.ok())
    self->send(self, member_changed_atom::value, ticket, to_error(submitted.as_rejection()));
}

/// ClusterCall.join, on the serving leader: adds the broker to the Raft group (a spare
/// first, a voter once libraft caught it up); it registers itself by its first heartbeat.
caf::result<std::string> join_from_wire(controller_self* self, const cluster::Join& j) {
  auto& st = self->state;
  if (!st.node->serving_as_leader())
    return not_the_leader(self, "ask to join");
  refresh(self);
  const uint64_t id = j.broker_id();
  const std::string who = "broker " + std::to_string(id);
  if (id == 0)
    return to_error(rejection::of(code::bad_request).detail("broker id 0 is reserved; give the new broker a broker.id from 1"));
  if (auto s = metadata::check_raft_address(j.raft_address(), "the new broker's broker.raft_listen"); !s.ok())
    return to_error(rejection::of(code::bad_request).detail(s.message()));
  if (st.cache.removed_brokers().count(id) != 0)
    return to_error(rejection::of(code::precondition_failed)
                      .detail(who + " was removed from the cluster and its id is not reused; give the "
                              "new broker another broker.id (and an empty data_dir)"));
  auto reply = [&st] {
    cluster::JoinReply out;
    out.set_leader_id(st.opts.id);
    uint32_t voters = 0;
    for (auto& m : st.node->members())
      voters += m.role == metadata::member_role::voter ? 1 : 0;
    out.set_voters(voters);
    return out.SerializeAsString();
  };
  for (auto& m : st.node->members()) {
    if (m.id == id && m.address == j.raft_address() && m.role == metadata::member_role::voter)
      return reply();  // added already: the new broker asking again after a lost answer
    if (m.id == id)
      return to_error(rejection::of(code::precondition_failed)
                        .detail(who + " is a member of the metadata group already (Raft address " + m.address
                                + ", " + metadata::to_string(m.role) + "); give the new broker an id no member "
                                "has (levee cluster lists them), or, if this is that broker restarted with an "
                                "empty data_dir, remove it first (levee cluster remove " + std::to_string(id)
                                + ")"));
    if (m.address == j.raft_address())
      return to_error(rejection::of(code::precondition_failed)
                        .detail("Raft address " + m.address + " is broker " + std::to_string(m.id)
                                + "'s; give the new broker a broker.raft_listen of its own"));
  }
  if (auto busy = begin_change(self, "adding " + who + " (Raft " + j.raft_address() + ", clients "
                                       + j.address() + ")"))
    return *busy;
  auto rp = self->make_response_promise<std::string>();
  change_members(self, true, metadata::raft_member{id, j.raft_address()},
                 [self, rp, reply](const caf::error& err) mutable {
                   end_change(self, err);
                   if (err)
                     rp.deliver(err);
                   else
                     rp.deliver(reply());
                 });
  return rp;
}

/// ClusterCall.remove_broker, on the serving leader: the metadata first (the state machine
/// refuses while the broker is a replica of any partition, and keeps its id from being
/// registered again), then the Raft group. A broker that is a Raft member only (a join that
/// never registered, a removal whose second step failed) skips the first step.
caf::result<std::string> remove_from_wire(controller_self* self, const cluster::RemoveBroker& r) {
  auto& st = self->state;
  if (!st.node->serving_as_leader())
    return not_the_leader(self, "remove a broker");
  refresh(self);
  const uint64_t id = r.broker_id();
  const std::string who = "broker " + std::to_string(id);
  if (id == st.opts.id) {
    // The leader does not take itself out of the group (libraft 0.15 would lead a group it
    // is no member of until the change commits): it hands leadership over first, and the
    // asker retries at the new leader (levee cluster remove does).
    if (auto handed = st.node->transfer_leadership([](const status&) {}); !handed.ok())
      return to_error(handed.as_rejection());
    std::printf("levee broker: %s leads the metadata and is to be removed: handing the leadership over\n",
                who.c_str());
    std::fflush(stdout);
    return to_error(rejection::of(code::unavailable)
                      .retry_after_ms(st.opts.election_timeout_ms)
                      .detail(who + " leads the metadata group: it hands the leadership to another voter "
                              "first; retry, and the new leader removes it"));
  }
  bool in_metadata = st.cache.brokers().count(id) != 0;
  bool in_group = raft_member_of(self, id).has_value();
  if (!in_metadata && !in_group)
    return to_error(rejection::of(code::not_found)
                      .detail(st.cache.removed_brokers().count(id) != 0
                                ? who + " was removed already"
                                : "no " + who + " in the cluster; levee cluster lists the brokers"));
  if (auto busy = begin_change(self, "removing " + who))
    return *busy;
  auto rp = self->make_response_promise<std::string>();
  // Second step: out of the Raft group (if it is still a member), then the answer.
  auto from_group = [self, id, rp](uint64_t applied_at) mutable {
    auto answer = [self, id, rp, applied_at](const caf::error& err) mutable {
      end_change(self, err);
      if (err) {
        rp.deliver(err);
        return;
      }
      self->state.last_heard.erase(id);
      cluster::RemoveBrokerReply out;
      out.set_applied_at(applied_at);
      rp.deliver(out.SerializeAsString());
    };
    if (!raft_member_of(self, id)) {
      answer(caf::error{});
      return;
    }
    change_members(self, false, metadata::raft_member{id, ""}, std::move(answer));
  };
  if (!in_metadata) {
    from_group(0);
    return rp;
  }
  propose_command(self, metadata::remove_broker{id}, false,
                  [self, rp, from_group](uint64_t at, const caf::error& err) mutable {
                    if (err) {
                      end_change(self, err);
                      rp.deliver(err);
                      return;
                    }
                    from_group(at);
                  });
  return rp;
}

controller_actor::behavior_type controller(controller_self* self) {
  self->delayed_send(self, tick_interval(self->state.opts), tick_atom::value);
  return {
    [self](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      auto& st = self->state;
      cluster::ClusterCall call;
      if (auto bad = parse_call(payload, call); bad.flag != caf::rt_value)
        return bad;
      if (call.has_info())
        return cluster_info(self);
      if (call.has_propose())
        return propose_from_wire(self, call.propose());
      if (call.has_join())
        return join_from_wire(self, call.join());
      if (call.has_remove_broker())
        return remove_from_wire(self, call.remove_broker());
      // A heartbeat: only the serving leader records it.
      if (!st.node->serving_as_leader()) {
        auto leader = st.node->leader();
        return to_error(rejection::of(code::not_leader)
                          .retry_after_ms(tick_interval(st.opts).count())
                          .detail("broker " + std::to_string(st.opts.id)
                                  + " does not lead the metadata; its leader is "
                                  + (leader.id ? "broker " + std::to_string(leader.id)
                                               : std::string{"not known yet"})));
      }
      // Only members of the Raft group (its configuration, from the log: the initial
      // members and those added since) heartbeat, at an address that parses: an id from the
      // wire is never a new entry in the metadata (nor in last_heard) by itself.
      auto& hb = call.heartbeat();
      if (!raft_member_of(self, hb.broker_id()))
        return to_error(rejection::of(code::bad_request)
                          .detail("broker " + std::to_string(hb.broker_id())
                                  + " is not a member of the metadata group (led by broker "
                                  + std::to_string(st.opts.id)
                                  + "); give every first broker the same raft_members, and add a "
                                    "new one with broker.join"));
      base::host_port hp;
      std::string bad;
      if (!base::parse_host_port("the heartbeat's address", hb.address(), hp, bad))
        return to_error(rejection::of(code::bad_request).detail(bad));
      refresh(self);
      heard_from(self, hb.broker_id(), hb.address());
      return leader_view(self).SerializeAsString();
    },
    [self](applied_atom) { refresh(self); },
    [self](proposed_atom, const std::string& key, int32_t what, const std::string& detail) {
      auto& st = self->state;
      auto kind = static_cast<command_outcome::kind>(what);
      if (kind == command_outcome::kind::applied || kind == command_outcome::kind::refused) {
        st.proposing.erase(key);
      } else {
        // not_leader / indeterminate: the key may be proposed again one tick from now, not
        // at once. A deposed leader that still believed it served (one resumed after
        // SIGSTOP) proposed, was refused, refreshed and proposed again in a loop, flooding
        // its log until its output pipe filled and the node hung.
        auto tick = std::chrono::duration_cast<std::chrono::nanoseconds>(tick_interval(st.opts));
        st.proposing[key] = st.now() - st.session_ns() + tick.count();
      }
      // indeterminate / not_leader: the next tick decides again on what was applied by then.
      if (kind == command_outcome::kind::refused)
        LEVEE_WARN("controller", "metadata command (%s) refused: %s", key.c_str(),
                   detail.c_str());
      refresh(self);
    },
    [self](tick_atom) {
      if (self->state.stopping)
        return;
      on_tick(self);
      self->delayed_send(self, tick_interval(self->state.opts), tick_atom::value);
    },
    [self](isr_atom, const isr_change& c) {
      // A partition leader's ask: compare-and-set at the epoch it decided on. The outcome
      // reaches it as its next partition_role; a refusal (a stale epoch: the metadata moved
      // meanwhile) is only logged, since the leader decides again on the newer role.
      metadata::change_partition cmd{c.stream, c.partition, c.expected_partition_epoch, c.leader,
                                     c.isr};
      auto what = c.stream + "/" + std::to_string(c.partition);
      propose_command(self, cmd, false, [what](uint64_t, const caf::error& err) {
        if (!err)
          return;
        auto r = rejection_from(err);
        if (r && r->code == code::precondition_failed)
          return;  // decided on an older view: the leader has a newer role by now
        LEVEE_WARN("controller", "ISR change of %s: %s", what.c_str(),
                   r ? r->to_string().c_str() : "refused");
      });
    },
    [self](propose_atom, const std::string& bytes) -> caf::result<uint64_t> {
      auto cmd = metadata::decode_command(bytes, "the broker's command");
      if (!cmd)
        return to_error(rejection::of(code::bad_request).detail(cmd.error().message()));
      auto rp = self->make_response_promise<uint64_t>();
      propose_command(self, cmd.value(), true, [rp](uint64_t at, const caf::error& err) mutable {
        if (err)
          rp.deliver(err);
        else
          rp.deliver(at);
      });
      return rp;
    },
    [self](answered_atom, uint64_t ticket, uint64_t at, const caf::error& err) {
      auto& st = self->state;
      auto p = st.proposals.find(ticket);
      if (p == st.proposals.end())
        return;  // answered already (timed out)
      auto done = std::move(p->second.done);
      st.proposals.erase(p);
      if (!err && at == 0)
        return done(0, to_error(rejection::of(code::unavailable).detail("no sequence")));
      if (auto r = rejection_from(err); r && r->code == code::not_leader && r->leader_hint.empty())
        // The leader changed under the proposal: whoever asked retries (after the next
        // election settles), so it is unavailable for now, not a partition's not_leader.
        // (A not_leader with a hint is a partition's: the state machine refused a deposed
        // leader's cursor commit, naming the new leader; it goes to the asker as it is.)
        return done(0, to_error(rejection::of(code::unavailable)
                                  .retry_after_ms(st.opts.election_timeout_ms)
                                  .detail("the metadata leader changed while proposing: " + r->detail
                                          + "; retry")));
      done(at, err);
    },
    [self](member_changed_atom, uint64_t ticket, const caf::error& err) {
      auto& st = self->state;
      auto it = st.member_changes.find(ticket);
      if (it == st.member_changes.end())
        return;  // forgotten after its bound (membership_change_ns)
      auto done = std::move(it->second);
      st.member_changes.erase(it);
      done(err);
    },
    [self](watch_atom, broker_actor b) {
      self->state.watcher = std::move(b);
      self->state.told = false;
      self->state.cursors_told = false;
      refresh(self);
    },
    [self](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      if (st.node)
        st.node->stop();  // joins the loop thread: no callback runs after this
      if (st.forwarder)
        caf::anon_send_exit(st.forwarder, caf::exit_reason::user_shutdown);
      if (st.proposal_forwarder)
        caf::anon_send_exit(st.proposal_forwarder, caf::exit_reason::user_shutdown);
      if (st.cursor_forwarder)
        caf::anon_send_exit(st.cursor_forwarder, caf::exit_reason::user_shutdown);
      for (auto& [ticket, p] : st.proposals)
        if (p.done)
          p.done(0, to_error(rejection::of(code::shutting_down).detail("the broker is stopping")));
      st.proposals.clear();
      self->quit();
      return true;
    },
  };
}

/// The forwarder: one blocking request at a time on its own thread (detached), keeping
/// one connection to the leader it last spoke to. The controller sends it at most one
/// heartbeat at a time, so its mailbox holds at most one message.
forwarder_actor::behavior_type forwarder(forwarder_actor::pointer self, uint64_t timeout_ms) {
  auto conn = std::make_shared<std::unique_ptr<client>>();
  auto at = std::make_shared<std::string>();
  return {
    [=](forward_atom, const std::string& address, const std::string& payload)
      -> caf::result<std::string> {
      base::host_port hp;
      std::string bad;
      if (!base::parse_host_port("leader address", address, hp, bad))
        return to_error(rejection::of(code::bad_request).detail(bad));
      if (!*conn || *at != address) {
        client_options o;
        o.host = hp.host;
        o.port = hp.port;
        o.node_id = "levee-controller";
        o.connect_timeout = std::chrono::milliseconds{timeout_ms};
        *conn = std::make_unique<client>(o);
        *at = address;
      }
      auto r = (*conn)->request("cluster", payload, std::chrono::milliseconds{timeout_ms});
      (void)self;
      if (r.ok())
        return *r.payload;
      auto why = r.rejected.value_or(rejection::of(code::unavailable).detail("no answer"));
      if (why.code == code::unavailable || why.code == code::deadline_exceeded)
        conn->reset();  // a new connection next time
      return to_error(why);
    },
  };
}

} // namespace

result<controller_actor> spawn_controller(caf::actor_system& sys, runtime& rt,
                                          controller_options opts, const clock_source* clock) {
  metadata::raft_node_options ro;
  ro.id = opts.id;
  ro.address = opts.raft_listen;
  ro.data_dir = opts.raft_dir;
  ro.initial_members = opts.members;
  ro.max_pending_commands = opts.max_pending_commands;
  ro.election_timeout_ms = opts.election_timeout_ms;
  ro.heartbeat_timeout_ms = std::max(10u, opts.election_timeout_ms / 10);
  // The node starts before the actor (its errors are start errors); the actor's address
  // reaches its callback through this cell, set once the actor exists. Until then a
  // wake-up is dropped: the actor reads everything at its first tick anyway.
  auto wake = std::make_shared<caf::actor_addr>();
  auto wake_mu = std::make_shared<std::mutex>();
  metadata::raft_node::callbacks cbs;
  cbs.on_applied_ready = [wake, wake_mu] {
    caf::actor to;
    {
      std::lock_guard<std::mutex> guard{*wake_mu};
      to = caf::actor_cast<caf::actor>(*wake);
    }
    // A wake-up the controller's gate refuses (a full mailbox) is not lost for good: the
    // controller drains on every tick too.
    if (to)
      caf::anon_send(to, applied_atom::value);
  };
  auto node = metadata::raft_node::start(std::move(ro), std::move(cbs));
  if (!node)
    return node.error();
  // broker.join: a broker that is not a member yet (its data dir holds no configuration
  // naming it) is added before it serves; a restarted member has its membership from its
  // own log and snapshot and asks nobody.
  bool member = false;
  for (auto& m : (*node)->members())
    member = member || m.id == opts.id;
  if (!opts.join.empty() && !member)
    if (auto joined = join_cluster(opts); !joined.ok())
      return joined;  // the node stops with its destructor
  auto fwd = sys.spawn<caf::detached>(forwarder, std::max<uint64_t>(200, opts.session_timeout_ms / 2));
  auto pfwd = sys.spawn<caf::detached>(forwarder, std::max<uint64_t>(200, opts.session_timeout_ms));
  auto cfwd = sys.spawn<caf::detached>(forwarder, std::max<uint64_t>(200, opts.session_timeout_ms));
  auto ctl = spawn_limited_fun(sys, rt, "controller", placement::worker(),
                               [opts, clock, fwd, pfwd, cfwd, n = std::make_shared<std::unique_ptr<metadata::raft_node>>(
                                                    std::move(node.value()))](controller_self* self) mutable {
                                 self->state.opts = opts;
                                 self->state.clock = clock;
                                 self->state.forwarder = fwd;
                                 self->state.proposal_forwarder = pfwd;
                                 self->state.cursor_forwarder = cfwd;
                                 self->state.node = std::move(*n);
                                 return controller(self);
                               });
  {
    std::lock_guard<std::mutex> guard{*wake_mu};
    *wake = caf::actor_cast<caf::actor_addr>(ctl);
  }
  return ctl;
}

wire_request_target::behavior_type single_broker_cluster_target(limited<wire_request_target::base>* self) {
  (void)self;
  return {
    [](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      cluster::ClusterCall call;
      if (auto bad = parse_call(payload, call); bad.flag != caf::rt_value)
        return bad;
      if (call.has_join() || call.has_remove_broker())
        return to_error(rejection::of(code::bad_request)
                          .detail("this broker runs alone (no broker.raft_listen): it has no metadata "
                                  "cluster to join or remove brokers from; point broker.join at a "
                                  "broker of the cluster"));
      if (call.has_heartbeat())
        return to_error(rejection::of(code::not_leader)
                          .detail("this broker runs alone (no broker.raft_listen): it leads no "
                                  "metadata cluster; check the heartbeating broker's raft_members"));
      cluster::ClusterInfo out;
      out.set_clustered(false);
      return out.SerializeAsString();
    },
  };
}

} // namespace levee::broker
