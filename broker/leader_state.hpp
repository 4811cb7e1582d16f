#pragma once
// A partition actor's state (leader.hpp), shared by its files: leader.cpp (appends,
// subscriptions, timers), leader_replication.cpp (the leader's side of replication: fetches
// served, the high-water mark from the ISR, ack = all, ISR changes) and follower.cpp (the
// follower's fetch loop). Internal to broker/.

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/stateful_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/limited_actor.hpp"
#include "broker/fetcher.hpp"
#include "broker/leader.hpp"
#include "limits/stream_credit.hpp"
#include "limits/token_bucket.hpp"

namespace levee::broker {

/// One subscription. Its leader reads for it only while it holds credit and there is
/// something below the high-water mark, and sends what it read at once: a subscriber
/// that stops granting credit costs its leader this struct and nothing more.
struct subscriber {
  wire_stream_sink connection;
  uint64_t tag = 0;
  caf::typed_response_promise<std::string> rp;
  uint64_t next = 0;
  std::optional<uint64_t> stop_offset;
  std::optional<int64_t> stop_time_ms;
  uint64_t max_messages = 0;
  uint64_t max_bytes = 0;
  stream_credit credit;
  uint64_t delivered = 0;
  // [limits.consumer]'s rates, paid after each batch is sent (token_bucket::charge):
  // null when that rate is off.
  std::unique_ptr<token_bucket> msgs_rate;
  std::unique_ptr<token_bucket> bytes_rate;
};

/// An append taken from the mailbox and not yet written (group commit, leader.cpp).
struct pending_append {
  append_batch batch;
  caf::typed_response_promise<append_acks> rp;
};

/// A fetch the leader holds until messages arrive or its wait ends (one per follower).
struct held_fetch {
  fetch_request req;
  caf::typed_response_promise<std::string> rp;
  uint64_t sequence = 0;
};

/// What a leader knows of one follower (README.md "Replicas").
struct replica_view {
  uint64_t log_end = 0;             // its last fetch offset: it holds everything below
  bool fetched = false;             // it fetched since this broker began leading
  int64_t last_fetch_ns = 0;
  int64_t last_caught_up_ns = 0;    // when it last had everything the leader had
  uint64_t leader_end_at_last_fetch = 0;  // the leader's log end when it last fetched
  std::optional<held_fetch> held;
  uint64_t sequence = 0;            // of its last held fetch
};

/// An ack = all publish stored and waiting for the high-water mark to pass `needed`.
struct ack_waiter {
  uint64_t needed = 0;              // its last offset + 1
  append_acks acks;
  caf::typed_response_promise<append_acks> rp;
};

/// A follower's fetch loop (follower.cpp).
struct follow_state {
  uint64_t generation = 0;          // bumped at every role change: late answers are dropped
  bool truncated = false;           // asked EpochEndOffset and cut its log for this role
  bool in_flight = false;
  uint64_t backoff_ms = 0;          // 0: none pending
  fetcher_actor fetcher;
  std::shared_ptr<std::atomic<bool>> stopping;
};

struct leader_state {
  leader_setup setup;
  /// What the metadata says of this partition (broker_protocol.hpp partition_role); none
  /// on a broker alone, which leads with replication factor 1.
  std::optional<partition_role> role;
  /// Group commit: appends are taken as they come and written together when the leader
  /// gets to its own commit message, which the first of them queued behind whatever was
  /// already waiting. A publisher alone pays one message to itself (no thread hand-off);
  /// many publishers share one write (and one fsync under every_batch). At most what the
  /// mailbox held waits here.
  std::vector<pending_append> group;
  bool commit_scheduled = false;
  using key = std::pair<caf::actor_addr, uint64_t>;  // (connection, tag)
  std::map<key, subscriber> subs;
  std::optional<key> last_turn;  // round robin over subscribers
  bool read_scheduled = false;
  // When the earliest paced_atom on its way fires (clock ns); 0: none. A subscriber that
  // may go sooner arms another (an extra paced_atom only wakes the leader once more).
  int64_t paced_timer_at = 0;
  bool stopping = false;

  // -- replication, leading (leader_replication.cpp) --
  std::map<uint64_t, replica_view> replicas;  // by broker id, this one's aside
  /// ack = all publishes in offset order; bounded by the appends in flight to this actor
  /// (its gate's per-requester bound).
  std::deque<ack_waiter> waiting_acks;
  /// An ISR change sent to the controller and not yet seen in a role: the partition
  /// epoch it was based on and the ISR it asked for. A shrink is not applied before the
  /// metadata has it (the old, larger ISR keeps the mark); a grow counts at once.
  std::optional<std::pair<uint64_t, std::vector<uint64_t>>> isr_change_sent;
  int64_t isr_change_sent_ns = 0;
  bool replica_tick_armed = false;

  // -- replication, following (follower.cpp) --
  follow_state follow;

  const char* name = "levee.stream_leader";
};

using leader_self = caf::stateful_actor<leader_state, limited<leader_actor::base>>;

caf::error refuse(code c, std::string detail);

// leader.cpp
void publish_gauges(leader_self* self);
/// Ends the subscriptions that are over, then schedules a read step if any may go.
void wake(leader_self* self);
/// Ends every subscription with `err`.
void end_all_subscriptions(leader_self* self, const caf::error& err);

// leader_replication.cpp
/// The not_leader refusal this actor gives when a role says another broker leads.
std::optional<rejection> not_leading(leader_self* self);
/// insufficient_replicas when an ack = all publish cannot be promised (ISR below
/// min_insync_replicas), counted.
std::optional<rejection> check_insync(leader_self* self);
/// Answers an append: at once, or (ack = all, replicated) when the mark passes it.
void deliver_acks(leader_self* self, pending_append& p, append_acks acks);
/// After the log grew or a follower moved: a new high-water mark, waiting acks and held
/// fetches answered, subscribers woken.
void advance_high_water(leader_self* self);
void on_role(leader_self* self, partition_role role);
caf::result<std::string> serve_fetch(leader_self* self, const fetch_request& req);
caf::result<std::string> serve_epoch_end(leader_self* self, const epoch_end_request& req);
void fetch_expired(leader_self* self, uint64_t replica, uint64_t sequence);
void replica_tick(leader_self* self);
/// On stop: held fetches and waiting acks answered with `err`, the fetcher stopped, the
/// high-water mark checkpointed.
void stop_replication(leader_self* self, const caf::error& err);

// follower.cpp
/// Starts (or restarts, for a new role) the fetch loop: truncation by epoch, then fetches.
void start_following(leader_self* self);
void stop_following(leader_self* self);
void follow_step(leader_self* self, uint64_t generation);

} // namespace levee::broker
