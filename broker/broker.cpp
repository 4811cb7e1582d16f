// The broker actor: the stream table, its leaders, and the wire's BrokerCall dispatch
// (broker.hpp). Publish, subscribe and cursors are in broker_calls.cpp.

#include "broker/broker.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/message_size.hpp"
#include "broker/broker_state.hpp"
#include "broker/leader.hpp"
#include "broker/wire_convert.hpp"
#include "limits/log.hpp"
#include "net/wire_text.hpp"

namespace levee::broker {

caf::error refuse(broker_self* self, const rejection& r) {
  self->state.setup.stats->count(r);
  return to_error(r);
}

caf::error refuse(broker_self* self, code c, std::string detail) {
  return refuse(self, rejection::of(c).detail(std::move(detail)));
}

stream_entry* find_stream(broker_self* self, const std::string& name, bool internal) {
  if (!internal && is_internal_stream(name))
    return nullptr;
  auto it = self->state.streams.find(name);
  return it == self->state.streams.end() || it->second.deleting ? nullptr : &it->second;
}

namespace {

using namespace std::chrono;

} // namespace

stream_entry start_leaders(broker_self* self, streams::stream& s,
                           const std::function<bool(uint32_t)>& only) {
  auto& st = self->state;
  stream_entry entry;
  entry.stream = &s;
  auto limits = streams::effective_limits(s.config(), st.rt->config().for_kind("stream"));
  // The broker is a leader's one requester: every publish of every connection reaches the
  // leader as the broker's request, so a per-requester bound below the mailbox's would
  // refuse a pipelining publisher the mailbox has room for. The mailbox bounds it.
  limits.max_inflight_per_requester =
    std::max(limits.max_inflight_per_requester, limits.mailbox_capacity);
  for (uint32_t p = 0; p < s.partition_count(); ++p) {
    partition_entry pe;
    if (only && !only(p)) {  // clustered: no replica here
      entry.partitions.push_back(std::move(pe));
      continue;
    }
    auto log = s.partition(p);
    if (!log) {
      pe.problem = log.error().to_string();
      entry.partitions.push_back(std::move(pe));
      continue;
    }
    pe.gauges = std::make_shared<partition_gauges>();
    fill_gauges(**log, *pe.gauges);
    pe.log = *log;
    leader_setup ls;
    ls.log = *log;
    ls.keep_alive = st.setup.catalog;
    ls.stream = s.config().name;
    ls.partition = p;
    ls.max_subscriptions = st.setup.limits.max_subscriptions_per_partition;
    ls.maintenance_interval_ms = st.setup.limits.maintenance_interval_ms;
    ls.consumer = st.setup.limits.consumer;
    ls.gauges = pe.gauges;
    ls.stats = st.setup.stats;
    ls.clock = st.setup.clock;
    ls.controller = st.setup.controller;
    ls.replication = st.setup.limits.replication;
    ls.node_id = "levee-broker-" + std::to_string(st.setup.broker_id);
    pe.leader = spawn_leader(self->system(), *st.rt, limits, std::move(ls));
    if (st.setup.gauges) {
      std::lock_guard<std::mutex> guard{st.setup.gauges->mu};
      st.setup.gauges->partitions[{s.config().name, p}] = pe.gauges;
    }
    entry.partitions.push_back(std::move(pe));
  }
  return entry;
}

void count_streams(broker_state& st) {
  uint64_t streams = 0, partitions = 0;
  for (auto& [name, e] : st.streams)
    if (!is_internal_stream(name)) {
      ++streams;
      partitions += e.partitions.size();
    }
  st.setup.stats->streams.store(streams);
  st.setup.stats->partitions.store(partitions);
}

namespace {

std::string info_of(const stream_entry& e) {
  wire::StreamInfo info;
  config_to_wire(e.stream->config(), *info.mutable_config(), e.replication_factor,
                 e.min_insync_replicas);
  for (uint32_t p = 0; p < e.partitions.size(); ++p)
    partition_to_wire(p, e.partitions[p].gauges.get(), e.partitions[p].problem,
                      *info.add_partitions());
  return info.SerializeAsString();
}

} // namespace

void stop_leaders(broker_self* self, stream_entry& e, bool deleted,
                  std::function<void(bool)> done) {
  std::vector<leader_actor> leaders;
  for (auto& p : e.partitions)
    if (p.leader)
      leaders.push_back(p.leader);
  if (auto& board = self->state.setup.gauges) {
    std::lock_guard<std::mutex> guard{board->mu};
    for (uint32_t p = 0; p < e.partitions.size(); ++p)
      board->partitions.erase({e.stream->config().name, p});
  }
  if (leaders.empty()) {
    done(true);
    return;
  }
  struct gather {
    size_t left;
    bool ok = true;
    std::function<void(bool)> done;
  };
  auto g = std::make_shared<gather>(gather{leaders.size(), true, std::move(done)});
  for (auto& l : leaders)
    self->request(l, caf::infinite, stop_atom::value, deleted)
      .then(
        [g](bool synced) {
          g->ok = g->ok && synced;
          if (--g->left == 0)
            g->done(g->ok);
        },
        [g](caf::error&) {  // already gone: nothing of it is running
          if (--g->left == 0)
            g->done(g->ok);
        });
}

/// Clustered: a metadata command of this broker (create, delete, a cursor commit) through
/// the controller; `applied` runs once this broker applied it (it was told that state
/// first), a refusal of the state machine is the answer.
caf::result<std::string> propose(broker_self* self, const metadata::command& cmd,
                                 std::function<std::optional<std::string>()> applied) {
  auto rp = self->make_response_promise<std::string>();
  self->request(self->state.setup.controller, caf::infinite, propose_atom::value,
                metadata::encode_command(cmd))
    .then(
      [self, rp, applied](uint64_t) mutable {
        if (auto out = applied()) {
          rp.deliver(std::move(*out));
          return;
        }
        rp.deliver(refuse(self, rejection::of(code::unavailable)
                                  .retry_after_ms(100)
                                  .detail("applied in the metadata, but this broker's copy is "
                                          "not ready yet (an older copy still being deleted, "
                                          "or its directory failed: see the broker's log); "
                                          "retry")));
      },
      [self, rp](caf::error& err) mutable {
        auto r = rejection_from(err);
        rp.deliver(r ? refuse(self, *r) : err);
      });
  return rp;
}

namespace {

caf::result<std::string> create_stream(broker_self* self, const wire::CreateStream& req) {
  auto& st = self->state;
  if (is_internal_stream(req.name()))
    return refuse(self, code::bad_request,
                  "stream names starting with '__' are the broker's own; choose another name");
  auto cfg = config_from_wire(req, st.setup.settings.defaults);
  if (!cfg)
    return refuse(self, cfg.error().as_rejection());
  // 0 takes [stream]'s defaults on a cluster (a broker alone keeps one copy); a default
  // min ISR above the factor asked is lowered to it, a min ISR asked above it is refused.
  auto& set = st.setup.settings;
  uint32_t rf = req.replication_factor() != 0 ? req.replication_factor()
                : st.clustered()              ? static_cast<uint32_t>(set.replication_factor)
                                              : 1;
  uint32_t min_isr = req.min_insync_replicas() != 0
                       ? req.min_insync_replicas()
                       : std::min<uint32_t>(rf, st.clustered()
                                                  ? static_cast<uint32_t>(set.min_insync_replicas)
                                                  : 1);
  if (!st.clustered() && (rf > 1 || min_isr > 1))
    return refuse(self, code::bad_request,
                  "replication_factor and min_insync_replicas must be 0 or 1: this broker runs "
                  "alone (no broker.raft_listen) and keeps one copy; run a cluster of brokers "
                  "(scripts/cluster) for more");
  if (min_isr > rf)
    return refuse(self, rejection::of(code::bad_request)
                          .observed(min_isr)
                          .max(rf)
                          .detail("min_insync_replicas " + std::to_string(min_isr)
                                  + " is above the replication_factor " + std::to_string(rf)
                                  + "; lower it or raise the factor"));
  if (st.clustered()) {
    // Checked here, before the metadata: the state machine trusts its proposers' configs.
    if (auto ok = streams::validate(*cfg, st.setup.settings.subjects); !ok)
      return refuse(self, ok.as_rejection());
    auto name = cfg->name;
    return propose(self, metadata::create_stream{*cfg, rf, min_isr},
                   [self, name]() -> std::optional<std::string> {
                     auto* e = find_stream(self, name);
                     if (e == nullptr || !e->in_metadata)
                       return std::nullopt;
                     return info_of(*e);
                   });
  }
  auto s = st.setup.catalog->create(*cfg);
  if (!s)
    return refuse(self, s.error().as_rejection());
  auto& entry = st.streams[cfg->name] = start_leaders(self, **s);
  count_streams(st);
  return info_of(entry);
}

} // namespace

/// A deleted stream's cursors go from memory and get tombstones in `__cursors`, so a
/// stream created again under the name starts without them, after a restart too. A
/// tombstone that fails to be written is logged: the cursor would come back at a restart.
void forget_cursors(broker_self* self, const std::string& stream) {
  if (self->state.clustered())
    return;  // the metadata's cursor updates, in order with the commits after the delete
  auto keys = self->state.cursors->forget_stream(stream);
  auto* internal = find_stream(self, std::string{cursor_stream_name}, true);
  if (keys.empty() || internal == nullptr || !internal->partitions[0].leader)
    return;
  append_batch tombstones;
  for (auto& k : keys)
    tombstones.messages.push_back(owned_message{k, {}, {}, {}});
  self->request(internal->partitions[0].leader, caf::infinite, append_atom::value,
                std::move(tombstones))
    .then([](append_acks&) {},
          [self, stream](caf::error& err) {
            auto r = rejection_from(err).value_or(rejection::of(code::storage_error));
            self->state.setup.stats->count(r);
            if (self->state.log->admit())
              self->state.log->write("broker: the cursors of deleted stream " + stream, r);
          });
}

namespace {

caf::result<std::string> delete_stream(broker_self* self, const wire::DeleteStream& req) {
  auto& st = self->state;
  auto name = req.name();
  if (is_internal_stream(name))
    return refuse(self, code::bad_request,
                  "stream " + name + " is the broker's own and cannot be deleted");
  if (st.clustered()) {
    // Once applied, every broker deletes its copy (apply_metadata); this one already
    // started when the answer comes.
    wire::StreamDeleted answer;
    answer.set_name(name);
    return propose(self, metadata::delete_stream{name},
                   [answer]() -> std::optional<std::string> { return answer.SerializeAsString(); });
  }
  auto it = st.streams.find(name);
  wire::StreamDeleted answer;
  answer.set_name(name);
  if (it == st.streams.end()) {
    // Not loaded (damaged catalog file) or not there: the catalog knows.
    if (auto removed = st.setup.catalog->remove(name); !removed)
      return refuse(self, removed.as_rejection());
    return answer.SerializeAsString();
  }
  if (it->second.deleting)
    return refuse(self, code::not_found, "stream " + name + " is being deleted");
  it->second.deleting = true;
  auto rp = self->make_response_promise<std::string>();
  // The leaders end their subscriptions (unavailable) and stop before their logs go.
  stop_leaders(self, it->second, true, [self, rp, name, answer](bool) mutable {
    auto& table = self->state.streams;
    table.erase(name);
    count_streams(self->state);
    if (auto removed = self->state.setup.catalog->remove(name); !removed) {
      rp.deliver(refuse(self, removed.as_rejection()));
      return;
    }
    forget_cursors(self, name);
    rp.deliver(answer.SerializeAsString());
  });
  return rp;
}

std::string list_streams(broker_self* self) {
  wire::StreamList list;
  for (auto& [name, e] : self->state.streams)
    if (!is_internal_stream(name) && !e.deleting && e.in_metadata)
      list.add_streams()->ParseFromString(info_of(e));
  for (auto& p : self->state.setup.catalog->problems())
    if (!p.partition)
      list.add_problems(p.stream + ": " + p.path + ": " + p.error.to_string());
  return list.SerializeAsString();
}

/// Parses `payload` as a BrokerCall: bad UTF-8 names its field, garbage says what to send.
std::optional<rejection> parse_call(const std::string& payload, wire::BrokerCall& out) {
  if (auto refused = net::check_text_fields(*wire::BrokerCall::descriptor(), payload))
    return refused;
  if (!out.ParseFromString(payload) || out.call_case() == wire::BrokerCall::CALL_NOT_SET)
    return rejection::of(code::bad_request)
      .detail("a BrokerCall that does not parse or names no call; send one built from "
              "net/streams.proto");
  return std::nullopt;
}

broker_actor::behavior_type broker(broker_self* self, broker_setup setup, runtime* rt,
                                   cursor_table cursors) {
  auto& st = self->state;
  st.setup = std::move(setup);
  st.rt = rt;
  st.cursors.emplace(std::move(cursors));
  for (auto* s : st.setup.catalog->list()) {
    auto* found = st.setup.catalog->find(s->config().name);
    auto& name = found->config().name;
    if (st.clustered() && !is_internal_stream(name)) {
      // Dormant until the metadata says what this copy is (apply_metadata): a restarted
      // broker must not lead a partition the cluster gave to another meanwhile.
      stream_entry e;
      e.stream = found;
      e.partitions.resize(found->partition_count());
      e.created_at = read_created_at(*found);
      e.in_metadata = false;
      st.streams[name] = std::move(e);
      continue;
    }
    st.streams[name] = start_leaders(self, *found);
  }
  count_streams(st);
  if (st.clustered())
    self->send(st.setup.controller, watch_atom::value, broker_actor{self});
  st.publishers.emplace(*st.setup.clock, st.setup.limits.publishers);
  st.log.emplace(*st.setup.clock, 1, 10);
  auto tick = milliseconds(std::max<uint64_t>(st.setup.limits.publishers.idle_ms, 1000));
  self->delayed_send(self, tick, tick_atom::value);
  return {
    [=](wire_request_atom, const std::string& payload) -> caf::result<std::string> {
      wire::BrokerCall call;
      if (auto refused = parse_call(payload, call))
        return refuse(self, *refused);
      if (self->state.stopping)
        return refuse(self, code::shutting_down, "the broker is stopping");
      switch (call.call_case()) {
        case wire::BrokerCall::kCreateStream: return create_stream(self, call.create_stream());
        case wire::BrokerCall::kDeleteStream: return delete_stream(self, call.delete_stream());
        case wire::BrokerCall::kListStreams: return list_streams(self);
        case wire::BrokerCall::kStreamInfo: {
          auto* e = find_stream(self, call.stream_info().name());
          if (e == nullptr || !e->in_metadata)
            return refuse(self, code::not_found,
                          "no stream " + call.stream_info().name() + "; ListStreams lists them");
          return info_of(*e);
        }
        case wire::BrokerCall::kPublish: return publish(self, *call.mutable_publish());
        case wire::BrokerCall::kCommitCursor: return commit_cursor(self, call.commit_cursor());
        case wire::BrokerCall::kFetchCursor: return fetch_cursor(self, call.fetch_cursor());
        case wire::BrokerCall::kFetch:
        case wire::BrokerCall::kEpochEndOffset: return replica_call(self, call);
        default:
          return refuse(self, code::bad_request,
                        "Subscribe is a streamed request: send it as one (with credit)");
      }
    },
    [=](wire_stream_atom, const std::string& payload, uint64_t tag, uint64_t batches,
        uint64_t bytes) -> caf::result<stream_tail, std::string> {
      wire::BrokerCall call;
      if (auto refused = parse_call(payload, call))
        return refuse(self, *refused);
      if (self->state.stopping)
        return refuse(self, code::shutting_down, "the broker is stopping");
      if (call.call_case() != wire::BrokerCall::kSubscribe)
        return refuse(self, code::bad_request,
                      "only Subscribe is a streamed request; send the others as plain requests");
      return subscribe(self, call.subscribe(), tag, batches, bytes);
    },
    [=](credit_atom, uint64_t tag, uint64_t batches, uint64_t bytes) {
      auto conn = caf::actor_cast<caf::actor_addr>(self->current_sender());
      auto it = self->state.subscriptions.find({conn, tag});
      if (it != self->state.subscriptions.end())
        self->send(it->second, credit_atom::value, conn, tag, batches, bytes);
    },
    [=](cancel_atom, uint64_t tag) {
      auto conn = caf::actor_cast<caf::actor_addr>(self->current_sender());
      auto it = self->state.subscriptions.find({conn, tag});
      if (it != self->state.subscriptions.end())
        self->send(it->second, cancel_atom::value, conn, tag);
    },
    [=](tick_atom) {
      self->state.publishers->forget_idle();
      self->delayed_send(self, tick, tick_atom::value);
    },
    [=](metadata_atom, metadata_view m) { apply_metadata(self, std::move(m)); },
    [=](cursors_atom, const cursor_update& u) { apply_cursors(self, u); },
    [=](stop_atom) -> caf::result<bool> {
      auto& st = self->state;
      st.stopping = true;
      auto rp = self->make_response_promise<bool>();
      auto left = std::make_shared<size_t>(st.streams.size());
      auto ok = std::make_shared<bool>(true);
      auto finish = [self, rp]() mutable {
        self->state.streams.clear();
        self->quit();
        rp.deliver(true);
      };
      if (*left == 0) {
        finish();
        return rp;
      }
      for (auto& [name, e] : st.streams)
        stop_leaders(self, e, false, [left, ok, finish](bool synced) mutable {
          *ok = *ok && synced;
          if (--*left == 0)
            finish();
        });
      return rp;
    },
  };
}

} // namespace

result<broker_actor> spawn_broker(caf::actor_system& sys, runtime& rt, broker_setup setup) {
  // A leader's gate counts an append by its messages' bytes (append_batch::size_bytes).
  register_payload_type<append_batch>();
  auto& catalog = *setup.catalog;
  // The cursors' stream: compacted by key (only each cursor's last commit matters), read
  // back before its leader owns it.
  auto* cursors = catalog.find(cursor_stream_name);
  if (cursors == nullptr) {
    auto cfg = setup.settings.defaults;
    cfg.name = std::string{cursor_stream_name};
    cfg.subject = std::string{cursor_stream_subject};
    cfg.partitions = 1;
    cfg.compact_by_key = true;
    cfg.on_full = streams::on_full_policy::drop_oldest;
    cfg.fsync = persistence::fsync_policy::every_batch;
    cfg.retention_max_age_ms = 0;
    cfg.retention_max_messages = 0;
    cfg.dedupe_window_ms = 0;
    cfg.limits.clear();
    auto made = catalog.create(cfg);
    if (!made)
      return made.error();
    cursors = *made;
  }
  auto log = cursors->partition(0);
  if (!log)
    return log.error();
  auto table = cursor_table{setup.limits.max_cursors};
  if (auto loaded = table.load(**log); !loaded)
    return loaded;
  if (table.dropped() > 0)
    LEVEE_WARN("broker", "%llu cursors past broker.max_cursors were not loaded",
               static_cast<unsigned long long>(table.dropped()));
  // A connection is one requester: the broker admits from each as many requests as the
  // connection itself lets its peer have in flight (net.max_inflight_requests), so a
  // publisher pipelining within what the connection advertised is not refused here.
  auto limits = rt.config().for_kind("broker");
  limits.max_inflight_per_requester =
    std::max(limits.max_inflight_per_requester, setup.connection_inflight);
  auto b = spawn_limited_fun_with(sys, rt, "broker", limits, placement::worker(), broker,
                                  std::move(setup), &rt, std::move(table));
  return b;
}

} // namespace levee::broker
