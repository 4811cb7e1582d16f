// Streams in the metadata on three real `levee node` brokers on 127.0.0.1 (issue 16):
// CreateStream/DeleteStream go through Raft and every broker's StreamInfo, ListStreams and
// ClusterInfo agree; a replication factor above the alive brokers is insufficient_replicas;
// a publish or subscription sent to a broker that does not lead the partition is refused
// not_leader with the leader's address and the client follows it; the metadata leader
// killed (kill -9) while a stream keeps serving; a partition leader's broker killed: a new
// leader from the ISR at a bumped leader epoch, a partition with no ISR member left goes
// offline (no unclean election), and the killed broker comes back as a follower.
//
// What replication keeps of the data across these is the replication tests' (the leader
// actor's side); these look at the metadata and the routing.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include "tests/cluster_support.hpp"

namespace levee {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using namespace levee::test_cluster;

/// Every answer shows `stream` with `partitions` partitions, each with a leader, the same
/// on every broker.
bool placed_everywhere(const std::vector<cluster::ClusterInfo>& a, const std::string& stream,
                       uint32_t partitions) {
  for (uint32_t p = 0; p < partitions; ++p) {
    auto* first = partition_of(a.front(), stream, p);
    if (first == nullptr || first->leader() == 0)
      return false;
    for (auto& x : a) {
      auto* mine = partition_of(x, stream, p);
      if (mine == nullptr || mine->leader() != first->leader()
          || mine->leader_epoch() != first->leader_epoch()
          || mine->isr_size() != first->isr_size())
        return false;
    }
  }
  return true;
}

/// Creates `spec` through `sc` and waits until every broker shows its partitions led.
::testing::AssertionResult create_placed(cluster_fixture& c, stream_client& sc,
                                         const stream_spec& spec) {
  auto made = create_eventually(sc, spec);
  if (!made.ok())
    return ::testing::AssertionFailure() << made.error().to_string();
  std::string last;
  if (!c.eventually(all_of(c.members()),
                    [&](auto& a) { return placed_everywhere(a, spec.name, *spec.partitions); }, last))
    return ::testing::AssertionFailure() << "not placed everywhere; last answer:\n" << last;
  return ::testing::AssertionSuccess();
}

std::vector<out_message> one(const std::string& body) {
  return {out_message{"", "", body, {}}};
}

void stop_all(cluster_fixture& c) {
  for (auto& m : c.members())
    if (m.proc && m.proc->running()) {
      m.proc->signal(SIGTERM);
      EXPECT_EQ(m.proc->wait_exit(bound), 0) << test::read_file(m.stderr_path);
    }
}

/// Three brokers agreeing on a metadata leader before each test, stopped after it
/// (SIGTERM: each must exit 0).
class ClusterStreams : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(start_agreed(c, last)) << last; }
  void TearDown() override { stop_all(c); }

  cluster_fixture c{3};
  std::string last;
};

TEST_F(ClusterStreams, CreateAndDeleteGoThroughTheMetadataAndEveryBrokerAgrees) {

  // Through broker 2, whoever leads the metadata.
  auto sc = c.streams_of(c.by_id(2));
  auto spec = spec_of("orders", 2, 3, 2);
  auto made = create_eventually(*sc, spec);
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  EXPECT_EQ(made->config.replication_factor.value_or(0), 3u);
  EXPECT_EQ(made->config.min_insync_replicas.value_or(0), 2u);
  EXPECT_EQ(made->partitions.size(), 2u);

  // Every broker answers StreamInfo and ListStreams alike.
  for (auto& m : c.members()) {
    auto mc = c.streams_of(m);
    auto deadline = steady_clock::now() + bound;
    auto info = mc->get_stream_info("orders", 5s);
    while (!info.ok() && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
      info = mc->get_stream_info("orders", 5s);
    }
    ASSERT_TRUE(info.ok()) << "broker " << m.id << ": " << info.error().to_string();
    EXPECT_EQ(info->config.subject, "orders.>");
    EXPECT_EQ(info->config.replication_factor.value_or(0), 3u) << "broker " << m.id;
    EXPECT_EQ(info->config.min_insync_replicas.value_or(0), 2u) << "broker " << m.id;
    EXPECT_EQ(info->partitions.size(), 2u) << "broker " << m.id;
    auto list = mc->list_streams(5s);
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->streams.size(), 1u) << "broker " << m.id;
    EXPECT_EQ(list->streams[0].config.name, "orders");
  }
  // The same placement everywhere; with three brokers and a factor of three, each holds a
  // replica of every partition (its own partition actor).
  ASSERT_TRUE(c.eventually(all_of(c.members()),
                           [](auto& a) {
                             if (!placed_everywhere(a, "orders", 2))
                               return false;
                             for (auto& x : a)
                               for (uint32_t p = 0; p < 2; ++p) {
                                 auto* part = partition_of(x, "orders", p);
                                 if (part->replicas_size() != 3 || part->isr_size() != 3
                                     || !part->local_replica())
                                   return false;
                               }
                             return true;
                           },
                           last))
    << "the brokers do not agree on the placement; last answer:\n" << last;
  // Leaders spread: two partitions, two different brokers.
  auto info = c.info(c.by_id(1));
  ASSERT_TRUE(info);
  EXPECT_NE(partition_of(*info, "orders", 0)->leader(), partition_of(*info, "orders", 1)->leader());

  // levee cluster puts every broker's answer together: each partition's HW (its leader's)
  // and every replica's lag behind the leader's log end.
  ASSERT_TRUE(sc->publish("orders.a", one("counted"), [] {
                publish_options po;
                po.partition = 0;
                return po;
              }()).ok());
  test::child_process cli;
  ASSERT_TRUE(cli.start({levee_binary, "cluster", "--broker", cluster_fixture::address(c.by_id(3))}));
  auto line = cli.wait_for_line("partition 0: leader", bound);
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("HW "), std::string::npos) << *line;
  EXPECT_NE(line->find("lag 1:"), std::string::npos) << *line;
  EXPECT_EQ(cli.wait_exit(bound), 0);

  // A factor above the alive brokers is refused by the metadata, typed.
  spec.name = "wide";
  spec.subject = "wide.>";
  spec.replication_factor = 4;
  spec.min_insync_replicas = 1;
  auto wide = sc->create_stream(spec, 10s);
  ASSERT_FALSE(wide.ok());
  auto why = wide.error().as_rejection();
  EXPECT_EQ(why.code, code::insufficient_replicas) << why.to_string();
  EXPECT_EQ(why.observed, 3u);
  EXPECT_EQ(why.max, 4u);
  // min ISR above the factor: refused before the metadata.
  spec.replication_factor = 2;
  spec.min_insync_replicas = 3;
  auto above = sc->create_stream(spec, 10s);
  ASSERT_FALSE(above.ok());
  EXPECT_EQ(above.error().code(), code::bad_request);

  // Deleted through broker 3: gone everywhere.
  auto sc3 = c.streams_of(c.by_id(3));
  auto deleted = sc3->delete_stream("orders", 10s);
  ASSERT_TRUE(deleted.ok()) << deleted.to_string();
  for (auto& m : c.members()) {
    auto mc = c.streams_of(m);
    auto deadline = steady_clock::now() + bound;
    bool gone = false;
    while (!gone && steady_clock::now() < deadline) {
      auto list = mc->list_streams(5s);
      auto i = mc->get_stream_info("orders", 5s);
      gone = list.ok() && list->streams.empty() && !i.ok() && i.error().code() == code::not_found;
      if (!gone)
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(gone) << "broker " << m.id << " still has the deleted stream";
  }
  // Created again under the name: a new stream everywhere.
  auto again = create_eventually(*sc3, spec_of("orders", 1, 2));
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(again->partitions.size(), 1u);
}

TEST_F(ClusterStreams, APublishOrSubscriptionSentToABrokerThatDoesNotLeadFollowsTheHint) {
  auto sc = c.streams_of(c.by_id(1));
  ASSERT_TRUE(create_placed(c, *sc, spec_of("solo", 1, 1)));
  uint64_t leader = partition_of(*c.info(c.by_id(1)), "solo", 0)->leader();
  uint64_t other = leader == 1 ? 2 : 1;
  uint64_t third = 6 - leader - other;

  // Without following: not_leader, and the hint is the leader's client address.
  auto pub = c.streams_of(c.by_id(other));
  pub->set_max_redirects(0);
  auto refused = pub->publish("solo.a", one("refused"));
  ASSERT_FALSE(refused.ok());
  auto why = refused.error().as_rejection();
  EXPECT_EQ(why.code, code::not_leader) << why.to_string();
  EXPECT_EQ(why.leader_hint, cluster_fixture::address(c.by_id(leader))) << why.to_string();

  // Following (the default): the client moves to the leader and the publish is stored.
  pub->set_max_redirects(3);
  auto acks = pub->publish("solo.a", one("followed"));
  ASSERT_TRUE(acks.ok()) << acks.error().to_string();
  ASSERT_EQ(acks->size(), 1u);
  EXPECT_EQ(pub->redirects(), 1u);
  EXPECT_EQ(pub->broker_address(), cluster_fixture::address(c.by_id(leader)));
  auto second = pub->publish("solo.a", one("direct"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(pub->redirects(), 1u) << "already at the leader";

  // Asynchronous publishes: the frames the broker refused go again to the leader, in
  // order, once the ones before them are answered; every call hears its acks.
  auto async_pub = c.streams_of(c.by_id(other));
  std::vector<uint64_t> offsets;
  std::string async_failure;
  async_pub->on_acks([&](uint64_t, result<std::vector<message_ack>> acks) {
    if (!acks.ok())
      async_failure = acks.error().to_string();
    else
      for (auto& a : *acks)
        offsets.push_back(a.offset);
  });
  async_pub->set_batch_messages(4);  // several frames on their way to the wrong broker
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(async_pub->publish_async("solo.b", one("async " + std::to_string(i))).ok());
  auto flushed = async_pub->flush(10s);
  ASSERT_TRUE(flushed.ok()) << flushed.to_string();
  EXPECT_EQ(async_failure, "");
  ASSERT_EQ(offsets.size(), 10u);
  EXPECT_TRUE(std::is_sorted(offsets.begin(), offsets.end())) << "stored in publish order";
  EXPECT_EQ(async_pub->redirects(), 1u);
  EXPECT_EQ(async_pub->broker_address(), cluster_fixture::address(c.by_id(leader)));

  // A subscription sent to the third broker follows too, under the id it was given.
  auto sub_client = c.streams_of(c.by_id(third));
  subscribe_options from_start;
  from_start.stream = "solo";
  auto sub = sub_client->subscribe(from_start);
  ASSERT_TRUE(sub.ok());
  std::vector<std::string> bodies;
  auto deadline = steady_clock::now() + bound;
  while (bodies.size() < 12 && steady_clock::now() < deadline) {
    auto ev = sub_client->next(*sub, 1s);
    if (ev.batch)
      for (auto& m : ev.batch->messages)
        bodies.push_back(m.body);
    else if (ev.error && ev.error->code != code::deadline_exceeded)
      FAIL() << ev.error->to_string();
  }
  ASSERT_EQ(bodies.size(), 12u);
  EXPECT_EQ(bodies[0], "followed");
  EXPECT_EQ(bodies[1], "direct");
  EXPECT_EQ(bodies[11], "async 9");
  EXPECT_EQ(sub_client->redirects(), 1u);

  // The CLI follows it too.
  test::child_process cli;
  ASSERT_TRUE(cli.start({levee_binary, "pub", "solo.cli", "from the cli", "--broker",
                         cluster_fixture::address(c.by_id(other))},
                        c.dir().file("pub.stderr")));
  EXPECT_EQ(cli.wait_exit(bound), 0) << test::read_file(c.dir().file("pub.stderr"));
}

TEST_F(ClusterStreams, TheMetadataLeaderKilledWhileAStreamKeepsServing) {
  auto sc = c.streams_of(c.by_id(1));
  // Three partitions: one leader on each broker (placement spreads them).
  ASSERT_TRUE(create_placed(c, *sc, spec_of("serve", 3, 1)));
  auto before = c.info(c.by_id(1));
  uint64_t meta_leader = before->leader_id();
  uint32_t partition = 0;
  uint64_t serving = 0;
  for (uint32_t p = 0; p < 3; ++p)
    if (partition_of(*before, "serve", p)->leader() != meta_leader) {
      partition = p;
      serving = partition_of(*before, "serve", p)->leader();
    }
  ASSERT_NE(serving, 0u);
  auto pub = c.streams_of(c.by_id(serving));
  publish_options po;
  po.partition = partition;
  ASSERT_TRUE(pub->publish("serve.x", one("before"), po).ok());

  auto killed_at = steady_clock::now();
  c.kill(c.by_id(meta_leader));
  auto survivors = all_of(c.members(), meta_leader);
  // Publishes go on while the survivors elect a new metadata leader.
  uint64_t ok = 0, failed = 0;
  std::string failure;
  bool elected = false;
  while (!elected && steady_clock::now() < killed_at + bound) {
    auto r = pub->publish("serve.x", one("during"), po);
    if (r.ok())
      ++ok;
    else {
      ++failed;
      failure = r.error().to_string();
    }
    auto i = c.info(*survivors[0]);
    elected = i && i->serving_as_leader() ? true
              : i && i->leader_id() != 0 && i->leader_id() != meta_leader;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(elected) << "no new metadata leader";
  std::printf("new metadata leader after %lld ms; %llu publishes acknowledged meanwhile, %llu "
              "refused\n",
              static_cast<long long>(duration_cast<milliseconds>(steady_clock::now() - killed_at).count()),
              static_cast<unsigned long long>(ok), static_cast<unsigned long long>(failed));
  EXPECT_GT(ok, 0u);
  EXPECT_EQ(failed, 0u) << failure;
  // The new leader serves metadata: a stream is created through a survivor.
  auto after = create_eventually(*c.streams_of(*survivors[1]), spec_of("after", 1, 1));
  EXPECT_TRUE(after.ok()) << after.error().to_string();
}

TEST_F(ClusterStreams, APartitionLeadersBrokerKilledGetsANewLeaderFromTheIsrAtANewEpoch) {
  auto sc = c.streams_of(c.by_id(1));
  ASSERT_TRUE(create_placed(c, *sc, spec_of("ha", 1, 3, 2)));
  // One copy of each partition: the killed broker's goes offline.
  ASSERT_TRUE(create_placed(c, *sc, spec_of("solo", 3, 1)));
  auto before = c.info(c.by_id(1));
  auto* part = partition_of(*before, "ha", 0);
  uint64_t leader = part->leader();
  uint64_t epoch = part->leader_epoch();
  uint32_t lost = 3;
  for (uint32_t p = 0; p < 3; ++p)
    if (partition_of(*before, "solo", p)->leader() == leader)
      lost = p;
  ASSERT_LT(lost, 3u) << "placement put no solo partition on broker " << leader;
  ASSERT_TRUE(sc->publish("ha.a", one("before")).ok());

  auto killed_at = steady_clock::now();
  c.kill(c.by_id(leader));
  auto survivors = all_of(c.members(), leader);
  ASSERT_TRUE(c.eventually(survivors,
                           [&](auto& a) {
                             for (auto& x : a) {
                               auto* p = partition_of(x, "ha", 0);
                               if (p == nullptr || p->leader() == 0 || p->leader() == leader
                                   || p->leader_epoch() != epoch + 1 || contains(p->isr(), leader)
                                   || !contains(p->isr(), p->leader()))
                                 return false;
                             }
                             return true;
                           },
                           last))
    << "no new leader from the ISR at epoch " << epoch + 1 << "; last answer:\n" << last;
  std::printf("partition ha/0: new leader %lld ms after broker %llu was killed\n",
              static_cast<long long>(duration_cast<milliseconds>(steady_clock::now() - killed_at).count()),
              static_cast<unsigned long long>(leader));
  // Publishes reach the new leader, through any survivor.
  auto pub = c.streams_of(*survivors[0]);
  auto acks = pub->publish("ha.a", one("after"));
  EXPECT_TRUE(acks.ok()) << acks.error().to_string();

  // The killed broker's solo partition had no other replica: offline, not led by anyone
  // else (no unclean election), and a publish there says so without a hint.
  ASSERT_TRUE(c.eventually(survivors,
                           [&](auto& a) {
                             for (auto& x : a) {
                               auto* p = partition_of(x, "solo", lost);
                               if (p == nullptr || p->leader() != 0)
                                 return false;
                             }
                             return true;
                           },
                           last))
    << last;
  publish_options po;
  po.partition = lost;
  auto offline = pub->publish("solo.x", one("nowhere"), po);
  ASSERT_FALSE(offline.ok());
  auto why = offline.error().as_rejection();
  EXPECT_EQ(why.code, code::not_leader) << why.to_string();
  EXPECT_TRUE(why.leader_hint.empty()) << why.to_string();
  EXPECT_NE(why.detail.find("offline"), std::string::npos) << why.to_string();

  // Back with its data: a follower of ha/0 (its publishes go to the new leader), and the
  // only member of solo's ISR again, so it leads that partition again.
  ASSERT_TRUE(c.start(c.by_id(leader)));
  ASSERT_TRUE(c.eventually(all_of(c.members()),
                           [&](auto& a) {
                             for (auto& x : a) {
                               auto* h = partition_of(x, "ha", 0);
                               auto* s = partition_of(x, "solo", lost);
                               if (h == nullptr || s == nullptr || h->leader() == leader
                                   || s->leader() != leader)
                                 return false;
                             }
                             return agree(a, 3);
                           },
                           last))
    << last;
  auto back = c.streams_of(c.by_id(leader));
  auto followed = back->publish("ha.a", one("from the old leader's broker"));
  ASSERT_TRUE(followed.ok()) << followed.error().to_string();
  EXPECT_EQ(back->redirects(), 1u);
  auto local = back->publish("solo.x", one("home again"), po);
  EXPECT_TRUE(local.ok()) << local.error().to_string();
}

// -- cursors in the metadata (broker/README.md "Cursors in the metadata") -------------------

/// `what()` again (a new leader settling: unavailable, not_leader) until it succeeds or the
/// bound passes; its last answer.
template <class F>
auto until_ok(F what) -> decltype(what()) {
  auto deadline = steady_clock::now() + bound;
  auto r = what();
  while (!r.ok() && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    r = what();
  }
  return r;
}

/// Waits until every broker of `who` shows a leader of `stream`/0 other than `old` at a
/// newer leader epoch than `epoch`; that leader.
uint64_t new_leader_of(cluster_fixture& c, const std::vector<member*>& who, const std::string& stream,
                       uint64_t old, uint64_t epoch, std::string& last) {
  uint64_t leader = 0;
  bool moved = c.eventually(who,
                            [&](auto& a) {
                              for (auto& x : a) {
                                auto* p = partition_of(x, stream, 0);
                                if (p == nullptr || p->leader() == 0 || p->leader() == old
                                    || p->leader_epoch() <= epoch)
                                  return false;
                                leader = p->leader();
                              }
                              return true;
                            },
                            last);
  return moved ? leader : 0;
}

TEST_F(ClusterStreams, ACommittedCursorSurvivesItsLeadersKill) {
  auto sc = c.streams_of(c.by_id(1));
  ASSERT_TRUE(create_placed(c, *sc, spec_of("ledger", 1, 3)));
  auto before = c.info(c.by_id(1));
  auto* part = partition_of(*before, "ledger", 0);
  uint64_t leader = part->leader();
  uint64_t epoch = part->leader_epoch();

  // Committed at the leader, and through another broker (not_leader with the hint,
  // followed): both go through Raft into every broker's table.
  auto at_leader = c.streams_of(c.by_id(leader));
  auto committed = at_leader->commit_cursor("billing", "ledger", 0, 7, 10s);
  ASSERT_TRUE(committed.ok()) << committed.to_string();
  auto via = c.streams_of(c.by_id(leader == 1 ? 2 : 1));
  committed = via->commit_cursor("audit", "ledger", 0, 3, 10s);
  ASSERT_TRUE(committed.ok()) << committed.to_string();
  EXPECT_EQ(via->redirects(), 1u);
  auto fetched = at_leader->fetch_cursor("billing", "ledger", 0, 10s);
  ASSERT_TRUE(fetched.ok()) << fetched.error().to_string();
  EXPECT_EQ(fetched->value_or(0), 7u);

  // kill -9: a new leader from the ISR, which answers with the cursors committed at the
  // old one (they live in the replicated metadata, not in the old leader's `__cursors`).
  c.kill(c.by_id(leader));
  auto survivors = all_of(c.members(), leader);
  uint64_t next = new_leader_of(c, survivors, "ledger", leader, epoch, last);
  ASSERT_NE(next, 0u) << "no new leader of ledger/0; last answer:\n" << last;
  auto at_next = c.streams_of(c.by_id(next));
  at_next->set_max_redirects(0);  // answered here, by the new leader itself
  auto after = until_ok([&] { return at_next->fetch_cursor("billing", "ledger", 0, 5s); });
  ASSERT_TRUE(after.ok()) << after.error().to_string();
  ASSERT_TRUE(after->has_value()) << "the new leader does not have the cursor";
  EXPECT_EQ(**after, 7u);
  auto audit = at_next->fetch_cursor("audit", "ledger", 0, 5s);
  ASSERT_TRUE(audit.ok()) << audit.error().to_string();
  EXPECT_EQ(audit->value_or(0), 3u);
  auto none = at_next->fetch_cursor("nobody", "ledger", 0, 5s);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  // The new leader commits on (at its own leader epoch).
  committed = at_next->commit_cursor("billing", "ledger", 0, 9, 10s);
  ASSERT_TRUE(committed.ok()) << committed.to_string();
  EXPECT_EQ(at_next->fetch_cursor("billing", "ledger", 0, 5s)->value_or(0), 9u);

  // Deleted and created again: the new stream starts without the old one's cursors.
  ASSERT_TRUE(at_next->delete_stream("ledger", 10s).ok());
  auto again = create_eventually(*at_next, spec_of("ledger", 1, 2));
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  at_next->set_max_redirects(3);
  auto fresh = until_ok([&] { return at_next->fetch_cursor("billing", "ledger", 0, 5s); });
  ASSERT_TRUE(fresh.ok()) << fresh.error().to_string();
  EXPECT_FALSE(fresh->has_value()) << "the deleted stream's cursor came back";
}

// What it adds to the test above: the new leader has the messages (replicated), START_CURSOR
// starts at the committed offset among them, and an id the old leader acknowledged (ack =
// all: in every ISR member's log, so in the new leader's dedupe window,
// streams::partition_log::append_copy) is a duplicate at its offset there.
TEST_F(ClusterStreams, StartCursorAndAnAcknowledgedIdSurviveTheLeadersKill) {
  auto sc = c.streams_of(c.by_id(1));
  ASSERT_TRUE(create_placed(c, *sc, spec_of("pay", 1, 3, 2)));
  auto before = c.info(c.by_id(1));
  auto* part = partition_of(*before, "pay", 0);
  uint64_t leader = part->leader();
  uint64_t epoch = part->leader_epoch();
  auto at_leader = c.streams_of(c.by_id(leader));
  publish_options all;
  all.ack = ack_mode::all;
  all.timeout = 10s;
  for (int i = 0; i < 10; ++i) {
    auto acks = at_leader->publish("pay.x", {out_message{"", "pay-" + std::to_string(i),
                                                         "m" + std::to_string(i), {}}},
                                   all);
    ASSERT_TRUE(acks.ok()) << acks.error().to_string();
    ASSERT_EQ((*acks)[0].offset, static_cast<uint64_t>(i));
  }
  auto committed = at_leader->commit_cursor("billing", "pay", 0, 6, 10s);
  ASSERT_TRUE(committed.ok()) << committed.to_string();

  c.kill(c.by_id(leader));
  uint64_t next = new_leader_of(c, all_of(c.members(), leader), "pay", leader, epoch, last);
  ASSERT_NE(next, 0u) << "no new leader of pay/0; last answer:\n" << last;
  auto at_next = c.streams_of(c.by_id(next));
  auto cursor = until_ok([&] { return at_next->fetch_cursor("billing", "pay", 0, 5s); });
  ASSERT_TRUE(cursor.ok()) << cursor.error().to_string();
  EXPECT_EQ(cursor->value_or(0), 6u);

  // START_CURSOR at the new leader: from the committed offset.
  subscribe_options from_cursor;
  from_cursor.stream = "pay";
  from_cursor.start = start_at::cursor();
  from_cursor.group = "billing";
  auto sub = at_next->subscribe(from_cursor);
  ASSERT_TRUE(sub.ok()) << sub.error().to_string();
  std::vector<message_in> got;
  auto deadline = steady_clock::now() + bound;
  while (got.size() < 4 && steady_clock::now() < deadline) {
    auto ev = at_next->next(*sub, 1s);
    if (ev.batch)
      for (auto& m : ev.batch->messages)
        got.push_back(m);
    else if (ev.error && ev.error->code != code::deadline_exceeded)
      FAIL() << ev.error->to_string();
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.front().offset, 6u);
  EXPECT_EQ(got.front().body, "m6");
  (void)at_next->unsubscribe(*sub);

  // An id the old leader acknowledged, published again at the new one: a duplicate with
  // the original offset, not a second copy.
  auto again = at_next->publish("pay.x", {out_message{"", "pay-3", "m3 again", {}}}, all);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  ASSERT_EQ(again->size(), 1u);
  EXPECT_TRUE((*again)[0].duplicate);
  EXPECT_EQ((*again)[0].offset, 3u);
}

/// Commits one after another for `span` through clients of `broker`, `clients` of them
/// at once (each its own group), then reads each group's cursor back there: commits per
/// second, and the first failure.
double commit_rate(cluster_fixture& c, uint64_t broker, uint32_t partition, int clients,
                   milliseconds span, std::string& failure) {
  std::vector<std::thread> threads;
  std::vector<uint64_t> counts(static_cast<size_t>(clients), 0);
  std::mutex mu;
  auto start = steady_clock::now();
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      auto sc = c.streams_of(c.by_id(broker));
      sc->set_max_redirects(0);
      auto group = "rate-" + std::to_string(clients) + "-" + std::to_string(i);
      while (steady_clock::now() - start < span) {
        auto r = sc->commit_cursor(group, "rate", partition, counts[static_cast<size_t>(i)] + 1, 10s);
        if (!r.ok()) {
          std::lock_guard<std::mutex> guard{mu};
          if (failure.empty())
            failure = r.to_string();
          return;
        }
        ++counts[static_cast<size_t>(i)];
      }
      // Read at once where it was committed: the answer came once this broker's table had
      // it (forwarded commits too, before its own Raft node applied them).
      auto at = sc->fetch_cursor(group, "rate", partition, 5s);
      if (!at.ok() || at->value_or(0) != counts[static_cast<size_t>(i)]) {
        std::lock_guard<std::mutex> guard{mu};
        if (failure.empty())
          failure = "fetched " + (at.ok() ? std::to_string(at->value_or(0)) : at.error().to_string())
                    + " after committing " + std::to_string(counts[static_cast<size_t>(i)]);
      }
    });
  for (auto& t : threads)
    t.join();
  double seconds = duration<double>(steady_clock::now() - start).count();
  uint64_t total = 0;
  for (auto n : counts)
    total += n;
  return static_cast<double>(total) / seconds;
}

// The figure broker/README.md quotes: every commit is a Raft entry (written and fsynced
// by a majority) before it is answered.
TEST_F(ClusterStreams, CursorCommitsPerSecondThroughRaft) {
  auto sc = c.streams_of(c.by_id(1));
  ASSERT_TRUE(create_placed(c, *sc, spec_of("rate", 3, 3)));
  auto info = c.info(c.by_id(1));
  uint64_t meta_leader = info->leader_id();
  // One partition led by the metadata leader's broker (its commits are submitted there),
  // one led by another (forwarded to the metadata leader first).
  std::optional<uint32_t> local, forwarded;
  for (uint32_t p = 0; p < 3; ++p)
    (partition_of(*info, "rate", p)->leader() == meta_leader ? local : forwarded) = p;
  ASSERT_TRUE(local && forwarded);
  for (auto [p, how] : {std::pair{*local, "at the metadata leader"}, std::pair{*forwarded, "forwarded"}}) {
    uint64_t broker = partition_of(*info, "rate", p)->leader();
    for (int clients : {1, 8}) {
      std::string failure;
      double rate = commit_rate(c, broker, p, clients, 2s, failure);
      std::printf("cursor commits %s, %d client%s: %.0f/s\n", how, clients, clients == 1 ? "" : "s",
                  rate);
      EXPECT_EQ(failure, "");
      EXPECT_GT(rate, 0.0);
    }
  }
}

} // namespace
} // namespace levee
