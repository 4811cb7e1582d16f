// The leader's side of replication (README.md "Replicas"): fetches served (held while
// there is nothing new), the high-water mark as the lowest log end in the ISR, ack = all
// answered when the mark passes a publish, insufficient_replicas below
// min_insync_replicas, ISR shrinks and grows asked of the controller, and the not_leader
// refusal of a partition actor that does not lead.

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <caf/all.hpp>

#include "actors/caf_error.hpp"
#include "broker/leader_state.hpp"
#include "limits/log.hpp"
#include "net/streams.pb.h"

namespace levee::broker {

namespace {

using namespace std::chrono;

bool has(const std::vector<uint64_t>& v, uint64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

int64_t now_ns(leader_self* self) { return self->state.setup.clock->now_ns(); }

bool leading(const leader_state& st) { return st.role && st.role->leads(); }

int64_t lag_ns(const leader_state& st) {
  return static_cast<int64_t>(st.setup.replication.max_lag_ms) * 1'000'000;
}

/// The ISR the mark is computed over: the metadata's, and a member whose joining was asked
/// for (a grow counts at once; a shrink only once the metadata has it), so the mark never
/// runs ahead of a replica that may still be in the ISR.
std::vector<uint64_t> counted_isr(const leader_state& st) {
  auto isr = st.role->isr;
  if (st.isr_change_sent)
    for (auto r : st.isr_change_sent->second)
      if (!has(isr, r))
        isr.push_back(r);
  return isr;
}

std::string where(const leader_state& st) {
  return "partition " + std::to_string(st.setup.partition) + " of stream " + st.setup.stream;
}

caf::error counted(leader_self* self, rejection r) {
  self->state.setup.stats->count(r);
  return to_error(std::move(r));
}

rejection too_few_in_sync(const leader_state& st, const char* what) {
  auto isr = st.role->isr.size();
  auto min = st.role->min_insync_replicas;
  return rejection::of(code::insufficient_replicas)
    .limit("stream.min_insync_replicas")
    .observed(isr)
    .max(min)
    .retry_after_ms(1000)
    .detail(where(st) + " has " + std::to_string(isr) + " in-sync replica"
            + (isr == 1 ? "" : "s") + " and its stream wants " + std::to_string(min)
            + " for ack = all: " + what
            + "; retry when a replica has caught up (with the same message ids, so nothing is "
              "stored twice), or publish with ack = leader");
}

/// Whole batches from the follower's offset, the mark, the leader's ends and epochs.
result<std::string> fetch_answer(leader_self* self, const fetch_request& req) {
  auto& st = self->state;
  auto& log = *st.setup.log;
  auto limit = st.setup.replication.fetch_max_bytes;
  auto max_bytes = req.max_bytes == 0 ? limit : std::min(req.max_bytes, limit);
  wire::FetchReply out;
  auto next = log.read_copy(req.fetch_offset, max_bytes, *out.mutable_batches());
  if (next) {
    out.set_next_offset(*next);
  } else if (next.error().code() == code::not_found) {
    out.set_next_offset(req.fetch_offset);  // retention took it: log_start says from where
  } else {
    return next.error();
  }
  out.set_high_water(log.high_water());
  out.set_log_end(log.next_offset());
  out.set_log_start(log.start_offset());
  out.set_leader_epoch(st.role->leader_epoch);
  // The epoch holding the fetch offset and every later one: the follower records them.
  auto& epochs = log.leader_epochs();
  for (size_t i = 0; i < epochs.size(); ++i) {
    bool holds = epochs[i].second <= req.fetch_offset
                 && (i + 1 == epochs.size() || epochs[i + 1].second > req.fetch_offset);
    if (holds || epochs[i].second > req.fetch_offset) {
      auto* e = out.add_epochs();
      e->set_epoch(epochs[i].first);
      e->set_start_offset(epochs[i].second);
    }
  }
  st.setup.stats->fetches_served.fetch_add(1);
  st.setup.stats->fetch_bytes_served.fetch_add(out.batches().size());
  return out.SerializeAsString();
}

void answer_held(leader_self* self, replica_view& v) {
  auto held = std::move(*v.held);
  v.held.reset();
  auto r = fetch_answer(self, held.req);
  if (r)
    held.rp.deliver(std::move(*r));
  else
    held.rp.deliver(to_error(r.error().as_rejection()));
}

/// The fencing of a Fetch or EpochEndOffset: this broker leads at the epoch the follower
/// follows, and the follower is one of the partition's replicas.
std::optional<rejection> check_follower(leader_self* self, uint64_t replica, uint64_t epoch) {
  auto& st = self->state;
  if (!st.role)
    return rejection::of(code::not_leader)
      .detail(where(st) + " is not replicated on this broker (it runs alone): nothing to fetch");
  if (auto elsewhere = not_leading(self))
    return elsewhere;
  if (epoch < st.role->leader_epoch)
    return rejection::of(code::not_leader)
      .detail("fenced: the fetch follows leader epoch " + std::to_string(epoch) + " of " + where(st)
              + ", which is at epoch " + std::to_string(st.role->leader_epoch)
              + "; refresh the partition's metadata and truncate by epoch again");
  if (epoch > st.role->leader_epoch)
    return rejection::of(code::unavailable)
      .retry_after_ms(100)
      .detail("this broker has not yet learned leader epoch " + std::to_string(epoch) + " of "
              + where(st) + " (it is at " + std::to_string(st.role->leader_epoch)
              + "); retry shortly");
  if (replica == st.role->self || !has(st.role->replicas, replica))
    return rejection::of(code::bad_request)
      .detail("broker " + std::to_string(replica) + " is not a follower of " + where(st));
  return std::nullopt;
}

void send_isr_change(leader_self* self, std::vector<uint64_t> isr, bool grow) {
  auto& st = self->state;
  if (!st.setup.controller)
    return;  // no metadata to change: the ISR stays as the role says
  isr_change c;
  c.stream = st.setup.stream;
  c.partition = st.setup.partition;
  c.expected_partition_epoch = st.role->partition_epoch;
  c.leader = st.role->self;
  c.isr = isr;
  st.isr_change_sent = std::make_pair(st.role->partition_epoch, std::move(isr));
  st.isr_change_sent_ns = now_ns(self);
  (grow ? st.setup.stats->isr_expands : st.setup.stats->isr_shrinks).fetch_add(1);
  self->send(st.setup.controller, isr_atom::value, std::move(c));
}

void arm_tick(leader_self* self) {
  auto& st = self->state;
  if (st.replica_tick_armed || st.stopping)
    return;
  st.replica_tick_armed = true;
  auto every = std::clamp<uint64_t>(st.setup.replication.max_lag_ms / 10, 20, 1000);
  self->delayed_send(self, milliseconds(every), replica_tick_atom::value);
}

void fail_leading(leader_self* self, const caf::error& err) {
  auto& st = self->state;
  for (auto& [id, v] : st.replicas)
    if (v.held) {
      v.held->rp.deliver(err);
      v.held.reset();
    }
  while (!st.waiting_acks.empty()) {
    st.waiting_acks.front().rp.deliver(err);
    st.waiting_acks.pop_front();
  }
}

} // namespace

std::optional<rejection> not_leading(leader_self* self) {
  auto& st = self->state;
  if (!st.role || st.role->leads())
    return std::nullopt;
  rejection r;
  if (st.role->leader == 0 || st.role->leader_address.empty())
    r = rejection::of(code::unavailable)
          .retry_after_ms(500)
          .detail(where(st) + " has no leader right now (an election is under way); retry");
  else
    r = rejection::of(code::not_leader)
          .retry_after_ms(0)
          .leader_hint(st.role->leader_address)
          .detail(where(st) + " is led by broker " + std::to_string(st.role->leader) + " at "
                  + st.role->leader_address + " (leader epoch "
                  + std::to_string(st.role->leader_epoch) + "); send it there");
  st.setup.stats->count(r);
  return r;
}

std::optional<rejection> check_insync(leader_self* self) {
  auto& st = self->state;
  if (!leading(st) || st.role->isr.size() >= st.role->min_insync_replicas)
    return std::nullopt;
  auto r = too_few_in_sync(st, "refused before it was stored");
  st.setup.stats->count(r);
  return r;
}

void deliver_acks(leader_self* self, pending_append& p, append_acks acks) {
  auto& st = self->state;
  if (p.batch.ack != ack_level::all || !leading(st) || !st.setup.log->replicated()) {
    p.rp.deliver(std::move(acks));
    return;
  }
  uint64_t needed = 0;
  for (auto& a : acks.acks)
    needed = std::max(needed, a.offset + 1);
  st.setup.stats->acks_waited.fetch_add(1);
  st.waiting_acks.push_back(ack_waiter{needed, std::move(acks), p.rp});
  // advance_high_water (after the group) answers it if the mark is already past.
}

void advance_high_water(leader_self* self) {
  auto& st = self->state;
  auto& log = *st.setup.log;
  if (!leading(st) || !log.replicated())
    return;
  auto before = log.high_water();
  auto hw = log.durable_end();
  for (auto r : counted_isr(st)) {
    if (r == st.role->self)
      continue;
    auto it = st.replicas.find(r);
    hw = std::min(hw, it == st.replicas.end() || !it->second.fetched ? 0 : it->second.log_end);
  }
  log.set_high_water(hw);
  hw = log.high_water();
  if (hw != before)
    publish_gauges(self);  // before any answer: whoever was answered sees the new mark
  if (!st.waiting_acks.empty()) {
    bool enough = st.role->isr.size() >= st.role->min_insync_replicas;
    for (auto it = st.waiting_acks.begin(); it != st.waiting_acks.end();) {
      if (it->needed > hw) {
        ++it;
        continue;
      }
      if (enough)
        it->rp.deliver(std::move(it->acks));
      else
        it->rp.deliver(counted(self, too_few_in_sync(st, "the messages are stored on the leader "
                                                         "but not on enough replicas")));
      it = st.waiting_acks.erase(it);
    }
  }
  // Followers waiting at the end get what was appended.
  for (auto& [id, v] : st.replicas)
    if (v.held && v.held->req.fetch_offset < log.next_offset())
      answer_held(self, v);
  if (hw != before)
    wake(self);
}

void on_role(leader_self* self, partition_role role) {
  auto& st = self->state;
  auto& log = *st.setup.log;
  bool was_leading = leading(st);
  bool same_term = st.role && st.role->leader == role.leader
                   && st.role->leader_epoch == role.leader_epoch;
  st.role = std::move(role);
  if (st.isr_change_sent && st.isr_change_sent->first != st.role->partition_epoch)
    st.isr_change_sent.reset();  // the metadata moved: decide again on what it holds now
  if (auto on = log.enable_replication(); !on)
    LEVEE_ERROR("broker", "%s: %s", where(st).c_str(), on.to_string().c_str());
  if (st.role->leads()) {
    if (!was_leading || !same_term) {
      stop_following(self);
      if (auto begun = log.begin_epoch(st.role->leader_epoch); !begun)
        LEVEE_ERROR("broker", "%s: %s", where(st).c_str(), begun.to_string().c_str());
      st.replicas.clear();
    }
    // Every follower starts caught up as of now (Kafka does the same at an election): it
    // has replica_max_lag_ms to show it is, before it leaves the ISR.
    auto now = now_ns(self);
    for (auto r : st.role->replicas)
      if (r != st.role->self && st.replicas.count(r) == 0)
        st.replicas[r].last_caught_up_ns = now;
    for (auto it = st.replicas.begin(); it != st.replicas.end();) {
      if (has(st.role->replicas, it->first)) {
        ++it;
        continue;
      }
      if (it->second.held)
        it->second.held->rp.deliver(refuse(code::not_leader, "no longer a replica of " + where(st)));
      it = st.replicas.erase(it);
    }
    arm_tick(self);
    advance_high_water(self);
  } else {
    if (was_leading) {
      auto err = to_error(*not_leading(self));
      fail_leading(self, err);
      end_all_subscriptions(self, err);
      st.replicas.clear();
    }
    if (!has(st.role->replicas, st.role->self))
      stop_following(self);
    else if (was_leading || !same_term || !st.follow.fetcher)
      start_following(self);
    arm_tick(self);
  }
  publish_gauges(self);
}

caf::result<std::string> serve_fetch(leader_self* self, const fetch_request& req) {
  auto& st = self->state;
  if (st.stopping)
    return refuse(code::shutting_down, "the broker is stopping");
  if (auto bad = check_follower(self, req.replica, req.leader_epoch))
    return to_error(*bad);
  auto& log = *st.setup.log;
  if (req.fetch_offset > log.next_offset())
    return counted(self, rejection::of(code::precondition_failed)
                           .observed(req.fetch_offset)
                           .max(log.next_offset())
                           .detail("the follower's log ends at " + std::to_string(req.fetch_offset)
                                   + ", past the leader's end " + std::to_string(log.next_offset())
                                   + " of " + where(st) + ": truncate by epoch (EpochEndOffset) first"));
  auto& v = st.replicas[req.replica];
  // One fetch in flight per follower: a newer one answers the one held (the follower
  // gave up on it, e.g. after its own timeout).
  if (v.held)
    answer_held(self, v);
  auto now = now_ns(self);
  if (req.fetch_offset >= log.next_offset())
    v.last_caught_up_ns = now;
  else if (v.fetched && req.fetch_offset >= v.leader_end_at_last_fetch)
    v.last_caught_up_ns = std::max(v.last_caught_up_ns, v.last_fetch_ns);  // caught up then
  v.fetched = true;
  v.log_end = req.fetch_offset;
  v.last_fetch_ns = now;
  v.leader_end_at_last_fetch = log.next_offset();
  // Back into the ISR once it has everything committed (and the mark counts it at once).
  if (!has(st.role->isr, req.replica) && !st.isr_change_sent
      && req.fetch_offset >= log.high_water()) {
    auto isr = st.role->isr;
    isr.push_back(req.replica);
    std::sort(isr.begin(), isr.end());
    send_isr_change(self, std::move(isr), true);
  }
  advance_high_water(self);
  auto wait = std::min<uint64_t>(req.max_wait_ms, st.setup.replication.fetch_max_wait_ms);
  if (req.fetch_offset < log.next_offset() || wait == 0) {
    auto r = fetch_answer(self, req);
    if (!r)
      return to_error(r.error().as_rejection());
    return std::move(*r);
  }
  auto rp = self->make_response_promise<std::string>();
  v.held = held_fetch{req, rp, ++v.sequence};
  self->delayed_send(self, milliseconds(wait), fetch_expired_atom::value, req.replica, v.sequence);
  return rp;
}

caf::result<std::string> serve_epoch_end(leader_self* self, const epoch_end_request& req) {
  auto& st = self->state;
  if (st.stopping)
    return refuse(code::shutting_down, "the broker is stopping");
  if (auto bad = check_follower(self, req.replica, req.leader_epoch))
    return to_error(*bad);
  auto end = st.setup.log->end_offset_for_epoch(req.epoch);
  wire::EpochEndOffsetReply out;
  out.set_epoch(end.epoch);
  out.set_end_offset(end.end_offset);
  out.set_undefined(end.undefined);
  return out.SerializeAsString();
}

void fetch_expired(leader_self* self, uint64_t replica, uint64_t sequence) {
  auto it = self->state.replicas.find(replica);
  if (it != self->state.replicas.end() && it->second.held && it->second.held->sequence == sequence)
    answer_held(self, it->second);
}

void replica_tick(leader_self* self) {
  auto& st = self->state;
  st.replica_tick_armed = false;
  if (st.stopping || !st.role)
    return;
  if (auto kept = st.setup.log->checkpoint_high_water(); !kept)
    LEVEE_ERROR("broker", "%s: high-water checkpoint: %s", where(st).c_str(),
                kept.to_string().c_str());
  if (leading(st)) {
    auto now = now_ns(self);
    // A change the metadata never answered (lost with a metadata leader): decide again.
    if (st.isr_change_sent && now - st.isr_change_sent_ns > std::min<int64_t>(lag_ns(st), 2'000'000'000))
      st.isr_change_sent.reset();
    if (!st.isr_change_sent) {
      std::vector<uint64_t> keep;
      bool shrink = false;
      for (auto r : st.role->isr) {
        auto it = st.replicas.find(r);
        bool lagging = r != st.role->self && it != st.replicas.end()
                       && now - it->second.last_caught_up_ns > lag_ns(st);
        if (lagging)
          shrink = true;
        else
          keep.push_back(r);
      }
      if (shrink)
        send_isr_change(self, std::move(keep), false);
    }
    publish_gauges(self);  // the followers' lag, for stats and /metrics
  }
  arm_tick(self);
}

void stop_replication(leader_self* self, const caf::error& err) {
  fail_leading(self, err);
  stop_following(self);
  if (auto kept = self->state.setup.log->checkpoint_high_water(); !kept)
    LEVEE_ERROR("broker", "%s: high-water checkpoint: %s",
                where(self->state).c_str(), kept.to_string().c_str());
}

} // namespace levee::broker
