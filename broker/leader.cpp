// A stream leader: one partition's appends, reads for its subscribers within their
// credit, and its timers (leader.hpp).

#include "broker/leader.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "actors/limited_actor.hpp"
#include "base/round_robin.hpp"
#include "broker/leader_state.hpp"
#include "limits/log.hpp"
#include "net/stream_message.hpp"
#include "net/streams.pb.h"

namespace levee::broker {

namespace {

using namespace std::chrono;

} // namespace

caf::error refuse(code c, std::string detail) {
  return to_error(rejection::of(c).detail(std::move(detail)));
}

void publish_gauges(leader_self* self) {
  auto& st = self->state;
  auto& g = *st.setup.gauges;
  fill_gauges(*st.setup.log, g);
  g.subscribers = st.subs.size();
  if (!st.role)
    return;
  g.leading = st.role->leads();
  g.leader_epoch = st.role->leader_epoch;
  g.replicas = st.role->replicas.size();
  g.isr_size = st.role->isr.size();
  uint64_t lag = 0;
  if (st.role->leads()) {
    auto end = st.setup.log->next_offset();
    for (auto r : st.role->replicas) {
      if (r == st.role->self)
        continue;
      auto it = st.replicas.find(r);
      auto at = it == st.replicas.end() ? 0 : it->second.log_end;
      lag = std::max(lag, end > at ? end - at : 0);
    }
  }
  g.max_follower_lag = lag;
}

namespace {

std::string summary_of(const subscriber& s) {
  wire::SubscribeEnd end;
  end.set_messages(s.delivered);
  end.set_next_offset(s.next);
  return end.SerializeAsString();
}

void end_subscription(leader_self* self, std::map<leader_state::key, subscriber>::iterator it,
                      caf::error err) {
  if (err)
    it->second.rp.deliver(std::move(err));
  else
    it->second.rp.deliver(summary_of(it->second));
  self->state.subs.erase(it);
  self->state.setup.gauges->subscribers = self->state.subs.size();
}

/// Whether nothing more can come for `s`: its stop offset is behind it, or its stop time
/// has passed while it waits at the high-water mark (a later message is stamped later).
bool finished(leader_self* self, const subscriber& s) {
  if (s.stop_offset && s.next > *s.stop_offset)
    return true;
  auto& setup = self->state.setup;
  return s.stop_time_ms && s.next >= setup.log->high_water()
         && setup.clock->wall_ms() > *s.stop_time_ms;
}

/// How long [limits.consumer]'s rates hold `s` back, in ns (0: it may go).
uint64_t paced_for(const subscriber& s) {
  return std::max(s.msgs_rate ? s.msgs_rate->wait_ns() : 0,
                  s.bytes_rate ? s.bytes_rate->wait_ns() : 0);
}

/// It may be sent a batch now, but for its rates.
bool ready(leader_self* self, const subscriber& s) {
  return s.credit.allows_batch() && s.next < self->state.setup.log->high_water();
}

bool runnable(leader_self* self, const subscriber& s) {
  return ready(self, s) && paced_for(s) == 0;
}

} // namespace

/// Ends the subscriptions that are over, then sends itself one read step if any
/// subscriber may go: after an append, a sync, a credit, a step.
void wake(leader_self* self) {
  auto& st = self->state;
  for (auto it = st.subs.begin(); it != st.subs.end();) {
    auto next = std::next(it);
    if (finished(self, it->second))
      end_subscription(self, it, {});
    it = next;
  }
  if (st.read_scheduled)
    return;
  uint64_t soonest = 0;  // ns until the first subscriber held by its rates may go
  for (auto& [k, s] : st.subs) {
    if (!ready(self, s))
      continue;
    auto wait = paced_for(s);
    if (wait == 0) {
      st.read_scheduled = true;
      self->send(self, read_atom::value);
      return;
    }
    soonest = soonest == 0 ? wait : std::min(soonest, wait);
  }
  if (soonest == 0)
    return;
  auto due = st.setup.clock->now_ns() + static_cast<int64_t>(soonest);
  if (st.paced_timer_at == 0 || due < st.paced_timer_at) {
    st.paced_timer_at = due;
    self->delayed_send(self, std::chrono::nanoseconds(soonest), paced_atom::value);
  }
}

void end_all_subscriptions(leader_self* self, const caf::error& err) {
  while (!self->state.subs.empty())
    end_subscription(self, self->state.subs.begin(), err);
}

namespace {

/// One batch for the next subscriber that may go, then the others' turn (after whatever
/// else is queued: appends are never held behind a long run of reads).
void read_step(leader_self* self) {
  auto& st = self->state;
  st.read_scheduled = false;
  if (st.subs.empty())
    return;
  auto it = base::next_turn(st.subs, st.last_turn,
                            [self](const subscriber& s) { return runnable(self, s); });
  if (it == st.subs.end()) {
    // Every subscriber waits for credit, messages or its rates: the rates' timer is armed
    // here if the subscriber that made this step runnable has gone meanwhile.
    wake(self);
    return;
  }
  st.last_turn = it->first;
  auto& s = it->second;
  streams::read_request req;
  req.from = s.next;
  req.max_messages = s.max_messages;
  req.max_bytes = s.max_bytes;
  // A batch is at most what the rates hold now (runnable: at least one unit each), so the
  // pace is exact in messages; in bytes it may run one message ahead, paid for by waiting.
  if (s.msgs_rate)
    req.max_messages = std::min<uint64_t>(req.max_messages,
                                          std::max<uint64_t>(s.msgs_rate->available(), 1));
  if (s.bytes_rate)
    req.max_bytes = std::min<uint64_t>(req.max_bytes,
                                       std::max<uint64_t>(s.bytes_rate->available(), 1));
  req.stop_offset = s.stop_offset;
  req.stop_time_ms = s.stop_time_ms;
  auto r = st.setup.log->read(req);
  if (!r) {
    end_subscription(self, it, to_error(r.error().as_rejection()));
    wake(self);
    return;
  }
  wire::MessageBatch batch;
  batch.set_stream(st.setup.stream);
  batch.set_partition(st.setup.partition);
  for (auto& m : r->messages) {
    auto& out = *batch.add_messages();
    out.set_offset(m.offset);
    out.set_timestamp_ms(m.timestamp_ms);
    net::move_message_fields(out, m.key, m.id, m.body, m.headers);
  }
  batch.set_next_offset(r->next_offset);
  batch.set_skipped(r->skipped);
  batch.set_high_water(st.setup.log->high_water());
  s.next = r->next_offset;
  s.delivered += r->messages.size();
  if (!r->messages.empty() || r->skipped > 0) {
    auto part = batch.SerializeAsString();
    s.credit.take(part.size());
    if (s.msgs_rate)
      s.msgs_rate->charge(r->messages.size());
    if (s.bytes_rate)
      s.bytes_rate->charge(part.size());
    if (paced_for(s) > 0)
      st.setup.stats->subscriptions_paced.fetch_add(1);
    self->send(s.connection, wire_batch_atom::value, s.tag, std::move(part));
    st.setup.stats->batches_sent.fetch_add(1);
  }
  if (r->done)
    end_subscription(self, it, {});
  wake(self);
}

void add_credit(leader_self* self, const caf::actor_addr& conn, uint64_t tag, uint64_t batches,
                uint64_t bytes) {
  auto it = self->state.subs.find({conn, tag});
  if (it == self->state.subs.end())
    return;  // ended meanwhile
  it->second.credit.add(batches, bytes);
  wake(self);
}

/// Appends `batches` as one write to the log; one ack list per batch, in order.
result<std::vector<append_acks>> append_together(leader_self* self,
                                                 std::vector<pending_append*>& batches) {
  std::vector<streams::message> views;
  for (auto* p : batches)
    for (auto& m : p->batch.messages) {
      streams::message v;
      v.key = m.key;
      v.id = m.id;
      v.body = m.body;
      for (auto& [name, value] : m.headers)
        v.headers.emplace_back(name, value);
      views.push_back(std::move(v));
    }
  // One batch alone keeps its expected offset; a group never has one (commit_group).
  auto expected = batches.size() == 1 ? batches[0]->batch.expected_last_offset : std::nullopt;
  auto r = self->state.setup.log->append(views, expected);
  if (!r)
    return r.error();
  std::vector<append_acks> out;
  size_t at = 0;
  for (auto* p : batches) {
    append_acks a;
    a.acks.assign(r->begin() + static_cast<ptrdiff_t>(at),
                  r->begin() + static_cast<ptrdiff_t>(at + p->batch.messages.size()));
    at += p->batch.messages.size();
    out.push_back(std::move(a));
  }
  return out;
}

/// Writes the appends taken since the last commit. Runs of batches without an expected
/// offset go as one write; a batch with one goes alone (its check is about the log as it
/// stands before it). A run refused (stream_full, a bad message: the log stores nothing of
/// a refused append) is retried batch by batch, so that each publish gets the answer it
/// would have had alone; a group is never refused for one member's sake.
void commit_group(leader_self* self) {
  auto& st = self->state;
  st.commit_scheduled = false;
  if (st.group.empty())
    return;
  auto group = std::move(st.group);
  st.group.clear();
  if (auto elsewhere = not_leading(self)) {
    // The role changed while these waited: nothing of them was written here.
    for (auto& p : group)
      p.rp.deliver(to_error(*elsewhere));
    return;
  }
  auto answer = [&](pending_append& p, result<append_acks> r) {
    if (r) {
      deliver_acks(self, p, std::move(*r));
    } else {
      st.setup.gauges->rejected.fetch_add(1);
      p.rp.deliver(to_error(r.error().as_rejection()));
    }
  };
  size_t i = 0;
  while (i < group.size()) {
    std::vector<pending_append*> run{&group[i]};
    size_t j = i + 1;
    if (!group[i].batch.expected_last_offset)
      while (j < group.size() && !group[j].batch.expected_last_offset)
        run.push_back(&group[j++]);
    auto r = append_together(self, run);
    if (r) {
      publish_gauges(self);  // before the answers: a publisher then sees its messages counted
      for (size_t k = 0; k < run.size(); ++k)
        answer(*run[k], std::move((*r)[k]));
    } else if (run.size() == 1 || r.error().code() == code::storage_error) {
      // An I/O error may leave the first parts of a large write stored: retrying its
      // batches one by one could store those twice. Each hears the error instead.
      for (auto* p : run)
        answer(*p, r.error());
    } else {
      for (auto* p : run) {
        std::vector<pending_append*> one{p};
        auto alone = append_together(self, one);
        answer(*p, alone ? result<append_acks>{std::move(alone->front())}
                         : result<append_acks>{alone.error()});
      }
    }
    i = j;
  }
  advance_high_water(self);  // the log grew: the mark, held fetches, waiting acks
  publish_gauges(self);
  wake(self);  // the high-water mark moved (every_batch, none)
}

leader_actor::behavior_type leader(leader_self* self, leader_setup setup) {
  self->state.setup = std::move(setup);
  auto& s = self->state.setup;
  publish_gauges(self);
  if (s.log->config().fsync == persistence::fsync_policy::interval)
    self->delayed_send(self, milliseconds(s.log->config().fsync_interval_ms), sync_atom::value);
  self->delayed_send(self, milliseconds(s.maintenance_interval_ms), maintain_atom::value);
  return {
    [=](append_atom, append_batch& b) -> caf::result<append_acks> {
      auto& st = self->state;
      if (st.stopping)
        return refuse(code::unavailable, "stream " + st.setup.stream + " is stopping");
      if (auto elsewhere = not_leading(self))
        return to_error(*elsewhere);
      if (b.ack == ack_level::all)
        if (auto few = check_insync(self))
          return to_error(*few);
      auto rp = self->make_response_promise<append_acks>();
      st.group.push_back(pending_append{std::move(b), rp});
      if (!st.commit_scheduled) {
        st.commit_scheduled = true;
        self->send(self, commit_atom::value);
      }
      return rp;
    },
    [=](commit_atom) { commit_group(self); },
    [=](paced_atom) {
      // Forgotten at every firing (a timer may fire a little early, and a later one may
      // still be on its way): wake() arms what is still needed; a spare one is harmless.
      self->state.paced_timer_at = 0;
      wake(self);
    },
    [=](subscribe_atom, subscription_request& req) -> caf::result<std::string> {
      auto& st = self->state;
      if (st.stopping)
        return refuse(code::unavailable, "stream " + st.setup.stream + " is stopping");
      if (auto elsewhere = not_leading(self))
        return to_error(*elsewhere);
      auto key = leader_state::key{caf::actor_cast<caf::actor_addr>(req.connection), req.tag};
      if (st.subs.count(key) != 0)
        return refuse(code::bad_request, "request " + std::to_string(req.tag)
                                           + " is already subscribed on this connection");
      if (st.subs.size() >= st.setup.max_subscriptions) {
        auto r = rejection::of(code::too_many_inflight)
                   .limit("broker.max_subscriptions_per_partition")
                   .observed(st.subs.size() + 1)
                   .max(st.setup.max_subscriptions)
                   .retry_after_ms(1000)
                   .detail("partition " + std::to_string(st.setup.partition) + " of stream "
                           + st.setup.stream
                           + " serves as many subscriptions as it may; end one, or "
                             "spread readers over more partitions");
        st.setup.stats->count(r);
        return to_error(r);
      }
      auto from = st.setup.log->resolve(req.start);
      if (!from)
        return to_error(from.error().as_rejection());
      subscriber sub;
      sub.connection = std::move(req.connection);
      sub.tag = req.tag;
      sub.next = *from;
      sub.stop_offset = req.stop_offset;
      sub.stop_time_ms = req.stop_time_ms;
      sub.max_messages = req.max_messages;
      sub.max_bytes = req.max_bytes;
      sub.credit.add(req.credit_batches, req.credit_bytes);
      auto& rates = st.setup.consumer;
      if (rates.msgs_per_sec != 0)
        sub.msgs_rate = std::make_unique<token_bucket>(*st.setup.clock, rates.msgs_per_sec,
                                                       rates.burst_msgs);
      if (rates.bytes_per_sec != 0)
        sub.bytes_rate = std::make_unique<token_bucket>(*st.setup.clock, rates.bytes_per_sec,
                                                        rates.burst_bytes);
      sub.rp = self->make_response_promise<std::string>();
      auto rp = sub.rp;
      st.subs.emplace(key, std::move(sub));
      st.setup.gauges->subscribers = st.subs.size();
      st.setup.stats->subscriptions.fetch_add(1);
      wake(self);
      return rp;
    },
    [=](credit_atom, uint64_t tag, uint64_t batches, uint64_t bytes) {
      add_credit(self, caf::actor_cast<caf::actor_addr>(self->current_sender()), tag, batches,
                 bytes);
    },
    [=](credit_atom, const caf::actor_addr& conn, uint64_t tag, uint64_t batches,
        uint64_t bytes) { add_credit(self, conn, tag, batches, bytes); },
    [=](cancel_atom, const caf::actor_addr& conn, uint64_t tag) {
      auto it = self->state.subs.find({conn, tag});
      if (it != self->state.subs.end())
        end_subscription(self, it, refuse(code::cancelled, "the subscription was cancelled"));
    },
    [=](read_atom) { read_step(self); },
    [=](role_atom, partition_role& r) { on_role(self, std::move(r)); },
    [=](fetch_atom, const fetch_request& req) { return serve_fetch(self, req); },
    [=](epoch_end_atom, const epoch_end_request& req) { return serve_epoch_end(self, req); },
    [=](fetch_expired_atom, uint64_t replica, uint64_t sequence) {
      fetch_expired(self, replica, sequence);
    },
    [=](replica_tick_atom) { replica_tick(self); },
    [=](follow_atom, uint64_t generation) { follow_step(self, generation); },
    [=](sync_atom) {
      auto& st = self->state;
      if (st.stopping)
        return;
      auto before = st.setup.log->high_water();
      if (auto done = st.setup.log->sync_if_due(); !done)
        LEVEE_ERROR("broker", "stream %s partition %u: sync failed: %s",
                    st.setup.stream.c_str(), st.setup.partition, done.to_string().c_str());
      if (st.setup.log->replicated())
        advance_high_water(self);  // the leader's own durable end counts in the mark
      if (st.setup.log->high_water() != before) {
        publish_gauges(self);
        wake(self);  // waiting subscribers may read what the sync made visible
      }
      self->delayed_send(self, milliseconds(st.setup.log->config().fsync_interval_ms),
                         sync_atom::value);
    },
    [=](maintain_atom) {
      auto& st = self->state;
      if (st.stopping)
        return;
      if (auto r = st.setup.log->apply_retention(); !r)
        LEVEE_ERROR("broker", "stream %s partition %u: retention failed: %s",
                    st.setup.stream.c_str(), st.setup.partition,
                    r.error().to_string().c_str());
      if (auto r = st.setup.log->compact(); !r)
        LEVEE_ERROR("broker", "stream %s partition %u: compaction failed: %s",
                    st.setup.stream.c_str(), st.setup.partition,
                    r.error().to_string().c_str());
      publish_gauges(self);
      wake(self);  // subscribers waiting for a stop time that has passed end here
      self->delayed_send(self, milliseconds(st.setup.maintenance_interval_ms),
                         maintain_atom::value);
    },
    [=](stop_atom, bool deleted) -> bool {
      auto& st = self->state;
      commit_group(self);  // what was taken is written and answered first
      st.stopping = true;
      auto why = deleted ? refuse(code::unavailable,
                                  "stream " + st.setup.stream
                                    + " was deleted; subscribe to another stream")
                         : refuse(code::shutting_down, "the broker is stopping");
      end_all_subscriptions(self, why);
      stop_replication(self, why);
      auto synced = st.setup.log->sync();
      if (!synced)
        LEVEE_ERROR("broker", "stream %s partition %u: %s",
                    st.setup.stream.c_str(), st.setup.partition, synced.to_string().c_str());
      self->quit();
      return synced.ok();
    },
  };
}

} // namespace

void fill_gauges(const streams::partition_log& log, partition_gauges& g) {
  auto st = log.stats();
  g.start_offset = log.start_offset();
  g.next_offset = log.next_offset();
  g.high_water = log.high_water();
  g.size_bytes = log.size_bytes();
  g.appended = st.appended;
  g.duplicates = st.duplicates;
  g.dropped_messages = st.dropped_messages;
  g.dropped_segments = st.dropped_segments;
  g.compacted = st.compacted_records;
}

leader_actor spawn_leader(caf::actor_system& sys, runtime& rt, const actor_limits& limits,
                          leader_setup setup) {
  return spawn_limited_fun_with(sys, rt, "stream", limits, placement::worker(), leader,
                                std::move(setup));
}

} // namespace levee::broker
