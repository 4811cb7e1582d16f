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

  int64_t now() const { return clock->now_ns(); }
  int64_t session_ns() const { return static_cast<int64_t>(opts.session_timeout_ms) * 1'000'000; }
};

using controller_self = caf::stateful_actor<controller_state, limited<controller_actor::base>>;

/// Heartbeats go out four times per session: three may be lost or late before a broker
/// is marked.
std::chrono::milliseconds tick_interval(const controller_options& o) {
  return std::chrono::milliseconds{std::max<uint64_t>(50, o.session_timeout_ms / 4)};
}

void refresh(controller_self* self) {
  auto& st = self->state;
  // The applied entries say what changed; the cache is small (brokers and streams), so a
  // copy of the whole state keeps the replica exact without re-applying entries here.
  (void)st.node->drain_applied();
  st.cache = st.node->state_copy();
  auto b = st.cache.brokers().find(st.opts.id);
  bool now_registered = b != st.cache.brokers().end() && b->second.address == st.opts.advertise
                        && b->second.state == metadata::broker_state::alive;
  if (now_registered && !st.registered) {
    std::printf("levee broker: broker %llu registered in the metadata cluster as %s\n",
                static_cast<unsigned long long>(st.opts.id), st.opts.advertise.c_str());
    std::fflush(stdout);
  }
  st.registered = now_registered;
}

/// Submits `cmd` unless one for `key` is on its way; the answer comes back as a message.
/// Retries are the caller's next look (a heartbeat, a tick) finding the same need: every
/// command is safe to apply twice (register) or compare-and-set (mark), so a retry after
/// an indeterminate answer cannot apply twice.
void propose(controller_self* self, const std::string& key, metadata::command cmd) {
  auto& st = self->state;
  auto busy = st.proposing.find(key);
  if (busy != st.proposing.end() && st.now() - busy->second < st.session_ns())
    return;
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
    std::fprintf(stderr, "levee broker: metadata command (%s): %s\n", key.c_str(),
                 submitted.to_string().c_str());
  }
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
  auto leader = st.node->leader();
  if (leader.id == 0 || leader.id == st.opts.id)
    return;  // no leader yet, or this one before its barrier: the next tick tries again
  auto b = st.cache.brokers().find(leader.id);
  if (b == st.cache.brokers().end())
    return;  // the leader has not registered itself yet: its client address is unknown
  cluster::ClusterCall call;
  call.mutable_heartbeat()->set_broker_id(st.opts.id);
  call.mutable_heartbeat()->set_address(st.opts.advertise);
  st.heartbeat_in_flight = true;
  self->request(st.forwarder, tick_interval(st.opts) * 2, forward_atom::value, b->second.address,
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
      // Only the configured members heartbeat, at an address that parses: an id from the
      // wire is never a new entry in the metadata (nor in last_heard) by itself.
      auto& hb = call.heartbeat();
      bool member = false;
      for (auto& m : st.opts.members)
        member = member || m.id == hb.broker_id();
      if (!member)
        return to_error(rejection::of(code::bad_request)
                          .detail("broker " + std::to_string(hb.broker_id())
                                  + " is not in broker.raft_members of broker "
                                  + std::to_string(st.opts.id)
                                  + "; give every broker the same raft_members"));
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
      self->state.proposing.erase(key);
      auto kind = static_cast<command_outcome::kind>(what);
      // indeterminate / not_leader: the next tick decides again on what was applied by then.
      if (kind == command_outcome::kind::refused)
        std::fprintf(stderr, "levee broker: metadata command (%s) refused: %s\n", key.c_str(),
                     detail.c_str());
      refresh(self);
    },
    [self](tick_atom) {
      if (self->state.stopping)
        return;
      on_tick(self);
      self->delayed_send(self, tick_interval(self->state.opts), tick_atom::value);
    },
    [](isr_atom, const isr_change& c) {
      // Issue 16 (replication) proposes these; until then no leader sends one.
      std::fprintf(stderr, "levee broker: ISR change for %s/%u not proposed yet\n",
                   c.stream.c_str(), c.partition);
    },
    [self](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      if (st.node)
        st.node->stop();  // joins the loop thread: no callback runs after this
      if (st.forwarder)
        caf::anon_send_exit(st.forwarder, caf::exit_reason::user_shutdown);
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
  auto fwd = sys.spawn<caf::detached>(forwarder, std::max<uint64_t>(200, opts.session_timeout_ms / 4));
  auto ctl = spawn_limited_fun(sys, rt, "controller", placement::worker(),
                               [opts, clock, fwd, n = std::make_shared<std::unique_ptr<metadata::raft_node>>(
                                                    std::move(node.value()))](controller_self* self) mutable {
                                 self->state.opts = opts;
                                 self->state.clock = clock;
                                 self->state.forwarder = fwd;
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
