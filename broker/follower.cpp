// The follower's side of replication (README.md "Replicas"): on a new role, ask the
// leader where our last epoch ended and cut the log there (leader epochs, not the
// high-water mark: KIP-101), then fetch in a loop through the fetcher, appending the
// leader's batches as they are and taking its high-water mark; back off 100 ms .. 2 s on
// errors.

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

constexpr uint64_t backoff_first_ms = 100;
constexpr uint64_t backoff_max_ms = 2000;

std::string where(const leader_state& st) {
  return "partition " + std::to_string(st.setup.partition) + " of stream " + st.setup.stream;
}

/// A fetch may be held for fetch_max_wait_ms: the client waits that long and then some.
uint32_t call_timeout_ms(const leader_state& st) {
  auto wait = st.setup.replication.fetch_max_wait_ms;
  return static_cast<uint32_t>(wait + std::max<uint64_t>(wait, 1000));
}

void back_off(leader_self* self, uint64_t generation, const std::string& why) {
  auto& f = self->state.follow;
  if (f.backoff_ms == 0)  // said once per run of failures, not at every retry
    LEVEE_WARN("broker", "%s: following broker %llu: %s (retrying)",
               where(self->state).c_str(),
               static_cast<unsigned long long>(self->state.role->leader), why.c_str());
  f.backoff_ms = f.backoff_ms == 0 ? backoff_first_ms : std::min(f.backoff_ms * 2, backoff_max_ms);
  self->delayed_send(self, milliseconds(f.backoff_ms), follow_atom::value, generation);
}

/// A call of an older generation ended: a role change came while it was out, and that
/// change's first step found the call in flight and returned. Nothing else would step the
/// new generation, so the follower would stop following for good; step it here.
void resume_newer(leader_self* self) {
  self->send(self, follow_atom::value, self->state.follow.generation);
}

void call_leader(leader_self* self, uint64_t generation, wire::BrokerCall& call,
                 void (*on_answer)(leader_self*, uint64_t, const std::string&)) {
  auto& st = self->state;
  st.follow.in_flight = true;
  self
    ->request(st.follow.fetcher, caf::infinite, replica_call_atom::value, st.role->leader_address,
              call.SerializeAsString(), call_timeout_ms(st))
    .then(
      [self, generation, on_answer](std::string& payload) {
        self->state.follow.in_flight = false;
        if (self->state.stopping)
          return;
        if (generation != self->state.follow.generation)
          resume_newer(self);
        else
          on_answer(self, generation, payload);
      },
      [self, generation](caf::error& err) {
        auto& f = self->state.follow;
        f.in_flight = false;
        if (self->state.stopping)
          return;
        if (generation != f.generation) {
          resume_newer(self);
          return;
        }
        auto r = rejection_from(err).value_or(
          rejection::of(code::unavailable).detail(self->system().render(err)));
        if (r.code == code::precondition_failed)
          f.truncated = false;  // ahead of the leader: truncate by epoch again
        back_off(self, generation, r.to_string());
      });
}

void truncate_and_go(leader_self* self, uint64_t generation, uint64_t offset) {
  auto& st = self->state;
  auto& log = *st.setup.log;
  if (offset < log.next_offset()) {
    if (auto cut = log.truncate_to(offset); !cut) {
      back_off(self, generation, "truncation failed: " + cut.to_string());
      return;
    }
    st.setup.stats->truncations.fetch_add(1);
    publish_gauges(self);
  }
  st.follow.truncated = true;
  st.follow.backoff_ms = 0;
  self->send(self, follow_atom::value, generation);
}

void on_epoch_end(leader_self* self, uint64_t generation, const std::string& payload) {
  auto& log = *self->state.setup.log;
  wire::EpochEndOffsetReply reply;
  if (!reply.ParseFromString(payload)) {
    back_off(self, generation, "an EpochEndOffsetReply that does not parse");
    return;
  }
  if (reply.undefined()) {
    // The leader knows no epoch as old as ours (it cannot have led after us without a
    // newer one): fall back to what this replica knew was committed.
    truncate_and_go(self, generation, log.high_water());
    return;
  }
  // Kafka's rule (KIP-279): the end of that epoch on the leader, and no further than
  // where the same epoch ends here.
  auto own = log.end_offset_for_epoch(reply.epoch());
  auto cut = std::min<uint64_t>(reply.end_offset(), own.undefined ? log.next_offset() : own.end_offset);
  truncate_and_go(self, generation, cut);
}

void on_fetched(leader_self* self, uint64_t generation, const std::string& payload) {
  auto& st = self->state;
  auto& log = *st.setup.log;
  wire::FetchReply reply;
  if (!reply.ParseFromString(payload)) {
    back_off(self, generation, "a FetchReply that does not parse");
    return;
  }
  if (reply.log_start() > log.next_offset()) {
    back_off(self, generation,
             "the leader no longer keeps offset " + std::to_string(log.next_offset())
               + " (it starts at " + std::to_string(reply.log_start())
               + "): this replica cannot catch up by fetching (not yet: reseeding a replica)");
    return;
  }
  // The epochs the copied offsets were written in, before the copies themselves.
  for (auto& e : reply.epochs())
    if (e.start_offset() < reply.next_offset())
      if (auto noted = log.note_epoch(e.epoch(), e.start_offset()); !noted) {
        back_off(self, generation, noted.to_string());
        return;
      }
  if (!reply.batches().empty()) {
    if (auto copied = log.append_copy(reply.batches()); !copied) {
      st.follow.truncated = false;  // a misplaced copy: reconcile by epoch again
      back_off(self, generation, copied.to_string());
      return;
    }
    st.setup.stats->bytes_copied.fetch_add(reply.batches().size());
  }
  st.setup.stats->fetches_made.fetch_add(1);
  log.set_high_water(reply.high_water());
  st.follow.backoff_ms = 0;
  publish_gauges(self);
  follow_step(self, generation);
}

} // namespace

void start_following(leader_self* self) {
  auto& st = self->state;
  auto& f = st.follow;
  ++f.generation;
  f.truncated = false;
  f.backoff_ms = 0;
  if (!f.fetcher) {
    f.stopping = std::make_shared<std::atomic<bool>>(false);
    f.fetcher = spawn_fetcher(self->system(), st.setup.node_id, f.stopping);
  }
  self->send(self, follow_atom::value, f.generation);
}

void stop_following(leader_self* self) {
  auto& f = self->state.follow;
  ++f.generation;
  if (!f.fetcher)
    return;
  f.stopping->store(true);  // the fetcher gives up its wait within fetcher_poll_ms
  caf::anon_send_exit(f.fetcher, caf::exit_reason::user_shutdown);
  f.fetcher = nullptr;
  f.in_flight = false;
}

void follow_step(leader_self* self, uint64_t generation) {
  auto& st = self->state;
  auto& f = st.follow;
  if (generation != f.generation || !f.fetcher || f.in_flight || st.stopping || !st.role
      || st.role->leads() || st.role->leader_address.empty())
    return;
  wire::BrokerCall call;
  if (!f.truncated) {
    auto last = st.setup.log->last_epoch();
    if (!last) {
      // No epochs (a new replica, or a log from before replication): what this replica
      // knew was committed is all it may keep.
      truncate_and_go(self, generation, st.setup.log->high_water());
      return;
    }
    auto* q = call.mutable_epoch_end_offset();
    q->set_stream(st.setup.stream);
    q->set_partition(st.setup.partition);
    q->set_replica(st.role->self);
    q->set_leader_epoch(st.role->leader_epoch);
    q->set_epoch(*last);
    call_leader(self, generation, call, on_epoch_end);
    return;
  }
  auto* q = call.mutable_fetch();
  q->set_stream(st.setup.stream);
  q->set_partition(st.setup.partition);
  q->set_replica(st.role->self);
  q->set_fetch_offset(st.setup.log->next_offset());
  q->set_leader_epoch(st.role->leader_epoch);
  q->set_max_bytes(st.setup.replication.fetch_max_bytes);
  q->set_max_wait_ms(static_cast<uint32_t>(st.setup.replication.fetch_max_wait_ms));
  call_leader(self, generation, call, on_fetched);
}

} // namespace levee::broker
