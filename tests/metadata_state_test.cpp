// The replicated metadata's state machine alone (metadata/metadata_state.hpp): commands,
// compare-and-set, placement, snapshots and the hash chain, with no Raft underneath.
#include <gtest/gtest.h>

#include "metadata/metadata.pb.h"
#include "metadata/metadata_state.hpp"

namespace levee::metadata {
namespace {

streams::stream_config stream_named(const std::string& name, uint64_t partitions) {
  streams::stream_config c;
  c.name = name;
  c.subject = name + ".>";
  c.partitions = partitions;
  return c;
}

// Proposes like a leader: each entry expects the head after the ones before it.
class proposer {
public:
  std::string next(const command& c) {
    std::string bytes = encode_command(c);
    std::string entry = encode_entry(bytes, head_);
    head_ = next_chain_hash(head_, bytes);
    return entry;
  }
  const chain_hash& head() const { return head_; }

private:
  chain_hash head_{};
};

apply_outcome apply_ok(metadata_state& s, const std::string& entry) {
  auto out = s.apply(entry);
  EXPECT_TRUE(out.ok()) << out.error().to_string();
  return out.ok() ? out.value() : apply_outcome{};
}

void register_brokers(metadata_state& s, proposer& p, uint64_t n) {
  for (uint64_t id = 1; id <= n; ++id)
    EXPECT_FALSE(apply_ok(s, p.next(register_broker{id, "127.0.0.1:" + std::to_string(9000 + id)})).refusal);
}

TEST(MetadataState, AppliesCommandsAndAdvancesTheChainLikeTheProposer) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  auto out = apply_ok(s, p.next(create_stream{stream_named("orders", 3), 3, 2}));
  EXPECT_FALSE(out.refusal);
  EXPECT_EQ(out.sequence, 4u);
  EXPECT_EQ(s.applied_count(), 4u);
  EXPECT_EQ(s.chain_head(), p.head());
  ASSERT_EQ(s.streams().count("orders"), 1u);
  const auto& st = s.streams().at("orders");
  EXPECT_EQ(st.replication_factor, 3u);
  EXPECT_EQ(st.min_insync_replicas, 2u);
  ASSERT_EQ(st.partitions.size(), 3u);
  for (const auto& part : st.partitions) {
    EXPECT_EQ(part.replicas.size(), 3u);
    EXPECT_EQ(part.isr, part.replicas);
    EXPECT_EQ(part.leader, part.replicas.front());
    EXPECT_EQ(part.leader_epoch, 1u);
    EXPECT_EQ(part.partition_epoch, 1u);
  }
  EXPECT_FALSE(apply_ok(s, p.next(delete_stream{"orders"})).refusal);
  EXPECT_EQ(s.streams().count("orders"), 0u);
  auto again = apply_ok(s, p.next(delete_stream{"orders"}));
  ASSERT_TRUE(again.refusal);
  EXPECT_EQ(again.refusal->code, code::not_found);
  EXPECT_EQ(s.chain_head(), p.head()) << "a refused command still moves the chain";
}

TEST(MetadataState, PlacementSpreadsLeadersAndReplicasAcrossBrokers) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  apply_ok(s, p.next(create_stream{stream_named("a", 3), 2, 1}));
  apply_ok(s, p.next(create_stream{stream_named("b", 3), 2, 1}));
  std::map<uint64_t, int> leaders, replicas;
  for (const auto& [name, st] : s.streams())
    for (const auto& part : st.partitions) {
      ++leaders[part.leader];
      for (auto r : part.replicas)
        ++replicas[r];
      EXPECT_NE(part.replicas[0], part.replicas[1]) << "two replicas on one broker";
    }
  // 6 partitions x RF 2 over 3 brokers: 2 leaders and 4 replicas each.
  for (uint64_t id = 1; id <= 3; ++id) {
    EXPECT_EQ(leaders[id], 2) << "broker " << id;
    EXPECT_EQ(replicas[id], 4) << "broker " << id;
  }
}

TEST(MetadataState, ReplicationFactorAboveAliveBrokersIsInsufficientReplicas) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 2);
  auto out = apply_ok(s, p.next(create_stream{stream_named("big", 1), 3, 2}));
  ASSERT_TRUE(out.refusal);
  EXPECT_EQ(out.refusal->code, code::insufficient_replicas);
  EXPECT_EQ(out.refusal->observed, 2u);
  EXPECT_EQ(out.refusal->max, 3u);
  EXPECT_EQ(s.streams().count("big"), 0u);
  auto bad_isr = apply_ok(s, p.next(create_stream{stream_named("c", 1), 2, 3}));
  ASSERT_TRUE(bad_isr.refusal);
  EXPECT_EQ(bad_isr.refusal->code, code::bad_request);
}

TEST(MetadataState, CreatingTheSameStreamTwiceIsIdempotentAndOtherSettingsAreRefused) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  apply_ok(s, p.next(create_stream{stream_named("orders", 2), 3, 2}));
  auto before = s.streams().at("orders");
  EXPECT_FALSE(apply_ok(s, p.next(create_stream{stream_named("orders", 2), 3, 2})).refusal);
  EXPECT_EQ(s.streams().at("orders"), before);
  auto other = apply_ok(s, p.next(create_stream{stream_named("orders", 4), 3, 2}));
  ASSERT_TRUE(other.refusal);
  EXPECT_EQ(other.refusal->code, code::precondition_failed);
}

TEST(MetadataState, PartitionChangeIsCompareAndSetOnItsEpoch) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  apply_ok(s, p.next(create_stream{stream_named("orders", 1), 3, 2}));
  auto part = s.streams().at("orders").partitions[0];
  uint64_t old_leader = part.leader;
  uint64_t new_leader = part.replicas[1];

  // An ISR shrink keeps the leader and its epoch; the partition epoch moves.
  change_partition shrink{"orders", 0, 1, old_leader, {old_leader, new_leader}};
  EXPECT_FALSE(apply_ok(s, p.next(shrink)).refusal);
  part = s.streams().at("orders").partitions[0];
  EXPECT_EQ(part.partition_epoch, 2u);
  EXPECT_EQ(part.leader_epoch, 1u);
  EXPECT_EQ(part.isr, (std::vector<uint64_t>{old_leader, new_leader}));

  // The same change proposed again (a retry after an indeterminate answer) is stale.
  auto replay = apply_ok(s, p.next(shrink));
  ASSERT_TRUE(replay.refusal);
  EXPECT_EQ(replay.refusal->code, code::precondition_failed);
  EXPECT_EQ(replay.refusal->observed, 1u);
  EXPECT_EQ(replay.refusal->max, 2u);
  EXPECT_EQ(s.streams().at("orders").partitions[0], part) << "a stale change must not apply";

  // A leader change at the current epoch bumps both epochs.
  EXPECT_FALSE(apply_ok(s, p.next(change_partition{"orders", 0, 2, new_leader, {new_leader}})).refusal);
  part = s.streams().at("orders").partitions[0];
  EXPECT_EQ(part.leader, new_leader);
  EXPECT_EQ(part.leader_epoch, 2u);
  EXPECT_EQ(part.partition_epoch, 3u);

  // A leader outside the ISR, or an ISR member that is no replica, is refused.
  auto outside = apply_ok(s, p.next(change_partition{"orders", 0, 3, old_leader, {new_leader}}));
  ASSERT_TRUE(outside.refusal);
  EXPECT_EQ(outside.refusal->code, code::bad_request);
  auto stranger = apply_ok(s, p.next(change_partition{"orders", 0, 3, new_leader, {new_leader, 42}}));
  ASSERT_TRUE(stranger.refusal);
  EXPECT_EQ(stranger.refusal->code, code::bad_request);
  auto missing = apply_ok(s, p.next(change_partition{"orders", 7, 3, new_leader, {new_leader}}));
  ASSERT_TRUE(missing.refusal);
  EXPECT_EQ(missing.refusal->code, code::not_found);
  // An ISR that names a member twice would count it twice toward min_insync_replicas.
  auto twice = apply_ok(s, p.next(change_partition{"orders", 0, 3, new_leader,
                                                   {new_leader, new_leader}}));
  ASSERT_TRUE(twice.refusal);
  EXPECT_EQ(twice.refusal->code, code::bad_request);
  EXPECT_NE(twice.refusal->detail.find("twice"), std::string::npos) << twice.refusal->detail;
}

TEST(MetadataState, MarkingABrokerIsCompareAndSetOnItsEpochAndARegisterRevivesIt) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  EXPECT_EQ(s.brokers().at(2).epoch, 1u);
  // A heartbeat's register of a broker alive at its address changes nothing.
  EXPECT_FALSE(apply_ok(s, p.next(register_broker{2, "127.0.0.1:9002"})).refusal);
  EXPECT_EQ(s.brokers().at(2).epoch, 1u);

  // The leader marks it at the epoch it saw; a second copy (a retry) is stale.
  mark_broker mark{2, 1, broker_state::unreachable};
  EXPECT_FALSE(apply_ok(s, p.next(mark)).refusal);
  EXPECT_EQ(s.brokers().at(2).state, broker_state::unreachable);
  EXPECT_EQ(s.brokers().at(2).epoch, 2u);
  auto replay = apply_ok(s, p.next(mark));
  ASSERT_TRUE(replay.refusal);
  EXPECT_EQ(replay.refusal->code, code::precondition_failed);

  // An unreachable broker gets no new replicas.
  auto placed = apply_ok(s, p.next(create_stream{stream_named("orders", 1), 3, 1}));
  ASSERT_TRUE(placed.refusal);
  EXPECT_EQ(placed.refusal->code, code::insufficient_replicas);

  // It comes back: its register makes it alive and moves the epoch, so a mark decided
  // before (at epoch 2) cannot apply after it.
  EXPECT_FALSE(apply_ok(s, p.next(register_broker{2, "127.0.0.1:9002"})).refusal);
  EXPECT_EQ(s.brokers().at(2).state, broker_state::alive);
  EXPECT_EQ(s.brokers().at(2).epoch, 3u);
  auto late = apply_ok(s, p.next(mark_broker{2, 2, broker_state::unreachable}));
  ASSERT_TRUE(late.refusal);
  EXPECT_EQ(s.brokers().at(2).state, broker_state::alive);
  auto unknown = apply_ok(s, p.next(mark_broker{9, 1, broker_state::unreachable}));
  ASSERT_TRUE(unknown.refusal);
  EXPECT_EQ(unknown.refusal->code, code::not_found);

  // The epoch and the state survive a snapshot.
  metadata_state copy;
  ASSERT_TRUE(copy.restore(s.encode_snapshot()).ok());
  EXPECT_EQ(copy.brokers(), s.brokers());
}

TEST(MetadataState, SnapshotRoundTripsTheWholeStateAndTheChainHead) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  apply_ok(s, p.next(create_stream{stream_named("orders", 2), 3, 2}));
  auto leader = s.streams().at("orders").partitions[1].replicas[2];
  apply_ok(s, p.next(change_partition{"orders", 1, 1, leader, {leader}}));
  metadata_state restored;
  ASSERT_TRUE(restored.restore(s.encode_snapshot()).ok());
  EXPECT_EQ(restored.brokers(), s.brokers());
  EXPECT_EQ(restored.streams(), s.streams());
  EXPECT_EQ(restored.chain_head(), s.chain_head());
  EXPECT_EQ(restored.applied_count(), s.applied_count());
  // The restored copy goes on with the same sequence as the original.
  std::string entry = p.next(delete_stream{"orders"});
  apply_ok(s, entry);
  apply_ok(restored, entry);
  EXPECT_EQ(restored.chain_head(), s.chain_head());
  EXPECT_EQ(restored.streams(), s.streams());
}

TEST(MetadataState, ADivergedChainStopsTheStateWithAClearError) {
  metadata_state a, b;
  proposer pa, pb;
  register_brokers(a, pa, 3);
  register_brokers(b, pb, 3);
  // b applied another 4th entry than a (what 0.15's Figure 8 gap can do).
  apply_ok(a, pa.next(create_stream{stream_named("x", 1), 1, 1}));
  apply_ok(b, pb.next(create_stream{stream_named("y", 1), 1, 1}));
  // a's leader proposes the 5th entry; b receives it.
  std::string fifth = pa.next(delete_stream{"x"});
  auto out = b.apply(fifth);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), code::storage_error);
  EXPECT_NE(out.error().message().find("metadata diverged at metadata entry 5"), std::string::npos)
      << out.error().message();
  EXPECT_NE(out.error().message().find("move its metadata data dir aside"), std::string::npos);
  EXPECT_FALSE(b.failure().ok());
  // Nothing more applies, whatever comes.
  auto later = b.apply(pb.next(delete_stream{"y"}));
  ASSERT_FALSE(later.ok());
  EXPECT_EQ(b.streams().count("y"), 1u);
  EXPECT_EQ(b.applied_count(), 4u);
}

TEST(MetadataState, UnknownFormatVersionIsAClearError) {
  metadata_state s;
  pb::Entry e;
  e.set_format_version(format_version + 1);
  e.set_expected_hash(std::string(32, '\0'));
  e.set_command(encode_command(register_broker{1, "127.0.0.1:1"}));
  auto out = s.apply(e.SerializeAsString());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), code::unsupported_version);
  EXPECT_NE(out.error().message().find("format version 2, this build reads 1"), std::string::npos)
      << out.error().message();

  pb::Snapshot snap;
  snap.set_format_version(7);
  metadata_state t;
  status st = t.restore(snap.SerializeAsString());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::unsupported_version);
}

TEST(MetadataState, CorruptedEntryIsAClearErrorNotACrash) {
  proposer p;
  std::string good = p.next(register_broker{1, "127.0.0.1:1"});
  // Flip every byte in turn: the entry either fails to parse, fails the version or the
  // chain, or (a flip inside the address text) applies another registration; never a crash.
  int errors = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    metadata_state s;
    auto out = s.apply(bad);
    if (!out.ok()) {
      ++errors;
      EXPECT_TRUE(out.error().code() == code::storage_error || out.error().code() == code::unsupported_version)
          << out.error().to_string();
      EXPECT_FALSE(s.failure().ok());
    }
  }
  EXPECT_GT(errors, 0);
  metadata_state s;
  auto garbage = s.apply(std::string("\xff\xff\xff\xff", 4));
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message().find("does not parse as a metadata Entry"), std::string::npos);
  metadata_state t;
  status st = t.restore(std::string("\xff\xff\xff", 3));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), code::storage_error);
}

TEST(MetadataState, FailoverElectsFromTheAliveIsrOnlyAndTakesAPartitionOfflineWithoutOne) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  apply_ok(s, p.next(create_stream{stream_named("orders", 1), 3, 2}));
  EXPECT_TRUE(failover_changes(s).empty()) << "every broker alive: nothing to change";
  auto part = s.streams().at("orders").partitions[0];
  EXPECT_EQ(s.streams().at("orders").created_at, 4u) << "three registers came first";
  uint64_t first = part.leader;
  // The ISR loses the follower that is not the second replica: only the other may lead.
  uint64_t second = part.replicas[1], third = part.replicas[2];
  apply_ok(s, p.next(change_partition{"orders", 0, 1, first, {first, second}}));

  // The leader's broker is marked: the next alive ISR member in replica order leads, at a
  // new leader epoch, and the dead one leaves the ISR; one compare-and-set change.
  apply_ok(s, p.next(mark_broker{first, s.brokers().at(first).epoch, broker_state::unreachable}));
  auto changes = failover_changes(s);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].leader, second);
  EXPECT_EQ(changes[0].isr, (std::vector<uint64_t>{second}));
  EXPECT_EQ(changes[0].expected_partition_epoch, 2u);
  EXPECT_FALSE(apply_ok(s, p.next(changes[0])).refusal);
  part = s.streams().at("orders").partitions[0];
  EXPECT_EQ(part.leader, second);
  EXPECT_EQ(part.leader_epoch, 2u);
  EXPECT_TRUE(failover_changes(s).empty()) << "decided once";

  // The new leader dies too: the third replica is alive but out of the ISR, so no unclean
  // election: the partition goes offline and keeps its ISR.
  apply_ok(s, p.next(mark_broker{second, s.brokers().at(second).epoch, broker_state::unreachable}));
  changes = failover_changes(s);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].leader, 0u);
  EXPECT_EQ(changes[0].isr, (std::vector<uint64_t>{second}));
  EXPECT_FALSE(apply_ok(s, p.next(changes[0])).refusal);
  part = s.streams().at("orders").partitions[0];
  EXPECT_EQ(part.leader, 0u);
  EXPECT_EQ(part.leader_epoch, 3u);
  EXPECT_TRUE(failover_changes(s).empty()) << "offline stays offline while its ISR is away";
  (void)third;

  // The ISR member comes back: it leads again.
  apply_ok(s, p.next(register_broker{second, s.brokers().at(second).address}));
  changes = failover_changes(s);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].leader, second);
  EXPECT_FALSE(apply_ok(s, p.next(changes[0])).refusal);
  EXPECT_EQ(s.streams().at("orders").partitions[0].leader_epoch, 4u);

  // A stale election (decided at an older epoch) is refused by the state machine.
  auto stale = change_partition{"orders", 0, 1, second, {second}};
  auto refused = apply_ok(s, p.next(stale));
  ASSERT_TRUE(refused.refusal);
  EXPECT_EQ(refused.refusal->code, code::precondition_failed);
}

TEST(MetadataState, CommandsRoundTripThroughTheirBytes) {
  command c = change_partition{"orders", 2, 7, 3, {3, 1}};
  auto back = decode_command(encode_command(c), "test");
  ASSERT_TRUE(back.ok());
  auto* cp = std::get_if<change_partition>(&back.value());
  ASSERT_NE(cp, nullptr);
  EXPECT_EQ(cp->stream, "orders");
  EXPECT_EQ(cp->expected_partition_epoch, 7u);
  EXPECT_EQ(cp->isr, (std::vector<uint64_t>{3, 1}));
  EXPECT_FALSE(decode_command("\xff\xff", "test").ok());
}

// -- cursors (README.md "Cursors") ----------------------------------------------------------

commit_cursor cursor_at(const metadata_state& s, const std::string& stream, uint32_t partition,
                        const std::string& group, uint64_t offset, uint64_t max_cursors = 100) {
  const auto& p = s.streams().at(stream).partitions.at(partition);
  return commit_cursor{{stream, partition, group}, offset, p.leader, p.leader_epoch, max_cursors};
}

TEST(MetadataState, ACursorCommitsAtItsLeadersEpochAndADeposedLeadersLateCommitIsNotLeader) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  apply_ok(s, p.next(create_stream{stream_named("orders", 1), 3, 2}));
  auto first = cursor_at(s, "orders", 0, "billing", 10);
  EXPECT_FALSE(apply_ok(s, p.next(first)).refusal);
  EXPECT_EQ(s.cursors().at(cursor_key{"orders", 0, "billing"}), 10u);
  first.offset = 12;  // the same leader again: moves the cursor
  EXPECT_FALSE(apply_ok(s, p.next(first)).refusal);
  EXPECT_EQ(s.cursors().at(cursor_key{"orders", 0, "billing"}), 12u);

  // The leader changes (failover): the old leader's commit, decided before, is refused,
  // naming the new leader's address; the cursor keeps what it had.
  const auto& part = s.streams().at("orders").partitions[0];
  uint64_t next = part.replicas[1];
  apply_ok(s, p.next(change_partition{"orders", 0, part.partition_epoch, next, {next, part.replicas[2]}}));
  auto late = first;
  late.offset = 11;
  auto refused = apply_ok(s, p.next(late)).refusal;
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, code::not_leader) << refused->to_string();
  EXPECT_EQ(refused->leader_hint, "127.0.0.1:" + std::to_string(9000 + next));
  EXPECT_EQ(s.cursors().at(cursor_key{"orders", 0, "billing"}), 12u);
  // The new leader at its epoch commits.
  auto now = cursor_at(s, "orders", 0, "billing", 20);
  EXPECT_EQ(now.leader_epoch, 2u);
  EXPECT_FALSE(apply_ok(s, p.next(now)).refusal);
  EXPECT_EQ(s.cursors().at(cursor_key{"orders", 0, "billing"}), 20u);
  // The right broker at an older epoch is refused too (it lost and won the partition back).
  now.leader_epoch = 1;
  EXPECT_EQ(apply_ok(s, p.next(now)).refusal->code, code::not_leader);

  // No such stream or partition, and a bad group name.
  EXPECT_EQ(apply_ok(s, p.next(commit_cursor{{"nope", 0, "g"}, 1, next, 2, 100})).refusal->code,
            code::not_found);
  EXPECT_EQ(apply_ok(s, p.next(commit_cursor{{"orders", 3, "g"}, 1, next, 2, 100})).refusal->code,
            code::not_found);
  EXPECT_EQ(apply_ok(s, p.next(cursor_at(s, "orders", 0, "", 1))).refusal->code, code::bad_request);
  EXPECT_EQ(apply_ok(s, p.next(cursor_at(s, "orders", 0, std::string(max_cursor_group_bytes + 1, 'g'), 1)))
              .refusal->code,
            code::bad_request);
  EXPECT_EQ(s.chain_head(), p.head());
}

TEST(MetadataState, CursorsAreBoundedByMaxCursorsGoWithTheirStreamAndTravelInSnapshots) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 3);
  apply_ok(s, p.next(create_stream{stream_named("a", 2), 3, 1}));
  apply_ok(s, p.next(create_stream{stream_named("b", 1), 1, 1}));
  EXPECT_FALSE(apply_ok(s, p.next(cursor_at(s, "a", 0, "g1", 1, 3))).refusal);
  EXPECT_FALSE(apply_ok(s, p.next(cursor_at(s, "a", 1, "g1", 2, 3))).refusal);
  EXPECT_FALSE(apply_ok(s, p.next(cursor_at(s, "b", 0, "g1", 3, 3))).refusal);
  // A fourth cursor past the committing broker's max_cursors of 3: refused, typed.
  auto full = apply_ok(s, p.next(cursor_at(s, "b", 0, "g2", 4, 3))).refusal;
  ASSERT_TRUE(full);
  EXPECT_EQ(full->code, code::memory_budget_exhausted);
  EXPECT_EQ(full->limit, "broker.max_cursors");
  EXPECT_EQ(full->observed, 4u);
  EXPECT_EQ(full->max, 3u);
  // A known cursor always has room.
  EXPECT_FALSE(apply_ok(s, p.next(cursor_at(s, "b", 0, "g1", 9, 3))).refusal);
  EXPECT_EQ(s.cursors().size(), 3u);

  // Snapshots carry them; the copy for the controller's cache leaves them out, and the
  // state keeps them.
  metadata_state restored;
  ASSERT_TRUE(restored.restore(s.encode_snapshot()).ok());
  EXPECT_EQ(restored.cursors(), s.cursors());
  auto light = s.copy_without_cursors();
  EXPECT_TRUE(light.cursors().empty());
  EXPECT_EQ(light.streams(), s.streams());
  EXPECT_EQ(light.chain_head(), s.chain_head());
  EXPECT_EQ(s.cursors().size(), 3u);

  // Deleting a stream drops its cursors (a stream made again under the name starts
  // without them), on the original and on the restored copy alike.
  std::string entry = p.next(delete_stream{"a"});
  apply_ok(s, entry);
  apply_ok(restored, entry);
  ASSERT_EQ(s.cursors().size(), 1u);
  EXPECT_EQ(s.cursors().begin()->first, (cursor_key{"b", 0, "g1"}));
  EXPECT_EQ(s.cursors().begin()->second, 9u);
  EXPECT_EQ(restored.cursors(), s.cursors());
  EXPECT_EQ(restored.chain_head(), s.chain_head());
}

TEST(MetadataState, ACursorCommitRoundTripsThroughItsBytes) {
  command c = commit_cursor{{"orders", 2, "billing"}, 41, 3, 7, 100000};
  auto back = decode_command(encode_command(c), "test");
  ASSERT_TRUE(back.ok());
  auto* cc = std::get_if<commit_cursor>(&back.value());
  ASSERT_NE(cc, nullptr);
  EXPECT_EQ(cc->key, (cursor_key{"orders", 2, "billing"}));
  EXPECT_EQ(cc->offset, 41u);
  EXPECT_EQ(cc->leader, 3u);
  EXPECT_EQ(cc->leader_epoch, 7u);
  EXPECT_EQ(cc->max_cursors, 100000u);
}

// -- membership (metadata/README.md "Membership") ----------------------------------------

TEST(MetadataState, RemovingABrokerThatHoldsReplicasIsRefusedAndOneThatHoldsNoneIsGoneForGood) {
  metadata_state s;
  proposer p;
  register_brokers(s, p, 4);
  apply_ok(s, p.next(create_stream{stream_named("orders", 1), 3, 2}));
  // Placement with no load yet takes the lowest ids: broker 4 holds nothing.
  ASSERT_EQ(s.streams().at("orders").partitions[0].replicas, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(partitions_replicated_on(s, 2), (std::vector<std::string>{"orders/0"}));
  EXPECT_TRUE(partitions_replicated_on(s, 4).empty());

  auto held = apply_ok(s, p.next(remove_broker{2}));
  ASSERT_TRUE(held.refusal);
  EXPECT_EQ(held.refusal->code, code::precondition_failed);
  EXPECT_EQ(held.refusal->observed, 1u);
  EXPECT_NE(held.refusal->detail.find("orders/0"), std::string::npos) << held.refusal->detail;
  EXPECT_EQ(s.brokers().count(2), 1u);

  auto unknown = apply_ok(s, p.next(remove_broker{9}));
  ASSERT_TRUE(unknown.refusal);
  EXPECT_EQ(unknown.refusal->code, code::not_found);

  EXPECT_FALSE(apply_ok(s, p.next(remove_broker{4})).refusal);
  EXPECT_EQ(s.brokers().count(4), 0u);
  EXPECT_EQ(s.removed_brokers(), (std::set<uint64_t>{4}));
  // Its heartbeat cannot bring it back, and removing it again says it is not there.
  auto back = apply_ok(s, p.next(register_broker{4, "127.0.0.1:9004"}));
  ASSERT_TRUE(back.refusal);
  EXPECT_EQ(back.refusal->code, code::precondition_failed);
  EXPECT_EQ(s.brokers().count(4), 0u);
  auto again = apply_ok(s, p.next(remove_broker{4}));
  ASSERT_TRUE(again.refusal);
  EXPECT_EQ(again.refusal->code, code::not_found);

  // Placement no longer counts it: RF 4 needs four alive brokers, three are left.
  auto rf4 = apply_ok(s, p.next(create_stream{stream_named("wide", 1), 4, 1}));
  ASSERT_TRUE(rf4.refusal);
  EXPECT_EQ(rf4.refusal->code, code::insufficient_replicas);

  // The removed ids survive a snapshot, so a restored node refuses the register too.
  metadata_state restored;
  ASSERT_TRUE(restored.restore(s.encode_snapshot()).ok());
  EXPECT_EQ(restored.removed_brokers(), s.removed_brokers());
  std::string entry = p.next(register_broker{4, "127.0.0.1:9004"});
  EXPECT_TRUE(apply_ok(restored, entry).refusal);
  EXPECT_TRUE(apply_ok(s, entry).refusal);
  EXPECT_EQ(restored.chain_head(), s.chain_head());
}

TEST(MetadataState, RemoveBrokerRoundTripsThroughItsBytes) {
  auto back = decode_command(encode_command(remove_broker{7}), "test");
  ASSERT_TRUE(back.ok());
  auto* rb = std::get_if<remove_broker>(&back.value());
  ASSERT_NE(rb, nullptr);
  EXPECT_EQ(rb->id, 7u);
}

} // namespace
} // namespace levee::metadata
